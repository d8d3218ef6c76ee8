"""Where a report goes: the destination checks, the baseline gate, the render options and the write.

Shared by the one-submission commands (cli.py) and the commands over many (reports/commands.py).
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import sys
from pathlib import Path

from harness import AuditError


def check_destinations(args: argparse.Namespace) -> None:
    """Refuse a bad --baseline or --output before any work, not after a long audit."""
    if getattr(args, "baseline", None):
        from reports import baseline

        baseline.load(args.baseline)
    for opt in ("output", "write_baseline"):
        dest = getattr(args, opt, None)
        if dest and not Path(dest).resolve().parent.is_dir():
            what = "report" if opt == "output" else "baseline"
            raise AuditError(f"{dest}: cannot write {what}: {os.strerror(errno.ENOENT)}")


def gate(reports: list, args: argparse.Namespace) -> None:
    """Apply --baseline, then --write-baseline (which accepts what it writes), to the reports."""
    from reports import baseline

    if args.baseline:
        accepted = baseline.load(args.baseline)
        for r in reports:
            baseline.apply(r, accepted)
    if args.write_baseline:
        n = baseline.write(args.write_baseline, reports)
        accepted = baseline.load(args.write_baseline)
        for r in reports:
            baseline.apply(r, accepted)
        print(f"golf-audit: wrote {n} accepted finding(s) to {args.write_baseline}", file=sys.stderr)


def render_options(args: argparse.Namespace) -> dict:
    tty = not args.output and sys.stdout.isatty()
    opts = {"color": args.color or (tty and not os.environ.get("NO_COLOR")), "link_base": args.link_base}
    if tty:
        opts["width"] = shutil.get_terminal_size().columns
    return opts


def emit(text: str, output: str | None) -> None:
    if output:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise AuditError(f"{output}: cannot write report: {e.strerror}") from None
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
