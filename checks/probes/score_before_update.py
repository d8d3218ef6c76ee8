"""C3 score before update: the state that scores x_t is the same whatever x_t is.

For pipelines that adapt during evaluation (the model's weights change: test-time training), x_t
is swept over a few values with the rest of the stream fixed, and the model's logits at t (the
distribution the score reads) are compared: a chunk trained on before it is scored carries x_t
into its own prediction. Caches keyed on the stream are covered by the normalization probe.
"""

from __future__ import annotations

import numpy as np

from checks.probes.base import Context, Probe
from checks.probes.streams import change_specs, probed_position


def applies(ctx: Context) -> str | None:
    s = ctx.stream(0, 160 * ctx.ranks)
    ctx.score(s)
    if not ctx.pipe.info.stateful:
        return "the model's weights do not change during the eval (no adaptive state to probe; caches: see normalization)"
    return None


def check(ctx: Context, ex: dict) -> dict | None:
    s = ctx.stream(ex["seed"], ex["n"])
    t = probed_position(s, ex["k"], repeated=False)
    a = int(s[t + 1])
    b = ex["b"] % ctx.vocab
    if b == a:
        b = (b + 1) % ctx.vocab
    values, nll, results = ctx.sweep(s, t, suffix=s[t + 2:], values=[a, b])
    # The first forward that covers t is the one whose logits score it (windows in stream order);
    # later windows see t only as context, after legal updates.
    rows = [[row for pos, row in r.watched if pos == t][:1] for r in results]
    if not rows[0] or not rows[1]:
        return None
    diff = float(np.abs(rows[0][0] - rows[1][0]).max())
    if diff <= 1e-5:
        return None
    return {"stream_length": int(s.shape[0]), "position": t, "tokens": [a, b], "logit_diff": diff,
            "nll": [float(nll[0]), float(nll[1])], "nll_diff": float(nll[1] - nll[0])}


PROBE = Probe(
    name="score-before-update", condition="C3", family="update-before-score",
    title="the model state that scores x_t does not depend on x_t (sweeping x_t leaves the logits at t unchanged)",
    strategy=lambda ctx: change_specs(min_len=80, max_len=200, ranks=ctx.ranks), check=check, applies=applies, cost=2,
)
