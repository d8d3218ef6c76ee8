"""Tables made as mappings (``{}``, ``dict()``, ``defaultdict(int)``): what a write into them holds.

A mapping is laid out by the values it is keyed with (a context, a word, a pair of them), not by position:
``counts[ctx] = c`` stores c for whichever later position meets the same key again. Written with a key
computed from values, it holds history, whatever the analysis knows of where the key came from (a context
of word ids kept in the object's state); arrays filled at an index are per-position buffers instead.
"""

from __future__ import annotations

import libcst as cst

from .tree import dotted, walk

MAPPING_CALLS = {"dict", "defaultdict", "Counter", "OrderedDict"}


def made_mapping(value) -> bool:
    """``{}``, ``{k: v}``, ``{... for ...}``, ``dict()``, ``collections.defaultdict(int)``: a new mapping."""
    if isinstance(value, (cst.Dict, cst.DictComp)):
        return True
    if isinstance(value, cst.Call):
        name = dotted(value.func) or ""
        return name.rsplit(".", 1)[-1] in MAPPING_CALLS
    return False


def mapping_names(func: cst.FunctionDef, prefix: str = "") -> set[str]:
    """The names (``prefix`` + name: ``self.counts``) bound to a new mapping in ``func``."""
    out = set()
    for n in walk(func):
        if isinstance(n, cst.Assign):
            targets, value = [t.target for t in n.targets], n.value
        elif isinstance(n, cst.AnnAssign) and n.value is not None:
            targets, value = [n.target], n.value
        else:
            continue
        if not made_mapping(value):
            continue
        for t in targets:
            name = dotted(t) if isinstance(t, (cst.Name, cst.Attribute)) else None
            if name and (not prefix or name.startswith(prefix)):
                out.add(name)
    return out


def field_mappings(methods) -> set[str]:
    """The fields of a class (``self.counts``) that one of its methods binds to a new mapping."""
    out = set()
    for f in methods:
        out |= mapping_names(f.node, "self.")
    return out
