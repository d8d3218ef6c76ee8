"""Compiled (numba) token-by-token kernels of the caches in harness/caches.py.

Each kernel walks the targets in scoring order with dense tables of ``buckets`` counters: at the
first target of a new segment it adds the previous segment's entries, then it reads the tables
for the target. This is the cache's definition, done in one pass with no sort; it needs
non-decreasing segments (a kernel returns False, having changed nothing, when they are not).
harness/caches.py keeps its numpy implementation as the fallback and as the cross-check: the
floating-point operations here are the numpy path's, in the same order (the vocabulary sum of
the renormalized variant is numpy's pairwise summation), so the results are bit-identical.
exp and log stay in numpy on both paths: numpy's SIMD exp/log and the C library's can differ in
the last bit.

Importing this module compiles the kernels for the signatures below, or loads them from numba's
on-disk cache (``__pycache__`` next to this file, else numba's per-user cache directory, else
none: the kernels are then compiled in memory at every import, a few seconds). The sandbox
imports it before its guards go up (checks/reproduce.py), so that the cache files it reads or
writes stay outside what the guards see. ImportError where numba is not installed.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

PRIME = np.uint64(1000003)
TARGET_PRIME = np.uint64(2654435761)
# Counts are int32: harness/caches.py uses these kernels only for streams of < 2**31 targets.
_KEYS = "uint64[::1], int64[::1], int64, int64, uint64"
# Table rows are requested this many targets ahead (tables of millions of buckets miss the CPU
# caches; the hashes do not depend on the tables, so the reads can start early).
AHEAD = 32  # a power of two
# Targets hashed together (their hashes stay in the L1 cache until read).
BLOCK = 1024


def _njit(signature: str | list[str]):
    """``numba.njit`` with the on-disk cache where numba finds a writable place for it."""

    def deco(fn):
        opts = dict(nogil=True, error_model="numpy")  # numpy's x/0 = inf/nan, as the numpy path
        try:
            return numba.njit(signature, cache=True, **opts)(fn)
        except (RuntimeError, OSError):  # no writable cache location (a read-only install)
            return numba.njit(signature, cache=False, **opts)(fn)

    return deco


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Ask the CPU to start loading ``arr[idx]`` (llvm.prefetch, a hint: no fault, no result)."""
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        aryty, idxty = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = builder.gep(ary.data, [context.cast(builder, args[1], idxty, types.intp)])
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        # for writing (the row is incremented once its segment ends), keep in all cache levels, data
        builder.call(fn, [i8p, ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


@_njit("uint64(uint64[::1], int64, int64)")
def _context_hash(toks, pos, order):
    """harness.caches.context_hash of one position; callers keep ``pos >= order - 1``.

    The index is unsigned: numba then emits no negative-index wraparound test per read, which
    made this loop about a fifth of a target-in-key pass.
    """
    h = np.uint64(0)
    upos = np.uint64(pos)
    for k in range(1, order):
        h = (h * PRIME) ^ toks[upos - np.uint64(k)]
    return h


@_njit("void(uint64[::1], int64, int64, int64, uint64, uint64[::1], uint64[::1])")
def _block_keys(toks, first, m, order, mask, ck, fk):
    """Table keys of targets first..first+m-1 (needs first + 1 >= order - 1): ck[j] the context's,
    fk[j] the context's with the target (the target-in-key table), as target_in_key reads them.

    One pass over the block per context token: the passes vectorize, where hashing target by
    target is a chain of dependent multiplies (it was about 60% of a target-in-key pass).
    """
    for j in range(m):
        ck[j] = 0
    for k in range(1, order):
        src = toks[first + 1 - k: first + 1 - k + m]
        for j in range(m):
            ck[j] = (ck[j] * PRIME) ^ src[j]
    tgt = toks[first + 1: first + 1 + m]
    for j in range(m):
        fk[j] = (ck[j] ^ (tgt[j] * TARGET_PRIME)) & mask
        ck[j] = ck[j] & mask


@_njit("int64(int64[::1], int64)")
def longest_segment(seg, start):
    """Length of the longest run of equal segments in seg[start:], or -1 if they ever decrease."""
    n = seg.shape[0]
    longest = 0
    run_start = start
    for i in range(start + 1, n):
        if seg[i] < seg[i - 1]:
            return -1
        if seg[i] != seg[i - 1]:
            longest = max(longest, i - run_start)
            run_start = i
    return max(longest, n - run_start)


@_njit("float64(float64[::1], int64, int64)")
def _pairwise_sum(a, lo, n):
    """numpy's pairwise summation of a[lo:lo+n] (numpy/_core/src/umath/loops_utils.h.src), so a
    row sum here equals ``ndarray.sum(axis=-1)`` bit for bit."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    if n <= 128:
        r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
        r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
        i = 8
        end = n - n % 8
        while i < end:
            j = lo + i
            r0 += a[j]
            r1 += a[j + 1]
            r2 += a[j + 2]
            r3 += a[j + 3]
            r4 += a[j + 4]
            r5 += a[j + 5]
            r6 += a[j + 6]
            r7 += a[j + 7]
            i += 8
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n:
            res += a[lo + i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a, lo, n2) + _pairwise_sum(a, lo + n2, n - n2)


DONE, DECREASING, OVERFLOW, SHORT_BUFFER = 0, 1, 2, 3  # target_in_key's outcomes


@_njit([f"int64({_KEYS}, float64, int64, float64[::1], {t}[::1], {t}[::1], int64, uint64[::1], uint64[::1])"
        for t in ("uint16", "int32")])
def target_in_key(toks, seg, start, order, mask, alpha, min_count, p, ctx_t, full_t, limit, ck_buf, fk_buf):
    """p[i] (the model's probability of target i, i >= start) becomes the target-in-key mixture.

    ``toks``: the stream as uint64 (target i is toks[i + 1]); ``seg``: per target; ``ctx_t``,
    ``full_t``: zeroed tables of ``mask + 1`` counters that hold up to ``limit``; ``ck_buf``,
    ``fk_buf``: room for the keys of one segment (they are added when it ends). Returns DONE, or,
    with p partly changed: DECREASING (segments decrease), OVERFLOW (a counter would pass
    ``limit``: run again with wider counters), SHORT_BUFFER (a segment is longer than the buffers:
    run again with ``longest_segment`` entries). uint16 counters keep the two tables of millions
    of buckets in the CPU caches more often than int32 ones.
    """
    n = p.shape[0]
    room = ck_buf.shape[0]
    cb = np.empty(BLOCK + AHEAD, dtype=np.uint64)  # the keys of a block and of the AHEAD after it
    fb = np.empty(BLOCK + AHEAD, dtype=np.uint64)
    a1 = 1.0 - alpha
    seg_start = start
    for first in range(start, n, BLOCK):
        m = min(BLOCK + AHEAD, n - first)
        _block_keys(toks, first, m, order, mask, cb, fb)
        for i in range(first, min(first + BLOCK, n)):
            if i > start and seg[i] != seg[i - 1]:
                if seg[i] < seg[i - 1]:
                    return DECREASING
                for j in range(i - seg_start):  # the previous segment becomes visible
                    if ctx_t[ck_buf[j]] == limit or full_t[fk_buf[j]] == limit:
                        return OVERFLOW
                    ctx_t[ck_buf[j]] += 1
                    full_t[fk_buf[j]] += 1
                seg_start = i
            if i - seg_start == room:
                return SHORT_BUFFER
            r = i - first
            ck, fk = cb[r], fb[r]
            if r + AHEAD < m:  # request the table rows of the target AHEAD later
                _prefetch(ctx_t, cb[r + AHEAD])
                _prefetch(full_t, fb[r + AHEAD])
            ck_buf[i - seg_start] = ck
            fk_buf[i - seg_start] = fk
            c = ctx_t[ck]
            mixed = a1 * p[i] + alpha * (min(full_t[fk], c) / max(c, 1))
            if c >= min_count:
                p[i] = mixed
    return DONE


@_njit(f"boolean({_KEYS}, float64, int64, float64[::1], uint64[::1], int32[::1], int32[::1])")
def renormalized(toks, seg, start, order, mask, alpha, min_count, p, cand, ctx_t, full_t):
    """p[i] becomes the legal mixture: every candidate's score ``min(full[h ^ cand[v]], ctx) / ctx``
    read from the context, divided by its sum over the ``cand.size`` candidates."""
    n = p.shape[0]
    longest = longest_segment(seg, start)
    if longest < 0:
        return False
    ck_buf = np.empty(longest, dtype=np.uint64)
    fk_buf = np.empty(longest, dtype=np.uint64)
    scores = np.empty(cand.shape[0], dtype=np.float64)
    a1 = 1.0 - alpha
    seg_start = start
    for i in range(start, n):
        if i > start and seg[i] != seg[i - 1]:
            for j in range(i - seg_start):
                ctx_t[ck_buf[j]] += 1
                full_t[fk_buf[j]] += 1
            seg_start = i
        h = _context_hash(toks, i + 1, order)
        ck = h & mask
        fk = (h ^ (toks[i + 1] * TARGET_PRIME)) & mask
        ck_buf[i - seg_start] = ck
        fk_buf[i - seg_start] = fk
        c = ctx_t[ck]
        if c >= min_count:
            for v in range(cand.shape[0]):
                scores[v] = min(full_t[(h ^ cand[v]) & mask], c) / c
            z = a1 + alpha * (0.0 + _pairwise_sum(scores, 0, cand.shape[0]))
            p[i] = (a1 * p[i] + alpha * (min(full_t[fk], c) / c)) / z
    return True


@_njit(f"boolean({_KEYS}, int64[::1], int64[::1], int64[::1], int64[::1], int32[::1])")
def hints(toks, seg, start, order, mask, values, hint, run, hint_t, run_t):
    """hint[i], run[i] (i >= start): the token last seen after target i's hashed context in an
    earlier segment (``hint_t`` starts at -1) and how many times in a row it was seen there.
    ``values``: the stream as int64 (the same memory as ``toks``)."""
    n = hint.shape[0]
    longest = longest_segment(seg, start)
    if longest < 0:
        return False
    k_buf = np.empty(longest, dtype=np.uint64)
    seg_start = start
    for i in range(start, n):
        if i > start and seg[i] != seg[i - 1]:
            for j in range(i - seg_start):
                key = k_buf[j]
                t = values[seg_start + j + 1]
                if hint_t[key] == t:
                    run_t[key] += 1
                else:
                    hint_t[key] = t
                    run_t[key] = 1
            seg_start = i
        key = _context_hash(toks, i + 1, order) & mask
        k_buf[i - seg_start] = key
        hint[i] = hint_t[key]
        run[i] = run_t[key]
    return True
