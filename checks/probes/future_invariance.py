"""C1 future invariance: changing x_s (s >= t) never moves the scored NLL of a position before t.

A pipeline whose score at t reads statistics of the whole stream (a second pass, bigram counts of
all of val, an adapted state trained on later tokens) fails: the counterexample names the
changed token, the earliest position that moved and by how much.
"""

from __future__ import annotations

import numpy as np

from checks.probes.base import Context, Probe
from checks.probes.streams import change_specs


def check(ctx: Context, ex: dict) -> dict | None:
    s = ctx.stream(ex["seed"], ex["n"])
    n = s.shape[0] - 1  # targets
    t = 1 + ex["k"] % (n - 1)  # probed target index: x_{t+1} is its token
    u = min(t + 1 + ex["d"], n)  # stream index of the changed token, at or after the target of t
    b = ex["b"] % ctx.vocab
    if b == s[u]:
        b = (b + 1) % ctx.vocab
    s2 = s.copy()
    s2[u] = b
    r1, r2 = ctx.score(s), ctx.score(s2)
    before = u - 1  # targets 0..u-2 precede the changed token
    a1, a2 = r1.nll[:before], r2.nll[:before]
    if before <= 0 or np.isnan(a1).all():
        return None
    diff = np.abs(np.nan_to_num(a1, nan=0.0) - np.nan_to_num(a2, nan=0.0))
    moved = np.nonzero(diff > ctx.tol)[0]
    if not moved.size:
        return None
    i = int(moved[0])
    return {"stream_length": int(s.shape[0]), "position": i, "changed_index": int(u),
            "tokens": [int(s[u]), int(b)], "nll": [float(a1[i]), float(a2[i])], "nll_diff": float(a2[i] - a1[i]),
            "positions_moved": int(moved.size)}


def family_of(ctx: Context, cex: dict) -> str:
    # An adapted model reads the future through its weights; otherwise the score reads it directly.
    return "update-before-score" if ctx.pipe.info.stateful else "multi-pass"


PROBE = Probe(
    name="future-invariance", condition="C1", family="multi-pass",
    title="changing a token at or after t leaves the scored NLL of every position before t unchanged",
    strategy=lambda ctx: change_specs(ranks=ctx.ranks), check=check, family_of=family_of, cost=2,
)
