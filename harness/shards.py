"""Validation/training shards in the challenge's binary format.

A shard is 256 little-endian int32 header words (magic 20240520, version 1, token count, then
zeros) followed by that many little-endian uint16 tokens. All val shards, concatenated in sorted
file-name order, form the validation stream.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from harness import AuditError

# Generated validation streams are shaped like the val shards: BOS-led documents, at most this long.
DOC_TOKENS = 128


def mark_documents(s: np.ndarray, bos: int, doc_tokens: int = DOC_TOKENS) -> np.ndarray:
    """Start a document with ``bos`` every ``doc_tokens`` tokens of ``s`` (in place, returned), as the
    val shards start each document; none starts at the last token (no document of one token)."""
    s[: max(s.shape[0] - 1, 0) : doc_tokens] = bos
    return s


SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_WORDS = 256
HEADER_BYTES = HEADER_WORDS * 4
# The challenge's shards hold at most 10^8 tokens; anything claiming more is corrupt or hostile.
MAX_SHARD_TOKENS = 1 << 31


class ShardError(AuditError):
    """A shard file that is not in the challenge format."""


def write_shard(path: str | os.PathLike, tokens) -> None:
    """Write ``tokens`` (values in [0, 65535]) as one challenge-format shard."""
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise ValueError("tokens must be one-dimensional")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 0xFFFF):
        raise ValueError("token ids must fit in uint16")
    header = np.zeros(HEADER_WORDS, dtype="<i4")
    header[0], header[1], header[2] = SHARD_MAGIC, SHARD_VERSION, arr.size
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(arr.astype("<u2").tobytes())


def read_shard(path: str | os.PathLike) -> np.ndarray:
    """Read one shard; returns its tokens as uint16. Raises ShardError with a one-line reason."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(HEADER_BYTES)
            if len(head) < HEADER_BYTES:
                raise ShardError(f"{p}: not a shard: {size} bytes is shorter than the {HEADER_BYTES}-byte header")
            header = np.frombuffer(head, dtype="<i4")
            if int(header[0]) != SHARD_MAGIC:
                raise ShardError(f"{p}: not a shard: magic {int(header[0])} != {SHARD_MAGIC}")
            if int(header[1]) != SHARD_VERSION:
                raise ShardError(f"{p}: unsupported shard version {int(header[1])} (expected {SHARD_VERSION})")
            n = int(header[2])
            if n < 0 or n > MAX_SHARD_TOKENS:
                raise ShardError(f"{p}: implausible token count {n} in header")
            expected = HEADER_BYTES + 2 * n
            if size != expected:
                raise ShardError(f"{p}: size {size} bytes does not match header ({n} tokens -> {expected} bytes)")
            data = f.read(2 * n)
    except ShardError:
        raise
    except IsADirectoryError:
        raise ShardError(f"{p}: is a directory, not a shard") from None
    except OSError as e:
        raise ShardError(f"{p}: cannot read shard: {e.strerror or e}") from None
    return np.frombuffer(data, dtype="<u2").astype(np.uint16)


def resolve_shards(pattern: str | os.PathLike) -> list[Path]:
    """Files matching a glob (or one file), sorted as the challenge sorts them."""
    pattern = str(pattern)
    files = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
    files = [f for f in files if Path(f).exists()] if files else []
    if not files:
        raise ShardError(f"no shard matches {pattern!r}")
    return [Path(f) for f in files]


def load_tokens(pattern: str | os.PathLike, max_tokens: int | None = None) -> np.ndarray:
    """Concatenate every shard matching ``pattern`` (sorted by name); optionally keep a prefix.

    ``max_tokens`` counts scored positions, so the result holds ``max_tokens + 1`` ids
    (inputs and targets), like the challenge's ``tokens[0:N+1]``.
    """
    parts = [read_shard(f) for f in resolve_shards(pattern)]
    tokens = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if max_tokens is not None:
        tokens = tokens[: max_tokens + 1]
    if tokens.size < 2:
        raise ShardError(f"{pattern}: fewer than 2 tokens, nothing to score")
    return tokens
