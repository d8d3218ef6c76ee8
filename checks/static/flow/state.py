"""State filled with the validation stream: a call that adds token data to the tables of an object or an
array it is handed (``cache.build_full(tokens)``, a scoring pass that updates ``cache`` after each chunk)
leaves that object holding every token it was given. Made at the top of a function (not once per chunk
of a loop), such a call leaves the whole stream in the state; a later score that reads it rescores
tokens with their future in the state (multi-pass, C4 and C1; #846, #870).

A function's summary records, per parameter, the token data it writes into that parameter's state
(``Summary.fills``): keyed table writes into ``self.<table>`` or into a parameter, an in-place add of an
aggregate of token data (``table += bincount(keys)``), and what the functions it calls fill in the
arguments it hands them.
"""

from __future__ import annotations

import libcst as cst

from .labels import EMPTY, flat, history, join, substitute
from .model import Event, FunctionDef, Need
from .vocab import FUTURE, VAL, marks_of


def _without_aggregates(labels: frozenset) -> frozenset:
    return frozenset(x for x in labels if not x.startswith(marks_of(FUTURE)))


def argument_nodes(call: cst.Call, f: FunctionDef, bound: bool) -> dict[int, cst.BaseExpression]:
    """The expression a call passes for each parameter index of ``f`` (the receiver is 0 of a bound method)."""
    out: dict[int, cst.BaseExpression] = {}
    offset = 0
    if bound and type(call.func) is cst.Attribute:
        out[0], offset = call.func.value, 1
    for i, a in enumerate(call.args):
        if a.star:
            break
        if a.keyword is None:
            out[i + offset] = a.value
        elif a.keyword.value in f.params:
            out[f.params.index(a.keyword.value)] = a.value
    return out


class StateFills:
    """Tracking what calls write into the state they are handed (a mixin of ``Walker``)."""

    def state_param(self, root: str) -> int | None:
        """The parameter whose state a write to ``root`` changes (``self.tables`` in a method: the object)."""
        if self.f is None:
            return None
        head = root.split(".", 1)[0]
        return self.f.params.index(head) if head in self.f.params else None

    def fill_parameter(self, root: str, labels: frozenset) -> None:
        """Token data written into the state of a parameter, or of a variable of the enclosing function
        (a closure's ``cache``)."""
        if self.disabled or self.f is None:
            return
        written = _without_aggregates(history(labels))
        k = self.state_param(root)
        head = root.split(".", 1)[0]
        if k is not None:
            self.summary.fills[k] = self.summary.fills.get(k, EMPTY) | written
        elif self.f.outer is not None and head in self.f.outer.env and head not in self.f.locals():
            self.summary.outer_fills[head] = self.summary.outer_fills.get(head, EMPTY) | written

    def fills_at_call(self, call: cst.Call, fills: dict, args: list, argnodes: dict) -> None:
        """The callee writes token data into the state of arguments it is handed: so does this function, of
        its own parameters; and at the top of a function the state then holds all the data handed in."""
        for i, labels in fills.items():
            expr = argnodes.get(i)
            root = self.root_name(expr) if expr is not None else None
            if root is None:
                continue
            written = _without_aggregates(history(flat(substitute(labels, args))))
            self.fill_parameter(root, written)
            self.env[root] = join(self.env.get(root), self.whole_stream(call, written, root))

    def closure_fills_at_call(self, call: cst.Call, outer_fills: dict, args: list) -> None:
        """A local function that fills variables of this function (the closure's ``cache``)."""
        for name, labels in outer_fills.items():
            # the closure read the data from this function's variables (or was handed it): in our terms
            written = _without_aggregates(history(flat(substitute(labels, args))))
            self.fill_parameter(name, written)
            self.env[name] = join(self.env.get(name), self.whole_stream(call, written, name))

    def constructed_filled(self, call: cst.Call, init: FunctionDef, args: list) -> frozenset:
        """An object whose ``__init__`` adds the token data it is given to its tables (``Cache(val)``)."""
        written = init.summary.fills.get(0, EMPTY) if init.summary is not None else EMPTY
        if not written:
            return EMPTY
        return self.whole_stream(call, _without_aggregates(history(flat(substitute(written, args)))), "the object")

    def whole_stream(self, call: cst.Call, written: frozenset, holder: str) -> frozenset:
        """A call at the top of a function (not once per chunk of a loop) that fills state with token data:
        the state holds all the data handed in; the label that marks it (``fut@``), or nothing."""
        if self.loop_depth or self.f is None or self.disabled:
            return EMPTY
        g = self.gid(call)
        self.event(Event(FUTURE, g, (Need(written, VAL),), data={"how": "state", "holder": holder}))
        return frozenset({f"fut@{g}"})
