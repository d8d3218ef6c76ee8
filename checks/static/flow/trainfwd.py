"""The forward whose result is trained: sums it makes are parts of the training loss, not scores.

A model's ``forward(x, y)`` may add auxiliary losses into a running sum (``mtp_loss_sum = mtp_loss_sum +
F.cross_entropy(...)``) and return it with the main loss. Called as ``loss = model(x, y)`` and followed
by ``loss.backward()``, that sum is the loss being trained, not a score of tokens before the step: it
must not make the step look score-first (``scored_first``), in this function or in its callers, which
see the callee's effects at one call site.

The loss a step was taken on, summed afterwards (``epoch_loss += loss.detach() * n``), is a log of
the training loss, computed before the step: not a score made after it.
"""

from __future__ import annotations

import libcst as cst

from .tree import walk


class TrainingForward:
    """A mixin of ``Walker``: ``forward_of`` maps a name to the call whose result it holds as is;
    ``trained`` holds the names ``backward()`` was called on."""

    def note_forward(self, name: str, value) -> None:
        """``name = value``: remember the call when the value is one (``loss = model(x, y)``)."""
        if isinstance(value, cst.Call):
            self.forward_of[name] = self.gid(value)
        else:
            self.forward_of.pop(name, None)

    def drop_training_sums(self, receiver) -> None:
        """``receiver.backward()``: the scores made inside the call whose result ``receiver`` holds are
        sums of the trained loss; they leave this body's effects."""
        if isinstance(receiver, cst.Name):
            self.trained.add(receiver.value)
        site = self.forward_of.get(receiver.value) if isinstance(receiver, cst.Name) else None
        if site is not None:
            self.effects = [(e, s) for e, s in self.effects if not (e.kind == "score" and s == site)]

    def of_trained_loss(self, node) -> bool:
        """``acc += loss.detach() * n`` with ``loss`` a name this body has called ``backward()`` on."""
        value = node.value if isinstance(node, cst.AugAssign) else getattr(node.value, "right", None)
        return value is not None and any(isinstance(n, cst.Name) and n.value in self.trained for n in walk(value))
