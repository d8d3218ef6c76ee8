"""Terminal report for a reviewer (rich): verdict, findings by condition, probes, numbers."""

from __future__ import annotations

import io

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from reports.model import CONDITIONS, Report

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "error": "bold magenta"}
CONDITION_TITLE = {
    "C1": "C1 strict causal dependence",
    "C2": "C2 full normalized distribution",
    "C3": "C3 score before update",
    "C4": "C4 single left-to-right pass",
    "rules": "Challenge rules",
}


def render(report: Report, color: bool = False, width: int = 100, **_) -> str:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=color, no_color=not color, width=width, highlight=False)
    d = report.to_dict()
    counts = {s: sum(1 for f in report.active_findings() if f.severity == s) for s in ("error", "warning", "info")}
    console.print(
        Text.assemble(
            ("golf-audit ", "bold"),
            (f"{d['tool']['version']}  ", "dim"),
            (report.submission, "bold"),
            "  verdict: ",
            (report.verdict.upper(), VERDICT_STYLE[report.verdict]),
            f"  ({counts['error']} errors, {counts['warning']} warnings, {counts['info']} info)",
        )
    )
    if report.error:
        console.print(Text(f"audit could not be done: {report.error}", style="magenta"))
    for cond in CONDITIONS:
        group = [f for f in report.findings if f.condition == cond]
        if not group:
            continue
        console.print(Text(f"\n{CONDITION_TITLE[cond]}", style="bold underline"))
        for f in group:
            where = f"{f.path}:{f.line}" if f.path and f.line else (f.path or "")
            head = Text.assemble(
                (f"  {f.severity:<7} ", SEVERITY_STYLE[f.severity]),
                (f"{f.rule} ", "bold"),
                (f"[{f.family}] ", "magenta"),
                (where, "underline"),
            )
            if f.suppressed:
                head.append(f"  (accepted: {f.suppressed})", style="dim")
            console.print(head)
            console.print(Text(f"    {f.message}"))
            if f.code_frame:
                console.print(Text(_indent(f.code_frame, 6), style="dim"))
            if f.fix and f.severity != "info":
                console.print(Text(f"    fix: {f.fix}", style="green"))
    if report.probes:
        t = Table(title="Causality probes", title_justify="left", show_lines=False, expand=False)
        for col in ("probe", "status", "detail"):
            t.add_column(col)
        for p in report.probes:
            style = {"pass": "green", "fail": "bold red", "skipped": "dim"}[p.status]
            t.add_row(p.probe, Text(p.status, style=style), p.detail)
        console.print()
        console.print(t)
        for p in report.probes:
            if p.counterexample:
                console.print(Text(f"  {p.probe} counterexample: {p.counterexample}", style="red"))
            if p.replay:
                console.print(Text(f"  replay: {p.replay}", style="dim"))
    if report.claims:
        console.print()
        console.print(Panel(_kv(report.claims), title="Claims", title_align="left", expand=False))
    if report.reproduction:
        console.print()
        console.print(Panel(_kv(report.reproduction), title="Reproduction", title_align="left", expand=False))
    if report.skipped:
        console.print(Text("\nSkipped parts", style="bold"))
        for s in report.skipped:
            console.print(Text(f"  {s.part}: {s.reason}", style="dim"))
    return buf.getvalue()


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.splitlines())


def _kv(d: dict) -> str:
    lines = []
    for k, v in d.items():
        if isinstance(v, float):
            v = f"{v:.8f}"
        lines.append(f"{k}: {v}")
    return "\n".join(lines)
