"""Static compliance rules: ``run(sub, opts, report)`` checks a submission's Python code without running it.

The engine (``engine.py``) parses every Python file of the submission with libcst (unpacking
self-extracting wrappers), runs a label-flow analysis over them together (``flow.py``) and hands the
events to the rules in ``rules/`` (one rule per file, each with its own valid and invalid examples).
"""

from __future__ import annotations

from harness.submission import Submission
from reports.model import Finding, Report

from .engine import all_rules, check_files, read_readme  # noqa: F401 - all_rules re-exported for commands and renderers


def run(sub: Submission, opts, report: Report) -> None:
    if not sub.sources:
        report.skip("static", "no Python files in the submission")
        return
    findings, notes = check_files(sub.root, sub.sources, read_readme(sub))
    for f in findings:
        path = sub.display(sub.root / f["rel"])
        report.add(Finding(rule=f["rule"], family=f["family"], severity=f["severity"], message=f["message"], path=path,
                           line=f["line"], column=f["column"], why=f["why"], fix=f["fix"], code_frame=f["code_frame"],
                           suppressed=f["suppressed"]))
    for note in notes:
        report.add(Finding(rule="GA001", family="structure", severity="warning", message=note,
                           path=sub.display(sub.root / note.split(":", 1)[0])))
