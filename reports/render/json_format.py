"""The contract's JSON report; a scan is a list of them, in folder order."""

from __future__ import annotations

import json

from reports.model import Report, json_default


def render(report: Report, **_) -> str:
    return report.to_json()


def render_many(reports: list[Report], **_) -> str:
    return json.dumps([r.to_dict() for r in reports], indent=2, allow_nan=False, default=json_default) + "\n"
