"""GA112 tells the challenge's way of fetching its data (a hub *dataset* repository, before training) from
reaching the network for anything else (#1972 downloads its shards and tokenizer at start-up)."""

from __future__ import annotations

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
