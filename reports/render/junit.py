"""JUnit XML for CI test views: one test suite per submission, one test case per rule and probe.

A rule with an error-level finding is a failure; warnings and info go to the case's system-out.
A probe that failed is a failure, a skipped probe is skipped. Every part that ran is a case of its
own, every part that was skipped is a skipped case with the reason, and an audit that could not
be done is an error case.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

from reports.model import Report
from reports.render.common import finding_path, probe_rule_id, rule_catalog


def render(report: Report, **kw: Any) -> str:
    return render_many([report], **kw)


def render_many(reports: list[Report], **_: Any) -> str:
    root = ET.Element("testsuites", name="golf-audit")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for r in reports:
        suite = _suite(r)
        root.append(suite)
        for k in totals:
            totals[k] += int(suite.get(k))
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _suite(r: Report) -> ET.Element:
    r.sorted()
    suite = ET.Element("testsuite", name=r.submission)
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="verdict", value=r.verdict)
    cases: list[ET.Element] = []
    if r.error:
        case = _case(r, "audit", "audit")
        ET.SubElement(case, "error", message=r.error, type="audit-error").text = r.error
        cases.append(case)
    for part in r.parts_run:
        cases.append(_case(r, "part", part))
    for s in r.incomplete:
        case = _case(r, "part", s.part)
        ET.SubElement(case, "error", message=s.reason, type="could-not-run").text = s.reason
        cases.append(case)
    for s in r.skipped:
        case = _case(r, "part", s.part)
        ET.SubElement(case, "skipped", message=s.reason)
        cases.append(case)
    probe_ids = {probe_rule_id(p) for p in r.probes}
    for rid, info in rule_catalog([r]).items():
        if rid in probe_ids:
            continue
        found = [f for f in r.findings if f.rule == rid]
        case = _case(r, info.kind, f"{rid} {info.family or ''}".strip())
        errors = [f for f in found if f.severity == "error" and not f.suppressed]
        if errors:
            ET.SubElement(case, "failure", message=errors[0].message, type=errors[0].family).text = \
                "\n".join(_line(r, f) for f in errors)
        rest = [f for f in found if f not in errors]
        if rest:
            ET.SubElement(case, "system-out").text = "\n".join(_line(r, f) for f in rest)
        cases.append(case)
    for p in r.probes:
        case = _case(r, "probe", p.probe)
        if p.status == "fail":
            body = [p.detail]
            if p.counterexample:
                body.append("counterexample: " + json.dumps(p.counterexample, sort_keys=True))
            if p.replay:
                body.append("replay: " + p.replay)
            ET.SubElement(case, "failure", message=p.detail, type=p.family or "probe").text = "\n".join(body)
        elif p.status == "skipped":
            ET.SubElement(case, "skipped", message=p.detail)
        elif p.status == "could-not-run":
            ET.SubElement(case, "error", message=p.detail, type="could-not-run").text = p.detail
        cases.append(case)
    suite.extend(cases)
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(c.find("failure") is not None for c in cases)))
    suite.set("errors", str(sum(c.find("error") is not None for c in cases)))
    suite.set("skipped", str(sum(c.find("skipped") is not None for c in cases)))
    return suite


def _case(r: Report, kind: str, name: str) -> ET.Element:
    return ET.Element("testcase", classname=f"golf-audit.{kind}", name=name, file=r.submission)


def _line(r: Report, f) -> str:
    path, own = finding_path(r, f)
    where = f"{path}:{f.line}" if own and f.line else path
    accepted = f" (accepted: {f.suppressed})" if f.suppressed else ""
    return f"{where}: {f.severity}: {f.message}{accepted}"
