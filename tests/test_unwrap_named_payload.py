"""Self-extracting wrappers whose payload is bound to a name and has its line breaks stripped first."""

from __future__ import annotations

import base64
import lzma

import pytest

from harness.unwrap import WrapperError, unwrap_source

SOURCE = "x = 1\nprint(x)\n"


def _lines(blob: bytes, width: int = 40) -> bytes:
    return b"\n".join(blob[i:i + width] for i in range(0, len(blob), width))


def test_named_payload_with_line_breaks_removed():
    blob = _lines(base64.b85encode(lzma.compress(SOURCE.encode())))
    wrapped = ("import lzma,base64\n_b=b\"\"\"\n" + blob.decode() + "\n\"\"\"\n"
               "exec(lzma.decompress(base64.b85decode(_b.replace(b\"\\n\",b\"\"))).decode(\"utf-8\"))\n")
    assert unwrap_source(wrapped) == (SOURCE, 1)


def test_replace_with_mismatched_types_is_refused():
    blob = base64.b85encode(lzma.compress(SOURCE.encode())).decode()
    wrapped = f'import lzma,base64\n_b=b"{blob}"\nexec(lzma.decompress(base64.b85decode(_b.replace("a",b""))))\n'
    with pytest.raises(WrapperError, match="replace"):
        unwrap_source(wrapped)
