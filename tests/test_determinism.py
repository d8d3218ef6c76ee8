"""Two audits of the same inputs give byte-identical JSON reports, wherever the checkout lives.

The bundled examples are copied to two different temporary folders and audited from each with
the same relative path: any timestamp, absolute path, temp-dir name or unordered collection that
reaches the report makes the bytes differ.
"""

import json
import shutil

import pytest

from tests.conftest import SUBMISSIONS
from tests.hostile import cli

EXAMPLES = sorted(p.name for p in SUBMISSIONS.iterdir() if p.is_dir() and (p / "train_gpt.py").exists())


@pytest.fixture(scope="module")
def two_checkouts(tmp_path_factory):
    roots = []
    for name in ("first", "second-elsewhere"):
        root = tmp_path_factory.mktemp(name)
        shutil.copytree(SUBMISSIONS, root / "submissions", ignore=shutil.ignore_patterns("__pycache__"))
        roots.append(root)
    return roots


def audit_twice(roots, *args):
    outs = []
    for root in roots:
        rc, out, err = cli("audit", *args, "--format", "json", cwd=root, timeout=900)
        assert rc in (0, 1), err
        outs.append(out)
    return outs


def test_no_exec_reports_are_identical_for_every_example(two_checkouts):
    assert EXAMPLES
    for name in EXAMPLES:
        first, second = audit_twice(two_checkouts, f"submissions/{name}", "--no-exec")
        assert first == second, name
        for root in two_checkouts:
            assert str(root) not in first and "/tmp/" not in first
        json.loads(first)


def test_full_audit_report_is_identical(two_checkouts):
    """Every part, probes and reproduction included (seeded), on a prefix of val. The ci profile bounds
    the probe searches by examples only; the default one also by seconds, which the report marks."""
    first, second = audit_twice(two_checkouts, "submissions/ngram_target_in_key", "--max-tokens", "2048",
                                "--profile", "ci")
    assert first == second
    assert "/tmp/" not in first and "golf-audit-sandbox" not in first
