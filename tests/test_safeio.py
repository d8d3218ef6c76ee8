"""Bounded readers: size caps, hostile files, decompression bombs, truncated and raw streams."""

import lzma
import os
import zlib

import pytest
import zstandard

from harness import AuditError
from harness.safeio import CODECS, decompress_auto, decompress_bounded, read_bytes_bounded, read_text_bounded, sniff_codec

try:
    import brotli
except ImportError:  # the formats extra (pip install -e ".[formats]") brings it; only brotli's cases skip
    brotli = None
PAYLOAD = b"the quick brown fox " * 5000
COMPRESS = {
    "zlib": lambda b: zlib.compress(b, 9),
    "zstd": lambda b: zstandard.ZstdCompressor(level=19).compress(b),
    "lzma": lzma.compress,
    "brotli": lambda b: brotli.compress(b, quality=5),
}
# Every codec golf-audit reads; brotli's cases skip, listed in the summary, where the module is not installed.
EVERY_CODEC = [pytest.param(c, marks=pytest.mark.skipif(c == "brotli" and brotli is None,
                                                        reason="brotli is not installed (the formats extra)"))
               for c in CODECS]


@pytest.mark.parametrize("codec", EVERY_CODEC)
def test_round_trip_and_sniff(codec):
    blob = COMPRESS[codec](PAYLOAD)
    assert decompress_bounded(blob, codec, len(PAYLOAD)) == PAYLOAD
    assert sniff_codec(blob) == (None if codec == "brotli" else codec)
    assert decompress_auto(blob, len(PAYLOAD)) == (codec, PAYLOAD)


@pytest.mark.parametrize("codec", EVERY_CODEC)
def test_bomb_is_refused_at_the_cap(codec):
    bomb = COMPRESS[codec](b"\0" * (32 << 20))  # a few KiB that expand to 32 MiB
    assert len(bomb) < 100_000
    with pytest.raises(AuditError) as e:
        decompress_bounded(bomb, codec, 1 << 20, name="final_model.ptz")
    assert str(e.value) == f"final_model.ptz: refused: {codec} output exceeds the 1048576-byte limit (decompression bomb?)"


@pytest.mark.parametrize("codec", EVERY_CODEC)
def test_truncated_stream(codec):
    blob = COMPRESS[codec](os.urandom(50_000))
    with pytest.raises(AuditError, match=rf"^m.ptz: truncated {codec} stream \(ends after \d+ decompressed bytes\)$"):
        decompress_bounded(blob[: len(blob) // 2], codec, 1 << 20, name="m.ptz")


@pytest.mark.parametrize("codec", EVERY_CODEC)
def test_not_compressed(codec):
    raw = b"PK\x03\x04 this is a torch zip, not compressed with " + codec.encode() + bytes(range(256)) * 4
    with pytest.raises(AuditError) as e:
        decompress_bounded(raw, codec, 1 << 20, name="m.pt")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("m.pt: ")
    assert f"not a valid {codec} stream" in msg or f"truncated {codec} stream" in msg


def test_empty_and_unknown_codec():
    with pytest.raises(AuditError, match=r"^a: empty, not a zstd stream$"):
        decompress_bounded(b"", "zstd", 10, name="a")
    with pytest.raises(AuditError, match=r"^a: unknown compression 'lz4' \(known: zlib, zstd, lzma, brotli\)$"):
        decompress_bounded(b"x", "lz4", 10, name="a")
    with pytest.raises(AuditError, match=r"^a: not compressed in a format golf-audit knows"):
        decompress_auto(b"plain", 10, name="a", fallback=None)


def test_read_text_replaces_bad_utf8_and_caps_size(tmp_path):
    f = tmp_path / "train.log"
    f.write_bytes(b"\xef\xbb\xbfval_bpb:1.0 \xff\xfe garbage\n")
    assert read_text_bounded(f, 100) == "val_bpb:1.0 \ufffd\ufffd garbage\n"
    with pytest.raises(AuditError) as e:
        read_text_bounded(f, 10)
    assert str(e.value) == f"{f}: refused: {f.stat().st_size} bytes is over the 10-byte limit for this file"


def test_special_files_are_refused(tmp_path):
    with pytest.raises(AuditError, match=r": is a directory, not a file$"):
        read_text_bounded(tmp_path, 10)
    fifo = tmp_path / "README.md"
    os.mkfifo(fifo)  # opening it would block forever
    with pytest.raises(AuditError, match=r": refused: not a regular file \(FIFO, socket or device\)$"):
        read_text_bounded(fifo, 10)
    link = tmp_path / "zero.log"
    link.symlink_to("/dev/zero")
    with pytest.raises(AuditError, match=r": refused: not a regular file"):
        read_bytes_bounded(link, 10)
    with pytest.raises(AuditError, match=r": cannot read: No such file or directory$"):
        read_bytes_bounded(tmp_path / "missing.json", 10)


def test_symlink_out_of_the_submission_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("token")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "README.md").symlink_to(secret)
    (sub / "inner.md").write_text("ok")
    with pytest.raises(AuditError, match=r"README.md: refused: a symlink that leads outside the submission"):
        read_text_bounded(sub / "README.md", 100, within=sub)
    assert read_text_bounded(sub / "inner.md", 100, within=sub) == "ok"
    assert read_text_bounded(sub / "README.md", 100) == "token"  # no `within`: caller's choice
