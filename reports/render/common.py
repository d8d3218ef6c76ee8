"""What several renderers share: where a finding points in the repository, and what its rule is.

Paths: findings carry paths relative to the submission folder (``train_gpt.py``) or as the user
typed them (``records/x/train_gpt.py``); both become one repository-relative path here, so SARIF,
Markdown and JUnit point at the same file. Nothing here reads files or computes results.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Iterable

from checks import catalog
from reports.model import FAMILIES, FAMILY_TITLES, Finding, ProbeResult, Report

# Where a finding without a file location is anchored, in order of preference: claims findings
# belong to the files that make the claims, everything else to the code.
CLAIM_FAMILIES = {"claims-mismatch", "significance", "size-cap", "time-cap", "structure"}
CLAIM_ANCHORS = ("submission.json", "README.md", "readme.md")
CODE_ANCHORS = ("train_gpt.py",)


def _norm(path: str) -> str:
    p = posixpath.normpath(path.replace("\\", "/"))
    return "" if p == "." else p


def submission_dir(report: Report) -> str:
    """The submission folder as a normalized path ('' for the current directory)."""
    base = _norm(report.submission)
    return posixpath.dirname(base) if base.endswith(".py") else base


def repo_path(report: Report, path: str) -> str:
    """A finding's path joined onto the submission folder unless it already starts with it."""
    base, p = submission_dir(report), _norm(path)
    if not base or posixpath.isabs(p) or p == base or p.startswith(base + "/"):
        return p
    return posixpath.join(base, p)


def anchor_path(report: Report, family: str | None = None) -> str:
    """The file a location-less finding (claims, probes, data) is shown on.

    The submission's own files as the report lists them (``inputs``): submission.json or the
    README for claims, the entry file for code; the folder itself when the report lists none.
    """
    names = list(report.inputs)
    entry = [n for n in names if n in CODE_ANCHORS] or [n for n in names if n.startswith("train_gpt") and n.endswith(".py")]
    claim = [n for n in CLAIM_ANCHORS if n in names]
    order = (claim + entry) if family in CLAIM_FAMILIES else (entry + claim)
    if report.submission.endswith(".py"):
        return _norm(report.submission)
    if order:
        return repo_path(report, order[0])
    return submission_dir(report) or "."


def finding_path(report: Report, f: Finding) -> tuple[str, bool]:
    """(repository path, True when it is the finding's own location rather than an anchor)."""
    if f.path:
        return repo_path(report, f.path), True
    return anchor_path(report, f.family), False


def probe_rule_id(p: ProbeResult) -> str:
    return f"probe/{p.probe}"


@dataclass
class RuleInfo:
    """What a reader needs to know about one rule (static rule, part rule or probe)."""

    id: str
    name: str
    family: str | None
    condition: str | None
    severity: str
    short: str
    full: str
    help_text: str
    help_markdown: str
    kind: str  # "static", "part" or "probe"


def _kind(e: catalog.Entry) -> str:
    return {catalog.Part.STATIC: "static", catalog.Part.PROBES: "probe"}.get(e.part, "part")


def _from_entry(rid: str, e: catalog.Entry) -> RuleInfo:
    """Rule metadata from the catalog entry (what / why / example / fix)."""
    family, condition = e.family, e.condition
    short = " ".join(e.what.split()) or FAMILY_TITLES.get(family, rid)
    full = " ".join(f"{e.what} {e.why}".split())
    text = "\n\n".join(x for x in (e.what, f"Why: {e.why}" if e.why else "", f"Example:\n{e.example}" if e.example else "",
                                    f"Fix: {e.fix}" if e.fix else "") if x)
    fence = "python" if e.part is catalog.Part.STATIC else "text"
    md = [f"**{e.name}** ({', '.join(e.families)}, {condition})", "", "## What it does", e.what]
    if e.why:
        md += ["", "## Why is this bad?", e.why]
    if e.example:
        md += ["", "## Example", f"```{fence}", e.example, "```"]
    if e.fix:
        md += ["", "## Use instead", e.fix]
    severity = e.severity if e.severity in ("error", "warning", "info") else e.severity.split(" / ")[0]
    return RuleInfo(rid, e.name, family, condition, severity, short, full, text, "\n".join(md), _kind(e))


def _help_text(why: str, fix: str, family: str | None) -> str:
    parts = [why] if why else []
    if fix:
        parts.append(f"Fix: {fix}")
    if family:
        parts.append(f"Family {family} ({FAMILIES.get(family, '?')}): {FAMILY_TITLES.get(family, '')}.")
    return "\n".join(parts)


def _help_markdown(why: str, fix: str, family: str | None) -> str:
    parts = []
    if why:
        parts.append(f"**Why is this bad?** {why}")
    if fix:
        parts.append(f"**Use instead:** {fix}")
    if family:
        parts.append(f"Family `{family}`, condition {FAMILIES.get(family, '?')}: {FAMILY_TITLES.get(family, '')}.")
    return "\n\n".join(parts)


def _from_finding(f: Finding, kind: str) -> RuleInfo:
    short = FAMILY_TITLES[f.family]
    full = f.why or f"{short[0].upper()}{short[1:]} ({f.condition})."
    return RuleInfo(f.rule, f.rule, f.family, f.condition, f.severity, short, full,
                    _help_text(f.why or "", f.fix or "", f.family), _help_markdown(f.why or "", f.fix or "", f.family), kind)


def _from_probe(p: ProbeResult) -> RuleInfo:
    e = catalog.entry(f"PRB-{p.probe}")
    if e is not None:
        return _from_entry(probe_rule_id(p), e)
    title = p.probe.replace("_", " ").replace("-", " ")
    short = f"causality probe: {title}"
    cond = p.condition or (FAMILIES.get(p.family) if p.family else None)
    full = f"Runs the submission's own evaluation on generated token streams and tests {title}" + (f" ({cond})." if cond else ".")
    help_text = full + " A failure comes with a shrunk counterexample and a command that replays it."
    return RuleInfo(probe_rule_id(p), title, p.family, cond, "error", short, full, help_text, help_text, "probe")


def rule_catalog(reports: Iterable[Report]) -> dict[str, RuleInfo]:
    """Every rule the reports mention (and every static rule when the static part ran), by id, sorted;
    the help text of each comes from the catalog of finding IDs (``checks/catalog.py``)."""
    reports = list(reports)
    known = {e.id: e for e in catalog.entries()}
    out: dict[str, RuleInfo] = {}
    if any("static" in r.parts_run for r in reports):
        out.update({rid: _from_entry(rid, e) for rid, e in known.items() if e.part is catalog.Part.STATIC})
    for r in reports:
        for f in r.findings:
            if f.rule not in out:
                out[f.rule] = _from_entry(f.rule, known[f.rule]) if f.rule in known else _from_finding(f, "part")
        for p in r.probes:
            out.setdefault(probe_rule_id(p), _from_probe(p))
    return dict(sorted(out.items()))


def fmt_value(v: object, key: str = "") -> str:
    """Numbers as a reviewer reads them: BPB-like floats to 8 places, seconds to 3,
    counts with thousands separators; seeds, which are names rather than amounts, as written."""
    if isinstance(v, bool) or v is None:
        return "–" if v is None else str(v).lower()
    if isinstance(v, float):
        if key.endswith("_s"):  # durations in seconds
            return f"{v:.3f}"
        return f"{v:.8f}"
    if isinstance(v, int):
        return str(v) if "seed" in key and "bytes" not in key else f"{v:,}"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt_value(x, key) for x in v)
    if isinstance(v, dict):
        return ", ".join(f"{k}: {fmt_value(x, str(k))}" for k, x in v.items())
    return str(v)


# The launcher's own variables, shown after the folder's settings.
RANK_VARS = ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "RANK", "LOCAL_RANK")
MAX_COMMAND_CHARS = 400


def launch_summary(report: Report) -> str | None:
    """One line: the world size and where the launch was read ("8 ranks, README.md:68-72"), or None."""
    launch = report.launch
    if not launch:
        return None
    n = launch.get("world_size")
    return f"{n} rank{'s' if n != 1 else ''}, from {launch.get('origin')}"


def launch_rows(report: Report) -> list[tuple[str, str, str]]:
    """(variable, value, where it came from): the folder's settings by name, then the rank variables."""
    launch = report.launch or {}
    env, sources = launch.get("env") or {}, launch.get("sources") or {}
    names = sorted(k for k in env if k not in RANK_VARS) + [k for k in RANK_VARS if k in env]
    return [(k, str(env[k]), str(sources.get(k, "–"))) for k in names]


def launch_command(report: Report) -> str | None:
    command = (report.launch or {}).get("command")
    if not command:
        return None
    return command if len(command) <= MAX_COMMAND_CHARS else command[:MAX_COMMAND_CHARS - 1] + "…"


def evidence_line(report) -> str:
    """One line: the parts the verdict rests on, each with what it rests on (files, or a sandboxed run)."""
    ev = report.evidence()
    parts = ev["verdict_rests_on"]
    if not parts:
        return "verdict rests on: nothing (no part ran)"
    words = {"files": "files only, no submission code run", "sandboxed-run": "the submission's own code in the sandbox"}
    return "verdict rests on: " + "; ".join(f"{x['part']} ({words[x['evidence']]})" for x in parts)
