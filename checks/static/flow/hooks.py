"""Forward hooks that collect calibration data: what a registered hook does with the activations it sees.

GPTQ calibration registers forward hooks that accumulate a Hessian of each layer's inputs (``H += X.T @ X``,
``H.addmm_(x.t(), x)``), per-channel moments (``inp[0].pow(2).mean(0)``) or the inputs themselves, then runs the model on
calibration batches. Hooks that only summarise activations for a log or a diagnostics file (their mean, norm,
a timing: Python numbers) calibrate nothing. The hook is the function named in the argument of ``register_forward_hook``,
directly or through the factory that returns it (``make_hook(name)``); its nested functions count.
Walk order (``walk`` visits later statements first) does not matter: a name bound from the hook's
arguments anywhere in it counts as holding them.
"""

from __future__ import annotations

import libcst as cst

from .tree import code, dotted, walk

# Python numbers: what a summary for a log or a diagnostics file is made of.
NUMBER_CALLS = frozenset({"float", "int", "bool", "len", "str", "round", "list", "tuple"})
NUMBER_METHODS = frozenset({"item", "tolist"})


def transposed(node) -> bool:
    text = code(node)
    return ".T" in text or "t()" in text or "transpose" in text


def is_gram(node) -> bool:
    """``X.T @ X``, ``torch.matmul(X.T, X)``, ``H.addmm_(X.t(), X)``: a Gram matrix of activations."""
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.MatrixMultiply):
        return transposed(node.left)
    if isinstance(node, cst.Call):
        name = dotted(node.func).rsplit(".", 1)[-1]
        if name in ("matmul", "mm") and node.args:
            return transposed(node.args[0].value)
        if name in ("addmm", "addmm_") and node.args:
            first = node.args[1].value if name == "addmm" and len(node.args) >= 3 else node.args[0].value
            return transposed(first)
    return False


def numbers(node, resolve, depth: int = 0) -> bool:
    """The expression is made of Python numbers (``float(x.mean().item())``, a dict of them, a submission
    function that returns one), not of tensors."""
    if isinstance(node, (cst.Integer, cst.Float, cst.SimpleString, cst.FormattedString)):
        return True
    if isinstance(node, (cst.Dict, cst.List, cst.Tuple)):
        items = [e.value for e in node.elements]
        return all(numbers(v, resolve, depth) for v in items)
    if isinstance(node, cst.IfExp):
        return numbers(node.body, resolve, depth) and numbers(node.orelse, resolve, depth)
    if isinstance(node, cst.Call):
        f = node.func
        if isinstance(f, cst.Name) and f.value in NUMBER_CALLS:
            return True
        if isinstance(f, cst.Attribute) and f.attr.value in NUMBER_METHODS:
            return True
        called = resolve(f.value) if isinstance(f, cst.Name) and depth < 2 else None
        if called is not None:
            rets = [n.value for n in walk(called.body) if isinstance(n, cst.Return) and n.value is not None]
            return bool(rets) and all(numbers(r, resolve, depth + 1) for r in rets)
    return False


def _mentions(node, names: set[str]) -> bool:
    return any(isinstance(n, cst.Name) and n.value in names for n in walk(node))


def _stored(n):
    """The value a statement stores into a table or list (``t[k] = v``, ``t[k] += v``, ``acts.append(v)``)."""
    if isinstance(n, cst.Assign) and any(isinstance(t.target, cst.Subscript) for t in n.targets):
        return n.value
    if isinstance(n, cst.AugAssign):
        return n.value
    if isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and n.func.attr.value in ("append", "extend") \
            and n.args:
        return n.args[0].value
    return None


def _own(func: cst.FunctionDef) -> list:
    """The nodes of a function's body outside the functions nested in it."""
    nested = {id(n) for d in walk(func.body) if isinstance(d, cst.FunctionDef) for n in walk(d)}
    return [n for n in walk(func.body) if id(n) not in nested]


def keeps_tensors(func: cst.FunctionDef, resolve) -> bool:
    """A hook that stores tensors computed from the activations it is given (the activations, per-channel
    moments), not numbers summarising them. A factory's own parameters (the layer's name) are no
    activations: only each function's own statements count."""
    held = {p.name.value for p in func.params.params}
    own = _own(func)
    for n in own:
        if isinstance(n, cst.Assign) and len(n.targets) == 1 and isinstance(n.targets[0].target, cst.Name) \
                and _mentions(n.value, held):
            held.add(n.targets[0].target.value)
    stores = [v for v in map(_stored, own) if v is not None]
    return any(_mentions(v, held) and not numbers(v, resolve) for v in stores)


def calibrates(func: cst.FunctionDef, resolve) -> bool:
    """The hook function (or one nested in it) accumulates a Gram matrix or keeps tensors of activations.
    ``resolve`` maps a name to the submission function it calls (its ``cst.FunctionDef``), or None."""
    defs = [n for n in walk(func) if isinstance(n, cst.FunctionDef)]
    return any(is_gram(n) for n in walk(func.body)) or any(keeps_tensors(d, resolve) for d in defs)
