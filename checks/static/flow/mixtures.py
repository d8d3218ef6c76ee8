"""Mixtures of experts' scores of the target, and whether every expert is a distribution's.

A mixture ``log sum_k w_k p_k(x_t)`` is a distribution over the vocabulary only when each expert's
``p_k(x_t)`` is the target's entry of a distribution ``p_k``. Experts are stacked into one tensor
(``torch.stack([nll_a, nll_b, ...])``) and mixed along the new axis, or mixed pairwise
(``torch.logaddexp(lp_a, lp_b)``). An expert read at the target (a ``gather`` of a distribution,
``probs[y]``: ``tgtprob``) is one; a *statistic* of a distribution summed over the vocabulary (its entropy
``-(p * log p).sum(-1)``: ``stat``) is not: it gives every token the same value, so as an "NLL" it stands
for a vector that sums to ``V * exp(-H)``, not 1 (the Hedge mixers' "entropy expert"). A constant (``log V``
for every token, the uniform distribution) carries no label and is a distribution.

A statistic stays one through negation, arithmetic and conversions (``.float()``, ``.reshape()``); a
library function of it (``sigmoid(H)``, ``log(a)``) is something else, typically a mixing weight, and
no longer carries the label.
"""

from __future__ import annotations

import libcst as cst

from .labels import EMPTY, flat
from .model import Event, Need
from .vocab import DIST, STATISTIC, STATISTIC_MIXED, TARGET, TARGET_PROB, TARGET_TEST

STAT = STATISTIC  # one number per position summarizing a distribution over the vocabulary (its entropy)
UMIX = STATISTIC_MIXED  # the event: a statistic mixed as an expert next to experts read at the target
AT_TARGET = frozenset({TARGET, TARGET_TEST, TARGET_PROB})  # the target, a test against it, or a value read at it
REDUCTIONS = {"sum"}
STACKS = {"stack", "cat", "concat", "concatenate", "vstack", "hstack", "column_stack", "dstack"}
PAIRWISE = {"logaddexp", "logaddexp2"}  # the experts are the arguments
AXIS_KEYWORDS = {"dim", "axis"}
# Calls that give the same values in another type, device or shape: a statistic stays one through them.
SAME_VALUES = {"float", "double", "half", "bfloat16", "to", "type", "type_as", "cpu", "cuda", "detach", "clone",
               "contiguous", "reshape", "view", "view_as", "squeeze", "unsqueeze", "flatten", "expand", "expand_as",
               "neg", "negative", "asarray", "array", "tensor", "numpy", "item", "clamp", "clamp_min", "clip", "abs"}


def mixture_labels(walker, call: cst.Call, name: str, q: str, pos, kw: dict, recv_l: frozenset, vals: list, out):
    """What a library call's result carries once statistics and mixtures of experts are accounted for."""
    if name in REDUCTIONS:
        summed = _summed(call.func, q, pos, kw, recv_l, vals)
        if summed is not None and not summed[1]:  # a total over every position is no per-position expert
            return flat(out) - {STAT}
        return flat(out) | statistic(summed)
    if name in STACKS or name in PAIRWISE:
        return flat(out) | unnormalized_experts(walker, call, name, pos, vals)
    if isinstance(out, frozenset) and STAT in out and name not in SAME_VALUES:
        return out - {STAT}
    return out


def _summed(func, q: str, pos, kw: dict, recv_l: frozenset, vals: list) -> tuple[frozenset, bool] | None:
    """The labels of what a sum reduces and whether it sums along an axis (``x.sum(-1)``, ``torch.sum(x, dim=-1)``)
    rather than over everything (``x.sum()``); None for other calls (the builtin ``sum``)."""
    if isinstance(func, cst.Attribute) and not q:
        labels, axes = recv_l, len(pos)
    elif q and vals:
        labels, axes = flat(vals[0]), len(pos) - 1
    else:
        return None
    return labels, axes > 0 or bool(AXIS_KEYWORDS & set(kw))


def statistic(summed: tuple[frozenset, bool] | None) -> frozenset:
    """``STAT`` when a sum along an axis reduces a distribution with no target in it, else nothing."""
    if summed is None:
        return EMPTY
    labels, along_axis = summed
    if along_axis and DIST in labels and not labels & AT_TARGET:
        return frozenset({STAT})
    return EMPTY


def _experts(walker, name: str, pos, vals: list) -> list[frozenset] | None:
    """The labels of each expert: the arguments of a pairwise mixture, or the named values in the list or
    tuple literal that a stack is given (as they are now; expressions are not evaluated twice)."""
    if name in PAIRWISE:
        return [flat(v) for v in vals[:2]] if len(vals) >= 2 else None
    node = pos[0].value if pos else None
    if not isinstance(node, (cst.List, cst.Tuple)):
        return None
    names = [_named(e.value) for e in node.elements]
    if not names or None in names:
        return None
    return [flat(walker.lookup(n)) for n in names]


def _named(node) -> str | None:
    """The local name an expert expression shows under a sign or calls that keep its values
    (``-h``, ``h.unsqueeze(-1)``, ``h.float().view(-1, 1)``), or None for any other expression."""
    while True:
        if isinstance(node, cst.Name):
            return node.value
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
            node = node.expression
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value in SAME_VALUES:
            node = node.func.value
        else:
            return None


def unnormalized_experts(walker, call: cst.Call, name: str, pos, vals: list) -> frozenset:
    """``torch.stack([nll_read_at_target, entropy])``: records the event and returns its label when a
    statistic of a distribution is mixed as an expert with experts read at the target, else nothing."""
    experts = _experts(walker, name, pos, vals)
    if not experts:
        return EMPTY
    read = [e for e in experts if TARGET_PROB in e]
    stats = [e for e in experts if STAT in e and not e & AT_TARGET]
    if not read or not stats:
        return EMPTY
    g = walker.gid(call)
    walker.event(Event(UMIX, g, (Need(EMPTY.union(*read), TARGET_PROB),)))
    return frozenset({f"{UMIX}@{g}"})
