"""Markdown for a pull-request comment: verdict, findings with links to lines, probes, numbers.

Links are relative to the repository root (``records/x/train_gpt.py#L12``); ``link_base`` (the
CLI's ``--link-base``, e.g. ``https://github.com/OWNER/REPO/blob/SHA/``) makes them absolute for
places where relative links do not resolve, such as PR comments. The first line is a marker the
workflow uses to find and update its own comment.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

from harness import __version__
from reports.model import CONDITION_TITLES, CONDITIONS, RULE_SET_VERSION, Report
from reports.render.common import finding_path, fmt_value, launch_command, launch_rows, launch_summary

MARKER = "<!-- golf-audit report -->"
VERDICT_BADGE = {"pass": "✅ PASS", "fail": "❌ FAIL", "error": "⚠️ ERROR"}
SEVERITY_BADGE = {"error": "🔴 error", "warning": "🟡 warning", "info": "🔵 info"}
PROBE_BADGE = {"pass": "✅ pass", "fail": "❌ fail", "skipped": "⏭️ skipped"}
# A PR comment holds at most 65,536 characters; long tables are cut with a count of the rest.
MAX_ROWS = 60
NUMBER_ROWS = [
    ("val_bpb", ("claims", "claimed_bpb"), ("reproduction", "reported_bpb"), ("reproduction", "reproduced_bpb"), ("reproduction", "legal_bpb")),
]


def render(report: Report, link_base: str | None = None, **_: Any) -> str:
    return "\n".join([MARKER, *_report_lines(report, link_base, level=2), "", _footer()]) + "\n"


def render_many(reports: list[Report], link_base: str | None = None, **_: Any) -> str:
    worst = max(reports, key=lambda r: r.exit_code).verdict if reports else "pass"
    lines = [MARKER, f"## golf-audit: {VERDICT_BADGE[worst]} — {len(reports)} submission(s)", "",
             "| submission | verdict | errors | warnings | families | claimed BPB | reproduced BPB |",
             "|---|---|---:|---:|---|---:|---:|"]
    for r in reports:
        act = r.active_findings()
        fams = sorted({f.family for f in act if f.severity in ("error", "warning")})
        lines.append(_row(_code(r.submission), VERDICT_BADGE[r.verdict],
                          sum(f.severity == "error" for f in act), sum(f.severity == "warning" for f in act),
                          ", ".join(f"`{x}`" for x in fams) or "–",
                          fmt_value((r.claims or {}).get("claimed_bpb")),
                          fmt_value((r.reproduction or {}).get("reproduced_bpb"))))
    for r in reports:
        if r.verdict == "pass" and not r.probes and not r.claims and not r.reproduction:
            continue
        lines += ["", "<details" + (" open" if r.verdict != "pass" else "") + f"><summary><b>{_esc(r.submission)}</b>: "
                  f"{VERDICT_BADGE[r.verdict]}</summary>", ""]
        lines += _report_lines(r, link_base, level=3)
        lines += ["", "</details>"]
    lines += ["", _footer()]
    return "\n".join(lines) + "\n"


def _report_lines(r: Report, link_base: str | None, level: int) -> list[str]:
    h = "#" * level
    act = r.active_findings()
    counts = {s: sum(f.severity == s for f in act) for s in ("error", "warning", "info")}
    out = [f"{h} golf-audit: {VERDICT_BADGE[r.verdict]} — `{r.submission}`", "",
           f"**{counts['error']} error(s)**, {counts['warning']} warning(s), {counts['info']} info"
           + (f", {len(r.findings) - len(act)} accepted" if len(r.findings) != len(act) else "")]
    if r.error:
        out += ["", f"> **The audit could not be done:** {_esc(r.error)}"]
    if r.findings:
        out += ["", f"{h}# Findings", "", "| | rule | family | condition | where | message |", "|---|---|---|---|---|---|"]
        order = {c: i for i, c in enumerate(CONDITIONS)}
        rows = sorted(r.findings, key=lambda f: (order.get(f.condition, 9), ("error", "warning", "info").index(f.severity)))
        for f in rows[:MAX_ROWS]:
            sev = SEVERITY_BADGE[f.severity] + (" (accepted)" if f.suppressed else "")
            msg = f.message + (f" **Fix:** {f.fix}" if f.fix and f.severity != "info" else "")
            out.append(_row(sev, f"`{f.rule}`", f"`{f.family}`", f.condition, _where(r, f, link_base), msg))
        if len(rows) > MAX_ROWS:
            out.append(f"\n… and {len(rows) - MAX_ROWS} more finding(s); run `golf-audit` locally for all of them.")
    if r.probes:
        out += ["", f"{h}# Causality probes", "", "| probe | condition | status | detail | counterexample |", "|---|---|---|---|---|"]
        for p in r.probes:
            cex = f"`{json.dumps(p.counterexample, sort_keys=True)}`" if p.counterexample else "–"
            out.append(_row(f"`{p.probe}`", p.condition or "–", PROBE_BADGE[p.status], p.detail, cex))
        replays = [p for p in r.probes if p.replay]
        if replays:
            out += ["", "Replay a counterexample:", "", "```bash", *[p.replay for p in replays], "```"]
    if r.claims or r.reproduction:
        out += ["", f"{h}# Numbers", "", "| | claimed | reported (logs) | reproduced | legal |", "|---|---:|---:|---:|---:|"]
        for label, *cells in NUMBER_ROWS:
            out.append(_row(label, *(fmt_value((getattr(r, part) or {}).get(key)) for part, key in cells)))
        extra = {**{f"claims.{k}": v for k, v in (r.claims or {}).items() if k != "claimed_bpb"},
                 **{f"reproduction.{k}": v for k, v in (r.reproduction or {}).items()
                    if k not in ("reported_bpb", "reproduced_bpb", "legal_bpb")}}
        if extra:
            out += ["", "| detail | value |", "|---|---|", *[_row(f"`{k}`", fmt_value(v)) for k, v in extra.items()]]
    out += _launch_lines(r, h)
    if r.skipped:
        out += ["", "<details><summary>Skipped parts</summary>", "", *[f"- **{s.part}**: {_esc(s.reason)}" for s in r.skipped],
                "", "</details>"]
    return out


def _launch_lines(r: Report, h: str) -> list[str]:
    summary = launch_summary(r)
    if summary is None:
        return []
    out = ["", f"<details><summary>Launch: {_esc(summary)}</summary>", ""]
    command = launch_command(r)
    if command:
        out += [_code_block(command), ""]
    out += ["| variable | value | from |", "|---|---|---|", *[_row(f"`{k}`", v, s) for k, v, s in launch_rows(r)]]
    return out + ["", "</details>"]


def _code_block(text: str) -> str:
    """A fenced block that the text cannot close (its fence is longer than any backtick run in it)."""
    runs = [len(m) for m in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}bash\n{text}\n{fence}"


def _where(r: Report, f, link_base: str | None) -> str:
    path, own = finding_path(r, f)
    if not own:
        return "–"
    label = f"{posixpath.basename(path)}:{f.line}" if f.line else posixpath.basename(path)
    if posixpath.isabs(path):
        return f"`{label}`"
    target = (link_base or "") + path + (f"#L{f.line}" + (f"-L{f.end_line}" if f.end_line and f.end_line > f.line else "") if f.line else "")
    return f"[`{label}`]({target})"


def _footer() -> str:
    return f"<sub>golf-audit {__version__}, rule set {RULE_SET_VERSION}. Conditions: " + "; ".join(
        CONDITION_TITLES[c] for c in CONDITIONS if c != "rules") + ".</sub>"


def _esc(text: str) -> str:
    return str(text).replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    return f"`{text}`"


def _row(*cells: object) -> str:
    return "| " + " | ".join(_esc(str(c)).replace("|", "\\|").replace("\n", "<br>") for c in cells) + " |"
