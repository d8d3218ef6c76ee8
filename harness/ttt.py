"""Score-first chunked test-time training (TTT), the legal way to adapt on validation tokens.

The stream is cut into chunks of ``chunk_tokens`` targets. Each sliding window belongs to the chunk
of its first scored target. For every chunk in order: its windows are scored under
``inference_mode`` with the weights as they are; only then does the model train on the chunk's
tokens (``epochs`` passes of next-token loss, batches of ``batch_seqs`` sequences of ``seq_len``,
SGD with momentum). The last chunk is never trained on. With ``score_first=False`` the order is
reversed (train on the chunk, then score it): the ``update-before-score`` family, kept only to
reproduce such claims.

Runs where the model lives (the sandboxed child for submissions). ``loss_fn(x, y)`` is the
model's own training loss (``model(x, y)`` in the challenge's scripts); the result carries the
per-position NLL in nats as every Scorer does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from harness.evaluate import Accumulator, LogitsFn, SlidingResult, sliding_windows


@dataclass
class ChunkedTTT:
    chunk_tokens: int = 8192
    lr: float = 3e-3
    epochs: int = 1
    batch_seqs: int = 8
    momentum: float = 0.9
    score_first: bool = True

    @property
    def legal(self) -> bool:
        return self.score_first

    def chunk_windows(self, windows: np.ndarray) -> list[np.ndarray]:
        """Windows grouped by the chunk holding their first scored target."""
        n_chunks = int(-(-int(windows[-1, 0] + windows[-1, 2]) // self.chunk_tokens))
        owner = (windows[:, 0] + windows[:, 1]) // self.chunk_tokens
        return [windows[owner == c] for c in range(n_chunks)]

    def train_span(self, model: torch.nn.Module, loss_fn: Callable, optimizer, span: torch.Tensor,
                   seq_len: int, device) -> None:
        n = (span.numel() - 1) // seq_len
        if n == 0:
            return
        x_all = span[: n * seq_len].reshape(n, seq_len).to(device)
        y_all = span[1: n * seq_len + 1].reshape(n, seq_len).to(device)
        model.train()
        for _ in range(self.epochs):
            for b in range(0, n, self.batch_seqs):
                loss = loss_fn(x_all[b: b + self.batch_seqs], y_all[b: b + self.batch_seqs])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        model.eval()

    def run(self, model: torch.nn.Module, logits_fn: LogitsFn, loss_fn: Callable, tokens: np.ndarray,
            seq_len: int, stride: int = 64, *, batch_windows: int = 32, device: str = "cpu",
            progress: Callable[[int, int], None] | None = None) -> SlidingResult:
        """Adapt ``model`` in place while scoring ``tokens``; per-position NLL (nats)."""
        stream = torch.as_tensor(np.asarray(tokens, dtype=np.int64))
        total = int(stream.numel()) - 1
        windows = sliding_windows(total, seq_len, stride)
        chunks = self.chunk_windows(windows)
        acc = Accumulator(stream, seq_len)
        optimizer = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum)
        model.eval()
        for c, wins in enumerate(chunks):
            span = stream[c * self.chunk_tokens: min((c + 1) * self.chunk_tokens, total) + 1]
            last = c == len(chunks) - 1
            if not self.score_first:
                self.train_span(model, loss_fn, optimizer, span, seq_len, device)
            acc.score(logits_fn, wins, batch_windows=batch_windows, device=device)
            if self.score_first and not last:
                self.train_span(model, loss_fn, optimizer, span, seq_len, device)
            if progress is not None:
                progress(c + 1, len(chunks))
        return acc.result(windows)
