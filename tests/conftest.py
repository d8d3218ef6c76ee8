"""Shared test fixtures: paths to the bundled examples and to the public data kept in tests/data/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "submissions"
DATA = SUBMISSIONS / "data"
VAL_GLOB = str(DATA / "datasets" / "kjv_sp1024" / "kjv_val_*.bin")
TOKENIZER = DATA / "tokenizers" / "kjv_1024_bpe.model"
TEST_DATA = ROOT / "tests" / "data"  # small public files the tests read (tests/data/README.md)

# ci: bounded and derandomized so CI is fast and repeatable; dev: the hypothesis defaults;
# fuzz: long runs launched by hand (see README).
settings.register_profile("ci", max_examples=25, derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.register_profile("fuzz", max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


def data_file(name: str) -> Path:
    """A file of tests/data/ (committed with the tests: a missing one is a broken checkout, not a skip)."""
    p = TEST_DATA / name
    if not p.is_file():
        pytest.fail(f"{p} is missing: tests/data/ is part of the repository (see tests/data/README.md)")
    return p


def rewritten_example(dest: Path, example: str, rewrites: list[tuple[str, str]]) -> Path:
    """A copy of the bundled ``example`` at ``dest`` (without its artifact) with each (old, new) text of
    ``rewrites`` replaced in its train_gpt.py; each old text must occur exactly once."""
    import shutil

    shutil.copytree(SUBMISSIONS / example, dest, ignore=shutil.ignore_patterns("*.ptz"))
    src = (dest / "train_gpt.py").read_text()
    for old, new in rewrites:
        assert src.count(old) == 1, old
        src = src.replace(old, new)
    (dest / "train_gpt.py").write_text(src)
    return dest
