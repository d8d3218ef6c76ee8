"""Static compliance rules: ``run(sub, opts, report)`` checks a submission's Python code without running it.

The engine (``engine.py``) parses every Python file of the submission with libcst (unpacking
self-extracting wrappers), runs a label-flow analysis over them together (the ``flow`` package) and hands the
events to the rules in ``rules/`` (one rule per file, each with its own valid and invalid examples).
"""

from __future__ import annotations

from checks.parts import launch_of
from harness.submission import Submission
from reports.model import Finding, Report

from .engine import all_rules, check_files  # noqa: F401 - all_rules re-exported for commands and renderers


# engine notes that say a file was not checked at all (others, such as a wrapper that could not be
# unpacked, leave its outer code checked)
UNCHECKED = (": not parsed as Python", ": not analysed", ": cannot read:", " bytes, not checked")


def run(sub: Submission, opts, report: Report) -> None:
    if not sub.sources:
        report.could_not_run("static", "no Python files in the submission to check")
        return
    findings, notes = check_files(sub.root, sub.sources, launch_of(sub, opts).env, logs=sub.logs)
    for f in findings:
        path = sub.display(sub.root / f["rel"])
        report.add(Finding(rule=f["rule"], family=f["family"], severity=f["severity"], message=f["message"], path=path,
                           line=f["line"], column=f["column"], why=f["why"], fix=f["fix"], code_frame=f["code_frame"],
                           suppressed=f["suppressed"]))
        if f.get("unchecked") and not f["suppressed"]:
            # validation data processed in code no rule reads (native code): not examined, so never a pass
            report.could_not_run("static", f"{path}:{f['line']}: {f['message']}")
    entry = sub.rel(sub.entry) if sub.entry is not None else None
    for note in notes:
        rel = note.split(":", 1)[0]
        report.add(Finding(rule="GA001", family="structure", severity="warning", message=note,
                           path=sub.display(sub.root / rel)))
        if rel == entry and any(m in note for m in UNCHECKED) and not report.error:
            # The entry's code could not be read at all: the check cannot be done, which is not a pass.
            report.error = f"static: {note}"
