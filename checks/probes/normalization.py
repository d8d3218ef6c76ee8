"""C1+C2 normalization by counterfactual sweep: with the prefix fixed, sum_v exp(-NLL_t(v)) = 1.

The stream is cut right after the probed token and x_t is set to every id of the vocabulary;
a proper distribution fixed before x_t is read sums to one. Hashed tables are sized for the
sweep so that the short stream fills them as a rank of the official launch fills the full-size
tables with its share of the validation stream: the keys collide as often as in the real run
(a pair count keyed on the target over a context count is a distribution only while nothing
collides). A key built from the target, a gate
on the target's class or a score computed only for the realised token breaks it even when every
read looks backward. The family is diagnosed from the per-token ratio to the model's own
distribution: two levels split by a byte-LUT class is a target-gated mix; irregular ratios with a
hashed table in the pipeline is a target-in-key lookup; anything else is unnormalized.
"""

from __future__ import annotations

import numpy as np

from checks.probes.base import Context, Probe, model_probs
from checks.probes.streams import position_specs, probed_position


def sweep_facts(ctx: Context, ex: dict, tables: dict[str, int] | None = None) -> dict | None:
    """The sweep at ``tables`` (hashed-table sizes; by default those of the launched load)."""
    s = ctx.stream(ex["seed"], ex["n"])
    # Past the first window of the rank that scores it (a window scores all its positions before
    # any cache update), each rank holding a share of the stream as long as one window or more.
    # Its context recurred in what that rank scored before it: the stream is cut right after t, so
    # the last rank's share, less the window that scores t, is what its caches hold.
    seq = ctx.pipe.info.seq_len or 64
    t = probed_position(s, ex["k"], min_t=seq * ctx.ranks, share=lambda i: (i + 2) // ctx.ranks - seq)
    if tables is None:
        tables = ctx.loaded_tables(t + 2)
    with ctx.pipe.resized(tables):
        values, nll, results = ctx.sweep(s, t)
    if np.isnan(nll).any():
        return None  # the eval did not score the probed token: exactly-once reports that
    q = np.exp(-nll)
    total = float(q.sum())
    if abs(total - 1.0) <= ctx.norm_tol:
        return None
    p = model_probs(results[0], t)
    actual = int(s[t + 1])
    dev = np.abs(q - p) if p is not None else q.copy()
    dev[actual] = -1.0  # the other token of the pair: the one whose score strays most
    v = int(np.argmax(dev))
    cex = {"stream_length": t + 2, "position": t, "tokens": [actual, v], "sum_p": total,
           "nll": [float(nll[actual]), float(nll[v])], "nll_diff": float(nll[v] - nll[actual])}
    if p is not None:
        cex["model_nll"] = float(-np.log(p[v]))
        cex["family"] = diagnose(ctx, q, p)
    if tables:
        cex["tables"] = dict(tables)
    return cex


def diagnose(ctx: Context, q: np.ndarray, p: np.ndarray) -> str:
    ratio = np.log(np.maximum(q, 1e-300)) - np.log(np.maximum(p, 1e-300))
    levels = np.round(ratio, 4)
    common, counts = np.unique(levels, return_counts=True)
    top = common[np.argsort(-counts)[:2]]
    main = np.isin(levels, top)
    if len(top) == 2 and main.sum() >= len(q) - 2:
        split = levels == top[0]
        for lut in ctx.pipe.luts.values():
            cls = np.asarray(lut).astype(bool)
            if (np.array_equal(split[main], cls[main]) or np.array_equal(split[main], ~cls[main])):
                return "target-gated-mixing"
    if ctx.pipe.info.hashed_tables:
        return "target-in-key"
    return "unnormalized"


PROBE = Probe(
    name="normalization", condition="C2", family="unnormalized",
    title="with the prefix fixed, the scores of every possible x_t sum to one: sum_v exp(-NLL_t(v)) = 1",
    strategy=lambda ctx: position_specs(min_len=100, max_len=200, ranks=ctx.ranks), check=sweep_facts, cost=24,
    family_of=lambda ctx, cex: cex.get("family", "unnormalized"),
)
