"""Renderers: Report -> text. They format; they never compute verdicts or numbers.

Every report reaches a renderer without control characters (``reports.model.without_controls``):
no terminal escape or bidirectional override from submission-controlled text survives into any
format. Markup is each format's own business: Markdown escapes every string it did not write
itself (``reports.render.markdown``), rich tables get ``Text`` cells, never markup strings.

A renderer module has ``render(report, **options) -> str``; one that can show several reports
at once (``golf-audit scan``) also has ``render_many(reports, **options) -> str``.
"""

from __future__ import annotations

import importlib

from reports.model import Report, without_controls

# format -> module with a ``render(report) -> str``
RENDERERS = {
    "text": "reports.render.text",
    "json": "reports.render.json_format",
    "sarif": "reports.render.sarif",
    "markdown": "reports.render.markdown",
    "junit": "reports.render.junit",
}


def formats() -> list[str]:
    return list(RENDERERS)


def render(report: Report, fmt: str, **kwargs) -> str:
    if fmt not in RENDERERS:
        raise ValueError(f"unknown format {fmt!r}")
    return importlib.import_module(RENDERERS[fmt]).render(without_controls(report.sorted()), **kwargs)


def render_many(reports: list[Report], fmt: str, **kwargs) -> str:
    """Several reports in one document (a scan): one SARIF run, one JUnit file, one table."""
    if fmt not in RENDERERS:
        raise ValueError(f"unknown format {fmt!r}")
    return importlib.import_module(RENDERERS[fmt]).render_many([without_controls(r.sorted()) for r in reports], **kwargs)
