"""Determinism: the same stream scored twice (each from a fresh state) gives the same NLLs and counts."""

from __future__ import annotations

import numpy as np

from checks.probes.base import Context, Probe
from checks.probes.streams import stream_specs


def check(ctx: Context, ex: dict) -> dict | None:
    s = ctx.stream(ex["seed"], ex["n"])
    r1, r2 = ctx.score(s), ctx.score(s)
    d = np.abs(np.nan_to_num(r1.nll) - np.nan_to_num(r2.nll))
    bad = np.nonzero((d > ctx.tol) | (r1.count != r2.count))[0]
    if not bad.size:
        return None
    i = int(bad[0])
    return {"stream_length": int(s.shape[0]), "position": i, "nll": [float(r1.nll[i]), float(r2.nll[i])],
            "nll_diff": float(r2.nll[i] - r1.nll[i]), "counts": [int(r1.count[i]), int(r2.count[i])]}


PROBE = Probe(
    name="determinism", condition="rules", family="claims-mismatch",
    title="the same stream scored twice from a fresh state gives the same NLL at every position",
    strategy=lambda ctx: stream_specs(ranks=ctx.ranks), check=check,
)
