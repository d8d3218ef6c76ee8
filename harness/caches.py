"""Backward-looking caches that mix with a model's scores: hashed n-gram counts and a hint tilt.

All caches here work on one token stream ``tokens[0..n]`` (target i is ``tokens[i+1]``) and a
*segment* per target: the order in which a pipeline scores targets and then lets its tables learn
them. A target's prediction may only use targets of strictly earlier segments (in the sliding-window
eval a segment is one window's scored targets; harness.evaluate.window_segments gives them).
Two implementations give bit-identical results:

- compiled (harness/caches_jit.py, numba, used when it is installed): one pass over the targets
  in scoring order with dense tables of ``buckets`` counters; at a segment boundary the previous
  segment's entries are added. The cost is a few table reads per token (benchmarks/bench_ngram.py
  measures it). Used for streams of < 2**31 targets, tables of at most 2**26 buckets and
  non-decreasing segments; ``GOLF_AUDIT_JIT=0`` in the environment turns it off.
- numpy (the fallback, and the cross-check in the tests): the "counts seen before this segment"
  of every target are computed at once by one in-place sort of (key, segment, position) packed
  into int64 values, then a few linear passes.

- ``NgramCache(variant="target-in-key")``: the PR #779 family. Counts are read from a context
  table ``ctx[h(context)]`` and a "full" table ``full[h(context) ^ target * P]``; the mixed score
  ``(1-a) p_model + a min(full, ctx)/ctx`` reads the table at a key built from the target itself,
  so summed over the vocabulary it is not a distribution. It reproduces such claims.
- ``NgramCache(variant="renormalized")``: the same cache made legal: the score of every vocabulary
  entry is read from the context alone and the mixture divided by its sum over the full vocabulary.
- ``HintTilt``: the most recent token seen after the same hashed context is a "hint"; the model's
  distribution is tilted by ``exp(beta)`` toward it and renormalized over the vocabulary (legal);
  ``gate="word-start"`` applies the tilt only when the *target* starts a word (the PR #1420 bug).

Probabilities are in float64; NLLs in nats. The hashes are the examples' (harness/examples):
``h = 0; for k in 1..order-1: h = h * 1000003 ^ tokens[p-k]`` over uint64, wrapping.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

NGRAM_PRIME = np.uint64(1000003)
TARGET_PRIME = np.uint64(2654435761)
MAX_COMPILED_BUCKETS = 1 << 26  # the compiled kernels allocate their tables; the sorts do not
_UNSET = object()
_kernels_module = _UNSET


def _kernels(compiled: bool | None, n: int, buckets: int):
    """harness.caches_jit when the compiled path applies, else None (then the numpy path runs).

    ``compiled``: None = when numba is installed and ``GOLF_AUDIT_JIT`` is not ``0``; False =
    never; True = always (RuntimeError where numba is missing). Streams of 2**31 targets or more
    (int32 counters) and tables over MAX_COMPILED_BUCKETS always take the numpy path.
    """
    global _kernels_module
    if compiled is False or (compiled is None and os.environ.get("GOLF_AUDIT_JIT", "1") == "0"):
        return None
    if _kernels_module is _UNSET:
        try:
            from harness import caches_jit
        except ImportError:
            caches_jit = None
        _kernels_module = caches_jit
    if _kernels_module is None and compiled:
        raise RuntimeError("the compiled n-gram kernels need numba (pip install numba)")
    if n >= 1 << 31 or buckets > MAX_COMPILED_BUCKETS:
        return None
    return _kernels_module


def context_hash(tokens: np.ndarray, pos: np.ndarray, order: int) -> np.ndarray:
    """Rolling hash of the ``order-1`` tokens before each index in ``pos`` (uint64, wrapping)."""
    toks = tokens.astype(np.uint64, copy=False)
    h = np.zeros(pos.shape[0], dtype=np.uint64)
    contiguous = pos.shape[0] > 0 and int(pos[-1]) - int(pos[0]) == pos.shape[0] - 1
    for k in range(1, order):
        h *= NGRAM_PRIME
        # A run of consecutive positions (the usual case) reads a slice instead of gathering.
        h ^= toks[int(pos[0]) - k: int(pos[-1]) - k + 1] if contiguous else toks[pos - k]
    return h


def counts_before(keys: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """For each entry, how many entries with the same key belong to strictly earlier segments.

    ``keys`` non-negative int64; ``segment`` int64, non-decreasing along the array (the order
    entries are scored in). Entries of the same segment never see each other.
    """
    n = keys.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order, new_key, new_group, _ = _sorted_groups(keys, segment)
    idx = np.arange(n, dtype=np.int64)
    key_start = np.maximum.accumulate(np.where(new_key, idx, 0))
    group_start = np.maximum.accumulate(np.where(new_group, idx, 0))
    out = np.empty(n, dtype=np.int64)
    out[order] = group_start - key_start
    return out


def _sorted_groups(keys: np.ndarray, segment: np.ndarray):
    """Entries sorted by (key, position): (order, new_key, new_group, sorted segments or None).

    ``new_key[j]``: sorted entry j starts a run of equal keys; ``new_group[j]``: it starts a run
    of equal (key, segment). Key, segment and position are packed into one int64 when they fit
    (one in-place sort, no gathers; segments are non-decreasing, so (key, segment, position)
    order is (key, position) order); otherwise a stable sort of the keys.
    """
    n = keys.shape[0]
    keys = np.asarray(keys, dtype=np.int64)
    segment = np.asarray(segment, dtype=np.int64)
    s0 = int(segment[0])
    pos_bits = max(int(n - 1).bit_length(), 1)
    seg_bits = max(int(segment[-1]) - s0, 0).bit_length()
    key_bits = int(keys.max()).bit_length()
    monotone = n < 2 or bool((segment[1:] >= segment[:-1]).all())
    if monotone and int(keys.min()) >= 0 and key_bits + seg_bits + pos_bits <= 63:
        packed = keys << (seg_bits + pos_bits)
        if seg_bits:
            packed |= (segment - s0) << pos_bits
        packed |= np.arange(n, dtype=np.int64)
        packed.sort()
        order = packed & ((1 << pos_bits) - 1)
        packed >>= pos_bits  # (key, segment)
        new_group = np.empty(n, dtype=bool)
        new_group[0] = True
        np.not_equal(packed[1:], packed[:-1], out=new_group[1:])
        if seg_bits:
            packed >>= seg_bits  # key
            new_key = np.empty(n, dtype=bool)
            new_key[0] = True
            np.not_equal(packed[1:], packed[:-1], out=new_key[1:])
        else:
            new_key = new_group
        return order, new_key, new_group, None
    order, k = _sort_by_key(keys)
    s = segment[order]
    new_key = np.ones(n, dtype=bool)
    new_key[1:] = k[1:] != k[:-1]
    new_group = new_key.copy()
    new_group[1:] |= s[1:] != s[:-1]
    return order, new_key, new_group, s


def _sort_by_key(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, sorted keys): entries by key, then by position (a stable sort; torch's radix sort
    of int64 is several times faster than numpy's stable argsort). Used when the packed values
    of _sorted_groups would not fit in 63 bits."""
    import torch

    vals, order = torch.sort(torch.from_numpy(np.ascontiguousarray(keys, dtype=np.int64)), stable=True)
    return order.numpy(), vals.numpy()


def last_before(keys: np.ndarray, segment: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each entry: the value of the latest same-key entry of an earlier segment (-1 if none)
    and how many same-key entries in a row, ending there, carry that same value (0 if none)."""
    n = keys.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    order, new_key, new_group, _ = _sorted_groups(keys, segment)
    v = np.asarray(values)[order]
    idx = np.arange(n)
    new_run = new_key.copy()
    new_run[1:] |= v[1:] != v[:-1]
    key_start = np.maximum.accumulate(np.where(new_key, idx, 0))
    group_start = np.maximum.accumulate(np.where(new_group, idx, 0))
    run_start = np.maximum.accumulate(np.where(new_run, idx, 0))
    prev = group_start - 1  # the last entry before this segment's group, in sorted order
    has = group_start > key_start
    safe = np.maximum(prev, 0)
    hint = np.where(has, v[safe], -1)
    run = np.where(has, safe - run_start[safe] + 1, 0)
    out_hint, out_run = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    out_hint[order], out_run[order] = hint, run
    return out_hint, out_run


@dataclass
class NgramCache:
    """Hashed order-``order`` n-gram cache mixed into the model's probability with weight ``alpha``.

    ``variant``: ``"target-in-key"`` (as submitted by the PR #779 family; not a distribution) or
    ``"renormalized"`` (legal: the mixture over every vocabulary entry, divided by its sum).
    The cache only applies where the context was seen at least ``min_count`` times before.
    """

    order: int = 7
    buckets: int = 1 << 20
    alpha: float = 0.40
    min_count: int = 2
    variant: str = "target-in-key"

    def __post_init__(self) -> None:
        if self.variant not in ("target-in-key", "renormalized"):
            raise ValueError(f"unknown n-gram cache variant {self.variant!r}")
        if self.buckets & (self.buckets - 1) or self.buckets <= 0 or self.order < 2:
            raise ValueError("n-gram cache needs order >= 2 and a power-of-two bucket count")

    @property
    def legal(self) -> bool:
        return self.variant == "renormalized"

    def _keys(self, tokens: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = np.uint64(self.buckets - 1)
        h = context_hash(tokens, pos, self.order)
        return h, (h & mask).astype(np.int64)

    def mix(self, tokens: np.ndarray, model_nll: np.ndarray, segment: np.ndarray,
            vocab_size: int | None = None, *, compiled: bool | None = None, first: int = 0) -> np.ndarray:
        """NLL (nats, float64, shape (n,)) of every target after mixing.

        ``model_nll[i]``: the model's NLL of target i; ``segment[i]``: when target i is scored.
        ``compiled``: which implementation (see _kernels; both give the same bits). ``first``:
        targets before it are context only, never mixed nor learnt (see replay_per_rank).
        """
        tokens = np.asarray(tokens, dtype=np.int64)
        n = tokens.shape[0] - 1
        p_model = np.negative(np.asarray(model_nll, dtype=np.float64))
        np.exp(p_model, out=p_model)  # np.exp(-model_nll) without a second array
        if vocab_size is None and self.variant == "renormalized":
            vocab_size = int(tokens.max()) + 1
        # Targets with a full context: target i sits at stream index i + 1 >= order - 1.
        ok = slice(min(max(self.order - 2, first), n), n)
        kernels = _kernels(compiled, n, self.buckets)
        if kernels is not None and p_model.shape == (n,) and np.ndim(segment) == 1 and len(segment) == n:
            # The kernel changes p_model in place, or nothing when the segments decrease.
            if self._mix_compiled(kernels, tokens, model_nll, p_model, segment, ok.start, vocab_size):
                return np.negative(np.log(p_model, out=p_model), out=p_model)  # -np.log(p), in place
        p_ok, seg_ok = np.arange(ok.start + 1, n + 1), np.asarray(segment, dtype=np.int64)[ok]
        h, ctx_key = self._keys(tokens, p_ok)
        ctx_count = counts_before(ctx_key, seg_ok)
        mask = np.uint64(self.buckets - 1)
        tgt = tokens[p_ok].astype(np.uint64)
        full_key = ((h ^ (tgt * TARGET_PRIME)) & mask).astype(np.int64)
        alpha = float(self.alpha)
        if self.variant == "target-in-key":
            full_count = counts_before(full_key, seg_ok)
            p_ng = np.minimum(full_count, ctx_count) / np.maximum(ctx_count, 1)
            on = ctx_count >= self.min_count
            p = p_model.copy()
            p[ok] = np.where(on, (1.0 - alpha) * p_model[ok] + alpha * p_ng, p_model[ok])
            return -np.log(p)
        return self._renormalized(p_model, ok, h, ctx_count, full_key, seg_ok, vocab_size, alpha)

    def _mix_compiled(self, kernels, tokens, model_nll, p, segment, start, vocab_size) -> bool:
        """The compiled mixture, into ``p`` (exp(-model_nll)) in place; False when the segments
        decrease (``p`` is then as it was)."""
        toks = np.ascontiguousarray(tokens).view(np.uint64)  # the bits of astype(uint64)
        seg = np.ascontiguousarray(segment, dtype=np.int64)
        # ceil: an integer count c is >= min_count exactly when it is >= ceil(min_count).
        args = (toks, seg, start, self.order, np.uint64(self.buckets - 1), float(self.alpha), math.ceil(self.min_count), p)
        if self.variant == "target-in-key":
            # uint16 counters first (smaller tables, fewer cache misses); int32 if one overflows.
            # Room for the keys of a segment of up to 2**16 targets (a sliding window's); the exact
            # longest segment, one more pass over the segments, only when one is longer.
            dtypes, room = [np.uint16, np.int32], 1 << 16
            while True:
                dtype = dtypes[0]
                status = kernels.target_in_key(*args, np.zeros(self.buckets, dtype=dtype),
                                               np.zeros(self.buckets, dtype=dtype), int(np.iinfo(dtype).max),
                                               np.empty(room, dtype=np.uint64), np.empty(room, dtype=np.uint64))
                if status == kernels.DONE:
                    return True
                np.exp(np.negative(np.asarray(model_nll, dtype=np.float64), out=p), out=p)  # p as it was
                if status == kernels.DECREASING:
                    return False
                if status == kernels.SHORT_BUFFER:
                    room = kernels.longest_segment(seg, start)
                elif len(dtypes) > 1:  # OVERFLOW
                    dtypes.pop(0)
                else:
                    raise AssertionError("int32 counters cannot overflow on < 2**31 targets")
        cand = np.arange(vocab_size, dtype=np.uint64) * TARGET_PRIME
        return kernels.renormalized(*args, cand, np.zeros(self.buckets, dtype=np.int32),
                                    np.zeros(self.buckets, dtype=np.int32))

    def _renormalized(self, p_model, ok, h, ctx_count, full_key, seg_ok, vocab_size, alpha):
        """Legal variant: mixture over all V entries read from the context, divided by its sum.

        The tables are replayed segment by segment (state as of the segment's start) because the
        normalizer needs the counts of every candidate token, not only the target's.
        """
        mask = np.uint64(self.buckets - 1)
        cand = np.arange(vocab_size, dtype=np.uint64) * TARGET_PRIME
        table = np.zeros(self.buckets, dtype=np.int64)
        on_idx = np.nonzero(ctx_count >= self.min_count)[0]
        p = p_model.copy()
        p_ok = p[ok]
        p_model_ok = p_model[ok]
        # Segment boundaries among the entries (entries are in scoring order).
        bounds = np.flatnonzero(np.r_[True, seg_ok[1:] != seg_ok[:-1], True])
        on_mask = np.zeros(seg_ok.shape[0], dtype=bool)
        on_mask[on_idx] = True
        for a, b in zip(bounds[:-1], bounds[1:]):
            rows = np.nonzero(on_mask[a:b])[0] + a
            if rows.size:
                keys = ((h[rows, None] ^ cand[None, :]) & mask).astype(np.int64)
                c = np.minimum(table[keys], ctx_count[rows, None]) / ctx_count[rows, None]
                tgt_ng = np.minimum(table[full_key[rows]], ctx_count[rows]) / ctx_count[rows]
                z = (1.0 - alpha) + alpha * c.sum(axis=1)
                p_ok[rows] = ((1.0 - alpha) * p_model_ok[rows] + alpha * tgt_ng) / z
            np.add.at(table, full_key[a:b], 1)
        p[ok] = p_ok
        return -np.log(p)


@dataclass
class HintTilt:
    """Tilt the model toward the token last seen after the same hashed context.

    ``p'(v) = p(v) exp(beta [v = hint]) / (1 + p(hint) (e^beta - 1))``, applied where the hint
    repeated at least ``min_count`` times in a row. ``gate="word-start"`` (not a distribution:
    whether the tilt applies depends on the target) reproduces the PR #1420 family.
    """

    order: int = 5
    buckets: int = 1 << 18
    beta: float = 1.5
    min_count: int = 2
    gate: str | None = None

    @property
    def legal(self) -> bool:
        return self.gate is None

    def hints(self, tokens: np.ndarray, segment: np.ndarray, *,
              compiled: bool | None = None, first: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(hint token or -1, beta) per target; both read from earlier segments only.
        ``compiled``: which implementation (see _kernels; both give the same values). ``first``:
        targets before it are context only, never hinted nor learnt (see replay_per_rank)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        n = tokens.shape[0] - 1
        hint = np.full(n, -1, dtype=np.int64)
        run = np.zeros(n, dtype=np.int64)
        kernels = _kernels(compiled, n, self.buckets)
        done = False
        if kernels is not None and np.ndim(segment) == 1 and len(segment) == n and self.buckets > 0:
            toks = np.ascontiguousarray(tokens)
            done = kernels.hints(toks.view(np.uint64), np.ascontiguousarray(segment, dtype=np.int64),
                                 min(max(self.order - 2, first, 0), n), self.order, np.uint64(self.buckets - 1), toks,
                                 hint, run, np.full(self.buckets, -1, dtype=np.int64),
                                 np.zeros(self.buckets, dtype=np.int32))
        if not done:
            pos = np.arange(1, n + 1)
            ok = pos >= max(self.order - 1, first + 1)
            key = (context_hash(tokens, pos[ok], self.order) & np.uint64(self.buckets - 1)).astype(np.int64)
            hint[ok], run[ok] = last_before(key, np.asarray(segment)[ok], tokens[pos[ok]])
        beta = np.where((hint >= 0) & (run >= self.min_count), self.beta, 0.0)
        return hint, beta

    def mix(self, tokens: np.ndarray, model_nll: np.ndarray, hint_logp: np.ndarray, hint: np.ndarray,
            beta: np.ndarray, word_start: np.ndarray | None = None) -> np.ndarray:
        """NLL (nats) per target from the model's NLL of the target and log p(hint).

        ``word_start[i]``: the target token starts a word (needed only for ``gate="word-start"``).
        """
        tokens = np.asarray(tokens, dtype=np.int64)
        tgt = tokens[1:]
        lp_tgt = -np.asarray(model_nll, dtype=np.float64)
        log_z = np.log1p(np.exp(hint_logp) * (np.exp(beta) - 1.0))
        tilted = lp_tgt + beta * (tgt == hint) - log_z
        apply = beta > 0
        if self.gate == "word-start":
            apply = apply & np.asarray(word_start, dtype=bool)
        elif self.gate is not None:
            raise ValueError(f"unknown tilt gate {self.gate!r}")
        return -np.where(apply, tilted, lp_tgt)


def replay_per_rank(run, segment: np.ndarray, windows: np.ndarray, world_size: int, order: int):
    """A cache replayed as a run of ``world_size`` processes keeps it: one cache per rank, each
    learning only the targets of its own share of the sliding windows (harness.evaluate.rank_share).

    ``run(s, e, segment, first)`` runs the cache on the stream's slice ``tokens[s:e+1]`` (targets
    s..e-1), with targets before ``first`` (relative to s) as context only; it returns an array or
    a tuple of arrays over those targets. Each rank's slice starts ``order`` tokens before its
    first target, so every key reads the same context as in one stream. Returns the ranks' results
    joined over all targets (the same shape as ``run`` on the whole stream).
    """
    from harness.evaluate import rank_share

    n = len(segment)
    if world_size <= 1:
        return run(0, n, segment, 0)
    parts = []
    for r in range(world_size):
        share = windows[rank_share(len(windows), r, world_size)]
        if len(share) == 0:
            continue
        a, e = int(share[0, 0] + share[0, 1]), int(share[-1, 0] + share[-1, 2])
        s = max(0, a - order)
        parts.append((a - s, a, e, run(s, e, segment[s:e], a - s)))
    single = not isinstance(parts[0][3], tuple)
    outs = []
    for k in range(1 if single else len(parts[0][3])):
        pieces = [(res if single else res[k]) for *_, res in parts]
        out = np.empty((n,) + pieces[0].shape[1:], dtype=pieces[0].dtype)
        for (skip, a, e, _), piece in zip(parts, pieces):
            out[a:e] = piece[skip:]
        outs.append(out)
    return outs[0] if single else tuple(outs)


class CachedScorer:
    """The Scorer interface (harness/scorer.py) for a model plus one cache, as a pipeline scores.

    ``base``: a harness.evaluate.SlidingScorer; ``cache``: an NgramCache or a HintTilt; targets are
    scored in the sliding windows' order and the cache learns each window after scoring it.
    ``word_start``: per vocabulary id, whether the piece starts a word (HintTilt's gate only).
    """

    def __init__(self, base, cache: "NgramCache | HintTilt", word_start: np.ndarray | None = None):
        self.base, self.cache, self.word_start = base, cache, word_start
        self.vocab_size, self.bos_id = base.vocab_size, base.bos_id

    def score(self, tokens: np.ndarray):
        from harness.evaluate import sliding_windows, window_segments
        from harness.scorer import ScoreResult

        tokens = np.asarray(tokens, dtype=np.int64)
        n = tokens.shape[0] - 1
        seg = window_segments(sliding_windows(n, self.base.seq_len, min(self.base.stride, self.base.seq_len)), n)
        if isinstance(self.cache, HintTilt):
            hint, beta = self.cache.hints(tokens, seg)
            r = self.base.evaluate(tokens, extra_ids=hint)
            ws = None if self.word_start is None else np.asarray(self.word_start)[tokens[1:]]
            nll = self.cache.mix(tokens, r.score.nll, r.extra_logp, hint, beta, ws)
        else:
            r = self.base.evaluate(tokens)
            nll = self.cache.mix(tokens, r.score.nll, r.segment, self.vocab_size)
        return ScoreResult(nll=nll, count=r.score.count, total_nll=float(nll.sum()))

    def score_many(self, streams: list[np.ndarray]) -> list:
        return [self.score(s) for s in streams]
