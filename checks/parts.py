"""The audit parts and the options they share; ``run_parts`` fills one Report.

A part is a function ``run(sub, opts, report)`` that adds findings, probe results, claims or
reproduction numbers to the report. A part that was asked for and cannot examine the submission
calls ``report.could_not_run(part, reason)``: the verdict is then "incomplete" (exit 2), never a
pass. Only a part with nothing to run on by design (``--no-exec``; no artifact in the folder under
``audit``) calls ``report.skip(part, reason)``. It raises AuditError only when the input makes the
whole audit impossible.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

from harness import AuditError
from harness.launch import Launch, resolve_launch
from harness.submission import Submission
from reports.model import Report

# name -> "module:function"; order is the order an audit runs them in.
PARTS: dict[str, str] = {
    "data": "checks.data:run",
    "claims": "checks.claims:run",
    "static": "checks.static:run",
    "probes": "checks.probes:run",
    "reproduction": "checks.reproduce:run",
}
# Parts that execute submission code (in the sandbox); --no-exec skips them.
EXECUTING_PARTS = {"probes", "reproduction"}


@dataclass
class AuditOptions:
    command: str = "audit"  # the CLI command the parts run under (what was asked for)
    artifact: str | None = None
    val: str | None = None
    tokenizer: str | None = None
    max_tokens: int | None = None
    device: str = "cpu"
    nproc: int | str = 1  # processes the reproduction's eval runs in, or "launch" (checks/reproduce.py)
    seed: int = 0
    no_exec: bool = False
    python: str | None = None  # interpreter for sandboxed submission code
    unsafe_no_sandbox: bool = False  # run submission code even where no sandbox can start
    baseline_bpb: float | None = None
    baseline_record: str | None = None  # a submission folder: the record to beat, per seed
    baseline: str | None = None  # file of accepted findings
    profile: str = "default"  # hypothesis profile for probes
    progress: bool = False
    extra: dict = field(default_factory=dict)
    launch: Launch | None = None  # the submission's official launch, resolved once (launch_of)


def launch_of(sub: Submission, opts: AuditOptions) -> Launch:
    """The launch every part reads: the one the folder describes for its claimed result
    (harness/launch.py), resolved on first use and kept in ``opts``."""
    if opts.launch is None:
        from checks.claims import read_claims

        opts.launch = resolve_launch(sub.root, read_claims(sub))
    return opts.launch


def load_part(name: str) -> Callable | None:
    module, func = PARTS[name].split(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (e.name == module or module.startswith(e.name + ".")):
            return None  # the part is not part of this build
        raise
    return getattr(mod, func)


def run_parts(sub: Submission, opts: AuditOptions, names: list[str], report: Report) -> Report:
    report.launch = launch_of(sub, opts).to_report()
    for name in names:
        if opts.no_exec and name in EXECUTING_PARTS:
            report.skip(name, "--no-exec: this part runs submission code")
            continue
        run = load_part(name)
        if run is None:
            report.could_not_run(name, "this part is missing from this installation of golf-audit")
            continue
        before = len(report.findings)
        try:
            run(sub, opts, report)
        except AuditError:
            raise
        finally:
            for f in report.findings[before:]:
                f.part = f.part or name
        report.parts_run.append(name)
    return report
