"""Bytes per target token, built exactly as the challenge's ``build_sentencepiece_luts``.

- ``base_bytes[piece]``: UTF-8 length of the piece with a leading "▁" removed; byte-fallback
  pieces (``<0xAB>``) count 1 byte; control, unknown and unused pieces count 0.
- ``has_leading_space[piece]``: the piece starts with "▁".
- ``is_boundary[piece]``: control/unknown/unused pieces (BOS, EOS, PAD, UNK) and ids beyond the
  tokenizer's vocabulary.

bytes(target) = base_bytes[target] + (has_leading_space[target] and not is_boundary[prev]).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from harness import AuditError


class TokenizerError(AuditError):
    """A tokenizer file that cannot be loaded."""


def load_sentencepiece(path: str | os.PathLike):
    """Load a sentencepiece model with a one-line error for missing or malformed files."""
    import sentencepiece as spm

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TokenizerError(f"{path}: tokenizer file not found")
    sp = spm.SentencePieceProcessor()
    try:
        ok = sp.Load(path)
    except Exception as e:  # sentencepiece raises OSError/RuntimeError with multi-line text
        raise TokenizerError(f"{path}: not a sentencepiece model ({str(e).splitlines()[0][:120]})") from None
    if not ok or sp.vocab_size() <= 0:
        raise TokenizerError(f"{path}: not a sentencepiece model")
    return sp


@dataclass(frozen=True)
class ByteLUT:
    """The three per-piece tables of the challenge (numpy, indexed by token id)."""

    base_bytes: np.ndarray  # int16
    has_leading_space: np.ndarray  # bool
    is_boundary: np.ndarray  # bool

    @classmethod
    def from_sentencepiece(cls, sp, vocab_size: int | None = None) -> "ByteLUT":
        sp_vocab = int(sp.vocab_size())
        size = max(sp_vocab, vocab_size or 0)
        base = np.zeros(size, dtype=np.int16)
        lead = np.zeros(size, dtype=np.bool_)
        boundary = np.ones(size, dtype=np.bool_)
        for i in range(sp_vocab):
            if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
                continue
            boundary[i] = False
            if sp.is_byte(i):
                base[i] = 1
                continue
            piece = sp.id_to_piece(i)
            if piece.startswith("\u2581"):
                lead[i] = True
                piece = piece[1:]
            base[i] = len(piece.encode("utf-8"))
        return cls(base, lead, boundary)

    @classmethod
    def from_file(cls, path: str | os.PathLike, vocab_size: int | None = None) -> "ByteLUT":
        return cls.from_sentencepiece(load_sentencepiece(path), vocab_size)

    def target_bytes(self, prev: np.ndarray, tgt: np.ndarray) -> np.ndarray:
        """Bytes of each target token given the token before it (int64 array, same shape)."""
        prev = np.asarray(prev, dtype=np.int64)
        tgt = np.asarray(tgt, dtype=np.int64)
        if tgt.size and (int(tgt.max()) >= self.base_bytes.size or int(prev.max()) >= self.base_bytes.size):
            raise AuditError(f"token id beyond the tokenizer's {self.base_bytes.size} pieces")
        extra = self.has_leading_space[tgt] & ~self.is_boundary[prev]
        return self.base_bytes[tgt].astype(np.int64) + extra.astype(np.int64)

    def stream_bytes(self, tokens: np.ndarray) -> np.ndarray:
        """Bytes of targets tokens[1:] of a stream whose inputs are tokens[:-1]."""
        tokens = np.asarray(tokens)
        return self.target_bytes(tokens[:-1], tokens[1:])


def bits_per_byte(nll_sum_nats: float, n_tokens: int, n_bytes: int) -> tuple[float, float]:
    """(val_loss in nats/token, val_bpb in bits/byte), computed as the challenge does.

    val_bpb = (nll_sum / n_tokens) / ln 2 * (n_tokens / n_bytes).
    """
    if n_tokens <= 0 or n_bytes <= 0:
        raise AuditError("cannot compute BPB over zero tokens or zero bytes")
    val_loss = nll_sum_nats / n_tokens
    return float(val_loss), float(val_loss / math.log(2.0) * (n_tokens / n_bytes))


def bpb_from_nll(nll: np.ndarray, prev: np.ndarray, tgt: np.ndarray, lut: ByteLUT) -> tuple[float, float]:
    """val_loss and val_bpb from per-token NLL (nats) of the targets ``tgt`` (float64 sums)."""
    nll = np.asarray(nll, dtype=np.float64)
    nbytes = int(lut.target_bytes(prev, tgt).sum())
    return bits_per_byte(float(nll.sum()), int(nll.size), nbytes)
