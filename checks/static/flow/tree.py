"""Reading libcst trees fast: literal values, dotted names, child nodes in libcst's order without
whitespace and punctuation, and the code of a node."""

from __future__ import annotations

import ast
import collections.abc
import dataclasses
import functools
import typing
from dataclasses import dataclass

import libcst as cst


@functools.lru_cache(maxsize=65536)
def _literal_text(text: str):
    return ast.literal_eval(text)


def literal_value(node):
    """``node.evaluated_value`` of a number or plain string literal (libcst compiles the text each time)."""
    t = type(node)
    if t is cst.Integer or t is cst.Float or t is cst.SimpleString:
        return _literal_text(node.value)
    return node.evaluated_value


def dotted(node) -> str:
    t = type(node)  # exact types: libcst's concrete node classes have no subclasses
    if t is cst.Name:
        return node.value
    if t is cst.Attribute:
        return f"{dotted(node.value)}.{node.attr.value}"
    return ""


_EMPTY_MODULE = cst.Module(body=[])


class _FieldOrder(cst.CSTVisitor):
    """Records the fields libcst's own traversal visits on one node, in its order, without descending."""

    def __init__(self, root: cst.CSTNode):
        super().__init__()
        self.root, self.fields = root, []

    def on_visit(self, node) -> bool:
        return node is self.root

    def on_leave(self, original_node) -> None:
        pass

    def on_visit_attribute(self, node, attribute: str) -> None:
        if node is self.root and attribute not in self.fields:
            self.fields.append(attribute)

    def on_leave_attribute(self, original_node, attribute: str) -> None:
        pass


# Whitespace, comments and punctuation: ``walk`` skips them (no analysis reads them, and they are about
# two thirds of a tree's nodes). Operators are kept.
TRIVIA = (cst.BaseParenthesizableWhitespace, cst.Newline, cst.Comment, cst.TrailingWhitespace, cst.EmptyLine,
          cst.Comma, cst.Dot, cst.Colon, cst.Semicolon, cst.AssignEqual, cst.LeftParen, cst.RightParen,
          cst.LeftSquareBracket, cst.RightSquareBracket, cst.LeftCurlyBrace, cst.RightCurlyBrace)


@dataclass(frozen=True)
class _Fields:
    visited: tuple[str, ...]  # the fields libcst's own traversal visits, in its order
    check: tuple[str, ...]  # the node's other fields whose type allows a node (visited only when set)
    code: tuple[tuple[str, int], ...]  # visited fields that can hold more than trivia, with their shape


_ONE, _SEQ, _EITHER = 0, 1, 2  # a field holds one node (or None), a sequence of nodes, or either
_ORDER: dict[type, _Fields] = {}
_IS_NODE: dict[type, bool] = {}
_SENTINEL = cst.MaybeSentinel.DEFAULT


def _node_classes(ann) -> list | None:
    """Node classes a field annotation allows (through Optional, Union, Sequence); None if unreadable."""
    if isinstance(ann, type):
        return [ann] if issubclass(ann, cst.CSTNode) else []
    if isinstance(ann, str):
        return None
    out = []
    for a in typing.get_args(ann):
        if isinstance(a, str) and typing.get_origin(ann) is typing.Literal:
            continue
        sub = _node_classes(a)
        if sub is None:
            return None
        out += sub
    return out


def _shape(ann) -> int:
    """Whether a field annotation allows one node, a sequence of nodes, or either (or is unreadable)."""
    def shapes(a) -> set | None:
        if isinstance(a, type):
            return {_ONE} if issubclass(a, cst.CSTNode) else set()
        if typing.get_origin(a) is typing.Literal:
            return set()
        if typing.get_origin(a) in (collections.abc.Sequence, list, tuple):
            return {_SEQ}
        if typing.get_origin(a) is typing.Union:
            out = set()
            for x in typing.get_args(a):
                sub = shapes(x)
                if sub is None:
                    return None
                out |= sub
            return out
        return None
    found = shapes(ann)
    return found.pop() if found is not None and len(found) == 1 else _EITHER


def _field_order(node) -> _Fields:
    rec = _FieldOrder(node)
    node.visit(rec)
    visited = tuple(rec.fields)
    fields = {f.name: f.type for f in dataclasses.fields(node)}
    kinds = {a: _node_classes(t) for a, t in fields.items()}
    code = tuple((a, _shape(fields.get(a))) for a in visited
                 if not (kinds.get(a) and all(issubclass(k, TRIVIA) for k in kinds[a])))
    check = tuple(a for a in fields if a not in visited and kinds[a] != [])
    return _Fields(visited, check, code)


def _is_node(v) -> bool:
    known = _IS_NODE.get(type(v))
    if known is None:
        known = _IS_NODE[type(v)] = issubclass(type(v), cst.CSTNode)
    return known


def _holds_node(v) -> bool:
    if type(v) is tuple or type(v) is list:
        return any(_holds_node(x) for x in v)
    return _is_node(v)


def _read(node, fields: tuple[str, ...]) -> list:
    out = []
    for a in fields:
        v = getattr(node, a)
        if v is None or v is _SENTINEL:
            continue
        if _is_node(v):
            out.append(v)
        else:  # a sequence of nodes
            out.extend(v)
    return out


def _fields(node) -> _Fields | None:
    """The node type's recorded fields, or None when this node holds a node in a field the recording did
    not see visited (libcst skips some fields when they are empty): then only ``children`` is exact."""
    t = type(node)
    order = _ORDER.get(t)
    if order is None:
        order = _ORDER[t] = _field_order(node)
    for a in order.check:
        if _holds_node(getattr(node, a)):
            new = _field_order(node)
            if set(new.visited) >= set(order.visited):
                _ORDER[t] = new
            return None
    return order


def children(node) -> list:
    """``node.children`` (the child nodes in lexical order), read from the node's fields.

    libcst's ``children`` rebuilds the node through a visitor on every call (tens of microseconds);
    here the order of each node type's fields is recorded once from that same traversal.
    """
    order = _fields(node)
    return list(node.children) if order is None else _read(node, order.visited)


def code_children(node) -> list:
    """``children`` without whitespace, comments and punctuation."""
    order = _fields(node)
    if order is None:
        return [c for c in node.children if not isinstance(c, TRIVIA)]
    return _read(node, [a for a, _ in order.code])


def walk(node):
    """Every node from ``node`` down but whitespace, comments and punctuation, depth first with the later
    children first (a stack walk over ``children``, in the same order)."""
    stack = [node]
    pop, push, extend = stack.pop, stack.append, stack.extend
    orders = _ORDER
    while stack:
        n = pop()
        yield n
        order = orders.get(type(n))
        if order is None or order.check:
            order = _fields(n)
            if order is None:
                extend(code_children(n))
                continue
        for a, shape in order.code:
            v = getattr(n, a)
            if shape == _ONE:
                if v is not None and v is not _SENTINEL:
                    push(v)
            elif shape == _SEQ:
                if v is not None and v is not _SENTINEL:
                    extend(v)
            elif v is not None and v is not _SENTINEL:
                if _is_node(v):
                    push(v)
                else:
                    extend(v)


def code(node) -> str:
    try:
        return _EMPTY_MODULE.code_for_node(node)
    except Exception:  # noqa: BLE001 - a node we cannot print has no code to compare
        return ""


def assigned_names(node) -> set[str]:
    """Names a statement (a loop with its body) binds: targets of assignments, ``for`` and ``:=``."""
    out = set()
    for n in walk(node):
        if isinstance(n, cst.Assign):
            targets = [t.target for t in n.targets]
        elif isinstance(n, (cst.AugAssign, cst.AnnAssign, cst.NamedExpr, cst.For)):
            targets = [n.target]
        else:
            continue
        while targets:
            t = targets.pop()
            if isinstance(t, (cst.Tuple, cst.List)):
                targets.extend(e.value for e in t.elements)
            elif isinstance(t, cst.StarredElement):
                targets.append(t.value)
            elif isinstance(t, (cst.Name, cst.Attribute)) and dotted(t):
                out.add(dotted(t))
    return out

