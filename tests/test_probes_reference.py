"""The probes on in-process Scorers: our reference sliding evaluator, and test doubles that break C1/C4.

Cost: a few seconds (a tiny causal model of our own, vocabulary 64, no sandbox: no submission code).
"""

from __future__ import annotations

import numpy as np
import torch

from checks.probes.reference import probe_scorer
from harness.evaluate import SlidingScorer
from harness.scorer import ScoreResult

V = 64


def causal_logits(x: torch.Tensor) -> torch.Tensor:
    """A fixed causal model: logits from the running mean of one-hot inputs (depends on the prefix only)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(V, V, generator=g)
    onehot = torch.nn.functional.one_hot(x.long(), V).float()
    mean = onehot.cumsum(1) / torch.arange(1, x.shape[1] + 1, dtype=torch.float32)[None, :, None]
    return (mean + 0.5 * onehot) @ w


def reference() -> SlidingScorer:
    return SlidingScorer(causal_logits, V, seq_len=32, stride=8)


class DoubleTail:
    """Re-scores the last 4 targets once more (the tail-window bug)."""

    vocab_size, bos_id = V, None

    def __init__(self, inner):
        self.inner = inner

    def score(self, tokens):
        r = self.inner.score(tokens)
        count = r.count.copy()
        count[-4:] += 1
        return ScoreResult(nll=r.nll, count=count, total_nll=r.total_nll + float(r.nll[-4:].sum()))


class PeekNext:
    """Lowers the NLL of target t when x_{t+2} equals x_{t+1} (reads one token of the future)."""

    vocab_size, bos_id = V, None

    def __init__(self, inner):
        self.inner = inner

    def score(self, tokens):
        r = self.inner.score(tokens)
        nll = r.nll.copy()
        same = np.zeros_like(nll, dtype=bool)
        same[:-1] = tokens[2:] == tokens[1:-1]
        same[:-1] |= tokens[2:] % 2 == 0
        nll[same] *= 0.5
        return ScoreResult(nll=nll, count=r.count, total_nll=float(nll.sum()))


class Slow:
    """The reference, 50 ms slower per scoring."""

    vocab_size, bos_id = V, None

    def __init__(self, inner):
        self.inner = inner

    def score(self, tokens):
        import time

        time.sleep(0.05)
        return self.inner.score(tokens)


def by_name(results):
    return {r["probe"]: r for r in results}


def test_reference_sliding_evaluator_passes():
    res = by_name(probe_scorer(reference(), seq_len=32, stride=8))
    for name in ("future-invariance", "normalization", "exactly-once", "determinism"):
        assert res[name]["status"] == "pass", res[name]
    assert res["bucket-collapse"]["status"] == "skipped"


def test_double_scoring_double_fails_exactly_once():
    res = by_name(probe_scorer(DoubleTail(reference()), seq_len=32, stride=8, only=["exactly-once"]))
    r = res["exactly-once"]
    assert r["status"] == "fail" and r["family"] == "double-scoring" and r["counterexample"]["count"] == 2


def test_future_reading_double_fails_future_invariance():
    res = by_name(probe_scorer(PeekNext(reference()), seq_len=32, stride=8, only=["future-invariance"]))
    r = res["future-invariance"]
    assert r["status"] == "fail" and r["counterexample"]["changed_index"] > r["counterexample"]["position"]


def test_a_search_the_time_budget_ends_says_so(monkeypatch):
    """A profile's seconds budget makes the example count depend on the machine: the result must say
    the clock ended it, and a search the clock did not end must carry no such key (byte-identical reports)."""
    import checks.probes.engine as engine

    monkeypatch.setitem(engine.PROFILES, "tiny", (40, 0.01))  # less than one scoring: the second is cut
    cut = by_name(probe_scorer(Slow(reference()), profile="tiny", seq_len=32, stride=8, only=["future-invariance"]))
    assert cut["future-invariance"]["data"].get("cut_by_time_budget") is True
    assert cut["future-invariance"]["data"]["examples"] == 1
    assert "tiny profile's 0.01 s budget" in cut["future-invariance"]["detail"]
    whole = by_name(probe_scorer(reference(), seq_len=32, stride=8, only=["future-invariance"]))
    assert "cut_by_time_budget" not in whole["future-invariance"]["data"]
    assert whole["future-invariance"]["data"]["examples"] > cut["future-invariance"]["data"]["examples"]
