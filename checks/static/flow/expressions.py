"""Expressions: what labels a value computed by an expression carries (names, attributes, subscripts, table
reads, arithmetic, comparisons, comprehensions), and the events an expression makes (a table read keyed by the
target, a gate on the target, a cut of the stream). A mixin of ``Walker`` (interpret.py)."""

from __future__ import annotations

import re

import libcst as cst

from .consts import ORDER_OPS, UNKNOWN
from .labels import EMPTY, READ_AT, SIZE_OF, STRUCTURAL_PREFIXES, It, Tup, elem, flat, has_placeholder, join, size_of
from .limits import is_record, prefix_cut, random_start, stream_record
from .library import SHAPE_ATTRS, SIZE_ATTRS, _PATHISH, _TRAIN_PATH, _VAL_PATH
from .model import Event, Need
from .tree import code, dotted, literal_value
from .vocab import (BOOL, CLOCK, DIST, DOUBLE_SCORING, EQUAL_TO, FUTURE, INPUTS, LOSS, MASK, PAIRED, PARAM,
                    PARTIAL_EVAL, RANDOM, SHIFT, TARGET, TARGET_GATE, TARGET_IF, TARGET_KEYED_READ, TARGET_PROB,
                    TARGET_TEST, TOKEN, TOTAL, TRAIN, VAL, VAL_SIZE, marks_of)


# Values that are no longer the validation stream: tokens picked from it (windows, gathered rows) or what a
# model computed on them; cutting those to a length from the settings is window arithmetic, not partial eval.
WINDOW_OR_SCORE = frozenset({TOKEN, LOSS, DIST})
COMBINED = frozenset({PAIRED})  # data operands combined (a hash, a pair index)


def _normalized_table(node: cst.BinaryOperation, right: frozenset, counters: dict[str, set[str]]) -> bool:
    """``(T + a) / (T.sum(axis) + b)``, the total reached through a name (``T_total = T.sum(1)``), or
    ``(T + a) / (N + a * V)`` with N a counter of the tokens added to T (totals.py): a table of counts
    divided by its own total, a distribution over the summed axis."""
    left = code(node.left)
    return any(_mentions(left, t) for t in _totals_in(node.right, right, counters))


def _totals_in(node, labels: frozenset, counters: dict[str, set[str]]) -> set[str]:
    """The tables whose totals a denominator holds: sums of them (``T.sum(1)``, ``sum(d.values())``, through
    names), counters of the tokens added to them (totals.py)."""
    text = code(node)
    out = {lab[len(TOTAL):] for lab in labels if lab.startswith(TOTAL)}
    return out | {t for c, tables in counters.items() if _mentions(text, c) for t in tables}


def _mentions(text: str, name: str) -> bool:
    """The code names ``name`` (``self.counts``, not ``self.counts_2`` nor ``other.counts``)."""
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text) is not None


def _as_handed(node) -> bool:
    """An index that is a name, or a selection from one (``pos``, ``pos[vi]``): positions as they were handed
    in, with no arithmetic on them."""
    while isinstance(node, cst.Subscript):
        node = node.value
    return isinstance(node, cst.Name)


def _indicator(node: cst.IfExp) -> bool:
    """``1 if c else 0`` (or ``0 if c else 1``, ``True``/``False``): a number that says whether c holds, not a choice
    between scorings."""
    values = {_literal_number(node.body), _literal_number(node.orelse)}
    return values == {0, 1}


def _literal_number(node):
    if isinstance(node, cst.Integer):
        return literal_value(node)
    if isinstance(node, cst.Name) and node.value in ("True", "False"):
        return int(node.value == "True")
    return None


def _positional(labels: frozenset) -> bool:
    """A window start, end or length, or positions one past the inputs: arithmetic on positions, not a hash."""
    return SHIFT in labels or VAL_SIZE in labels or any(x.startswith(("ws:", "wend:", "wlen:")) for x in labels)



class Expressions:
    """How the walk evaluates expressions (a mixin of ``Walker``)."""

    # --- expressions --------------------------------------------------------------------------

    def lookup(self, name: str):
        if name in self.env:
            return self.env[name]
        if name in self.m.globals:
            return self.m.globals[name]
        return EMPTY

    def index_labels(self, el) -> frozenset:
        s = el.slice
        if isinstance(s, cst.Index):
            return flat(self.ev(s.value))
        out = EMPTY
        for part in (s.lower, s.upper, s.step):
            if part is not None:
                out = out | flat(self.ev(part))
        return out

    @staticmethod
    def shifted(node) -> bool:
        """``1``, ``i + 1``, ``a + 1``: a bound one past the input position."""
        if isinstance(node, cst.Integer):
            return literal_value(node) >= 1
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
            return any(isinstance(x, cst.Integer) and literal_value(x) >= 1 for x in (node.left, node.right))
        return False

    def suffix_past_start(self, s: cst.Slice) -> bool:
        """``X[k:]`` with k at least 1 (``tokens[ctx_len:]``, ``ctx_len = order - 1``, ``order >= 2``): the
        stream after its first k tokens, the tokens that follow contexts of k tokens (bounds.py)."""
        if s.upper is not None or s.step is not None:
            return False
        lb = self.least(s.lower)
        return lb is not UNKNOWN and lb >= 1

    def subscript(self, node: cst.Subscript):
        base = self.ev(node.value)
        base_l = flat(base)
        idx = EMPTY
        keyl = EMPTY
        inputs = False
        target = False
        sliced = False
        at = EMPTY
        for el in node.slice:
            s = el.slice
            lab = self.index_labels(el)
            if isinstance(s, cst.Index) and BOOL in lab:
                continue  # a boolean mask selects elements: no key, and its labels are not the values'
            idx = idx | lab
            if isinstance(s, cst.Index):
                keyl = keyl | lab
            if isinstance(s, cst.Slice):
                sliced = True
                if s.lower is not None and (self.shifted(s.lower) or SHIFT in flat(self.ev(s.lower))
                                            or self.suffix_past_start(s)):
                    target = True
                if s.lower is None and s.upper is not None and self.const(s.upper) == -1:
                    inputs = True
            elif SHIFT in lab and TOKEN not in lab:  # positions one past the input (not a key hashed from tokens)
                target = True
            elif _as_handed(s.value):  # positions a caller hands in: the target where they are one past the inputs
                at = at | {READ_AT + x for x in lab if x.startswith(PARAM)}
        if isinstance(base, (Tup, It)) and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
            s = node.slice[0].slice.value
            if isinstance(base, Tup) and isinstance(s, cst.Integer) and literal_value(s) < len(base.items):
                return base.items[literal_value(s)]
            if isinstance(base, It):
                return base.elem
        data = frozenset(x for x in idx if not x.startswith(STRUCTURAL_PREFIXES) and x not in (SHIFT, MASK, VAL_SIZE) and not x.startswith(SIZE_OF))
        # slice bounds are positions: arithmetic on them (``raw_start = seq * seq_len``) is no hash of tokens
        data = data - (COMBINED - keyl)
        positions = SHIFT in base_l  # an array of positions one past the inputs (the targets' positions)
        if positions and not sliced:
            data = data - {TOKEN}  # positions picked by any selector are still positions, not token ids
        out = base_l | data
        if not sliced and (VAL in base_l or has_placeholder(base_l)) and not positions:
            out = out | {TOKEN}  # an element of a token array: a token id, usable as a table key
        if not sliced and not positions:
            out = out - {SHIFT}  # an element read at i + 1 is a value
        if inputs:
            out = out | {INPUTS}  # the inputs of a split stream; shifting them again is not the target
        if at and not sliced and not positions and INPUTS not in base_l and (VAL in base_l or has_placeholder(base_l)):
            out = out | at
        if target and INPUTS not in base_l:
            if VAL in base_l:
                out = out | {TARGET}
            else:
                out = out | {TARGET_IF + x for x in base_l if x.startswith(PARAM)}
        if VAL in base_l and (RANDOM in idx if not sliced else random_start(node, idx)):
            out = out | self.partial(node, base_l, "random")
        if sliced and prefix_cut(self, node, base_l, WINDOW_OR_SCORE):
            out = out | self.partial(node, base_l, "limit")
        return self.read(node, base_l, keyl - {MASK}, out, self.root_name(node.value))

    def partial(self, node, stream: frozenset, how: str) -> frozenset:
        """Part of the validation stream (a prefix cut by a setting, a random sample): a fact, and the
        provenance its scores carry, so that the rule can ask whether the reported score is one of them."""
        g = self.gid(node)
        self.event(Event(PARTIAL_EVAL, g, (Need(stream_record(stream), VAL),),
                         data={"how": how, "scores": is_record(stream)}))
        return frozenset({f"pev@{g}"})

    def read(self, node, table: frozenset, key: frozenset, out: frozenset, root: str | None = None) -> frozenset:
        """A read ``table[key]``: the model's distribution at the target is the score; any other table
        read with a key that depends on the target is a target-keyed read (``tread``)."""
        if TARGET in key or has_placeholder(key):
            mixed = PAIRED in key
            if DIST in table and not mixed:
                return (out | {TARGET_PROB}) - {TARGET}
            if DIST not in table:
                g = self.gid(node)
                self.event(Event(TARGET_KEYED_READ, g, (Need(key, TARGET), Need(table, "!" + DIST))))
                if root:
                    self.p.read_roots[g] = root
                return out | {f"tread@{g}"}
        return out

    def ev(self, node):  # noqa: C901 - one dispatch over expression kinds
        t = type(node)
        if t is cst.Name:
            self.escapes(node.value)
            return self.lookup(node.value)
        if t is cst.Attribute:
            if node.attr.value in SIZE_ATTRS:
                base = flat(self.ev(node.value))
                if node.attr.value in SHAPE_ATTRS:
                    return size_of(base)
                return frozenset({VAL_SIZE}) if VAL in base else EMPTY
            key = dotted(node)
            base = self.ev(node.value)
            fields = [self.p.attrs[(c, node.attr.value)] for c in self.classes_of(node.value, base)
                      if (c, node.attr.value) in self.p.attrs]
            # a field of a known class (field-sensitive); of an unknown object, every field of that name
            out = flat(base) | (EMPTY.union(*fields) if fields else self.p.attrs.get(node.attr.value, EMPTY))
            fieldcls = {x for x in (EMPTY.union(*fields) if fields else EMPTY) if x.startswith("cls:")}
            if key and key in self.env:
                out = out | flat(self.env[key])
            return frozenset(x for x in out if not x.startswith("cls:") or x in fieldcls)
        if t is cst.Call:
            return self.call(node)
        if t is cst.Subscript:
            return self.subscript(node)
        if t is cst.BinaryOperation:
            return self.binop(node)
        if t is cst.Comparison:
            if all(isinstance(c.operator, (cst.Is, cst.IsNot)) for c in node.comparisons):
                self.ev(node.left)
                return frozenset({MASK})  # "x is None" asks whether a value exists, not what it is
            out = flat(self.ev(node.left))
            eq = False
            prev, prev_node = out, node.left
            for c in node.comparisons:
                right = flat(self.ev(c.comparator))
                if self.loop_depth and isinstance(c.operator, ORDER_OPS) and (CLOCK in prev) != (CLOCK in right):
                    self.cap_compared(c.comparator if CLOCK in prev else prev_node)
                prev, prev_node = right, c.comparator
                if isinstance(c.operator, (cst.Is, cst.IsNot)):
                    continue  # "x is None" asks whether a value exists, not what it is
                out = out | right
                if isinstance(c.operator, (cst.Equal, cst.NotEqual, cst.In, cst.NotIn)):
                    eq = True
            if eq and not any(x.startswith(marks_of(TARGET_KEYED_READ)) for x in out):
                # equality with the target (not with a class looked up from it) evaluates an indicator feature at the target, not a gate
                out = frozenset(TARGET_TEST if x == TARGET else EQUAL_TO + x if x.startswith(PARAM) else x
                                for x in out if x != PAIRED and not x.startswith(TARGET_IF))
            return (out - {SHIFT}) | {MASK, BOOL}  # truth values, not positions
        if t is cst.UnaryOperation:
            return self.ev(node.expression)
        if t is cst.BooleanOperation:
            return flat(self.ev(node.left)) | flat(self.ev(node.right))
        if t is cst.IfExp:
            test = flat(self.ev(node.test))
            if _indicator(node):  # ``1 if c else 0``: the truth value of c as a number, as ``int(c)`` is
                return test - {BOOL, MASK}
            out = join(self.ev(node.body), self.ev(node.orelse))
            return self.gate(node, test, flat(out))
        if t in (cst.Tuple, cst.List):
            items = tuple(self.ev(e.value) for e in node.elements)
            if t is cst.Tuple and not any(isinstance(e, cst.StarredElement) for e in node.elements):
                return Tup(items)
            out = EMPTY
            for x in items:
                out = out | flat(x)
            return out
        if t in (cst.Set, cst.Dict):
            out = EMPTY
            for e in node.elements:
                if isinstance(e, cst.DictElement):
                    out = out | flat(self.ev(e.key)) | flat(self.ev(e.value))
                elif hasattr(e, "value"):
                    out = out | flat(self.ev(e.value))
            return out
        if t in (cst.ListComp, cst.GeneratorExp, cst.SetComp, cst.DictComp):
            return self.comprehension(node)
        if t in (cst.SimpleString, cst.ConcatenatedString):
            return self.string(node)
        if t is cst.FormattedString:
            out = EMPTY
            for part in node.parts:
                if isinstance(part, cst.FormattedStringExpression):
                    out = out | flat(self.ev(part.expression))
                elif isinstance(part, cst.FormattedStringText):
                    out = out | self.path_labels(part.value)
            return out
        if t in (cst.Yield,):
            self.summary.generator = True
            if node.value is not None and not isinstance(node.value, cst.From):
                self.summary.ret = join(self.summary.ret, self.ev(node.value))
            return EMPTY
        if t is cst.Await:
            return self.ev(node.expression)
        if t is cst.NamedExpr:
            v = self.ev(node.value)
            self.assign(node.target, v)
            return v
        if t is cst.StarredElement:
            return flat(self.ev(node.value))
        if t is cst.Lambda:
            return self.lambda_body(node)
        return EMPTY

    def lambda_body(self, node: cst.Lambda):
        """A lambda runs where it is called, nearly always the function it is handed to
        (``timed("ngram_eval_ms", lambda: eval_ngram(...))``): its calls are taken to happen here, and its
        value is what its body gives. Its parameters hold nothing known."""
        p = node.params
        names = [x.name.value for x in [*p.posonly_params, *p.params, *p.kwonly_params]]
        names += [x.name.value for x in (p.star_arg, p.star_kwarg) if isinstance(x, cst.Param)]
        saved = {n: self.env[n] for n in names if n in self.env}
        for n in names:
            self.env[n] = EMPTY
        try:
            return self.ev(node.body)
        finally:
            for n in names:
                self.env.pop(n, None)
            self.env.update(saved)

    def string(self, node) -> frozenset:
        try:
            s = literal_value(node)
        except Exception:  # noqa: BLE001 - odd literals carry no labels
            return EMPTY
        if isinstance(s, bytes):
            return EMPTY
        return self.path_labels(s or "")

    @staticmethod
    def path_labels(s: str) -> frozenset:
        if not _PATHISH.search(s) or len(s) > 300:
            return EMPTY
        if _VAL_PATH.search(s):
            return frozenset({VAL})
        if _TRAIN_PATH.search(s):
            return frozenset({TRAIN})
        return EMPTY

    def comprehension(self, node):
        saved = dict(self.env)
        self.loop_depth += 1
        try:
            f = node.for_in
            while f is not None:
                it = self.ev(f.iter)
                self.assign(f.target, elem(it))
                for cond in f.ifs:
                    self.ev(cond.test)
                f = f.inner_for_in
            if isinstance(node, cst.DictComp):
                out = flat(self.ev(node.key)) | flat(self.ev(node.value))
            else:
                out = self.ev(node.elt)
        finally:
            self.loop_depth -= 1
            self.env = {**saved, **{k: v for k, v in self.env.items() if k in saved}}
        return It(out) if isinstance(node, cst.GeneratorExp) else flat(out)

    def binop(self, node: cst.BinaryOperation) -> frozenset:
        left, right = flat(self.ev(node.left)), flat(self.ev(node.right))
        op = node.operator
        out = frozenset(x for x in left | right if not x.startswith("cls:"))
        if not isinstance(op, (cst.BitAnd, cst.BitOr, cst.BitXor)):
            out = out - {BOOL}  # arithmetic on truth values gives numbers; & | ^ of masks give masks
        if isinstance(op, cst.Add) and (isinstance(node.right, cst.Integer) and literal_value(node.right) >= 1
                                        or isinstance(node.left, cst.Integer) and literal_value(node.left) >= 1):
            out = out | {SHIFT}
        if isinstance(op, cst.Subtract):
            out = out - {SHIFT}
            for lab in left:
                if lab.startswith("wend:"):
                    out = (out - {lab}) | {"wlen:" + lab[5:]}
                if lab.startswith("wlen:") and code(node.right) == lab[5:]:
                    self.event(Event(DOUBLE_SCORING, self.gid(node), (), data={"stride": lab[5:]}))
            out = frozenset(x for x in out if not x.startswith(("ws:", "wend:")) or x in left and not x.startswith("ws:"))
        literal = (cst.Integer, cst.Float, cst.SimpleString)
        if left and right and not isinstance(node.left, literal) and not isinstance(node.right, literal) \
                and not isinstance(op, (cst.Subtract, cst.Divide, cst.MatrixMultiply)) \
                and not (_positional(left) or _positional(right)):
            out = out | {PAIRED}  # two data operands combined: a hash or a pair index when one is the target
        if isinstance(op, cst.Divide) and LOSS in left and not right & {LOSS, DIST}:
            # a score divided by a count (NLL per byte, with bytes read by the target from the byte tables) is the
            # metric's normalization; a product is no such sign (``alpha * p_cache[t]``, with alpha from the
            # model's entropy, mixes a probability read at the target into the score)
            out = out - {x for x in right if x.startswith(marks_of(TARGET_KEYED_READ)) and x not in left}
        if isinstance(op, cst.Divide):
            totals = _totals_in(node.right, right, self.p.table_totals)
            for lab in left:
                if lab.startswith(marks_of(TARGET_KEYED_READ)):
                    root = self.p.read_roots.get(int(lab[6:]))
                    rc = code(node.right)
                    if root and (re.search(rf"\b{re.escape(root)}\b", rc) and "sum" in rc or root in totals):
                        out = out - {lab}  # row[tgt] / row.sum(), counts[tgt] / their total: normalized
            if _normalized_table(node, right, self.p.table_totals):
                out = out | {DIST}  # (counts + a) / (counts.sum(axis) + a * V): a distribution over that axis
        return out

    def future(self, node) -> str:
        """A statistic of the whole stream, computed outside any loop."""
        g = self.gid(node)
        self.event(Event(FUTURE, g, (), data={"func": self.f}))
        return f"fut@{g}"

    def gate(self, node, test: frozenset, out: frozenset) -> frozenset:
        if TARGET in test or has_placeholder(test):
            g = self.gid(node)
            self.event(Event(TARGET_GATE, g, (Need(test, TARGET),)))
            # the gate is the finding; the target-keyed reads inside its condition are part of it
            return out | {x for x in test if not x.startswith(marks_of(TARGET_KEYED_READ))} | {f"gate@{g}"}
        return out | test
