"""What a probe is, and the context every probe reads (runs in the sandboxed child).

A probe is a property over generated examples (dicts of small ints, see streams.py): ``check``
returns None when the property holds on the example and a dict of facts (the counterexample)
when it does not. The engine searches with hypothesis, shrinks the first failure to a minimal
one, and turns it into a ProbeResult with a replay spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from checks.probes.streams import FIRST_ID, make_stream
from harness.shards import DOC_TOKENS

# The BOS id of the challenge's sentencepiece tokenizers, and the shortest generated document.
SENTENCEPIECE_BOS = 1
MIN_DOC_TOKENS = 24  # longer than a phrase and the gap after it (streams.py): no two documents alike

# Tokens of the challenge's validation split (FineWeb, sp1024 tokenizer), for when the logs do not say.
OFFICIAL_VAL_TOKENS = 62_021_632


class NotApplicable(Exception):
    """The probe does not apply to this pipeline (the message says why)."""


@dataclass
class Probe:
    name: str
    condition: str
    family: str
    title: str  # the property, in one sentence
    strategy: Callable[["Context"], Any]
    check: Callable[["Context", dict], dict | None]
    applies: Callable[["Context"], str | None] = lambda ctx: None  # a reason to skip, or None
    cost: int = 1  # relative cost of one example (sweeps cost more); scales the example budget
    family_of: Callable[["Context", dict], str] | None = None  # diagnosis from the counterexample


@dataclass
class Context:
    pipe: Any  # harness.submission_scorer.SubmissionPipeline
    tol: float  # NLL tolerance in nats for "unchanged"
    norm_tol: float  # tolerance on sum_v p(v) = 1
    val_tokens: int | None = None  # length of the real validation stream, for effect sizes
    claim: dict = field(default_factory=dict)  # claimed val_bpb/val_loss and printed precision
    notes: dict = field(default_factory=dict)  # facts a probe found (reported in its data)

    @property
    def vocab(self) -> int:
        return self.pipe.vocab_size

    @property
    def bos(self) -> int:
        """The id that starts a document: the submission's own, else the challenge tokenizers' (1)."""
        return self.pipe.bos_id if self.pipe.bos_id is not None else SENTENCEPIECE_BOS

    def stream(self, seed: int, n: int) -> np.ndarray:
        """The generated stream of ``n`` tokens (streams.make_stream) cut into BOS-led documents as the
        val shards are: two to a rank's share where that leaves them MIN_DOC_TOKENS or more, so that a
        per-document eval hands every rank of the launch documents, as it does on the real stream."""
        share = n // (2 * self.ranks)
        return make_stream(seed, n, self.vocab, self.bos, max(MIN_DOC_TOKENS, min(DOC_TOKENS, share)))

    @property
    def ranks(self) -> int:
        """Ranks the eval runs as on each stream (the launch's world size); the streams a probe
        draws are this many times longer, so that each rank's share is as long as one stream."""
        return max(1, int(getattr(self.pipe, "world_size", 1)))

    def loaded_tables(self, stream_len: int) -> dict[str, int]:
        """Hashed-table sizes at which each rank's share of a stream of ``stream_len`` tokens fills the
        tables as each rank of the official launch fills them with its share of the validation
        stream (harness loaded())."""
        from harness.tables import loaded

        official_ranks = getattr(self.pipe, "launch_world_size", 1)
        return loaded(self.pipe.info.hashed_tables, stream_len / self.ranks,
                      (self.val_tokens or OFFICIAL_VAL_TOKENS) / official_ranks)

    def score(self, s: np.ndarray, watch: tuple[int, ...] = ()):
        return self.pipe.score(s, watch)

    def sweep(self, prefix: np.ndarray, t: int, suffix: np.ndarray | None = None, values=None):
        """NLL of target t for every value v of x_{t+1} (all of the vocabulary by default).

        ``prefix`` holds tokens 0..t; the stream is cut right after the probed token unless a
        ``suffix`` is given. Returns (values, nll per value, the results).
        """
        values = np.arange(self.vocab) if values is None else np.asarray(values)
        results = []
        for v in values:
            parts = [prefix[: t + 1], [v]] + ([suffix] if suffix is not None else [])
            if suffix is None and v == self.bos:
                parts.append([FIRST_ID])  # no document of one token at the end (harness.shards.mark_documents)
            results.append(self.score(np.concatenate(parts).astype(np.int64), watch=(t,)))
        return values, np.array([r.nll[t] for r in results]), results


def model_probs(result, t: int) -> np.ndarray | None:
    """Softmax of the first logits row the model produced for target t (float64), if it was seen."""
    rows = [row for pos, row in getattr(result, "watched", []) if pos == t]
    if not rows:
        return None
    z = rows[0].astype(np.float64)
    z = z - z.max()
    p = np.exp(z)
    return p / p.sum()
