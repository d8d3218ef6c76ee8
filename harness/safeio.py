"""Bounded readers for files anyone can craft: sources, logs, JSON, compressed artifacts.

Every input golf-audit opens comes from a pull request. These helpers put a ceiling on what one
file can cost us (bytes read, bytes decompressed, decoder memory) and turn every way a file can
be wrong into one ``AuditError`` line that names the file and the problem:

- ``read_bytes_bounded`` / ``read_text_bounded``: refuse files over a byte limit (checked on the
  bytes actually read, so a growing file or a symlink to ``/dev/zero`` cannot get past a size
  check), non-regular files (FIFOs would block, devices never end), and, when ``within`` is given,
  symlinks that lead out of the submission (a crafted ``README.md -> ~/.ssh/id_rsa`` must not end
  up quoted in a public report). Text that is not UTF-8 is decoded with U+FFFD replacements.
- ``decompress_bounded``: zlib, zstd, lzma/xz and brotli, streamed with an output cap, so a
  decompression bomb costs at most ``max_output_bytes`` (plus one chunk) of memory; truncated and
  not-compressed inputs are reported as such.
"""

from __future__ import annotations

import lzma
import os
import stat
import zlib

from harness import AuditError

CHUNK = 1 << 20  # bytes of output produced per decompression step
LZMA_MEMLIMIT = 1 << 30  # bytes of decoder memory an xz/lzma header may ask for
ZSTD_MAX_WINDOW = 1 << 27  # bytes; zstd's own default decoding limit, stated explicitly
# Magic numbers of the formats we can sniff; brotli has none.
MAGIC = {
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\xfd7zXZ\x00": "lzma",
    b"\x5d\x00\x00": "lzma",  # legacy .lzma ("alone") with the usual lc/lp/pb byte
}
CODECS = ("zlib", "zstd", "lzma", "brotli")


def _name(path: str | os.PathLike) -> str:
    return os.fspath(path)


def read_bytes_bounded(path: str | os.PathLike, max_bytes: int, *, within: str | os.PathLike | None = None) -> bytes:
    """The whole file, at most ``max_bytes`` bytes; anything else is a one-line AuditError.

    ``within``: a folder the file must resolve into (symlinks that escape it are refused).
    """
    name = _name(path)
    if within is not None:
        real, root = os.path.realpath(path), os.path.realpath(within)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise AuditError(f"{name}: refused: a symlink that leads outside the submission ({real})")
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise AuditError(f"{name}: is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise AuditError(f"{name}: refused: not a regular file (FIFO, socket or device)")
        if st.st_size > max_bytes:
            raise AuditError(f"{name}: refused: {st.st_size} bytes is over the {max_bytes}-byte limit for this file")
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except AuditError:
        raise
    except OSError as e:
        raise AuditError(f"{name}: cannot read: {e.strerror or e}") from None
    if len(data) > max_bytes:  # grew after the stat, or a special file posing as a regular one
        raise AuditError(f"{name}: refused: more than the {max_bytes}-byte limit for this file")
    return data


def read_text_bounded(path: str | os.PathLike, max_bytes: int, *, within: str | os.PathLike | None = None) -> str:
    """The file as text (UTF-8; undecodable bytes become U+FFFD), at most ``max_bytes`` bytes.

    A UTF-8 byte-order mark is dropped; NUL bytes are kept (callers that parse decide).
    """
    data = read_bytes_bounded(path, max_bytes, within=within)
    return data.decode("utf-8-sig", errors="replace")


def sniff_codec(data: bytes) -> str | None:
    """The compression format ``data`` starts with ("zstd", "lzma", "zlib"), or None (brotli, raw)."""
    for magic, codec in MAGIC.items():
        if data.startswith(magic):
            return codec
    # zlib: CMF says deflate with a window <= 32 KiB and (CMF*256 + FLG) % 31 == 0.
    if len(data) >= 2 and data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and (data[0] << 8 | data[1]) % 31 == 0:
        return "zlib"
    return None


def decompress_bounded(data: bytes, codec: str, max_output_bytes: int, *, name: str = "artifact") -> bytes:
    """Decompress ``data`` with ``codec`` (zlib, zstd, lzma, brotli); output capped at ``max_output_bytes``.

    Raises AuditError (one line, prefixed with ``name``) when the output would exceed the cap,
    when the stream is truncated or not in that format, or when the codec is unknown/unavailable.
    """
    if codec not in CODECS:
        raise AuditError(f"{name}: unknown compression {codec!r} (known: {', '.join(CODECS)})")
    if not data:
        raise AuditError(f"{name}: empty, not a {codec} stream")
    try:
        out = _DECODERS[codec](memoryview(data), max_output_bytes, name)
    except AuditError:
        raise
    except MemoryError:
        raise AuditError(f"{name}: {codec} decoder ran out of memory (hostile stream?)") from None
    except Exception as e:  # each codec library raises its own error type
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AuditError(f"{name}: not a valid {codec} stream: {msg}") from None
    return out


def _too_big(name: str, codec: str, cap: int) -> AuditError:
    return AuditError(f"{name}: refused: {codec} output exceeds the {cap}-byte limit (decompression bomb?)")


def _truncated(name: str, codec: str, got: int) -> AuditError:
    return AuditError(f"{name}: truncated {codec} stream (ends after {got} decompressed bytes)")


def _collect(chunks: list[bytes], total: int, piece: bytes, cap: int, name: str, codec: str) -> int:
    total += len(piece)
    if total > cap:
        raise _too_big(name, codec, cap)
    chunks.append(piece)
    return total


def _zlib(data: memoryview, cap: int, name: str) -> bytes:
    d = zlib.decompressobj()
    chunks: list[bytes] = []
    total = 0
    pending = bytes(data)
    while True:
        piece = d.decompress(pending, CHUNK)
        total = _collect(chunks, total, piece, cap, name, "zlib")
        pending = d.unconsumed_tail
        if d.eof:
            break
        if not pending and not piece:
            # No input left and the decoder produced nothing: flush what it holds, then decide.
            total = _collect(chunks, total, d.flush(), cap, name, "zlib")
            if not d.eof:
                raise _truncated(name, "zlib", total)
            break
    return b"".join(chunks)


def _lzma(data: memoryview, cap: int, name: str) -> bytes:
    # FORMAT_AUTO reads .xz and legacy .lzma; memlimit bounds the dictionary a header can ask for.
    d = lzma.LZMADecompressor(format=lzma.FORMAT_AUTO, memlimit=LZMA_MEMLIMIT)
    chunks: list[bytes] = []
    total = 0
    pending = bytes(data)
    while not d.eof:
        piece = d.decompress(pending, CHUNK)
        pending = b""
        total = _collect(chunks, total, piece, cap, name, "lzma")
        if d.eof:
            break
        if d.needs_input:
            raise _truncated(name, "lzma", total)
    return b"".join(chunks)


def _zstd(data: memoryview, cap: int, name: str) -> bytes:
    import zstandard

    dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
    chunks: list[bytes] = []
    total = 0
    d = dctx.decompressobj()
    # decompressobj has no output cap, so feed the input in slices: a zstd block needs at least
    # 4 input bytes (an RLE block) and yields at most 128 KiB, so one slice yields <= 32 MiB.
    # Bytes after the end of the first frame are ignored.
    step = 1024
    for start in range(0, len(data), step):
        piece = d.decompress(bytes(data[start:start + step]))
        total = _collect(chunks, total, piece, cap, name, "zstd")
        if d.eof:
            break
    if not d.eof:
        raise _truncated(name, "zstd", total)
    return b"".join(chunks)


def _brotli(data: memoryview, cap: int, name: str) -> bytes:
    try:
        import brotli
    except ImportError:
        raise AuditError(f"{name}: brotli-compressed, but the brotli package is not installed "
                         f"(pip install 'golf-audit[formats]')") from None
    d = brotli.Decompressor()
    chunks: list[bytes] = []
    total = 0
    try:
        d.process(b"", output_buffer_limit=CHUNK)
        limited = True
    except TypeError:  # brotli < 1.2: no output limit, so feed small slices instead
        limited = False
    if limited:
        piece = d.process(bytes(data), output_buffer_limit=CHUNK)
        total = _collect(chunks, total, piece, cap, name, "brotli")
        while not d.is_finished():
            piece = d.process(b"", output_buffer_limit=CHUNK)
            total = _collect(chunks, total, piece, cap, name, "brotli")
            if not piece and d.can_accept_more_data():
                break  # wants input we do not have: truncated
    else:
        for start in range(0, len(data), 256):
            piece = d.process(bytes(data[start:start + 256]))
            total = _collect(chunks, total, piece, cap, name, "brotli")
    if not d.is_finished():
        raise _truncated(name, "brotli", total)
    return b"".join(chunks)


_DECODERS = {"zlib": _zlib, "zstd": _zstd, "lzma": _lzma, "brotli": _brotli}


def decompress_auto(data: bytes, max_output_bytes: int, *, name: str = "artifact", fallback: str | None = "brotli") -> tuple[str, bytes]:
    """Sniff the codec (``fallback`` when no magic matches) and decompress; returns (codec, bytes)."""
    codec = sniff_codec(data) or fallback
    if codec is None:
        raise AuditError(f"{name}: not compressed in a format golf-audit knows ({', '.join(CODECS)})")
    return codec, decompress_bounded(data, codec, max_output_bytes, name=name)

