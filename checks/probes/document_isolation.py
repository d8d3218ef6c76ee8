"""C1 at document boundaries: with BOS-packed documents, the end of document N never moves document N+1.

Applies only when the eval scores per document. That claim is measured, not read from names:
changing a token inside document N (2, 6 or 12 before its end) must leave document N+1
bit-identical (its context stops at the BOS). When it does, changing the *last* tokens of document N must leave it unchanged
too; a previous-token mix (SmearGate-like) without a BOS mask carries them across. When the
middle change already moves document N+1, the context crosses documents by design (ordinary
sliding windows) and the example says nothing about isolation.
"""

from __future__ import annotations

import numpy as np

from checks.probes.base import Context, Probe
from checks.probes.streams import document_specs, make_documents

NO_CLAIM = {"no_claim": True}


def _moved(ctx, r1, r2, lo, hi, tol=None):
    d = np.abs(np.nan_to_num(r1.nll[lo:hi]) - np.nan_to_num(r2.nll[lo:hi]))
    return d, np.nonzero(d > (ctx.tol if tol is None else tol))[0]


def _isolated(ctx, s, r0, nxt, lo, hi, b) -> bool:
    """Per-document context: changing tokens inside document N (not its last) moves nothing at all
    in document N+1. Masked attention gives bit-identical results; context that crosses the
    boundary moves something, however weak the freshly built model's attention is."""
    for back in (2, 6, 12):
        i = nxt - back
        if i <= 0:
            continue
        s2 = s.copy()
        s2[i] = b if b != s[i] else (b % (ctx.vocab - 5)) + 5
        _, moved = _moved(ctx, r0, ctx.score(s2), lo, hi, tol=0.0)
        if moved.size:
            return False
    return True


def check(ctx: Context, ex: dict) -> dict | None:
    s, starts = make_documents(ex["seed"], ex["docs"], ctx.vocab, ctx.bos)
    d = ex["k"] % (len(starts) - 1)  # document N; N+1 starts at starts[d+1]
    nxt = starts[d + 1]
    end = starts[d + 2] if d + 2 < len(starts) else s.shape[0]
    # targets predicting tokens of document N+1: indices nxt .. end-2 (target i predicts s[i+1])
    lo, hi = nxt, end - 1
    b = ex["b"] % (ctx.vocab - 4) + 4
    r0 = ctx.score(s)
    if not _isolated(ctx, s, r0, nxt, lo, hi, b):
        return None  # context crosses documents by design: no per-document claim to hold it to
    last = nxt - 1
    s_last = s.copy()
    s_last[last] = b if b != s[last] else (b % (ctx.vocab - 5)) + 5
    r1 = ctx.score(s_last)
    diff, moved = _moved(ctx, r0, r1, lo, hi)
    if not moved.size:
        return None
    i = lo + int(moved[0])
    return {"stream_length": int(s.shape[0]), "position": int(i), "changed_index": int(last),
            "bos_index": int(nxt), "tokens": [int(s[last]), int(s_last[last])],
            "nll": [float(r0.nll[i]), float(r1.nll[i])], "nll_diff": float(r1.nll[i] - r0.nll[i])}


def applies(ctx: Context) -> str | None:
    # Per-document scoring is claimed when a mid-document change stays inside its document.
    for seed in range(3):
        s, starts = make_documents(seed, 3 * ctx.ranks, ctx.vocab, ctx.bos)
        if _isolated(ctx, s, ctx.score(s), starts[1], starts[1], starts[2] - 1, 4):
            return None
    return "the eval's context crosses BOS boundaries by design (no per-document scoring to hold it to)"


PROBE = Probe(
    name="document-isolation", condition="C1", family="boundary-leak",
    title="with per-document scoring, changing the end of document N leaves every NLL of document N+1 unchanged",
    strategy=lambda ctx: document_specs(ranks=ctx.ranks), check=check, applies=applies, cost=3,
)
