"""C4 exactly once: every position of the stream is scored exactly once.

Catches tail windows that re-score positions and windows that skip some. On failure the probe
also measures the effect at the real validation length: the submission's own eval is run at its
official sequence length and stride on a stream with the same tail arithmetic as the real one
(same length modulo lcm(seq_len, stride)); the extra scorings E found there, over the N real
tokens, bound the shift of the printed BPB by E / (N + E) * val_bpb (the re-scored tokens' NLL
lies between 0 and twice the mean). N is the log's count, else the challenge's 62,021,632. A bound
of at most 1e-4 BPB (what other hardware and kernels explain) is a warning, above it an error; with
no claimed BPB to bound it stays an error.
"""

from __future__ import annotations

import math

import numpy as np

from checks.probes.base import OFFICIAL_VAL_TOKENS, Context, Probe
from checks.probes.streams import make_stream, stream_specs


# A BPB shift this small is what other hardware and kernels explain: re-scoring a tail that moves
# the score by less is a warning, not a violation (merged records carry the shared tail code).
HARDWARE_NOISE_BPB = 1e-4


def check(ctx: Context, ex: dict) -> dict | None:
    s = ctx.stream(ex["seed"], ex["n"])
    r = ctx.score(s)
    scored = np.nonzero(r.count > 0)[0]
    if not scored.size:
        return None  # nothing captured: the eval could not score this stream
    # A tail shorter than one window left unscored is the loader's truncation of val to whole
    # sequences (the baseline's), not a skip; positions skipped before the last scored one are.
    tail_ok = r.count.shape[0] - 1 - scored[-1] < (ctx.pipe.info.seq_len or 0)
    counted = r.count[: scored[-1] + 1] if tail_ok else r.count
    bad = np.nonzero(counted != 1)[0]
    if not bad.size:
        return None
    i = int(bad[0])
    twice = np.nonzero(r.count > 1)[0]
    return {"stream_length": int(s.shape[0]), "position": i, "count": int(r.count[i]),
            "extra_scorings": int(np.clip(r.count - 1, 0, None).sum()), "never_scored": int((r.count == 0).sum()),
            "first_rescored": int(twice[0]) if twice.size else None,
            "nll_diff": float(r.total_nll - np.nansum(r.nll))}


def effect_at_val_length(ctx: Context, official) -> dict | None:
    """Extra scorings of the eval at its official seq_len/stride for the real val length, and the BPB bound."""
    n_val = ctx.val_tokens or OFFICIAL_VAL_TOKENS
    seq, stride = official.info.seq_len, official.info.stride
    if not seq or not stride:
        return None
    period = seq * stride // math.gcd(seq, stride)
    length = 3 * seq + (n_val - 3 * seq) % period if n_val > 3 * seq else n_val
    s = make_stream(7, length + 1, official.vocab_size, ctx.bos)
    r = official.score(s)
    extra = int(np.clip(r.count - 1, 0, None).sum())
    skipped = int((r.count == 0).sum())
    out = {"val_tokens": n_val, "seq_len": seq, "stride": stride, "stream_length": length + 1,
           "extra_scorings": extra, "never_scored": skipped}
    bpb = ctx.claim.get("val_bpb")
    if bpb:
        bound = (extra + skipped) / (n_val + extra) * float(bpb)
        out.update(bpb_effect_bound=bound, printed_precision=ctx.claim.get("precision"),
                   below_precision=bool(ctx.claim.get("precision") and bound < ctx.claim["precision"] / 2),
                   within_hardware_noise=bound <= HARDWARE_NOISE_BPB)
    return out


PROBE = Probe(
    name="exactly-once", condition="C4", family="double-scoring",
    title="every position of the stream is scored exactly once",
    strategy=lambda ctx: stream_specs(min_len=8, max_len=300 * ctx.ranks), check=check,
)
