"""The forward whose result is trained: sums it makes are parts of the training loss, not scores.

A model's ``forward(x, y)`` may add auxiliary losses into a running sum (``mtp_loss_sum = mtp_loss_sum +
F.cross_entropy(...)``) and return it with the main loss. Called as ``loss = model(x, y)`` and followed
by ``loss.backward()``, that sum is the loss being trained, not a score of tokens before the step: it
must not make the step look score-first (``scored_first``), in this function or in its callers, which
see the callee's effects at one call site. The same holds when the trained loss is computed from the
forward's result through names (``logits = model.forward_logits(x)``, ``loss = F.cross_entropy(logits, y)``).

The loss a step was taken on, summed afterwards (``epoch_loss += loss.detach() * n``), is a log of
the training loss, computed before the step: not a score made after it.
"""

from __future__ import annotations

import libcst as cst

from .tree import walk
from .vocab import SCORE


class TrainingForward:
    """A mixin of ``Walker``: ``forward_of`` maps a name to the calls its value is computed from;
    ``trained`` holds the names ``backward()`` was called on."""

    def note_forward(self, name: str, value) -> None:
        """``name = value``: remember the calls the value is computed from, here (``loss = model(x, y)``) or
        through the names it reads (``logits = model.forward_logits(x)``, then ``nll = F.cross_entropy(logits,
        y)``, then ``loss = nll.mean()``)."""
        sites = {self.p.node_ids[id(n)] for n in walk(value) if isinstance(n, cst.Call) and id(n) in self.p.node_ids}
        for n in walk(value):
            if isinstance(n, cst.Name):
                sites |= self.forward_of.get(n.value, frozenset())
        if sites:
            self.forward_of[name] = frozenset(sites)
        else:
            self.forward_of.pop(name, None)

    def drop_training_sums(self, receiver) -> None:
        """``receiver.backward()``: the scores made inside the calls the value of ``receiver`` is computed from
        are sums of the trained loss; they leave this body's effects."""
        if isinstance(receiver, cst.Name):
            self.trained.add(receiver.value)
        sites = self.forward_of.get(receiver.value, frozenset()) if isinstance(receiver, cst.Name) else frozenset()
        if sites:
            self.effects = [(e, s) for e, s in self.effects if not (e.kind == SCORE and s in sites)]

    def of_trained_loss(self, node) -> bool:
        """``acc += loss.detach() * n`` with ``loss`` a name this body has called ``backward()`` on."""
        value = node.value if isinstance(node, cst.AugAssign) else getattr(node.value, "right", None)
        return value is not None and any(isinstance(n, cst.Name) and n.value in self.trained for n in walk(value))
