"""The byte-shuffle wrapper of the later records (``BSHF`` + stride byte + planes)."""

from __future__ import annotations

import numpy as np

MAGIC = b"BSHF"


def unshuffle(data: bytes) -> tuple[bytes, bool]:
    """(original bytes, whether a shuffle header was removed). Byte ``i`` of plane ``k`` is byte
    ``i * stride + k`` of the original; planes are stored one after the other."""
    if len(data) < 5 or data[:4] != MAGIC:
        return data, False
    stride = data[4]
    if stride < 2:
        return data[5:], True
    payload = np.frombuffer(data, dtype=np.uint8, offset=5)
    n = payload.size
    out = np.empty(n, dtype=np.uint8)
    src = 0
    for k in range(stride):
        length = n // stride + (1 if k < n % stride else 0)
        out[k::stride][:length] = payload[src: src + length]
        src += length
    return out.tobytes(), True


def shuffle(data: bytes, stride: int = 2) -> bytes:
    """The inverse of ``unshuffle`` (used to build test artifacts)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    return MAGIC + bytes([stride]) + b"".join(arr[k::stride].tobytes() for k in range(stride))
