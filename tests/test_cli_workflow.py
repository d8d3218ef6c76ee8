"""The shipped CI workflow and pre-commit hooks: their shell steps run here on a scratch repository."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import yaml

from cli import build_parser
from tests.cli_run import check_output
from tests.conftest import ROOT, SUBMISSIONS

WORKFLOW = ROOT / ".github" / "workflows" / "golf-audit.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"


def _steps(job: str) -> dict[str, dict]:
    wf = yaml.safe_load(WORKFLOW.read_text())
    return {s.get("name") or s.get("uses"): s for s in wf["jobs"][job]["steps"]}


def _options(command: str) -> set[str]:
    sub = next(a for a in build_parser()._actions if isinstance(a, type(build_parser()._subparsers._group_actions[0])))
    return set(sub.choices[command]._option_string_actions)


def _golf_audit_calls(text: str) -> list[tuple[str, set[str]]]:
    """(command, options) of every golf-audit command line in a shell script."""
    text = text.replace("\\\n", " ")
    return [(m.group(1), set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", m.group(2))))
            for m in re.finditer(r"(?:^|[\s|(])golf-audit (audit|check|claims|probe|reproduce|scan|render|rules|explain)\b([^\n|;]*)", text)]


def test_workflow_shape():
    wf = yaml.safe_load(WORKFLOW.read_text())
    on = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in on and "pull_request_target" not in on
    audit, report = wf["jobs"]["audit"], wf["jobs"]["report"]
    # submission code runs only in the job without write permissions
    assert audit["permissions"] == {"contents": "read"}
    assert report["permissions"]["security-events"] == "write" and report["permissions"]["pull-requests"] == "write"
    # ... and the job that can write never checks out or runs the pull request's code
    assert not any(s.get("uses", "").startswith("actions/checkout") for s in report["steps"])
    assert not any(_golf_audit_calls(s.get("run", "")) or "pip" in s.get("run", "") for s in report["steps"])
    upload = next(s for s in report["steps"] if s.get("uses", "").startswith("github/codeql-action/upload-sarif"))
    assert upload["with"]["sarif_file"] == "golf-audit.sarif"
    script = next(s for s in report["steps"] if s.get("uses", "").startswith("actions/github-script"))["with"]["script"]
    from reports.render.markdown import MARKER

    assert MARKER in script and "updateComment" in script and "createComment" in script


def test_every_golf_audit_call_in_the_workflow_and_hooks_is_valid():
    calls = _golf_audit_calls(WORKFLOW.read_text())
    hooks = yaml.safe_load(HOOKS.read_text())
    calls += [c for h in hooks for c in _golf_audit_calls(h["entry"])]
    assert {c for c, _ in calls} == {"scan", "render"} and len(calls) >= 7
    for command, opts in calls:
        assert opts <= _options(command), (command, opts - _options(command))


def test_pre_commit_hooks():
    hooks = yaml.safe_load(HOOKS.read_text())
    assert {h["id"] for h in hooks} == {"golf-audit", "golf-audit-check"}
    for h in hooks:
        assert h["entry"].startswith("golf-audit scan") and h["language"] == "python"
        assert re.search(h["files"], "records/track_10min_16mb/x/train_gpt.py")
        assert not re.search(h["files"], "README.md")
    assert "--no-exec" in next(h for h in hooks if h["id"] == "golf-audit")["entry"]


def _git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def test_workflow_steps_on_a_pull_request(tmp_path):
    """Run the audit job's shell steps (all but the install) on a scratch repository with two commits."""
    repo = tmp_path / "repo"
    base_folder = repo / "records" / "track_10min_16mb" / "2026-01-01_Base"
    shutil.copytree(SUBMISSIONS / "legal_sliding", base_folder, ignore=shutil.ignore_patterns("*.ptz", "*.pt"))
    shutil.copytree(SUBMISSIONS / "legal_sliding", repo / "records" / "track_10min_16mb" / "2026-01-00_Untouched",
                    ignore=shutil.ignore_patterns("*.ptz", "*.pt"))
    (repo / "records" / "README.md").write_text("records\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    base = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    added = repo / "records" / "track_10min_16mb" / "2026-02-02_New Cache"  # a space in the name
    shutil.copytree(SUBMISSIONS / "ngram_target_in_key", added, ignore=shutil.ignore_patterns("*.ptz", "*.pt"))
    with open(base_folder / "train_gpt.py", "a") as f:
        f.write("\n# tuned\n")
    (repo / "records" / "README.md").write_text("records, updated\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "pr")

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "golf-audit"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(ROOT / 'cli.py'))} \"$@\"\n")
    shim.chmod(0o755)
    out_file, summary = tmp_path / "out.txt", tmp_path / "summary.md"
    out_file.touch()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "BASE_SHA": base, "GITHUB_OUTPUT": str(out_file),
           "GITHUB_STEP_SUMMARY": str(summary), "LINK_BASE": "https://github.com/o/r/blob/abc/", "BASELINE": ""}
    steps = _steps("audit")
    for name in ("Submission folders changed by this pull request", "Audit", "Reports in every format"):
        proc = subprocess.run(["bash", "-e", "-c", steps[name]["run"]], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, (name, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert (repo / "folders.txt").read_text().splitlines() == [
        "records/track_10min_16mb/2026-01-01_Base", "records/track_10min_16mb/2026-02-02_New Cache"]
    outputs = dict(line.split("=", 1) for line in out_file.read_text().splitlines())
    assert outputs["count"] == "2" and outputs["exit-code"] in ("0", "1")
    reports = check_output("json", (repo / "golf-audit.json").read_text(), many=True)
    assert outputs["exit-code"] == str(max({"pass": 0, "fail": 1, "error": 2}[r["verdict"]] for r in reports))
    check_output("sarif", (repo / "golf-audit.sarif").read_text())
    assert ET.parse(repo / "golf-audit.junit.xml").getroot().tag == "testsuites"
    md = (repo / "golf-audit.md").read_text()
    assert md.startswith("<!-- golf-audit report -->") and summary.read_text() == md
