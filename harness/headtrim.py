"""Scored rows only: the projection to the vocabulary on the rows a sliding window scores.

With causal attention, a window after the first one scores only its last ``stride`` positions,
but a model's ``forward_logits`` projects all ``seq_len`` hidden states to the vocabulary (and
applies its soft-cap, cast and so on to all of them). ``HeadTrim`` runs the unchanged model
code under a ``TorchFunctionMode`` that, at the model's last projection to the vocabulary in a
forward (``F.linear`` or a matmul whose output has the vocabulary as last dimension, applied to
the window's hidden states ``(B, T, d)`` or their flattened ``(B*T, d)``), keeps only the
columns from ``keep_from`` on. Everything after the projection in the model's code is per-row
(soft-cap, float cast) and so runs on the kept rows only.

It is an optimisation, never trusted blindly: the first use compares the trimmed logits of two
windows with the full forward's (as log-probabilities). Where they differ by more than
``TOLERANCE`` nats, where the model finds no such projection, or where its code cannot take the
shorter rows (a reshape with fixed sizes raises; a result of another shape is refused), every
batch runs the full forward and ``note`` says why.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

# Largest |log p(full) - log p(trimmed)| (nats) accepted on the verification rows: a few float32
# ulps of log-probabilities near -10; a wrong row or a shifted position differs by orders more.
TOLERANCE = 2e-6
PROBE_WINDOWS = 2

_LINEAR = (F.linear, torch._C._nn.linear)
_MATMUL = (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__)


class _Untrimmable(Exception):
    pass


class _VocabProjection(TorchFunctionMode):
    """Watches the projections of a window's hidden states, (B, T, d) or (B*T, d), in one forward.

    ``outputs`` lists their output widths in call order. With ``keep_from`` > 0, projection number
    ``trim_call`` among those of width ``vocab`` is fed only columns ``keep_from..`` of its input.
    """

    def __init__(self, batch: int, seq_len: int, vocab: int = 0, keep_from: int = 0, trim_call: int = -1):
        super().__init__()
        self.batch, self.seq_len, self.vocab = batch, seq_len, vocab
        self.keep_from, self.trim_call = keep_from, trim_call
        self.outputs: list[int] = []
        self.trimmed = False

    def _width(self, func, args, kwargs) -> int | None:
        """Output width when this call projects the window's hidden states, else None."""
        if len(args) < 1 or not isinstance(args[0], torch.Tensor):
            return None
        x = args[0]
        other = args[1] if len(args) > 1 else kwargs.get("weight" if func in _LINEAR else "other")
        if not isinstance(other, torch.Tensor) or other.dim() != 2:
            return None
        out_dim, in_dim = (other.shape[0], other.shape[1]) if func in _LINEAR else (other.shape[1], other.shape[0])
        if x.shape[-1] != in_dim:
            return None
        b, t = self.batch, self.seq_len
        if x.dim() == 3 and tuple(x.shape[:2]) == (b, t) or x.dim() == 2 and x.shape[0] == b * t:
            return int(out_dim)
        return None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _LINEAR or func in _MATMUL:
            width = self._width(func, args, kwargs)
            if width is not None:
                k = self.outputs.count(self.vocab) if width == self.vocab else -1
                self.outputs.append(width)
                if self.keep_from and k == self.trim_call:
                    b, t, c = self.batch, self.seq_len, self.keep_from
                    x = args[0]
                    kept = x[:, c:] if x.dim() == 3 else x.reshape(b, t, -1)[:, c:].reshape(b * (t - c), -1)
                    args = (kept,) + tuple(args[1:])
                    self.trimmed = True
        return func(*args, **kwargs)


class HeadTrim:
    """A logits function ``(B, T) ids -> (B, T, V)`` that can also give ``tail(x, keep_from)``,
    the logits of columns ``keep_from..T-1`` only, computed with the vocabulary projection on those
    rows alone once verified (see the module docstring)."""

    def __init__(self, logits_fn: Callable[[torch.Tensor], torch.Tensor]):
        self.fn = logits_fn
        self.state: str = "unverified"  # "unverified" | "trimmed" | "full"
        self.note: str | None = None
        self.trim_call = -1
        self.vocab = 0
        self.max_diff: float | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def _trimmed(self, x: torch.Tensor, keep_from: int, vocab: int) -> torch.Tensor:
        b, t = x.shape
        mode = _VocabProjection(b, t, vocab, keep_from, self.trim_call)
        with mode:
            out = self.fn(x)
        if not mode.trimmed:
            raise _Untrimmable("the projection to the vocabulary was not reached")
        if out.dim() == 2 and out.shape[0] == b * (t - keep_from):
            out = out.reshape(b, t - keep_from, -1)
        if tuple(out.shape) != (b, t - keep_from, vocab):
            raise _Untrimmable(f"the model's output has shape {list(out.shape)} with trimmed rows, "
                               f"not {[b, t - keep_from, vocab]}")
        return out

    def _verify(self, x: torch.Tensor, keep_from: int) -> torch.Tensor | None:
        """Decide on the first batch: the trimmed logits of the batch when they agree with the
        full forward on its first windows, else None (and ``note`` says why)."""
        b, t = x.shape
        probe = x[: min(PROBE_WINDOWS, b)]
        mode = _VocabProjection(probe.shape[0], t)
        with mode:
            full = self.fn(probe)
        vocab = int(full.shape[-1])
        if vocab not in mode.outputs:
            self.note = "full forward: no projection of the window's hidden states to the vocabulary found"
            return None
        # The last one is the output head (an MLP as wide as the vocabulary comes before it).
        self.trim_call, self.vocab = mode.outputs.count(vocab) - 1, vocab
        try:
            out = self._trimmed(x, keep_from, vocab)
        except Exception as e:  # the model's code does not take the shorter rows
            msg = str(e).splitlines()[0][:160] if str(e) else ""
            self.note = f"full forward: trimmed rows fail ({type(e).__name__}: {msg})"
            return None
        want = F.log_softmax(full[:, keep_from:].float(), dim=-1)
        got = F.log_softmax(out[: probe.shape[0]].float(), dim=-1)
        self.max_diff = float((want - got).abs().max()) if want.numel() else 0.0
        if not self.max_diff <= TOLERANCE:
            self.note = (f"full forward: trimmed rows differ from the full forward by {self.max_diff:.3g} nats "
                         f"(tolerance {TOLERANCE:g})")
            return None
        self.note = (f"vocabulary projection on scored rows only (verified on {probe.shape[0]} windows: "
                     f"max |delta log p| {self.max_diff:.3g} nats)")
        return out

    def tail(self, x: torch.Tensor, keep_from: int) -> torch.Tensor:
        """Logits ``(B, T - keep_from, V)`` of columns ``keep_from..`` of ``x``."""
        if keep_from <= 0:
            return self.fn(x)
        if self.state == "unverified":
            out = self._verify(x, keep_from)
            self.state = "full" if out is None else "trimmed"
            if out is not None:
                return out
        if self.state == "trimmed":
            try:
                return self._trimmed(x, keep_from, self.vocab)
            except Exception as e:  # a batch of another shape the model's code cannot trim: full forward
                if "; full forward on" not in self.note:
                    self.note += f"; full forward on a batch of shape {list(x.shape)} ({type(e).__name__})"
        return self.fn(x)[:, keep_from:]

