"""Our reference sliding-window evaluator (the challenge's ``eval_val_sliding``), vectorized.

Windows are ``seq_len`` tokens long and start every ``stride`` tokens. The first window scores all
of its targets; every later window scores only the targets beyond what the previous one covered
(its last ``stride``, fewer for the final partial window), so every target is scored exactly once
and each is predicted from up to ``seq_len`` tokens of context. Target ``i`` is ``tokens[i+1]``,
predicted from ``tokens[..i]``.

Everything is in nats until ``bits_per_byte`` turns the float64 sums into val_loss (nats/token)
and val_bpb (bits/byte) exactly as the challenge does. Batches of windows are built by index
arithmetic and their scored targets scattered into per-position arrays in one step, so no Python
loop runs per window. Under ``torch.distributed`` (torchrun, any backend) the windows are split
into contiguous shares per rank and the float64 per-position arrays are all-reduced: every rank
ends with the same ``ScoreResult`` as one process would.

This module runs in the auditing process on our own models and, for submissions, inside the
sandboxed child (harness/drivers.py) on the submission's model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from harness.headtrim import HeadTrim
from harness.scorer import ScoreResult
from harness.tokenbytes import ByteLUT, bits_per_byte

LogitsFn = Callable[[torch.Tensor], torch.Tensor]  # input ids (B, T) int64 -> logits (B, T, V)


def sliding_windows(total_targets: int, seq_len: int, stride: int) -> np.ndarray:
    """Windows as rows ``(start, first scored offset, length)`` (int64, shape (W, 3)).

    Window w covers targets ``start .. start+length-1`` and scores ``start+offset ..`` of them.
    """
    if total_targets < 1 or seq_len < 1 or not 1 <= stride <= seq_len:
        raise ValueError(f"bad sliding-window geometry: {total_targets} targets, seq_len {seq_len}, stride {stride}")
    # The last window is the first whose end reaches the stream's end.
    n_windows = 1 + max(0, -(-(total_targets - seq_len) // stride))
    starts = np.arange(n_windows, dtype=np.int64) * stride
    lengths = np.minimum(starts + seq_len, total_targets) - starts
    offsets = np.where(starts == 0, 0, seq_len - stride)
    return np.stack([starts, offsets, lengths], axis=1)


def rank_share(n_items: int, rank: int, world_size: int) -> slice:
    """The contiguous share of ``n_items`` that ``rank`` evaluates (the challenge's split)."""
    return slice((n_items * rank) // world_size, (n_items * (rank + 1)) // world_size)


def _dist_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass
class SlidingResult:
    """A scored stream plus the extra per-position quantities a pipeline asked for."""

    score: ScoreResult
    extra_logp: np.ndarray | None = None  # float64 (n,): log p(extra_ids[i]) at target i, nats
    windows: np.ndarray | None = None  # (W, 3) rows of sliding_windows
    segment: np.ndarray | None = None  # int64 (n,): window index that scored target i
    head: str | None = None  # how the scored rows' logits were computed (harness/headtrim.py)


def window_segments(windows: np.ndarray, n: int) -> np.ndarray:
    """Index of the window that scores each target (the order a cache sees them in)."""
    seg = np.full(n, -1, dtype=np.int64)
    for w, (ws, s, wl) in enumerate(windows.tolist()):
        seg[ws + s: ws + wl] = w
    return seg



class Accumulator:
    """Per-position float64 sums that batches of windows are scored into (see evaluate_sliding)."""

    def __init__(self, stream: torch.Tensor, seq_len: int, extra_ids: np.ndarray | None = None, *,
                 head_trim: bool = True):
        n = int(stream.numel()) - 1
        self.seq_len = seq_len
        self.head_trim, self.head = head_trim, None
        self.nll = torch.zeros(n, dtype=torch.float64)
        self.count = torch.zeros(n, dtype=torch.float64)
        self.extra = torch.zeros(n, dtype=torch.float64) if extra_ids is not None else None
        self.extra_t = torch.as_tensor(np.asarray(extra_ids, dtype=np.int64)) if extra_ids is not None else None
        self.cols = torch.arange(seq_len)
        self.padded = torch.cat([stream, torch.zeros(seq_len, dtype=torch.int64)])

    def score(self, logits_fn: LogitsFn, windows: np.ndarray, *, batch_windows: int = 32,
              device: str | torch.device = "cpu", progress: Callable[[int, int], None] | None = None) -> None:
        """Score the targets ``windows`` (rows of sliding_windows) score, in batches.

        With ``head_trim``, a batch whose windows all start scoring at column c > 0 gets logits
        for columns c.. only: the model's vocabulary projection runs on those rows alone once
        verified (harness/headtrim.py). The stream's first window, which scores all its columns,
        then gets a batch of its own so that every other batch can be trimmed.
        """
        cols, padded = self.cols, self.padded
        device = torch.device(device)
        if self.head_trim and (self.head is None or logits_fn not in (self.head, self.head.fn)):
            self.head = logits_fn if isinstance(logits_fn, HeadTrim) else HeadTrim(logits_fn)
        first = 1 if self.head is not None and len(windows) > 1 and windows[0][1] == 0 < windows[1][1] else 0
        bounds = ([0] if first else []) + list(range(first, len(windows), batch_windows)) + [len(windows)]
        with torch.inference_mode():
            for b0, b1 in zip(bounds[:-1], bounds[1:]):
                batch = torch.as_tensor(windows[b0: b1])
                starts, offs, lens = batch[:, 0], batch[:, 1], batch[:, 2]
                idx = starts[:, None] + cols[None, :]  # target index of every column
                valid = cols[None, :] < lens[:, None]
                x = torch.where(valid, padded[idx], 0)
                y = torch.where(valid, padded[idx + 1], 0)
                scored = valid & (cols[None, :] >= offs[:, None])
                c = int(offs.min()) if self.head is not None else 0
                logits = (self.head.tail(x.to(device), c) if c > 0 else logits_fn(x.to(device))).float()
                # Only the scored rows get a softmax: the rest of each window is context.
                lp = F.log_softmax(logits[scored[:, c:].to(device)], dim=-1)
                tgt_idx = idx[scored]
                tgt_nll = -lp.gather(-1, y[scored].to(device)[:, None]).squeeze(-1)
                self.nll.index_add_(0, tgt_idx, tgt_nll.double().cpu())
                self.count.index_add_(0, tgt_idx, torch.ones(tgt_idx.numel(), dtype=torch.float64))
                if self.extra is not None:
                    e = lp.gather(-1, self.extra_t[tgt_idx].clamp_min(0).to(device)[:, None]).squeeze(-1)
                    self.extra.index_add_(0, tgt_idx, e.double().cpu())
                if progress is not None:
                    progress(b1, len(windows))

    def result(self, windows: np.ndarray) -> "SlidingResult":
        cnt = self.count.numpy().astype(np.int64)
        nll_np = self.nll.numpy().copy()
        nll_np[cnt == 0] = np.nan
        score = ScoreResult(nll=nll_np, count=cnt, total_nll=float(self.nll.sum()))
        return SlidingResult(score=score, extra_logp=None if self.extra is None else self.extra.numpy().copy(),
                             windows=windows, segment=window_segments(windows, cnt.shape[0]),
                             head=None if self.head is None else self.head.note)


def evaluate_sliding(
    logits_fn: LogitsFn,
    tokens: np.ndarray | torch.Tensor,
    seq_len: int,
    stride: int = 64,
    *,
    batch_windows: int = 32,
    device: str | torch.device = "cpu",
    extra_ids: np.ndarray | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    head_trim: bool = True,
) -> SlidingResult:
    """Score ``tokens`` (n+1 ids, n targets) with sliding windows; per-position NLL in nats.

    ``extra_ids`` (n,) asks for ``log p(extra_ids[i])`` at each target i as well (a cache's hint
    token, for example). ``rank``/``world_size`` default to torch.distributed's when initialized;
    the result is all-reduced so every rank returns the full arrays. ``head_trim``: compute the
    vocabulary projection on scored rows only where verified equal (see Accumulator.score).
    """
    if rank is None or world_size is None:
        rank, world_size = _dist_world()
    device = torch.device(device)
    stream = torch.as_tensor(np.asarray(tokens, dtype=np.int64)) if not isinstance(tokens, torch.Tensor) else tokens.to(torch.int64)
    stream = stream.cpu()
    n = int(stream.numel()) - 1
    windows = sliding_windows(n, seq_len, stride)
    mine = windows[rank_share(len(windows), rank, world_size)]
    acc = Accumulator(stream, seq_len, extra_ids, head_trim=head_trim)
    acc.score(logits_fn, mine, batch_windows=batch_windows, device=device, progress=progress)
    nll, count, extra = acc.nll, acc.count, acc.extra
    if world_size > 1 and _dist_world()[1] > 1:
        import torch.distributed as dist

        for t in (nll, count) + ((extra,) if extra is not None else ()):
            red = t.to(device) if dist.get_backend() == "nccl" else t
            dist.all_reduce(red, op=dist.ReduceOp.SUM)
            t.copy_(red.cpu())
    return acc.result(windows)


def score_bpb(score: ScoreResult, tokens: np.ndarray, lut: ByteLUT) -> tuple[float, float]:
    """(val_loss nats/token, val_bpb bits/byte) of a scored stream, the challenge's arithmetic.

    Targets scored k times count k times in the token and byte denominators (as a pipeline that
    double-scores accumulates them); unscored targets count zero times.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    per_target = lut.stream_bytes(tokens).astype(np.int64)
    n_tokens = int(score.count.sum())
    n_bytes = int((per_target * score.count).sum())
    return bits_per_byte(score.total_nll, n_tokens, n_bytes)


class SlidingScorer:
    """The Scorer interface (harness/scorer.py) for a model alone, scored with sliding windows."""

    def __init__(self, logits_fn: LogitsFn, vocab_size: int, seq_len: int, stride: int = 64, *,
                 bos_id: int | None = None, batch_windows: int = 32, device: str = "cpu"):
        self.logits_fn, self.vocab_size, self.bos_id = logits_fn, vocab_size, bos_id
        self.seq_len, self.stride, self.batch_windows, self.device = seq_len, stride, batch_windows, device

    def evaluate(self, tokens: np.ndarray, extra_ids: np.ndarray | None = None) -> SlidingResult:
        return evaluate_sliding(self.logits_fn, tokens, self.seq_len, min(self.stride, self.seq_len),
                                batch_windows=self.batch_windows, device=self.device, extra_ids=extra_ids)

    def score(self, tokens: np.ndarray) -> ScoreResult:
        return self.evaluate(tokens).score

    def score_many(self, streams: list[np.ndarray]) -> list[ScoreResult]:
        return [self.score(s) for s in streams]
