"""Which score is the reported one: the number the run ends with (the final ``val_bpb`` line).

A run may score validation data more than once: an early evaluation of the first windows to choose
among candidate weights (EMA decays), a diagnostic pass, the pre-quantization number, then the final
evaluation whose result the logs and ``submission.json`` report. A value whose provenance (``kind@node``)
reaches a score reaches *a* score (``sink:kind``); that score is not the reported one when, in the same
body, a later score of validation data that does not carry the value follows: the run goes on to
evaluate the stream without it and reports that later evaluation. Such a value is ``over:kind`` at its
node. Only a later score in code that runs supersedes. Tokens that reach no score (a diagnostic forward on
one window whose statistics go to a file) are not evaluated; losses kept per position are scores
already, whatever computes the number from them afterwards (a mixture's BPB, then logged).
"""

from __future__ import annotations
from .vocab import OVER, VAL, sink



def provenances(labels: frozenset) -> set[str]:
    """The labels that name where a value came from (``kind@node``)."""
    return {x for x in labels if "@" in x}


def superseded(scores: list) -> set[str]:
    """The provenance labels of scores (effects, in program order) that a later score of validation data
    without them follows."""
    out: set[str] = set()
    for k, eff in enumerate(scores):
        for lab in provenances(eff.labels) - out:
            if any(VAL in later.labels and lab not in later.labels and not later.disabled
                   for later in scores[k + 1:]):
                out.add(lab)
    return out


def reaches_reported(facts: dict, kind: str, gid: int, scores: bool = False) -> bool:
    """The value of the fact (``kind`` at ``gid``) may reach the reported score: it reaches a score (or is
    one: ``scores``, losses kept per position), and no later evaluation of the stream supersedes it."""
    return (scores or (sink(kind), gid) in facts) and (OVER + kind, gid) not in facts
