"""SARIF 2.1.0 for GitHub code scanning: one run, the rules with help text, one result per finding.

Locations are repository-relative (``uriBaseId: %SRCROOT%``) so the upload action can map them
to the checkout. Findings without a file (claims, data) and failing probes are anchored on the
submission's submission.json, README or entry file. Findings accepted by a baseline or an inline
``allow`` keep their result with a SARIF suppression, so code scanning shows them as dismissed.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from typing import Any

from harness import __version__
from reports import baseline
from reports.model import RULE_SET_VERSION, Finding, ProbeResult, Report
from reports.render.common import RuleInfo, anchor_path, finding_path, probe_rule_id, rule_catalog

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {"error": "error", "warning": "warning", "info": "note"}
FINGERPRINT_KEY = "golfAudit/v1"


def render(report: Report, **_: Any) -> str:
    return render_many([report])


def render_many(reports: list[Report], **_: Any) -> str:
    catalog = rule_catalog(reports)
    ids = list(catalog)
    results: list[dict] = []
    notes: list[dict] = []
    for r in reports:
        r.sorted()
        results += [_finding_result(r, f, ids) for f in r.findings]
        results += [_probe_result(r, p, ids) for p in r.probes if p.status == "fail"]
        notes += _notifications(r)
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "golf-audit",
                "version": __version__,
                "semanticVersion": __version__,
                "rules": [_rule(info) for info in catalog.values()],
                "properties": {"ruleSet": RULE_SET_VERSION},
            }
        },
        "automationDetails": {"id": "golf-audit/"},
        "invocations": [
            {
                "executionSuccessful": all(r.verdict not in ("error", "incomplete") for r in reports),
                "exitCode": max((r.exit_code for r in reports), default=0),
                "toolExecutionNotifications": notes,
            }
        ],
        "results": results,
        "properties": {
            "submissions": [{"path": r.submission, "verdict": r.verdict} for r in reports],
        },
    }
    doc = {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"


def _rule(info: RuleInfo) -> dict[str, Any]:
    props: dict[str, Any] = {"kind": info.kind, "tags": ["golf-audit", info.kind]}
    if info.family:
        props["family"] = info.family
        props["tags"].append(info.family)
    if info.condition:
        props["condition"] = info.condition
        props["tags"].append(info.condition)
    return {
        "id": info.id,
        "name": _pascal(info.name),
        "shortDescription": {"text": _sentence(info.short)},
        "fullDescription": {"text": _sentence(info.full)},
        "help": {"text": info.help_text or info.full, "markdown": info.help_markdown or info.full},
        "defaultConfiguration": {"level": LEVEL.get(info.severity, "warning")},
        "properties": props,
    }


def _location(report: Report, path: str, line: int | None, column: int | None, end_line: int | None) -> dict:
    loc: dict[str, Any] = {"uri": path, "uriBaseId": "%SRCROOT%"}
    if posixpath.isabs(path):
        loc = {"uri": "file://" + path}
    region: dict[str, Any] = {"startLine": max(1, line or 1)}
    if line and column:
        region["startColumn"] = max(1, column)
    if line and end_line and end_line >= line:
        region["endLine"] = end_line
    return {"physicalLocation": {"artifactLocation": loc, "region": region}}


def _fingerprint(report: Report, key: str) -> dict[str, str]:
    digest = hashlib.sha256(f"{baseline.submission_key(report.submission)}|{key}".encode()).hexdigest()[:32]
    return {FINGERPRINT_KEY: digest}


def _finding_result(report: Report, f: Finding, ids: list[str]) -> dict[str, Any]:
    path, own = finding_path(report, f)
    text = f.message if own else f"{f.message} ({report.submission})"
    if f.fix and f.severity != "info":
        text += f" Fix: {f.fix}"
    res: dict[str, Any] = {
        "ruleId": f.rule,
        "ruleIndex": ids.index(f.rule),
        "level": LEVEL[f.severity],
        "message": {"text": text},
        "locations": [_location(report, path, f.line if own else None, f.column if own else None, f.end_line if own else None)],
        "partialFingerprints": _fingerprint(report, baseline.finding_key(report, f)[1]),
        "properties": {"family": f.family, "condition": f.condition, "severity": f.severity,
                       "submission": report.submission},
    }
    if f.data:
        res["properties"]["data"] = f.data
    if f.suppressed:
        kind = "external" if f.suppressed.startswith("baseline") else "inSource"
        res["suppressions"] = [{"kind": kind, "status": "accepted", "justification": f.suppressed}]
    return res


def _probe_result(report: Report, p: ProbeResult, ids: list[str]) -> dict[str, Any]:
    rid = probe_rule_id(p)
    text = f"probe {p.probe} failed: {p.detail}"
    if p.counterexample:
        text += f" Counterexample: {json.dumps(p.counterexample, sort_keys=True)}."
    if p.replay:
        text += f" Replay: {p.replay}"
    props: dict[str, Any] = {"submission": report.submission, "status": p.status}
    if p.family:
        props["family"] = p.family
    if p.condition:
        props["condition"] = p.condition
    if p.counterexample:
        props["counterexample"] = p.counterexample
    return {
        "ruleId": rid,
        "ruleIndex": ids.index(rid),
        "level": "error",
        "message": {"text": text},
        "locations": [_location(report, anchor_path(report, p.family), None, None, None)],
        "partialFingerprints": _fingerprint(report, rid),
        "properties": props,
    }


def _notifications(report: Report) -> list[dict[str, Any]]:
    out = []
    if report.error:
        out.append({"level": "error", "message": {"text": f"{report.submission}: audit could not be done: {report.error}"}})
    for s in report.incomplete:
        out.append({"level": "error", "message": {"text": f"{report.submission}: {s.part} could not run: {s.reason}"},
                    "descriptor": {"id": f"could-not-run/{s.part}"}})
    for s in report.skipped:
        out.append({"level": "note", "message": {"text": f"{report.submission}: {s.part} skipped: {s.reason}"},
                    "descriptor": {"id": f"skipped/{s.part}"}})
    for p in report.probes:
        if p.status == "skipped":
            out.append({"level": "note", "message": {"text": f"{report.submission}: probe {p.probe} skipped: {p.detail}"},
                        "descriptor": {"id": probe_rule_id(p)}})
    return out


def _pascal(name: str) -> str:
    words = [w for w in name.replace("/", " ").replace("-", " ").replace("_", " ").split() if w]
    return "".join(w[:1].upper() + w[1:] for w in words) or name


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
