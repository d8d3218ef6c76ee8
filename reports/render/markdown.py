"""Markdown for a pull-request comment: verdict, findings with links to lines, probes, numbers.

Links are relative to the repository root (``records/x/train_gpt.py#L12``); ``link_base`` (the
CLI's ``--link-base``, e.g. ``https://github.com/OWNER/REPO/blob/SHA/``) makes them absolute for
places where relative links do not resolve, such as PR comments. The first line is a marker the
workflow uses to find and update its own comment.

Every string the report carries (messages, details, paths, errors, numbers read from the
submission's files) is text, not markup: ``_md`` escapes it for the places where Markdown is
read, ``_code`` puts it in a code span, ``_html`` escapes it inside HTML tags. Our own markup
(badges, bold labels, links to lines) is added around those pieces, never inside them.
"""

from __future__ import annotations

import html
import json
import posixpath
import re
from typing import Any
from urllib.parse import quote

from harness import __version__
from reports.model import CONDITION_TITLES, CONDITIONS, RULE_SET_VERSION, Report
from reports.render.common import evidence_line, finding_path, fmt_value, launch_command, launch_rows, launch_summary

# Punctuation that starts inline Markdown in running text: escapes, code, emphasis, links and
# images, autolinks and HTML, tables, strikethrough, math. Block syntax (headings, lists, quotes)
# cannot start mid-line, and every string shown is mid-line (newlines become <br>).
MD_ACTIVE = re.compile(r"([\\`*_\[\]<>|~!$])")
ZWSP = "\u200b"  # breaks what GitHub would link on its own: @mentions, #123, bare URLs
MARKER = "<!-- golf-audit report -->"
VERDICT_BADGE = {"pass": "✅ PASS", "fail": "❌ FAIL", "incomplete": "⚠️ INCOMPLETE", "error": "⚠️ ERROR"}
SEVERITY_BADGE = {"error": "🔴 error", "warning": "🟡 warning", "info": "🔵 info"}
PROBE_BADGE = {"pass": "✅ pass", "fail": "❌ fail", "skipped": "⏭️ skipped", "could-not-run": "⚠️ could not run"}
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
        lines.append(_row(_code(r.submission), Md(VERDICT_BADGE[r.verdict]),
                          sum(f.severity == "error" for f in act), sum(f.severity == "warning" for f in act),
                          Md(", ".join(_code(x) for x in fams) or "–"),
                          _md(fmt_value((r.claims or {}).get("claimed_bpb"))),
                          _md(fmt_value((r.reproduction or {}).get("reproduced_bpb")))))
    for r in reports:
        if r.verdict == "pass" and not r.probes and not r.claims and not r.reproduction:
            continue
        lines += ["", "<details" + (" open" if r.verdict != "pass" else "") + f"><summary><b>{_html(r.submission)}</b>: "
                  f"{VERDICT_BADGE[r.verdict]}</summary>", ""]
        lines += _report_lines(r, link_base, level=3)
        lines += ["", "</details>"]
    lines += ["", _footer()]
    return "\n".join(lines) + "\n"


def _report_lines(r: Report, link_base: str | None, level: int) -> list[str]:
    h = "#" * level
    act = r.active_findings()
    counts = {s: sum(f.severity == s for f in act) for s in ("error", "warning", "info")}
    out = [f"{h} golf-audit: {VERDICT_BADGE[r.verdict]} — {_code(r.submission)}", "",
           f"**{counts['error']} error(s)**, {counts['warning']} warning(s), {counts['info']} info"
           + (f", {len(r.findings) - len(act)} accepted" if len(r.findings) != len(act) else ""),
           "", f"<sub>{_md(evidence_line(r))}</sub>"]
    if r.error:
        out += ["", f"> **The audit could not be done:** {_md(r.error)}"]
    if r.findings:
        out += ["", f"{h}# Findings", "", "| | rule | family | condition | where | message |", "|---|---|---|---|---|---|"]
        order = {c: i for i, c in enumerate(CONDITIONS)}
        rows = sorted(r.findings, key=lambda f: (order.get(f.condition, 9), ("error", "warning", "info").index(f.severity)))
        for f in rows[:MAX_ROWS]:
            sev = Md(SEVERITY_BADGE[f.severity] + (" (accepted)" if f.suppressed else ""))
            msg = Md(_md(f.message) + (f" **Fix:** {_md(f.fix)}" if f.fix and f.severity != "info" else ""))
            out.append(_row(sev, _code(f.rule), _code(f.family), _md(f.condition), _where(r, f, link_base), msg))
        if len(rows) > MAX_ROWS:
            out.append(f"\n… and {len(rows) - MAX_ROWS} more finding(s); run `golf-audit` locally for all of them.")
    if r.probes:
        out += ["", f"{h}# Causality probes", "", "| probe | condition | status | detail | counterexample |", "|---|---|---|---|---|"]
        for p in r.probes:
            cex = _code(json.dumps(p.counterexample, sort_keys=True)) if p.counterexample else Md("–")
            out.append(_row(_code(p.probe), _md(p.condition or "–"), Md(PROBE_BADGE[p.status]), _md(p.detail), cex))
        replays = [p for p in r.probes if p.replay]
        if replays:
            out += ["", "Replay a counterexample:", "", *_fence([p.replay for p in replays], "bash")]
    if r.claims or r.reproduction:
        out += ["", f"{h}# Numbers", "", "| | claimed | reported (logs) | reproduced | legal |", "|---|---:|---:|---:|---:|"]
        for label, *cells in NUMBER_ROWS:
            out.append(_row(Md(label), *(_md(fmt_value((getattr(r, part) or {}).get(key))) for part, key in cells)))
        extra = {**{f"claims.{k}": v for k, v in (r.claims or {}).items() if k != "claimed_bpb"},
                 **{f"reproduction.{k}": v for k, v in (r.reproduction or {}).items()
                    if k not in ("reported_bpb", "reproduced_bpb", "legal_bpb")}}
        if extra:
            out += ["", "| detail | value |", "|---|---|", *[_row(_code(k), _md(fmt_value(v))) for k, v in extra.items()]]
    out += _launch_lines(r)
    if r.incomplete:
        out += ["", f"{h}# Could not run (the audit is incomplete: not a pass)", "",
                *[f"- **{_md(s.part)}**: {_md(s.reason)}" for s in r.incomplete]]
    if r.skipped:
        out += ["", "<details><summary>Skipped parts</summary>", "", *[f"- **{_md(s.part)}**: {_md(s.reason)}" for s in r.skipped],
                "", "</details>"]
    return out


def _launch_lines(r: Report) -> list[str]:
    summary = launch_summary(r)
    if summary is None:
        return []
    out = ["", f"<details><summary>Launch: {_html(summary)}</summary>", ""]
    command = launch_command(r)
    if command:
        out += [*_fence([command], "bash"), ""]
    out += ["| variable | value | from |", "|---|---|---|", *[_row(_code(k), v, s) for k, v, s in launch_rows(r)]]
    return out + ["", "</details>"]


def _where(r: Report, f, link_base: str | None) -> Md:
    path, own = finding_path(r, f)
    if not own:
        return Md("–")
    label = f"{posixpath.basename(path)}:{f.line}" if f.line else posixpath.basename(path)
    if posixpath.isabs(path):
        return _code(label)
    # The path is percent-encoded: a name with parentheses, spaces or brackets cannot end the link early.
    target = (link_base or "") + quote(path, safe="/-._~") + (
        f"#L{f.line}" + (f"-L{f.end_line}" if f.end_line and f.end_line > f.line else "") if f.line else "")
    return Md(f"[{_code(label)}]({target})")


def _footer() -> str:
    return f"<sub>golf-audit {__version__}, rule set {RULE_SET_VERSION}. Conditions: " + "; ".join(
        CONDITION_TITLES[c] for c in CONDITIONS if c != "rules") + ".</sub>"


class Md(str):
    """A string that is already Markdown (ours, or escaped by _md/_code): ``_row`` keeps it as is."""


def _md(text: object) -> Md:
    """Text as Markdown that shows exactly that text: no emphasis, links, HTML, mentions,
    references or headings, one table cell (newlines become <br>)."""
    t = str(text)
    for pattern in ("@", "#", "://", "www."):  # a zero-width space after the first character
        t = t.replace(pattern, pattern[0] + ZWSP + pattern[1:])
    t = MD_ACTIVE.sub(r"\\\1", t).replace("&", "&amp;")
    return Md(t.replace("\r", "").replace("\n", "<br>"))


def _code(text: object) -> Md:
    """Text in a code span, whatever backticks it holds (one line; ``|`` kept out of the table)."""
    t = str(text).replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    fence = "`" * (max((len(m) for m in re.findall(r"`+", t)), default=0) + 1)
    pad = " " if t.startswith("`") or t.endswith("`") else ""
    return Md(f"{fence}{pad}{t}{pad}{fence}")


def _fence(lines: list[str], lang: str = "") -> list[str]:
    """A fenced code block that no backtick run inside it can close."""
    body = [line.replace("\r", " ").replace("\n", " ") for line in lines]
    longest = max((len(m) for line in body for m in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + lang, *body, fence]


def _html(text: object) -> str:
    """Text inside an HTML tag of the comment (GitHub still links mentions and URLs there)."""
    # (also _esc: the name other parts of this module used for text in HTML)
    return html.escape(str(text)).replace("@", "@" + ZWSP).replace("://", ":" + ZWSP + "//").replace("\n", " ")


_esc = _html


def _row(*cells: object) -> str:
    """A table row: cells that are Markdown already (``Md``) as they are, anything else as text."""
    return "| " + " | ".join(c if isinstance(c, Md) else _md(c) for c in cells) + " |"
