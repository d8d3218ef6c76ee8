"""Epochs over the same chunks: a score-first loop repeated is training before scoring.

``for epoch in range(n): for chunk in chunks: score(chunk); train(chunk)`` scores each chunk first
within one pass, but from the second pass on every chunk is scored by a model already trained on it
(#568: the score kept only from the last epoch). A loop repeats the same data when its variable is read
in log messages, comparisons (``if epoch == n - 1``) or a learning-rate schedule, never to pick data
(an index, a slice, the bounds of a range); a loop whose count is the constant 1 under the launch does
not repeat.
"""

from __future__ import annotations

import libcst as cst

from .tree import dotted, walk
from .vocab import SCORE

NUMERIC_CALLS = {"min", "max", "abs", "float", "int", "round", "print", "log0", "log", "info", "str", "bool"}


def _names(node) -> set[str]:
    return {n.value for n in walk(node) if isinstance(n, cst.Name)}


def _derived(loop: cst.For) -> set[str]:
    """The loop variable and the names the body computes from it (``lr = base * cos(pi * epoch / n)``)."""
    names = _names(loop.target)
    assigns = [n for n in walk(loop.body) if isinstance(n, cst.Assign)]
    for _ in range(3):
        for a in assigns:
            if _names(a.value) & names:
                names |= set().union(*(_names(t.target) for t in a.targets))
    return names


def _numeric(call: cst.Call) -> bool:
    """A call that computes a number or writes a log line (``math.cos``, ``max``, ``print``), not one that
    may fetch data with what it is given."""
    d = dotted(call.func)
    return d.startswith("math.") or d.rsplit(".", 1)[-1] in NUMERIC_CALLS


def _picks_data(node, names: set[str]) -> bool:
    """``names`` read in a subscript's index or slice, or passed to a call other than a numeric one (the
    bounds of a ``range``, a batch getter): choosing data."""
    for n in walk(node):
        if isinstance(n, cst.Subscript) and any(_names(e) & names for e in n.slice):
            return True
        if isinstance(n, cst.Call) and not _numeric(n) and any(_names(a.value) & names for a in n.args):
            return True
    return False


def repeats_same_data(loop) -> bool:
    """A ``for`` loop whose variable, and what the body computes from it, never choose data: every pass
    goes over the same chunks (its variable in log messages, comparisons, learning-rate schedules)."""
    return isinstance(loop, cst.For) and not _picks_data(loop.body, _derived(loop))


class Epochs:
    """A mixin of ``Walker``: scores that a repeated pass puts after a training step."""

    def runs_once(self, loop: cst.For) -> bool:
        """``for _ in range(n)`` with n the constant 1 (or less) under the launch."""
        it = loop.iter
        if isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and it.func.value == "range" and len(it.args) == 1:
            n = self.const(it.args[0].value)
            return isinstance(n, int) and n <= 1
        return False

    def rescored_after(self, site: int) -> list:
        """The scores that share with the training step at ``site`` a loop repeating the same data: each is
        made again, in the next pass, after that step (with their sites)."""
        out = []
        for e, s in self.effects:
            if e.kind == SCORE and any(self._repeating(g) for g in self.shared_loops(site, s)):
                out.append((e, s))
        return out

    def _repeating(self, gid: int) -> bool:
        loop = self.p.nodes[gid][1]
        return repeats_same_data(loop) and not self.runs_once(loop)
