"""Baseline files: findings a maintainer has accepted, so the gate fails only on new ones.

A baseline is a JSON file written by ``--write-baseline FILE`` from one or more reports::

    {"golf_audit_baseline": 1,
     "accepted": [{"submission": "records/x", "fingerprint": "TIK001|train_gpt.py|…",
                   "rule": "TIK001", "path": "train_gpt.py", "message": "…"}]}

A finding is accepted when its submission folder (relative to the working directory) and
``Finding.fingerprint()`` (rule, path inside the folder and message with line numbers masked, so
moving code does not revive it) match an entry. Accepted
findings stay in the report, marked ``suppressed``, and no longer count for the verdict.
Entries are sorted, so a baseline diff in review shows exactly what was accepted.
"""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path

from harness import AuditError
from reports.model import Finding, Report

FORMAT_KEY = "golf_audit_baseline"
FORMAT_VERSION = 1


def submission_key(submission: str) -> str:
    """The folder as a stable key: relative to the working directory (the repository root in CI),
    forward slashes, no ``./``, no trailing slash."""
    path = submission
    if os.path.isabs(path):
        try:
            path = os.path.relpath(path)
        except ValueError:  # another drive: keep it absolute
            pass
    return posixpath.normpath(path.replace("\\", "/"))


def finding_key(report: Report, f: Finding) -> tuple[str, str]:
    """(folder, fingerprint) of a finding, whichever way its folder and path were typed."""
    return submission_key(report.submission), f.fingerprint(posixpath.normpath(report.submission.replace("\\", "/")))


def entries(reports: list[Report]) -> list[dict[str, str]]:
    """Baseline entries for every finding of the reports that is not info and not yet accepted."""
    out = {}
    for r in reports:
        for f in r.findings:
            if f.severity == "info" or (f.suppressed and not f.suppressed.startswith("baseline")):
                continue
            key = finding_key(r, f)
            out[key] = {"submission": key[0], "fingerprint": key[1], "rule": f.rule,
                        "family": f.family, "severity": f.severity, "path": f.path or "", "message": f.message}
    return [out[k] for k in sorted(out)]


def dumps(reports: list[Report]) -> str:
    return json.dumps({FORMAT_KEY: FORMAT_VERSION, "accepted": entries(reports)}, indent=2, ensure_ascii=False) + "\n"


def write(path: str, reports: list[Report]) -> int:
    """Write the baseline file; returns the number of accepted findings."""
    text = dumps(reports)
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as e:
        raise AuditError(f"{path}: cannot write baseline: {e.strerror}") from None
    return len(json.loads(text)["accepted"])


def load(path: str) -> set[tuple[str, str]]:
    """The accepted (submission, fingerprint) pairs of a baseline file; one-line errors on bad files."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AuditError(f"{path}: baseline file not found (write one with --write-baseline)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AuditError(f"{path}: cannot read baseline: {getattr(e, 'strerror', None) or e}") from None
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as e:
        raise AuditError(f"{path}: baseline is not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(doc, dict) or doc.get(FORMAT_KEY) != FORMAT_VERSION or not isinstance(doc.get("accepted"), list):
        raise AuditError(f"{path}: not a golf-audit baseline (expected {{\"{FORMAT_KEY}\": {FORMAT_VERSION}, \"accepted\": [...]}})")
    accepted = set()
    for i, e in enumerate(doc["accepted"]):
        if not isinstance(e, dict) or not isinstance(e.get("submission"), str) or not isinstance(e.get("fingerprint"), str):
            raise AuditError(f"{path}: baseline entry {i} needs string fields 'submission' and 'fingerprint'")
        accepted.add((submission_key(e["submission"]), e["fingerprint"]))
    return accepted


def apply(report: Report, accepted: set[tuple[str, str]]) -> int:
    """Mark the report's findings found in the baseline as accepted; returns how many."""
    n = 0
    for f in report.findings:
        if not f.suppressed and finding_key(report, f) in accepted:
            f.suppressed = "baseline: accepted finding"
            n += 1
    return n
