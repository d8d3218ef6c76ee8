"""The probes on any Scorer (harness/scorer.py): our reference pipelines, or a test double.

The submission adapter (harness/submission_scorer.py) is what ``golf-audit probe`` runs; this
adapter lets the same properties check a Scorer built in-process from our own code, e.g. the
reference evaluator ``harness.evaluate.SlidingScorer`` with the caches and TTT of
harness/caches.py and harness/ttt.py, so the reference is held to the conditions it audits.
Logits are not observed here, so the score-before-update probe (which compares them) is skipped;
the other probes need only per-position NLL and counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from checks.probes.base import Context
from harness.scorer import Scorer
from harness.submission_scorer import _luts
from harness.tables import hashed_tables, sized_tables


@dataclass
class _Info:
    entry: str
    seq_len: int | None
    stride: int | None
    stateful: bool = False
    hashed_tables: dict = field(default_factory=dict)
    build: dict = field(default_factory=dict)


class ScorerPipeline:
    """What the probes read from a pipeline (``score``, ``vocab_size``, ``info``, ``luts``, ``hparams``).

    ``config``: an object whose attributes size hashed tables (``buckets``...), set by the
    bucket-collapse probe; the scorer must read them at scoring time.
    """

    def __init__(self, scorer: Scorer, *, seq_len: int | None = None, stride: int | None = None,
                 config=None, name: str = "reference", seed: int = 0):
        self.scorer = scorer
        self.vocab_size = int(scorer.vocab_size)
        self.bos_id = getattr(scorer, "bos_id", None)
        self.hparams = config if config is not None else SimpleNamespace()
        self.luts = _luts(self.vocab_size, seed)
        self.info = _Info(entry=name, seq_len=seq_len, stride=stride, hashed_tables=hashed_tables(self.hparams))

    def resized(self, sizes: dict[str, int]):
        return sized_tables(self, sizes)

    def score(self, tokens: np.ndarray, watch: tuple[int, ...] = ()):
        r = self.scorer.score(np.asarray(tokens, dtype=np.int64))
        r.watched = []  # type: ignore[attr-defined]
        return r


def probe_scorer(scorer: Scorer, *, profile: str = "ci", seed: int = 0, only: list[str] | None = None, **kw) -> list[dict]:
    """Run the probes on an in-process Scorer; result dicts as the sandboxed run returns them."""
    from checks.probes.engine import run_context

    ctx = Context(pipe=ScorerPipeline(scorer, seed=seed, **kw), tol=1e-5, norm_tol=1e-3)
    return run_context(ctx, {"profile": profile, "seed": seed, "only": only})
