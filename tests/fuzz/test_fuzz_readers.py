"""Fuzzing the readers that face crafted files: shards, compressed streams, text, the sandbox's
result channel. Every input gives a value or a one-line AuditError/ShardError, nothing else.

CI runs the ``ci`` profile (a few dozen examples each); ``HYPOTHESIS_PROFILE=fuzz`` runs 10,000.
"""

from __future__ import annotations

import base64
import io
import lzma
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from harness import AuditError
from harness.safeio import CODECS, decompress_auto, decompress_bounded, read_text_bounded
from harness.sandbox import decode, parse_frame
from harness.shards import ShardError, read_shard
from tests.fuzz.strategies import damaged
from tests.hostile import shard_bytes

SCRATCH = Path(tempfile.mkdtemp(prefix="golf-audit-fuzz-"))
CAP = 1 << 20
VALID_SHARD = shard_bytes(np.arange(300) % 1024)


def _one_line(e: Exception, prefix: str = "") -> None:
    msg = str(e)
    assert msg and "\n" not in msg and msg.startswith(prefix), msg


def _write(name: str, data: bytes) -> Path:
    p = SCRATCH / name
    p.write_bytes(data)
    return p


@given(damaged(VALID_SHARD))
def test_shard_reader(data):
    p = _write("fuzz_val_000000.bin", data)
    try:
        tokens = read_shard(p)
    except ShardError as e:
        _one_line(e, str(p))
        return
    header = np.frombuffer(data[:1024], dtype="<i4")
    assert tokens.dtype == np.uint16 and tokens.size == int(header[2]) == (len(data) - 1024) // 2


def _compressors():
    import brotli

    return {"zlib": zlib.compress, "zstd": zstandard.ZstdCompressor().compress, "lzma": lzma.compress,
            "brotli": brotli.compress}


PAYLOAD = b"".join(np.random.default_rng(0).integers(0, 40, 3000, dtype=np.uint8).tobytes() for _ in range(4))
STREAMS = {c: f(PAYLOAD) for c, f in _compressors().items()}


@pytest.mark.parametrize("codec", CODECS)
@given(data=st.data())
def test_decompress_bounded(codec, data):
    blob = data.draw(damaged(STREAMS[codec]))
    try:
        out = decompress_bounded(blob, codec, CAP, name="m.ptz")
    except AuditError as e:
        _one_line(e, "m.ptz: ")
        return
    assert len(out) <= CAP
    if blob == STREAMS[codec]:
        assert out == PAYLOAD


@given(st.one_of(*[damaged(s) for s in STREAMS.values()]))
def test_decompress_auto(blob):
    try:
        codec, out = decompress_auto(blob, CAP, name="m.ptz")
    except AuditError as e:
        _one_line(e, "m.ptz: ")
        return
    assert codec in CODECS and len(out) <= CAP


@given(damaged("val_bpb:1.2345 ünïcödé\n".encode() * 20))
def test_read_text_bounded(data):
    p = _write("train.log", data)
    try:
        text = read_text_bounded(p, 1000)
    except AuditError as e:
        _one_line(e, str(p))
        assert len(data) > 1000
        return
    assert isinstance(text, str) and len(data) <= 1000


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


VALID_FRAME = b'GASB1 29\n{"ok": true, "value": [1, 2.5]}'
VALID_NPY = _npy(np.linspace(0, 1, 50))


@given(damaged(VALID_FRAME))
def test_result_frame_parser(raw):
    msg, problem = parse_frame(raw)
    assert (msg is None) or isinstance(msg, dict)
    assert msg is None or problem is None
    assert problem is None or "\n" not in problem


@given(damaged(VALID_NPY))
def test_result_array_decoding_never_unpickles(raw):
    # What the parent does with an array from the child: np.load(allow_pickle=False) or ValueError.
    try:
        arr = decode({"__ndarray__": base64.b64encode(raw).decode()})
    except ValueError:
        return
    assert isinstance(arr, np.ndarray) and arr.dtype != object
