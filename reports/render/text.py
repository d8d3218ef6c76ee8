"""Terminal report for a reviewer (rich): verdict line, findings by condition with code frames,
probes with counterexamples and replay commands, claimed and reproduced numbers side by side,
and the parts that were skipped with the reason. ``render_many`` is the scan summary table.

Every string from the report is shown as ``Text`` (never parsed as rich markup); it arrives here
without control characters (reports.render), so no terminal escape from a submission is printed.
"""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from reports.model import CONDITION_TITLES, CONDITIONS, Report
from reports.render.common import evidence_line, finding_path, fmt_value, launch_command, launch_rows, launch_summary

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "incomplete": "bold yellow", "error": "bold magenta"}
PROBE_STYLE = {"pass": "green", "fail": "bold red", "skipped": "dim", "could-not-run": "bold yellow"}
# (label, claims key, reproduction key) rows of the numbers table; a missing side shows "–".
NUMBER_ROWS = [
    ("val_bpb", "claimed_bpb", "reproduced_bpb"),
    ("val_bpb in the logs", None, "reported_bpb"),
    ("legal val_bpb", None, "legal_bpb"),
    ("scored tokens", "tokens", "tokens"),
    ("bytes total", "bytes_total", None),
    ("bytes code", "bytes_code", None),
]


def _console(color: bool, width: int) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=color, no_color=not color, width=width, highlight=False,
                   soft_wrap=False), buf


def render(report: Report, color: bool = False, width: int = 100, **_: Any) -> str:
    console, buf = _console(color, width)
    report.sorted()
    active = report.active_findings()
    counts = {s: sum(1 for f in active if f.severity == s) for s in ("error", "warning", "info")}
    accepted = len(report.findings) - len(active)
    line = Text.assemble(
        ("verdict: ", "bold"),
        (report.verdict.upper(), VERDICT_STYLE[report.verdict]),
        "  ",
        (report.submission, "bold"),
        f"  {counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info",
    )
    if accepted:
        line.append(f", {accepted} accepted by baseline or allow", style="dim")
    console.print(line)
    console.print(Text(f"golf-audit  parts run: {', '.join(report.parts_run) or 'none'}", style="dim"))
    console.print(Text(evidence_line(report), style="dim"))
    if report.error:
        console.print(Text(f"audit could not be done: {report.error}", style="magenta"))
    _findings(console, report)
    _probes(console, report)
    _numbers(console, report)
    _launch(console, report)
    if report.incomplete:
        console.print(Text("\nCould not run (the audit is incomplete: not a pass)", style="bold yellow"))
        for s in report.incomplete:
            console.print(Text.assemble(("  " + s.part, "bold yellow"), f": {s.reason}"))
    if report.skipped:
        console.print(Text("\nSkipped", style="bold"))
        for s in report.skipped:
            console.print(Text.assemble(("  " + s.part, "bold dim"), (f": {s.reason}", "dim")))
    return buf.getvalue()


def _launch(console: Console, report: Report) -> None:
    summary = launch_summary(report)
    if summary is None:
        return
    console.print(Text.assemble(("\nLaunch", "bold"), (f"  {summary}", "dim")))
    command = launch_command(report)
    if command:
        console.print(Text(f"  {command}", style="dim"))
    t = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 2))
    for _ in range(3):
        t.add_column(overflow="fold")
    for name, value, source in launch_rows(report):
        t.add_row(Text(name), Text(value), Text(source, style="dim"))
    console.print(t)


def _findings(console: Console, report: Report) -> None:
    for cond in CONDITIONS:
        group = [f for f in report.findings if f.condition == cond]
        if not group:
            continue
        console.print(Text(f"\n{CONDITION_TITLES[cond]}", style="bold underline"))
        for f in group:
            path, own = finding_path(report, f)
            where = path + (f":{f.line}" if own and f.line else "") + (f":{f.column}" if own and f.line and f.column else "")
            head = Text.assemble(
                (f"  {f.severity:<7} ", SEVERITY_STYLE[f.severity] if not f.suppressed else "dim"),
                (f"{f.rule} ", "bold"),
                (f"[{f.family}] ", "magenta"),
                (where if own else "", "underline"),
            )
            if f.suppressed:
                head.append(f"  accepted: {f.suppressed}", style="dim")
            console.print(head)
            console.print(Text(f"    {f.message}"))
            if f.code_frame:
                console.print(Text(_indent(f.code_frame.rstrip("\n"), 6), style="dim" if f.suppressed else ""))
            if f.why and f.why != f.message:
                console.print(Text(f"    why: {f.why}", style="dim"))
            if f.fix and f.severity != "info":
                console.print(Text(f"    fix: {f.fix}", style="green"))


def _probes(console: Console, report: Report) -> None:
    if not report.probes:
        return
    t = Table(title="Causality probes", title_justify="left", title_style="bold", expand=False)
    for col in ("probe", "condition", "status", "detail"):
        t.add_column(col, overflow="fold")
    for p in report.probes:
        t.add_row(Text(p.probe), Text(p.condition or "–"), Text(p.status, style=PROBE_STYLE[p.status]), Text(p.detail))
    console.print()
    console.print(t)
    for p in report.probes:
        if p.counterexample:
            console.print(Text(f"  {p.probe} counterexample:", style="bold red"))
            for k, v in p.counterexample.items():
                console.print(Text(f"    {k}: {json.dumps(v) if not isinstance(v, str) else v}"))
        if p.replay:
            console.print(Text.assemble(("    replay: ", "dim"), (p.replay, "bold")))


def _numbers(console: Console, report: Report) -> None:
    claims, repro = report.claims or {}, report.reproduction or {}
    if not claims and not repro:
        return
    t = Table(title="Claims and reproduction", title_justify="left", title_style="bold", expand=False)
    t.add_column("")
    t.add_column("claimed", justify="right")
    t.add_column("reproduced", justify="right")
    shown = set()
    for label, ck, rk in NUMBER_ROWS:
        cv, rv = claims.get(ck) if ck else None, repro.get(rk) if rk else None
        if cv is None and rv is None:
            continue
        shown.update({("c", ck), ("r", rk)})
        t.add_row(Text(label), Text(fmt_value(cv)), Text(fmt_value(rv)))
    # Whatever else the parts recorded (per-seed numbers, prefix notes), in its own column.
    for k, v in claims.items():
        if ("c", k) not in shown and v is not None:
            t.add_row(Text(k), Text(fmt_value(v, k)), "")
    for k, v in repro.items():
        if ("r", k) not in shown and v is not None:
            t.add_row(Text(k), "", Text(fmt_value(v, k)))
    console.print()
    console.print(t)


def render_many(reports: list[Report], color: bool = False, width: int = 160, root: str | None = None, **_: Any) -> str:
    """The scan summary: one row per folder, worst first within the tree's order."""
    console, buf = _console(color, width)
    t = Table(title=f"golf-audit scan{f' of {root}' if root else ''}: {len(reports)} folder(s)",
              title_justify="left", title_style="bold", expand=False)
    t.add_column("folder", overflow="fold")
    t.add_column("verdict")
    t.add_column("families found", overflow="fold")
    t.add_column("claimed BPB", justify="right")
    t.add_column("reproduced BPB", justify="right")
    t.add_column("not run", overflow="fold", style="dim")
    for r in reports:
        name = r.submission
        if root and name.startswith(root.rstrip("/") + "/"):
            name = name[len(root.rstrip("/")) + 1:]
        active = r.active_findings()
        fams = Text()
        for sev in ("error", "warning"):
            for fam in sorted({f.family for f in active if f.severity == sev}):
                if fam not in fams.plain.split(", "):
                    if fams.plain:
                        fams.append(", ")
                    fams.append(fam, style=SEVERITY_STYLE[sev])
        verdict = Text(r.verdict, style=VERDICT_STYLE[r.verdict])
        if r.error:
            fams = Text(r.error, style="magenta")
        t.add_row(Text(name), verdict, fams if fams.plain else Text("–", style="dim"),
                  Text(fmt_value((r.claims or {}).get("claimed_bpb"))), Text(fmt_value((r.reproduction or {}).get("reproduced_bpb"))),
                  Text(", ".join([s.part for s in r.incomplete] + [s.part for s in r.skipped])))
    console.print(t)
    tally = {v: sum(r.verdict == v for r in reports) for v in ("pass", "fail", "incomplete", "error")}
    console.print(Group(Text.assemble(*[(f"{n} {v}  ", VERDICT_STYLE[v]) for v, n in tally.items()])))
    return buf.getvalue()


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.splitlines())
