"""Names bound to library functions: ``_log = math.log``, ``np_log = np.log`` (as ``from math import log as
L`` binds one by import). A call through such a name is a call of the library function it names, so that
the library models (library.py) apply to it by the function's own last name, not the alias."""

from __future__ import annotations

import libcst as cst

from .tree import dotted


def library_function(walker, value) -> str:
    """The dotted library name an assigned value names (``math.log``), or "" when it names none (a
    submission function, a local value, any expression other than a dotted name)."""
    if not isinstance(value, (cst.Name, cst.Attribute)) or not dotted(value):
        return ""
    q = walker.qualname(value)
    if not q or walker.resolve(value, q, frozenset()) is not None:
        return ""
    return q


def bind(walker, name: str, value) -> None:
    """``name = value``: ``name`` now names the library function ``value`` names, or no longer names one."""
    q = library_function(walker, value) if value is not None else ""
    if q:
        walker.fn_aliases[name] = q
        if walker.f is None:  # a module-level binding is seen by every function of the module
            walker.m.aliases.setdefault(name, q)
    else:
        walker.fn_aliases.pop(name, None)


def call_name(func, q: str) -> str:
    """The last name of the function a call names: the library function's own (``L`` imported as
    ``from math import log as L`` is ``log``), else the name written at the call."""
    if type(func) is cst.Name:
        return q.rsplit(".", 1)[-1] if q else func.value
    return func.attr.value if type(func) is cst.Attribute else ""
