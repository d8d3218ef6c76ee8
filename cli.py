"""golf-audit command line: parse, load the submission, run parts, render one report.

Exit codes: 0 no error-level finding and every part asked for ran, 1 at least one, 2 a part asked
for could not run or the audit could not be done (one line on stderr, never a traceback; set
GOLF_AUDIT_DEBUG=1 to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness import AuditError, __version__
from reports.output import check_destinations, emit, gate, render_options
from reports.model import plain

# command -> the parts it runs, in order
COMMAND_PARTS = {
    "audit": ["data", "claims", "static", "probes", "reproduction"],
    "check": ["static"],
    "claims": ["claims"],
    "probe": ["probes"],
    "reproduce": ["data", "reproduction"],
}


class Parser(argparse.ArgumentParser):
    """Usage errors in one line, as every other error (the full usage is one --help away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from reports.render import formats

    common = Parser(add_help=False)
    common.add_argument("--format", default="text", choices=formats(), help="report format (default: text)")
    common.add_argument("--output", "-o", metavar="FILE", help="write the report to FILE (default: stdout)")
    common.add_argument("--artifact", metavar="FILE", help="trained artifact (default: the one in the folder)")
    common.add_argument("--val", metavar="GLOB", help="validation shards in the challenge format")
    common.add_argument("--tokenizer", metavar="FILE", help="sentencepiece model")
    common.add_argument("--max-tokens", type=int, metavar="N", help="evaluate a prefix of N validation tokens")
    common.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device for executed code")
    common.add_argument("--seed", type=int, default=0, help="seed for probes and sampling")
    common.add_argument("--no-exec", action="store_true", help="never run submission code")
    common.add_argument("--python", metavar="EXE", help="interpreter for sandboxed submission code")
    common.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="where no sandbox (bubblewrap) can start, run submission code anyway, with "
                             "resource limits and audit hooks only (default: refuse, exit 2)")
    common.add_argument("--baseline-bpb", type=float, metavar="BPB", help="record to beat, for the significance test")
    common.add_argument("--baseline-record", metavar="DIR",
                        help="record to beat as a submission folder: its logs give the per-seed val_bpb for the Welch test")
    common.add_argument("--baseline", metavar="FILE", help="accepted findings: only new ones fail the gate")
    common.add_argument("--write-baseline", metavar="FILE",
                        help="accept every current warning and error: write them to FILE as a baseline")
    common.add_argument("--link-base", metavar="URL",
                        help="prefix for file links in the markdown report (default: repository-relative links)")
    common.add_argument("--color", action="store_true", help="color in the text report even when not a terminal")

    ap = Parser(prog="golf-audit", description="Compliance audit for Parameter Golf submissions.")
    ap.add_argument("--version", action="version", version=f"golf-audit {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "audit": "everything that applies: data, claims, static rules, probes, reproduction",
        "check": "static rules only (never runs submission code)",
        "claims": "folder layout, submission.json, README, logs, caps, significance",
        "probe": "causality probes on the submission's own eval pipeline (sandboxed)",
        "reproduce": "load the artifact, rerun the eval, compare with the claim (sandboxed)",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.add_argument("path", help="submission folder" + (" or .py file" if name == "check" else ""))
        if name in ("audit", "probe"):
            p.add_argument("--profile", default="default", choices=["ci", "default", "thorough"],
                           help="probe search budget: examples and seconds per probe (default: default)")
        if name in ("audit", "reproduce"):
            p.add_argument("--nproc", default=1, type=nproc_arg, metavar="N",
                           help="run the reproduction's eval in N processes as torchrun would (gloo on CPU, NCCL "
                                "on GPUs), and compare with one process; 'launch': the submission's own world size")
        if name == "probe":
            p.add_argument("--replay", metavar="SPEC",
                           help="run one probe on one example, as printed with a counterexample (name:key=value,...)")
    p = sub.add_parser("scan", parents=[common], help="every submission folder under TREE, with a summary table")
    p.add_argument("path", metavar="TREE", nargs="+", help="folders to search (a file stands for its submission folder)")
    p.add_argument("--mode", default="check", choices=["check", "claims", "audit"], help="what to run on each folder")
    p.add_argument("--jobs", "-j", type=int, default=2, help="parallel processes (default: 2)")
    p.add_argument("--timeout", type=float, default=3600, metavar="SECONDS",
                   help="wall-clock limit per folder; a folder over it shows as error (default: 3600)")
    p.add_argument("--list", action="store_true", help="only print the submission folders found, one a line")
    p = sub.add_parser("render", parents=[common], help="render a saved JSON report (or scan) in another format")
    p.add_argument("path", metavar="REPORT", help="a file written by --format json")
    sub.add_parser("rules", parents=[common], help="list the static rules")
    p = sub.add_parser("explain", help="show one rule: what it does, why, example, fix")
    p.add_argument("rule")
    return ap


def nproc_arg(text: str) -> int | str:
    from checks.reproduce import NPROC_LAUNCH

    if text == NPROC_LAUNCH:
        return text
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"expected a number of processes from 1 to 64 or {NPROC_LAUNCH!r}, got {text!r}")
    return int(text)


def options_from(args: argparse.Namespace):
    from checks.parts import AuditOptions

    if args.max_tokens is not None and args.max_tokens < 1:
        raise AuditError("--max-tokens must be a positive number of tokens")
    if args.baseline_bpb is not None and not (0 < args.baseline_bpb < 100):
        raise AuditError("--baseline-bpb must be a positive val_bpb")
    if args.baseline_record is not None and not Path(args.baseline_record).is_dir():
        raise AuditError(f"--baseline-record {args.baseline_record}: not a folder")
    check_destinations(args)
    return AuditOptions(
        command=args.command,
        artifact=args.artifact,
        val=args.val,
        tokenizer=args.tokenizer,
        max_tokens=args.max_tokens,
        device=args.device,
        nproc=getattr(args, "nproc", 1),
        seed=args.seed,
        no_exec=args.no_exec,
        python=args.python,
        unsafe_no_sandbox=args.unsafe_no_sandbox,
        baseline_bpb=args.baseline_bpb,
        baseline_record=args.baseline_record,
        baseline=args.baseline,
        progress=sys.stderr.isatty(),
        profile=getattr(args, "profile", None) or "default",
        extra={"replay": getattr(args, "replay", None)} if getattr(args, "replay", None) else {},
    )


def run_command(args: argparse.Namespace):
    """Build the Report for a submission command."""
    from checks.parts import run_parts
    from harness.submission import load_submission
    from reports.model import Report

    opts = options_from(args)
    sub = load_submission(args.path)
    from reports import progress

    report = Report(submission=args.path)
    for part in COMMAND_PARTS[args.command]:
        with progress.task(opts.progress, f"{args.command} {args.path}: {part}"):
            run_parts(sub, opts, [part], report)
    report.inputs = sub.input_hashes()
    return report


def render_saved(args: argparse.Namespace) -> int:
    """``golf-audit render REPORT``: a JSON report or scan list, shown in --format."""
    import json

    from reports.model import Report
    from reports.render import render, render_many

    try:
        doc = json.loads(Path(args.path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AuditError(f"{args.path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AuditError(f"{args.path}: not a JSON report: {e}") from None
    try:
        reports = [Report.from_dict(d) for d in doc] if isinstance(doc, list) else [Report.from_dict(doc)]
    except (ValueError, AttributeError) as e:
        raise AuditError(f"{args.path}: {e}") from None
    gate(reports, args)
    opts = render_options(args)
    text = render_many(reports, args.format, **opts) if isinstance(doc, list) else render(reports[0], args.format, **opts)
    emit(text, args.output)
    return max((r.exit_code for r in reports), default=0)


def dispatch(args: argparse.Namespace) -> int:
    from reports.render import render

    if args.command in ("rules", "explain", "scan"):
        from reports import commands

        return getattr(commands, args.command)(args)
    if args.command == "render":
        return render_saved(args)
    report = run_command(args)
    gate([report], args)
    emit(render(report, args.format, **render_options(args)), args.output)
    if report.error:  # the report says what was done; one line on stderr says why the rest was not
        print(f"golf-audit: error: {plain(report.error)}", file=sys.stderr)
    elif report.verdict == "incomplete":
        first = report.incomplete[0]
        more = f" (and {len(report.incomplete) - 1} more)" if len(report.incomplete) > 1 else ""
        print(f"golf-audit: incomplete: {plain(first.part)} could not run: {plain(first.reason)}{more}", file=sys.stderr)
    return report.exit_code


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse already printed its one-line usage error
        return 2 if e.code not in (0, None) else 0
    try:
        return dispatch(args)
    except AuditError as e:
        print(f"golf-audit: error: {plain(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("golf-audit: interrupted", file=sys.stderr)
        return 2
    except Exception as e:  # never a traceback for a user; the message says what broke
        if os.environ.get("GOLF_AUDIT_DEBUG"):
            raise
        msg = str(e).splitlines()[0] if str(e) else ""
        print(f"golf-audit: internal error: {type(e).__name__}: {msg} (set GOLF_AUDIT_DEBUG=1 for details)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
