"""Renderers: Report -> text. They format; they never compute verdicts or numbers."""

from __future__ import annotations

import importlib

from reports.model import Report

# format -> module with a ``render(report) -> str``
RENDERERS = {
    "text": "reports.render.text",
    "json": "reports.render.json_format",
}


def formats() -> list[str]:
    return list(RENDERERS)


def render(report: Report, fmt: str, **kwargs) -> str:
    if fmt not in RENDERERS:
        raise ValueError(f"unknown format {fmt!r}")
    return importlib.import_module(RENDERERS[fmt]).render(report, **kwargs)
