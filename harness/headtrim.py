"""Scored rows only: the last block and the head on the rows a sliding window scores.

With causal attention, a window after the first one scores only its last ``stride`` positions,
but a model's ``forward_logits`` runs everything on all ``seq_len`` rows. ``HeadTrim`` runs the
unchanged model code under a ``TorchFunctionMode`` that cuts the rows at one of two places:

- ``attention``: the last causal ``scaled_dot_product_attention`` of the forward gets only the
  queries of columns ``keep_from..`` (all keys and values, the causal mask shifted to match), and
  the ops after it follow those rows (``_LastAttention``): the last block's attention output and
  MLP, the final norm and the head run on a quarter of the rows;
- ``head``: the model's last projection to the vocabulary (``F.linear`` or a matmul whose output
  has the vocabulary as last dimension, on the window's hidden states ``(B, T, d)`` or their
  flattened ``(B*T, d)``) gets only those columns (``_VocabProjection``); what follows it in the
  model's code (soft-cap, float cast) is per-row.

It is an optimisation, never trusted blindly: the first use compares the trimmed logits of two
windows with the full forward's (as log-probabilities), ``attention`` first, then ``head``. Where
they differ by more than ``TOLERANCE`` nats, where the model has no such call, or where its code
cannot take the shorter rows (a reshape with fixed sizes raises; a result of another shape is
refused), the next option is tried, finally the full forward for every batch; ``note`` says which
and why.
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
_SDPA = F.scaled_dot_product_attention
_SHAPE_OPS = (torch.Tensor.reshape, torch.Tensor.view, torch.reshape, torch.Tensor.expand)


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
        self.attention_calls = 0  # causal self-attention calls over all T rows (see _LastAttention)
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
        if func is _SDPA and _causal_rows(args, kwargs) == self.seq_len:
            self.attention_calls += 1
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


def _causal_rows(args, kwargs) -> int | None:
    """Rows of a plain causal ``scaled_dot_product_attention`` call (no mask, as many queries as
    keys), else None."""
    q, k = (list(args[:2]) + [kwargs.get("query"), kwargs.get("key")][len(args[:2]):])[:2]
    causal = kwargs.get("is_causal", args[5] if len(args) > 5 else False)
    mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
    if not (isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor)) or not causal or mask is not None:
        return None
    return int(q.shape[-2]) if q.dim() >= 2 and q.shape[-2] == k.shape[-2] else None


def _tensors(args, kwargs):
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, torch.Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            yield from (t for t in a if isinstance(t, torch.Tensor))


class _LastAttention(TorchFunctionMode):
    """From causal attention call number ``trim_call`` on, only rows ``keep_from..`` of the window.

    That call gets only those queries (all keys and values, the causal mask shifted to match), and
    every later op that meets a tensor with those rows works on them: another operand with the
    window's ``seq_len`` rows at the same position (the residual stream, a skip connection) is
    cut to the same rows, and a reshape/view/expand to a shape naming ``seq_len`` gets the shorter
    length. The last block's attention output, MLP, residual adds, final norm and head then run on
    the scored rows only; its keys and values still see the whole window.
    """

    def __init__(self, seq_len: int, keep_from: int, trim_call: int):
        super().__init__()
        self.t, self.c, self.trim_call = seq_len, keep_from, trim_call
        self.calls = 0
        self.rows: dict[int, torch.Tensor] = {}  # id -> tensor holding only rows c..; kept alive
        self.trimmed = False

    def _mark(self, out) -> None:
        for o in (out if isinstance(out, (list, tuple)) else (out,)):
            if isinstance(o, torch.Tensor):
                self.rows[id(o)] = o

    def _cut(self, a, cut_shapes):
        """``a`` (not yet cut, an activation of the window's shape) narrowed to rows c.. along the
        dim where a cut tensor of as many dims has them and agrees on the others."""
        if not isinstance(a, torch.Tensor) or id(a) in self.rows or isinstance(a, torch.nn.Parameter):
            return a
        for shape in cut_shapes:
            if len(shape) != a.dim():
                continue
            for i in range(a.dim()):
                if a.shape[i] == self.t and shape[i] == self.t - self.c and all(
                        a.shape[j] == shape[j] for j in range(a.dim()) if j != i):
                    return a.narrow(i, self.c, self.t - self.c)
        return a

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is _SDPA and _causal_rows(args, kwargs) == self.t:
            n, self.calls = self.calls, self.calls + 1
            if n == self.trim_call:
                q, k, v = args[:3]
                extra = {key: kwargs[key] for key in ("dropout_p", "scale", "enable_gqa") if key in kwargs}
                mask = torch.ones(self.t - self.c, self.t, dtype=torch.bool, device=q.device).tril(self.c)
                out = func(q[..., self.c:, :], k, v, attn_mask=mask, is_causal=False, **extra)
                self._mark(out)
                self.trimmed = True
                return out
        cut_shapes = [tuple(a.shape) for a in _tensors(args, kwargs) if id(a) in self.rows]
        if not cut_shapes:
            return func(*args, **kwargs)
        if func in _SHAPE_OPS and len(args) > 1:
            dims = list(args[1]) if len(args) == 2 and isinstance(args[1], (list, tuple, torch.Size)) else list(args[1:])
            if self.t in dims and all(type(d) is int for d in dims):
                dims[dims.index(self.t)] = self.t - self.c
                args = (args[0], dims)
        if func in _LINEAR or func in _MATMUL:
            pass  # weights and biases keep their shapes
        else:
            args = tuple(type(a)(self._cut(t, cut_shapes) for t in a) if isinstance(a, (list, tuple))
                         else self._cut(a, cut_shapes) for a in args)
            kwargs = {key: self._cut(a, cut_shapes) for key, a in kwargs.items()}
        out = func(*args, **kwargs)
        self._mark(out)
        return out


class HeadTrim:
    """A logits function ``(B, T) ids -> (B, T, V)`` that can also give ``tail(x, keep_from)``,
    the logits of columns ``keep_from..T-1`` only, computed on those rows alone once verified:
    from the last causal attention on (``_LastAttention``) where the model's code takes it, else
    from the projection to the vocabulary on (``_VocabProjection``). See the module docstring."""

    WHAT = {"attention": "last attention layer's queries and everything after on scored rows only",
            "head": "vocabulary projection on scored rows only"}

    def __init__(self, logits_fn: Callable[[torch.Tensor], torch.Tensor]):
        self.fn = logits_fn
        self.state: str = "unverified"  # "unverified" | "attention" | "head" | "full"
        self.note: str | None = None
        self.trim_call = -1
        self.vocab = 0
        self.max_diff: float | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def _trimmed(self, x: torch.Tensor, keep_from: int, how: str) -> torch.Tensor:
        b, t = x.shape
        if how == "attention":
            mode = _LastAttention(t, keep_from, self.trim_call)
        else:
            mode = _VocabProjection(b, t, self.vocab, keep_from, self.trim_call)
        with mode:
            out = self.fn(x)
        if not mode.trimmed:
            raise _Untrimmable("the trimmed call was not reached")
        if out.dim() == 2 and out.shape[0] == b * (t - keep_from):
            out = out.reshape(b, t - keep_from, -1)
        if tuple(out.shape) != (b, t - keep_from, self.vocab):
            raise _Untrimmable(f"the model's output has shape {list(out.shape)} with trimmed rows, "
                               f"not {[b, t - keep_from, self.vocab]}")
        return out

    def _verify(self, x: torch.Tensor, keep_from: int) -> torch.Tensor | None:
        """Decide on the first batch: the trimmed logits of the batch when they agree with the
        full forward on its first windows (``state`` says which trimming), else None (and
        ``note`` says why)."""
        b, t = x.shape
        probe = x[: min(PROBE_WINDOWS, b)]
        mode = _VocabProjection(probe.shape[0], t)
        with mode:
            full = self.fn(probe)
        self.vocab = int(full.shape[-1])
        want = F.log_softmax(full[:, keep_from:].float(), dim=-1)
        tried = []
        # The last ones are the output head and the last block (a wider MLP may come before them).
        for how, calls in (("attention", mode.attention_calls), ("head", mode.outputs.count(self.vocab))):
            if calls == 0:
                tried.append(f"{how}: no " + ("causal attention call over the window" if how == "attention" else
                                               "projection of the window's hidden states to the vocabulary") + " found")
                continue
            self.trim_call = calls - 1
            try:
                out = self._trimmed(x, keep_from, how)
            except Exception as e:  # the model's code does not take the shorter rows
                msg = str(e).splitlines()[0][:120] if str(e) else ""
                tried.append(f"{how}: trimmed rows fail ({type(e).__name__}: {msg})")
                continue
            got = F.log_softmax(out[: probe.shape[0]].float(), dim=-1)
            diff = float((want - got).abs().max()) if want.numel() else 0.0
            if not diff <= TOLERANCE:
                tried.append(f"{how}: trimmed rows differ from the full forward by {diff:.3g} nats (tolerance {TOLERANCE:g})")
                continue
            self.state, self.max_diff = how, diff
            self.note = (f"{self.WHAT[how]} (verified on {probe.shape[0]} windows: max |delta log p| {diff:.3g} nats)"
                         + (f"; {'; '.join(tried)}" if tried else ""))
            return out
        self.state = "full"
        self.note = "full forward: " + "; ".join(tried)
        return None

    def tail(self, x: torch.Tensor, keep_from: int) -> torch.Tensor:
        """Logits ``(B, T - keep_from, V)`` of columns ``keep_from..`` of ``x``."""
        if keep_from <= 0:
            return self.fn(x)
        if self.state == "unverified":
            out = self._verify(x, keep_from)
            if out is not None:
                return out
        if self.state in ("attention", "head"):
            try:
                return self._trimmed(x, keep_from, self.state)
            except Exception as e:  # a batch of another shape the model's code cannot trim: full forward
                if "; full forward on" not in self.note:
                    self.note += f"; full forward on a batch of shape {list(x.shape)} ({type(e).__name__})"
        return self.fn(x)[:, keep_from:]
