"""JSON Schemas shipped with golf-audit (package data): the report of ``--format json``."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


@cache
def report_schema() -> dict:
    """The JSON Schema (draft 2020-12) of one report; a scan's JSON is a list of such reports."""
    return json.loads(resources.files(__name__).joinpath("report.schema.json").read_text(encoding="utf-8"))
