"""Fuzz the artifact loader: damaged, truncated and arbitrary artifacts end in one AuditError line
(or load), never in another exception. Cost: about 5 s with the ci profile."""

from __future__ import annotations

from hypothesis import given

from harness import AuditError
from harness.artifacts import decode_artifact, dequantize
from tests.artifact_fixtures import artifacts
from tests.fuzz.strategies import damaged

ARTIFACTS = artifacts()


def load(data: bytes) -> None:
    try:
        obj, _ = decode_artifact(data, name="a.ptz", max_output_bytes=4 << 20)
        dequantize(obj, name="a.ptz")
    except AuditError as e:
        assert "\n" not in str(e)


@given(damaged(ARTIFACTS["mixed_zstd"][0]))
def test_fuzz_mixed_zstd(data):
    load(data)


@given(damaged(ARTIFACTS["int8_zlib"][0]))
def test_fuzz_int8_zlib(data):
    load(data)


@given(damaged(ARTIFACTS["mixed_lzma_shuffled"][0]))
def test_fuzz_mixed_lzma(data):
    load(data)


PAYLOAD = __import__("zlib").decompress(ARTIFACTS["int8_zlib"][0])


@given(damaged(PAYLOAD))
def test_fuzz_payload_inside_a_valid_stream(data):
    """Damage behind a valid compression layer reaches torch.load and the dequantizers."""
    import zlib

    load(zlib.compress(data, 1))
