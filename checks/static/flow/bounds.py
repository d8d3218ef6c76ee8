"""Least values: a number an integer expression is known never to go below in the official run (a loop
variable of ``range(hi, lo - 1, -1)`` is at least ``lo``; ``order - 1`` one less than ``order``), or
``UNKNOWN``. A slice of the stream that starts at least one token in and runs to its end (``tokens[k:]``
with ``k = order - 1`` and ``order >= 2``) drops the first tokens of its contexts: it holds the tokens
that follow them, the targets (interpret.py). A start that may be 0 proves nothing.

The bounds are kept per name, as the numbers of ``ConstEval`` are: an assignment sets or forgets its
name, the two branches of an ``if`` keep the lesser bound of each name (and the constants both leave
alike, ``branches``), a loop forgets what its body assigns. An object's field has a bound when
``__init__`` is the only method that assigns it (``self.min_order = 2``).
"""

from __future__ import annotations

import libcst as cst

from .consts import UNKNOWN
from .tree import assigned_names, dotted, walk


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def field_sites(cls: cst.ClassDef) -> dict[str, int]:
    """How many assignments of each ``self.<field>`` the class's methods hold (an augmented one counts)."""
    out: dict[str, int] = {}
    for item in cls.body.body:
        if not isinstance(item, cst.FunctionDef):
            continue
        for name in _self_fields(item):
            out[name] = out.get(name, 0) + 1
    return out


def _self_fields(func: cst.FunctionDef) -> list[str]:
    out = []
    for n in walk(func.body):
        targets = [t.target for t in n.targets] if isinstance(n, cst.Assign) else \
            [n.target] if isinstance(n, (cst.AugAssign, cst.AnnAssign)) else []
        while targets:
            t = targets.pop()
            if isinstance(t, (cst.Tuple, cst.List)):
                targets.extend(e.value for e in t.elements)
            elif isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == "self":
                out.append(t.attr.value)
    return out


class LeastValues:
    """Lower bounds of integer values (a mixin of ``Walker``, after ``ConstEval``)."""

    def least(self, node, depth: int = 0):
        """A number ``node`` never goes below in the official run, or ``UNKNOWN``."""
        if depth > 12:
            return UNKNOWN
        v = self.num(node)
        if _number(v):
            return v
        t = type(node)
        if t is cst.Name:
            return self.mins.get(node.value, UNKNOWN)
        if t is cst.Attribute:
            return self.field_least(node)
        if t is cst.BinaryOperation:
            return self._least_binop(node, depth)
        if t is cst.IfExp:
            a, b = self.least(node.body, depth + 1), self.least(node.orelse, depth + 1)
            return UNKNOWN if UNKNOWN in (a, b) else min(a, b)
        if t is cst.Call and dotted(node.func) in ("max", "min", "int") and node.args:
            vals = [self.least(a.value, depth + 1) for a in node.args if a.keyword is None and not a.star]
            known = [x for x in vals if x is not UNKNOWN]
            if dotted(node.func) == "max":
                return max(known) if known else UNKNOWN
            return min(vals) if vals and len(known) == len(vals) else UNKNOWN
        return UNKNOWN

    def _least_binop(self, node: cst.BinaryOperation, depth: int):
        op = node.operator
        a = self.least(node.left, depth + 1)
        if a is UNKNOWN:
            return UNKNOWN
        if isinstance(op, cst.Add):
            b = self.least(node.right, depth + 1)
            return UNKNOWN if b is UNKNOWN else a + b
        c = self.num(node.right)  # the operand must be exact: a bound on it bounds nothing here
        if not _number(c):
            return UNKNOWN
        if isinstance(op, cst.Subtract):
            return a - c
        if isinstance(op, cst.Multiply) and a >= 0 and c >= 0:
            return a * c
        if isinstance(op, cst.FloorDivide) and c > 0:
            return a // c
        return UNKNOWN

    def field_least(self, node: cst.Attribute):
        """``self.<field>`` in a method: the bound ``__init__``, its only writer, gave it."""
        if not (isinstance(node.value, cst.Name) and node.value.value == "self" and self.f is not None and self.f.cls):
            return UNKNOWN
        return self.p.field_least.get((self.f.cls, node.attr.value), UNKNOWN)

    def note_field(self, target, value) -> None:
        """``self.<field> = value`` in ``__init__``: the field's bound, if no other assignment writes it."""
        if not (isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) and target.value.value == "self"
                and self.f is not None and self.f.cls and self.f.node.name.value == "__init__" and not self.loop_depth):
            return
        key = (self.f.cls, target.attr.value)
        lb = self.least(value)
        if self.p.field_sites.get(key) == 1 and lb is not UNKNOWN and not self.disabled:
            self.p.field_least[key] = lb
        else:
            self.p.field_least.pop(key, None)

    def range_least(self, it):
        """The least value a ``for`` variable over ``range(...)`` takes."""
        if not (isinstance(it, cst.Call) and dotted(it.func) == "range") or any(a.keyword or a.star for a in it.args):
            return UNKNOWN
        args = [a.value for a in it.args]
        if len(args) == 1:
            return 0
        if len(args) == 2:
            return self.least(args[0])
        step = self.num(args[2])
        if not _number(step) or step == 0:
            return UNKNOWN
        if step > 0:
            return self.least(args[0])
        stop = self.least(args[1])  # counting down: every value lies above the stop
        return UNKNOWN if stop is UNKNOWN else stop + 1

    def set_least(self, name: str, lb) -> None:
        if lb is UNKNOWN or self.disabled:
            self.mins.pop(name, None)
        else:
            self.mins[name] = lb

    def forget_least(self, node) -> None:
        """The names a statement binds have no bound its walk may count on (a loop's, before and after)."""
        for name in assigned_names(node):
            self.mins.pop(name, None)

    def branches(self, walk_body, walk_else, live: bool | None) -> None:
        """Walk an ``if``'s two branches: after them a name keeps the lesser of its two bounds, and a constant or
        number only where both branches leave the same one (only the branch that runs, where the test is known)."""
        before = (dict(self.mins), dict(self.consts), dict(self.nums))
        walk_body()
        after_body = (self.mins, self.consts, self.nums)
        self.mins, self.consts, self.nums = (dict(x) for x in before)
        walk_else()
        after_else = (self.mins, self.consts, self.nums)
        if live is not None:
            self.mins, self.consts, self.nums = after_body if live else after_else
            return
        self.mins = {k: min(v, after_else[0][k]) for k, v in after_body[0].items() if k in after_else[0]}
        self.consts, self.nums = (_agreed(a, b) for a, b in zip(after_body[1:], after_else[1:]))


def _agreed(a: dict, b: dict) -> dict:
    """The entries two branches leave alike."""
    out = {}
    for k, v in a.items():
        if k in b and type(b[k]) is type(v):
            try:
                same = bool(b[k] == v)
            except Exception:  # noqa: BLE001 - values that cannot be compared are not alike
                same = False
            if same:
                out[k] = v
    return out
