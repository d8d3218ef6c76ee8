"""N-gram cache throughput: our vectorized NgramCache vs a dict-based implementation of the same
cache (token by token, tables updated after each scored window), in the same run, same tokens.

    python benchmarks/bench_ngram.py [--tokens 700000] [--dict-tokens 100000] [--order 7]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.caches import NgramCache  # noqa: E402
from harness.evaluate import sliding_windows, window_segments  # noqa: E402
from harness.shards import load_tokens  # noqa: E402

MASK64 = 0xFFFFFFFFFFFFFFFF


def dict_cache(tokens, model_nll, segment, order, buckets, alpha, min_count):
    """The same target-in-key cache with Python dicts."""
    mask, P, T = buckets - 1, 1000003, 2654435761
    ctx_t, full_t, pending = {}, {}, []
    out = [0.0] * (tokens.size - 1)
    toks = tokens.tolist()
    seg = segment.tolist()
    nll = np.asarray(model_nll, dtype=np.float64).tolist()
    for i in range(len(toks) - 1):
        if i and seg[i] != seg[i - 1]:
            for c, f in pending:
                ctx_t[c] = ctx_t.get(c, 0) + 1
                full_t[f] = full_t.get(f, 0) + 1
            pending = []
        p = math.exp(-nll[i])
        pos = i + 1
        if pos >= order - 1:
            h = 0
            for k in range(1, order):
                h = ((h * P) & MASK64) ^ toks[pos - k]
            c, f = h & mask, (h ^ ((toks[pos] * T) & MASK64)) & mask
            cc = ctx_t.get(c, 0)
            if cc >= min_count:
                p = (1 - alpha) * p + alpha * min(full_t.get(f, 0), cc) / cc
            pending.append((c, f))
        out[i] = -math.log(p)
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=4_000_000)
    ap.add_argument("--dict-tokens", type=int, default=100_000)
    ap.add_argument("--order", type=int, default=7)
    ap.add_argument("--buckets", type=int, default=1 << 22)
    a = ap.parse_args()
    base = load_tokens(str(ROOT / "submissions/data/datasets/kjv_sp1024/kjv_train_*.bin")).astype(np.int64)
    tokens = np.resize(base, a.tokens + 1)  # repeated text: the cache hits often
    rng = np.random.default_rng(0)
    nll = rng.uniform(0.5, 6.0, tokens.size - 1)
    seg = window_segments(sliding_windows(tokens.size - 1, 2048, 64), tokens.size - 1)
    cache = NgramCache(a.order, a.buckets, 0.4, 2, "target-in-key")
    m = a.dict_tokens
    t0 = time.perf_counter()
    ref = dict_cache(tokens[: m + 1], nll[:m], seg[:m], a.order, a.buckets, 0.4, 2)
    t_dict = time.perf_counter() - t0
    small = cache.mix(tokens[: m + 1], nll[:m], seg[:m])
    assert np.allclose(small, ref, rtol=0, atol=1e-12), "vectorized and dict caches disagree"
    t0 = time.perf_counter()
    cache.mix(tokens, nll, seg)
    t_vec = time.perf_counter() - t0
    dict_rate, vec_rate = m / t_dict, a.tokens / t_vec
    print(f"order {a.order}, {a.buckets} buckets, windows 2048/64; identical NLLs on the first {m} tokens")
    print(f"  dict-based: {m:>10} tokens {t_dict:7.2f} s  {dict_rate / 1e6:8.3f} M tokens/s")
    print(f"  vectorized: {a.tokens:>10} tokens {t_vec:7.2f} s  {vec_rate / 1e6:8.3f} M tokens/s")
    print(f"  ratio vectorized/dict = {vec_rate / dict_rate:.0f}x")


if __name__ == "__main__":
    main()
