"""Hostile artifacts through ``golf-audit reproduce``: refused by the readers (ArtifactError, a
subclass of AuditError, raised in the sandbox), and then the reproduction is not done: exit 2 with
one line, never a pass. The refusal is told to the parent by the error's type, not its name."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
import zlib

import pytest
import torch

from tests.cli_run import run_cli
from tests.conftest import SUBMISSIONS

DATA = SUBMISSIONS / "data"


class Planted:
    """Unpickling this would run code: it writes a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def pickle_with_reduce(marker: str) -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(2), "evil": Planted(marker)}, buf)
    return zlib.compress(buf.getvalue())


def zip_slip(marker: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("../../../../" + marker.lstrip("/"), b"pwned")
        z.writestr("archive/version", b"3\n")
    return zlib.compress(buf.getvalue())


def size_lying(marker: str) -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(64)}, buf)
    raw = bytearray(buf.getvalue())
    # Every central-directory entry claims a 4 GiB-1 uncompressed size its data does not have.
    at = 0
    while (at := raw.find(b"PK\x01\x02", at)) >= 0:
        raw[at + 24:at + 28] = (0xFFFFFFFE).to_bytes(4, "little")
        at += 4
    return zlib.compress(bytes(raw))


@pytest.mark.parametrize("make", [pickle_with_reduce, zip_slip, size_lying])
def test_refused_artifact_is_exit_2_not_a_pass(make, tmp_path):
    sub = tmp_path / "legal_sliding"
    shutil.copytree(SUBMISSIONS / "legal_sliding", sub)
    marker = tmp_path / "pwned"
    (sub / "final_model.int6.ptz").write_bytes(make(str(marker)))
    proc = run_cli("reproduce", str(sub), "--max-tokens", "2000", "--format", "json",
                   "--val", str(DATA / "datasets" / "kjv_sp1024" / "kjv_val_*.bin"),
                   "--tokenizer", str(DATA / "tokenizers" / "kjv_1024_bpe.model"))
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("golf-audit: error: reproduction: ") and "final_model.int6.ptz" in line
    report = json.loads(proc.stdout)
    assert report["verdict"] == "error" and report["reproduction"] is None
    assert not marker.exists()
