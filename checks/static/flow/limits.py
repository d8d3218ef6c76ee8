"""Limits on how much of the validation set is scored (partial evaluation).

A setting that cuts the validation stream, or the per-position record of what was scored on it (the
losses and targets kept for a second scorer), to a prefix: ``tokens[:LIMIT]``, ``nll[:min(LIMIT, n)]``.
A limit is judged with its value under the launch: 0 or a negative number (off), or at least the size
of the smallest validation stream (no cut), is no limit; an unknown value from the settings is one.
"""

from __future__ import annotations

import libcst as cst

from .consts import UNKNOWN
from .labels import flat, sized_by
from .tree import walk
from .vocab import CAPPED, LOSS, SAMPLED, SETTING, VAL, VAL_SIZE

# Fewer tokens than any tokenizer's validation stream has (the fineweb validation split is ~40M tokens or
# more): a limit at or above it cuts nothing.
FULL_VAL_TOKENS = 40_000_000
STREAM_SIZE = VAL_SIZE
# What a per-position record of the scored stream holds: losses or targets of validation data.
RECORD = frozenset({VAL, VAL_SIZE})
SIZE_CALLS = frozenset({"len", "numel", "size", "nelement"})
# Draws with replacement or of a few items (not a permutation of all of them): positions they pick are a sample.
SAMPLING_CALLS = frozenset({"randint", "choice", "sample", "multinomial"})


def stream_record(base: frozenset) -> frozenset:
    """An array sized by the validation stream (a per-position record of it) stands for the stream; one sized
    by an argument's data stands for that argument (the stream where the caller passes it)."""
    out = base | sized_by(base)
    return out | {VAL} if STREAM_SIZE in base else out


def is_record(base: frozenset) -> bool:
    """Values kept per scored position (losses, or an array sized by the stream), not the token stream: a cut
    of them is a cut of what was scored, whatever computes the number from them afterwards."""
    return bool(base & {LOSS, STREAM_SIZE}) or argument_record(base)


def argument_record(base: frozenset) -> bool:
    """An array sized by the data an argument holds and filled with that data or its losses (``nll =
    full((tokens.numel() - 1,), nan)`` then ``nll[s:e] = loss``): a record of the stream the caller passes.
    Counts derived from that size (chunks, tokens per chunk) hold neither."""
    sized = sized_by(base)
    return bool(sized) and (LOSS in base or bool(sized & base))


def limit_on(value) -> bool:
    """A limit's value under the launch cuts the stream: unknown, or a positive count below the stream's size."""
    if value is UNKNOWN:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False  # None, a string: off
    return 0 < value < FULL_VAL_TOKENS


def _size_expr(node, bound: dict, depth: int = 0) -> bool:
    """An expression that is a length: ``len(x)``, ``x.numel() - 1``, ``x.shape[0]``, ``int(n)``, or a local
    bound to one (the stream is a parameter here, so its size has no label yet)."""
    if depth > 4:
        return False
    if isinstance(node, cst.Call):
        f = node.func
        name = f.attr.value if isinstance(f, cst.Attribute) else f.value if isinstance(f, cst.Name) else ""
        if name == "int" and node.args:
            return _size_expr(node.args[0].value, bound, depth + 1)
        return name in SIZE_CALLS
    if isinstance(node, cst.Subscript):
        return isinstance(node.value, cst.Attribute) and node.value.attr.value == "shape"
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Add, cst.Subtract)):
        return _size_expr(node.left, bound, depth + 1)
    if isinstance(node, cst.Name) and node.value in bound:
        return _size_expr(bound[node.value], bound, depth + 1)
    return False


def _single_bindings(walker) -> dict:
    """Names of the walked function bound by exactly one plain assignment, and to what."""
    body = walker.f.node.body if walker.f is not None else None
    if body is None:
        return {}
    seen: dict = {}
    for n in walk(body):
        if isinstance(n, cst.Assign) and len(n.targets) == 1 and isinstance(n.targets[0].target, cst.Name):
            name = n.targets[0].target.value
            seen[name] = None if name in seen else n.value
    return {k: v for k, v in seen.items() if v is not None}


def capped_min(walker, args: list, vals: list) -> bool:
    """``min(setting, size of the validation stream)``, the setting on under the launch."""
    labels = [flat(v) for v in vals]
    limits = [a for a, lab in zip(args, labels) if SETTING in lab and STREAM_SIZE not in lab]
    if not limits or not any(limit_on(walker.num(a.value)) for a in limits):
        return False
    if any(STREAM_SIZE in lab for lab in labels):
        return True
    bound = _single_bindings(walker)
    return any(_size_expr(a.value, bound) for a, lab in zip(args, labels) if SETTING not in lab)


def prefix_cut(walker, node: cst.Subscript, base: frozenset, excluded: frozenset) -> bool:
    """``x[:n]`` of the validation stream or of a record of it, ``n`` a limit from the settings: the stream
    itself cut by a setting (not a window picked from it), or anything sized by the stream cut at
    ``min(setting, size)``, or, outside loops, the per-position scores cut by a setting."""
    if not (base & RECORD or argument_record(base)):
        return False
    s = node.slice[0].slice
    if not (isinstance(s, cst.Slice) and s.upper is not None and (s.lower is None or walker.const(s.lower) == 0)):
        return False
    up = flat(walker.ev(s.upper))
    if CAPPED in up:
        return walker.loop_depth == 0  # once, on the whole record (not a rank or a chunk inside a loop)
    if SETTING not in up or STREAM_SIZE in up or not limit_on(walker.num(s.upper)):
        return False
    if VAL in base and not base & excluded:
        return True
    return LOSS in base and VAL in base and walker.loop_depth == 0


def random_start(node: cst.Subscript, idx: frozenset) -> bool:
    """``tokens[i:i + n]`` with ``i`` drawn at random (``randint``): windows at sampled offsets score a
    sample of the stream. Offsets from a permutation visit every window (only their order is random)."""
    s = node.slice[0].slice
    return isinstance(s, cst.Slice) and s.lower is not None and SAMPLED in idx
