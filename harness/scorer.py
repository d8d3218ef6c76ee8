"""The Scorer interface: per-position NLL of a token stream under a whole eval pipeline.

A pipeline (model + n-gram cache + TTT, as a submission runs it) is treated as a black box that
scores a stream ``tokens[0..n]``: target ``tokens[t+1]`` is predicted from ``tokens[..t]``.
Probes (checks/probes) and reproduction (checks/reproduce) both consume this interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from harness import AuditError


class ScorerError(AuditError):
    """The submission's eval cannot be driven (on this stream, or at all)."""


@dataclass
class ScoreResult:
    """Scores of one stream of n+1 tokens (n targets).

    ``nll[i]``: NLL in nats of target ``tokens[i+1]`` the first time it was scored (NaN if never);
    ``count[i]``: how many times target i was scored (1 for a compliant pipeline);
    ``total_nll``: the sum the pipeline itself accumulated (re-scorings included), in nats.
    """

    nll: np.ndarray  # float64, shape (n,)
    count: np.ndarray  # int64, shape (n,)
    total_nll: float

    @property
    def n(self) -> int:
        return int(self.nll.shape[0])


class Scorer(Protocol):
    vocab_size: int
    bos_id: int | None

    def score(self, tokens: np.ndarray) -> ScoreResult:
        """Score one stream (uint16/int64 ids, length >= 2) from a fresh pipeline state."""
        ...

    def score_many(self, streams: list[np.ndarray]) -> list[ScoreResult]:
        """Score several independent streams, each from a fresh state (batched where possible)."""
        ...
