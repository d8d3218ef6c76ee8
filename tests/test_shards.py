import numpy as np
import pytest
from hypothesis import given, strategies as st

from harness.shards import HEADER_BYTES, SHARD_MAGIC, ShardError, load_tokens, read_shard, write_shard

token_lists = st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=2000)


@given(token_lists)
def test_roundtrip(tmp_path_factory, tokens):
    p = tmp_path_factory.mktemp("s") / "fineweb_val_000000.bin"
    write_shard(p, tokens)
    assert p.stat().st_size == HEADER_BYTES + 2 * len(tokens)
    assert read_shard(p).tolist() == tokens


def test_header_layout(tmp_path):
    p = tmp_path / "a.bin"
    write_shard(p, [1, 2, 65535])
    header = np.fromfile(p, dtype="<i4", count=256)
    assert header[:3].tolist() == [SHARD_MAGIC, 1, 3] and not header[3:].any()
    assert np.fromfile(p, dtype="<u2", offset=HEADER_BYTES).tolist() == [1, 2, 65535]


def test_concatenates_in_name_order_and_prefix(tmp_path):
    write_shard(tmp_path / "x_val_000001.bin", [7, 8, 9])
    write_shard(tmp_path / "x_val_000000.bin", [1, 2, 3])
    assert load_tokens(str(tmp_path / "x_val_*.bin")).tolist() == [1, 2, 3, 7, 8, 9]
    assert load_tokens(str(tmp_path / "x_val_*.bin"), max_tokens=3).tolist() == [1, 2, 3, 7]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b[:100], "shorter than the 1024-byte header"),
        (lambda b: (123).to_bytes(4, "little") + b[4:], "magic 123 != 20240520"),
        (lambda b: b[:4] + (2).to_bytes(4, "little") + b[8:], "unsupported shard version 2"),
        (lambda b: b[:-1], "does not match header"),
        (lambda b: b + b"\0\0", "does not match header"),
        (lambda b: b[:8] + (-5).to_bytes(4, "little", signed=True) + b[12:], "implausible token count"),
    ],
)
def test_bad_shards_give_one_line_errors(tmp_path, mutate, message):
    p = tmp_path / "v.bin"
    write_shard(p, list(range(50)))
    p.write_bytes(mutate(p.read_bytes()))
    with pytest.raises(ShardError) as e:
        read_shard(p)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_and_directory(tmp_path):
    with pytest.raises(ShardError, match="no shard matches"):
        load_tokens(str(tmp_path / "nothing_*.bin"))
    with pytest.raises(ShardError, match="is a directory"):
        read_shard(tmp_path)
