"""Hashed-cache what-if: shrink every hashed table to one bucket, then sweep x_t.

With one bucket every context and every (context, target) pair share a count. A cache keyed on the
context alone and renormalized over the vocabulary stays a distribution; a key that mixes in the
target now returns the full count for every candidate, the sweep sums far above one, and the
score of a real stream drops toward 0 bits: the PR #779 signature. The probe reports the sweep
and the mean NLL of a stream in both configurations.
"""

from __future__ import annotations

import numpy as np

from checks.probes.base import Context, Probe
from checks.probes.normalization import sweep_facts
from checks.probes.streams import position_specs
from harness.tables import collapsed


def applies(ctx: Context) -> str | None:
    if not ctx.pipe.info.hashed_tables:
        return "no hashed table sizes among the hyperparameters or the environment reads of the code"
    return None


def check(ctx: Context, ex: dict) -> dict | None:
    one_bucket = collapsed(ctx.pipe.info.hashed_tables)
    cex = sweep_facts(ctx, ex, tables=one_bucket)
    if cex is None:
        return None
    s = ctx.stream(ex["seed"], ex["n"])
    with ctx.pipe.resized(one_bucket):
        cex["mean_nll_collapsed"] = float(np.nanmean(ctx.score(s).nll))
    cex["mean_nll_official"] = float(np.nanmean(ctx.score(s).nll))
    cex["tables"] = dict(ctx.pipe.info.hashed_tables)
    cex.pop("family", None)
    return cex


PROBE = Probe(
    name="bucket-collapse", condition="C1", family="target-in-key",
    title="with every hashed table shrunk to one bucket the scores of every possible x_t still sum to one",
    strategy=lambda ctx: position_specs(min_len=100, max_len=200, ranks=ctx.ranks), check=check, applies=applies, cost=24,
)
