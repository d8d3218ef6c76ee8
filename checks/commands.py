"""Commands that do not audit one submission: rules, explain, scan."""

from __future__ import annotations

from harness import AuditError


def rules(args) -> int:
    raise AuditError("the static rule set is not available in this version of golf-audit")


def explain(args) -> int:
    raise AuditError("the static rule set is not available in this version of golf-audit")


def scan(args) -> int:
    raise AuditError("scan is not available in this version of golf-audit")
