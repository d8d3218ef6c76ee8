"""Constants a function's call sites pass: a parameter is a constant inside the function when every call
site that runs in the official run passes that same constant (``eval_val(..., world_size)`` with
``world_size`` read from ``WORLD_SIZE`` of the launch), so that a guard on the parameter
(``"1" if world_size > 1 else "0"``) is evaluated as it runs.

A function is analysed once, at its first call; the constants that call passes are *assumed*. Every
later call site checks the assumption: one that passes another value (or a value not known) refutes it,
and so does any use of the function other than a direct call (handed to ``torch.compile``, to another
function, stored): its call sites are then unknown. A refutation makes the program be analysed again
without that assumption (``Program.analyse``); refutations are kept across rounds, so the rounds end.
Methods are left out (their receivers and overrides make their call sites unknown).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from .consts import UNKNOWN
from .tree import literal_value

DEFAULT = object()  # the call site passes nothing: the parameter has its default value
MAX_ROUNDS = 4  # analyses of one program; after the last, no parameter of a refuted function is assumed


def key_of(f) -> tuple[str, str]:
    """A function's identity across analysis rounds (its trees' nodes are the same, its ``FunctionDef`` is not)."""
    return (f.module.path, f.qualname)


@dataclass
class CallSiteFacts:
    """What the rounds of one program's analysis have learnt about call sites."""

    refuted: set = field(default_factory=set)  # (function key, parameter): call sites disagree
    escaped: set = field(default_factory=set)  # function keys used other than by direct calls
    changed: bool = False  # this round refuted an assumption it made: analyse again
    final: bool = False  # the last round assumes nothing

    def escape(self, f) -> None:
        k = key_of(f)
        if k in self.escaped:
            return
        self.escaped.add(k)
        if any(v is not UNKNOWN and v is not DEFAULT for v in (f.assumed or {}).values()):
            self.changed = True  # an escaped function keeps only its defaults

    def assumable(self, f) -> bool:
        return not self.final and f.cls is None and key_of(f) not in self.escaped

    def assume(self, f, site: dict | None) -> None:
        """The first call's constants become the function's assumptions (``f.assumed``)."""
        if site is None or not self.assumable(f):
            f.assumed = {}
            return
        k = key_of(f)
        f.assumed = {p: v for p, v in site.items() if (k, p) not in self.refuted}

    def check(self, f, site: dict | None) -> None:
        """A later call site: a different or unknown value refutes the assumption about that parameter."""
        for p, v in (f.assumed or {}).items():
            if v is UNKNOWN:
                continue
            passed = UNKNOWN if site is None else site.get(p, UNKNOWN)
            if not _same(passed, v, f, p):
                self.refuted.add((key_of(f), p))
                self.changed = True

    def is_refuted(self, f, param: str) -> bool:
        return (key_of(f), param) in self.refuted


def site_values(const, f, pos: list[cst.Arg], kw: dict[str, cst.Arg]) -> dict | None:
    """Each parameter's value at one call: a constant (``const`` evaluates an argument in the caller),
    ``DEFAULT`` when not passed, ``UNKNOWN`` otherwise; None when the arguments cannot be matched to the
    parameters (``*args``, ``**kwargs``, more positionals than parameters)."""
    if any(a.star for a in pos) or any(a.star for a in kw.values()) or len(pos) > len(f.params):
        return None
    out = {}
    for i, p in enumerate(f.params):
        arg = pos[i] if i < len(pos) else kw.get(p)
        out[p] = DEFAULT if arg is None else const(arg.value)
    for p in f.kwonly:
        out[p] = DEFAULT if p not in kw else const(kw[p].value)
    return out


def default_value(f, param: str):
    """The literal default of a parameter (numbers, strings, True/False/None), else UNKNOWN."""
    for p in [*f.node.params.params, *f.node.params.posonly_params, *f.node.params.kwonly_params]:
        if p.name.value == param and p.default is not None:
            d = p.default
            if isinstance(d, cst.Name) and d.value in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[d.value]
            try:
                return literal_value(d) if isinstance(d, (cst.Integer, cst.Float, cst.SimpleString)) else UNKNOWN
            except Exception:  # noqa: BLE001 - an odd literal is not known
                return UNKNOWN
    return UNKNOWN


def _same(a, b, f, param: str) -> bool:
    if a is DEFAULT and b is DEFAULT:
        return True
    a = default_value(f, param) if a is DEFAULT else a
    b = default_value(f, param) if b is DEFAULT else b
    if a is UNKNOWN or b is UNKNOWN:
        return False
    return type(a) is type(b) and a == b
