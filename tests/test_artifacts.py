"""Built-in artifact loaders on artifacts in each of the records' formats; hostile files end in
one line. Cost: about 2 s."""

from __future__ import annotations

import io
import zlib

import pytest
import torch
import zstandard

from harness import AuditError
from harness.artifacts import decode_artifact, dequantize, layout_of, read_artifact
from harness.artifacts.shuffle import shuffle, unshuffle
from tests.artifact_fixtures import BITS, artifacts, expected, saved, state_dict


@pytest.mark.parametrize("name", sorted(artifacts()))
def test_each_format_dequantizes_to_the_expected_weights(name, tmp_path):
    data, kind = artifacts()[name]
    path = tmp_path / name
    path.write_bytes(data)
    obj, info = read_artifact(path)
    assert info["bytes"] == len(data) and info["byte_shuffle"] == ("shuffled" in name)
    sd = state_dict()
    got = dequantize(obj, {k: v.float() for k, v in sd.items()})
    want = expected(kind, sd, BITS)
    assert set(got) == set(want) and layout_of(obj) is not None
    for k in want:
        assert torch.equal(got[k].float(), want[k]), k


def test_shuffle_round_trips():
    for stride in (2, 3, 4):
        data = bytes(range(251)) * 3
        assert unshuffle(shuffle(data, stride)) == (data, True)
    assert unshuffle(b"plain") == (b"plain", False)


def test_unknown_layout_is_one_line():
    blob = zstandard.ZstdCompressor().compress(saved({"weights": torch.zeros(3)}))
    obj, _ = decode_artifact(blob, name="x.ptz")
    with pytest.raises(AuditError, match=r"x.ptz: unknown artifact layout") as e:
        dequantize(obj, name="x.ptz")
    assert "\n" not in str(e.value)


def test_pickled_code_is_refused():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buf = io.BytesIO()
    torch.save({"w": Evil()}, buf)
    with pytest.raises(AuditError, match="weights-only"):
        decode_artifact(zlib.compress(buf.getvalue()), name="evil.ptz")


def test_decompression_bomb_stops_at_the_cap():
    bomb = zstandard.ZstdCompressor(level=19).compress(bytes(50 << 20))
    with pytest.raises(AuditError, match="bomb|over|limit|cap|exceed"):
        decode_artifact(bomb, name="bomb.ptz", max_output_bytes=1 << 20)


def test_one_byte_payload_is_one_line():
    with pytest.raises(AuditError, match="weights-only"):
        decode_artifact(zlib.compress(b"G"), name="g.ptz")
