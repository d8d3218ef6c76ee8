"""Totals of count tables: a counter that grows by the number of tokens a function adds to a table holds
that table's total, so the table divided by it (with the same smoothing on both sides) is a distribution:

    n = t.numel()
    self.total_tokens += n
    self.uni_counts.scatter_add_(0, t, ones)
    ...
    uni_probs = (self.uni_counts + 0.1) / (self.total_tokens + 0.1 * V)   # sums to 1 over the vocabulary

Read from the code of each function when its module is declared (before any walk, so that the order in
which methods are analysed does not matter).
"""

from __future__ import annotations

import libcst as cst

from .tree import dotted, walk

SIZE_METHODS = {"numel", "nelement", "__len__"}
ADD_METHODS = {"scatter_add_", "index_add_"}


def _size_of(node) -> str:
    """The array whose element count ``node`` is (``x.numel()``, ``len(x)``, ``x.shape[0]``), or ''."""
    if isinstance(node, cst.Call):
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in SIZE_METHODS | {"size"}:
            return dotted(node.func.value)
        if dotted(node.func) == "len" and node.args:
            return dotted(node.args[0].value)
    if isinstance(node, cst.Subscript) and isinstance(node.value, cst.Attribute) and node.value.attr.value == "shape":
        return dotted(node.value.value)
    if isinstance(node, cst.Attribute) and node.attr.value == "size":  # numpy's element count
        return dotted(node.value)
    return ""


def _added_to(node) -> tuple[str, str]:
    """(table, token array) of ``T.scatter_add_(0, x, ...)``, ``np.add.at(T, x, ...)``,
    ``T += bincount(x, ...)``; ('', '') otherwise."""
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and len(node.args) >= 2:
        if node.func.attr.value in ADD_METHODS:
            return dotted(node.func.value), dotted(node.args[1].value)
        if dotted(node.func).endswith("add.at"):
            return dotted(node.args[0].value), dotted(node.args[1].value)
    if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign) and isinstance(node.value, cst.Call) \
            and dotted(node.value.func).rsplit(".", 1)[-1] == "bincount" and node.value.args:
        return dotted(node.target), dotted(node.value.args[0].value)
    return "", ""


def table_totals(func: cst.FunctionDef) -> dict[str, set[str]]:
    """Counter name -> the tables whose totals it holds, from one function's code."""
    sizes: dict[str, str] = {}  # local name -> the array it counts
    counted: dict[str, set[str]] = {}  # token array -> counters grown by its size
    added: dict[str, set[str]] = {}  # token array -> tables it is added to
    nodes = list(walk(func.body))
    for n in nodes:
        if isinstance(n, cst.Assign) and len(n.targets) == 1 and _size_of(n.value):
            sizes[dotted(n.targets[0].target)] = _size_of(n.value)
    for n in nodes:
        if isinstance(n, cst.AugAssign) and isinstance(n.operator, cst.AddAssign) and dotted(n.target):
            array = sizes.get(dotted(n.value)) or _size_of(n.value)
            if array:
                counted.setdefault(array, set()).add(dotted(n.target))
        table, array = _added_to(n)
        if table and array:
            added.setdefault(array, set()).add(table)
    out: dict[str, set[str]] = {}
    for array, counters in counted.items():
        for c in counters:
            out.setdefault(c, set()).update(added.get(array, set()))
    return {c: t for c, t in out.items() if t}
