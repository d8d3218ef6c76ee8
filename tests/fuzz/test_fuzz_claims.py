"""Fuzzing the claims parsers: train logs, submission.json and a whole claims audit of a damaged
folder. Any input gives a result or a one-line problem, never an exception.

CI runs the ``ci`` profile (25 examples each, about 10 s in all); ``HYPOTHESIS_PROFILE=fuzz`` runs 10,000.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from checks.claims import run as claims_run
from harness.logparse import PATTERNS, parse_log
from checks.claims.subjson import load_json, parse_claims
from checks.parts import AuditOptions
from harness.submission import load_submission
from reports.model import Report
from tests.conftest import SUBMISSIONS
from tests.fuzz.strategies import damaged

EXAMPLE = SUBMISSIONS / "legal_sliding"
# The tail of a real log (the script it prints first is long and adds nothing here) plus every
# line format the parser knows.
LOG_TAIL = "\n".join((EXAMPLE / "train_seed42.log").read_text().splitlines()[-40:])
VALID_LOG = (LOG_TAIL + "\n" + "\n".join(p.example for p in PATTERNS) + "\n").encode()
VALID_JSON = (EXAMPLE / "submission.json").read_bytes()
RECORD_SHAPES = [
    b'{"val_bpb": 1.0912, "seeds": [42, 0, 1337], "seed_scores": [1.09057, 1.09084, 1.0923], "eval_time_seconds": [83, 83, 83]}',
    b'{"mean_bpb": 1.08, "seeds": {"0": {"val_bpb": 1.08, "bytes_total": 15991018, "train_time_ms": 588004}}, '
    b'"compliance": {"three_seeds": true}}',
]
SCRATCH = Path(tempfile.mkdtemp(prefix="golf-audit-fuzz-claims-"))


@given(damaged(VALID_LOG))
def test_log_parser(data):
    run = parse_log(data.decode("utf-8", errors="replace"), "train_seed1.log")
    for m in run.metrics:
        assert m.stage and m.line >= 1
    for n, text in run.unknown:
        assert n >= 1 and "\n" not in text


@given(st.one_of(damaged(VALID_JSON), *(damaged(s) for s in RECORD_SHAPES)))
def test_submission_json(data):
    try:
        doc = load_json(data.decode("utf-8", errors="replace"))
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
        return
    claims = parse_claims(doc)
    assert all(p and "\n" not in p for p in claims.problems)


@given(damaged(VALID_JSON), damaged(VALID_LOG))
def test_claims_audit_of_a_damaged_folder(json_bytes, log_bytes):
    d = SCRATCH / "sub"
    if not d.exists():
        d.mkdir()
        shutil.copy(EXAMPLE / "train_gpt.py", d / "train_gpt.py")
        shutil.copy(EXAMPLE / "README.md", d / "README.md")
    (d / "submission.json").write_bytes(json_bytes)
    (d / "train_seed42.log").write_bytes(log_bytes)
    report = Report(submission="sub")
    claims_run(load_submission(d), AuditOptions(baseline_bpb=2.0), report)
    report.to_json()  # serializable, finite numbers only
    for f in report.findings:
        assert "\n" not in f.message
