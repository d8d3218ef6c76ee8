"""GA112 tells the challenge's way of fetching its data (a hub *dataset* repository, before training) from
reaching the network for anything else (#1972 downloads its shards and tokenizer at start-up)."""

from __future__ import annotations

import json
import textwrap

import pytest

from checks.static import engine

FETCH = """
from huggingface_hub import hf_hub_download, snapshot_download
def fetch():
    return {call}
fetch()
"""


@pytest.mark.parametrize("call,severity", [
    ('snapshot_download(repo_id="someone/sp10240", repo_type="dataset", local_dir="data/datasets")', "warning"),
    ('hf_hub_download(repo_id="someone/sp10240", filename="tok.model", repo_type="dataset")', "warning"),
    ('hf_hub_download(repo_id="someone/tables", filename="counts.npy")', "error"),
    ('snapshot_download(repo_id="someone/teacher", repo_type="model")', "error"),
    ('hf_hub_download(repo_id="x/y", filename="f", repo_type=kind)', "error"),  # not known: the general case
])
def test_hub_dataset_download_is_a_warning_and_other_hub_access_an_error(call, severity):
    code = textwrap.dedent(FETCH).replace("{call}", call)
    found, _ = engine.analyse([engine.Source("train_gpt.py", code)], dict(engine.OFFICIAL_ENV))
    assert [(f["line"], f["severity"]) for f in found if f["rule"] == "GA112"] == [(4, severity)]


NATIVE = """
import ctypes
import numpy as np
def evaluate(blob):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16).astype(np.int64)
    lib = ctypes.CDLL("./ppm.so")
    out = np.zeros(2)
    lib.unpack(blob, len(blob))
    lib.ppm_score(val.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)), val.size, out.ctypes.data){allow}
    return out[0]
evaluate(open("final_model.ptz", "rb").read())
"""


def _native_findings(allow: str = "") -> list[tuple]:
    code = textwrap.dedent(NATIVE).replace("{allow}", allow)
    found, _ = engine.analyse([engine.Source("train_gpt.py", code)], dict(engine.OFFICIAL_ENV))
    return [(f["line"], f["severity"], f["unchecked"]) for f in found if f["rule"] == "GA112"]


def test_validation_data_handed_to_native_code_is_unchecked_and_other_calls_are_not():
    # the load is a warning; the call given validation tokens marks what no rule reads; unpacking the
    # artifact's bytes in the same library is no scoring of validation data
    assert _native_findings() == [(6, "warning", False), (9, "warning", True)]


def test_native_scoring_makes_the_static_check_incomplete_unless_a_reviewer_accepts_it(tmp_path):
    from tests.cli_run import run_cli

    for name, allow, verdict in (("open", "", "incomplete"),
                                 ("read", "  # golf-audit: allow[GA112] ppm.c read: a normalized byte PPM", "pass")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "train_gpt.py").write_text(textwrap.dedent(NATIVE).replace("{allow}", allow))
        proc = run_cli("check", str(folder), "--format", "json", env={"GOLF_AUDIT_CACHE": ""})
        report = json.loads(proc.stdout)
        assert report["verdict"] == verdict, report
        assert proc.returncode == (2 if verdict == "incomplete" else 0)
