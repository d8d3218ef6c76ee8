"""Every report says what its verdict rests on: the submission's files, or its own code run in the sandbox."""

from __future__ import annotations

import json

from checks.parts import AuditOptions, run_parts
from harness.submission import load_submission
from reports.model import Finding, ProbeResult, Report
from reports.render import render
from tests.conftest import SUBMISSIONS


def _report(**kw) -> Report:
    r = Report(submission="submissions/x", parts_run=["claims", "static", "probes"])
    for part, severity in kw.get("findings", []):
        r.add(Finding(rule="GA101" if part == "static" else "PRB-normalization", family="target-in-key",
                      severity=severity, message="m", part=part))
    r.probes.append(ProbeResult(probe="normalization", status="pass", detail="held"))
    return r


def test_a_fail_rests_on_the_parts_whose_errors_decide_it():
    r = _report(findings=[("static", "error"), ("probes", "warning")])
    assert r.evidence()["verdict_rests_on"] == [{"part": "static", "evidence": "files"}]
    r = _report(findings=[("probes", "error")])
    assert r.evidence()["verdict_rests_on"] == [{"part": "probes", "evidence": "sandboxed-run"}]
    assert "sandboxed-run" in r.evidence()["meaning"] and "files" not in r.evidence()["meaning"]


def test_a_pass_rests_on_every_part_that_ran():
    ev = _report().evidence()
    assert ev["verdict_rests_on"] == [{"part": "claims", "evidence": "files"}, {"part": "probes", "evidence": "sandboxed-run"},
                                      {"part": "static", "evidence": "files"}]


def test_run_parts_names_the_part_of_each_finding():
    report = run_parts(load_submission(SUBMISSIONS / "ngram_target_in_key"), AuditOptions(command="check"),
                       ["claims", "static"], Report(submission="x"))
    by_rule = {f.rule: f.part for f in report.findings}
    assert by_rule["GA101"] == "static"
    assert set(by_rule.values()) <= {"claims", "static"}


def test_every_format_carries_it():
    r = _report(findings=[("probes", "error")])
    line = "verdict rests on: probes (the submission's own code in the sandbox)"
    assert line in render(r, "text") and line in render(r, "markdown")
    doc = json.loads(render(r, "json"))
    assert doc["evidence"]["verdict_rests_on"] == [{"part": "probes", "evidence": "sandboxed-run"}]
    assert doc["findings"][0]["part"] == "probes"
    assert Report.from_dict(doc).findings[0].part == "probes"
