"""Fail closed: a part that was asked for and could not examine the submission is never a pass.

The verdict is then "incomplete" (exit 2, one line on stderr, the report of what did run still
written); only a part with nothing to run on by design is a skip (``--no-exec``, no artifact
under ``audit``). Covers the report model and every renderer, each part's way of not running,
and a submission whose scores the probes cannot trace.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pytest

from checks import parts
from checks.parts import AuditOptions, run_parts
from harness.submission import load_submission
from reports.model import Finding, Report
from reports.render import render
from tests.cli_run import run_cli
from tests.conftest import SUBMISSIONS, rewritten_example

# -- the report model and its renderers ----------------------------------------------------------


def _report(*, error_finding: bool = False, not_run: bool = False, error: str | None = None) -> Report:
    r = Report(submission="submissions/x")
    if error_finding:
        r.add(Finding(rule="GA101", family="target-in-key", severity="error", message="m"))
    if not_run:
        r.could_not_run("probes", "the submission's eval could not be driven: no entry point")
    r.error = error
    return r


@pytest.mark.parametrize("kw, verdict, code", [
    ({}, "pass", 0),
    ({"not_run": True}, "incomplete", 2),
    ({"error_finding": True}, "fail", 1),
    ({"error_finding": True, "not_run": True}, "fail", 1),
    ({"not_run": True, "error": "no sandbox"}, "error", 2),
])
def test_verdict_and_exit_code(kw, verdict, code):
    r = _report(**kw)
    assert (r.verdict, r.exit_code) == (verdict, code)


def test_incomplete_parts_survive_the_json_round_trip():
    d = json.loads(_report(not_run=True).to_json())
    assert d["verdict"] == "incomplete"
    assert d["incomplete"] == [{"part": "probes", "reason": "the submission's eval could not be driven: no entry point"}]
    again = Report.from_dict(d)
    assert again.verdict == "incomplete" and again.incomplete[0].part == "probes"


def test_every_format_shows_what_could_not_run():
    r = _report(not_run=True)
    reason = "could not be driven"
    text = render(r, "text")
    assert "INCOMPLETE" in text and "Could not run" in text and reason in text
    md = render(r, "markdown")
    assert "INCOMPLETE" in md and reason in md
    suite = ET.fromstring(render(r, "junit")).find("testsuite")
    errors = [c for c in suite.iter("testcase") if c.find("error") is not None]
    assert [c.get("name") for c in errors] == ["probes"] and suite.get("errors") == "1"
    sarif = json.loads(render(r, "sarif"))
    inv = sarif["runs"][0]["invocations"][0]
    assert inv["executionSuccessful"] is False
    assert any(n["level"] == "error" and reason in n["message"]["text"] for n in inv["toolExecutionNotifications"])


# -- each part's way of not running --------------------------------------------------------------


def test_a_missing_part_module_is_incomplete(monkeypatch):
    monkeypatch.setitem(parts.PARTS, "static", "checks.no_such_part_module:run")
    report = run_parts(load_submission(SUBMISSIONS / "legal_sliding"), AuditOptions(command="check"), ["static"],
                       Report(submission="x"))
    assert report.verdict == "incomplete" and report.incomplete[0].part == "static"


@pytest.fixture
def no_artifact(tmp_path):
    dest = tmp_path / "no_artifact"
    shutil.copytree(SUBMISSIONS / "legal_sliding", dest, ignore=shutil.ignore_patterns("*.ptz"))
    return dest


def test_no_artifact_is_a_skip_under_audit_and_incomplete_under_reproduce(no_artifact):
    sub = load_submission(no_artifact)
    audit = run_parts(sub, AuditOptions(command="audit"), ["reproduction"], Report(submission="x"))
    assert audit.verdict == "pass" and [s.part for s in audit.skipped] == ["reproduction"]
    reproduce = run_parts(sub, AuditOptions(command="reproduce"), ["reproduction"], Report(submission="x"))
    assert reproduce.verdict == "incomplete" and "artifact" in reproduce.incomplete[0].reason


def test_reproduce_without_validation_data_is_exit_2(tmp_path):
    dest = tmp_path / "far_from_data"
    shutil.copytree(SUBMISSIONS / "legal_sliding", dest)
    r = run_cli("reproduce", str(dest), "--format", "json", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("golf-audit: incomplete: reproduction could not run: no validation data")
    assert json.loads(r.stdout)["verdict"] == "incomplete"


def test_probe_of_a_file_with_no_eval_is_exit_2(tmp_path):
    dest = tmp_path / "no_eval"
    dest.mkdir()
    (dest / "train_gpt.py").write_text("def main():\n    print('nothing to evaluate')\n")
    r = run_cli("probe", str(dest), "--profile", "ci", "--format", "json")
    assert r.returncode == 2, r.stderr
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "incomplete" and doc["incomplete"][0]["part"] == "probes"
    assert "could not be driven: main() constructs no nn.Module" in doc["incomplete"][0]["reason"]


def test_probe_of_an_eval_whose_scores_cannot_be_traced_is_exit_2(tmp_path):
    """The scores leave torch as Python floats (``.tolist()``) before they are summed: the probes
    would judge nothing, so the eval's returned loss, matched by nothing captured, stops them."""
    dest = rewritten_example(tmp_path / "untraced", "legal_sliding", [
        ("loss_sum += nll[i, s:wlen].to(torch.float64).sum()", "loss_sum += sum(nll[i, s:wlen].tolist())")])
    r = run_cli("probe", str(dest), "--profile", "ci", "--format", "json", timeout=900)
    assert r.returncode == 2, r.stderr
    doc = json.loads(r.stdout)
    assert doc["verdict"] == "incomplete"
    not_run = [p for p in doc["probes"] if p["status"] == "could-not-run"]
    assert not_run and all("captured" in p["detail"] for p in not_run)
    assert not [p for p in doc["probes"] if p["status"] == "pass"]
