"""Lists filled with ``append``: which of them hold the current position's values.

A list made anew inside a loop's body (``keys = []`` per chunk) and filled there, or by loops inside it that
do not read it back (keys or counts per n-gram order), holds values of the current iteration only: read
after the filling (``for k in keys: table[k]``, ``counts[o]``), it gives them as they were, the target
included. A list that outlives the iterations filling it (made before the loop), or that a filling loop
reads back (``hist[-k:]`` before ``hist.append(byte)``), holds earlier positions' values too: what it gives
is history, and the target identity is dropped from what it takes in.
"""

from __future__ import annotations

import libcst as cst

from .tree import walk

GROW_METHODS = {"append", "extend", "insert", "appendleft"}


def made_anew(value) -> bool:
    """``[]``, ``[a, b]``, ``list()``: a new list."""
    if isinstance(value, cst.List):
        return True
    return isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and value.func.value == "list"


def reads_back(loop, name: str) -> bool:
    """The loop's body uses ``name`` other than by growing it or binding it anew."""
    grown = set()
    bound = set()
    for n in walk(loop):
        if isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and n.func.attr.value in GROW_METHODS:
            grown.add(id(n.func.value))
        elif isinstance(n, (cst.Assign, cst.AnnAssign)):
            targets = [t.target for t in n.targets] if isinstance(n, cst.Assign) else [n.target]
            bound.update(id(t) for t in targets)
    for n in walk(loop):
        if isinstance(n, cst.Name) and n.value == name and id(n) not in grown and id(n) not in bound:
            return True
    return False


def holds_current(name: str, home: tuple | None, loops: tuple, node_of) -> bool:
    """Whether the list ``name``, made at the loop path ``home`` and grown at ``loops``, holds the current
    iteration's values: made inside a loop around the growing, and not read back by the loops between
    (``node_of`` gives a loop's node from its id)."""
    if not home or loops[:len(home)] != home:
        return False
    return not any(reads_back(node_of(g), name) for g in loops[len(home):])
