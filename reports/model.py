"""The report every audit part writes into and every renderer reads from.

Stable JSON shape: see the contract (``tool``, ``submission``, ``verdict``, ``findings``,
``probes``, ``claims``, ``reproduction``). Fields added beyond it (``skipped``, ``inputs``,
``rule_set``) are extensions; nothing here holds timestamps or absolute paths, so two audits of
the same inputs serialize byte-identically.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from harness import __version__

RULE_SET_VERSION = "2026.11"

# family -> the #1017 condition (or "rules" for the challenge README's rules) it enforces.
FAMILIES: dict[str, str] = {
    "target-in-key": "C1",
    "target-gated-mixing": "C1",
    "unnormalized": "C2",
    "oracle-selection": "C4",
    "multi-pass": "C4",
    "update-before-score": "C3",
    "val-data-in-training": "C3",
    "val-calibration": "C1",
    "train-data-at-eval": "rules",
    "eval-time-optimization": "C1",
    "boundary-leak": "C1",
    "byte-accounting": "rules",
    "partial-eval": "rules",
    "double-scoring": "C4",
    "external-access": "rules",
    "size-cap": "rules",
    "time-cap": "rules",
    "significance": "rules",
    "claims-mismatch": "rules",
    "structure": "rules",
}
CONDITIONS = ("C1", "C2", "C3", "C4", "rules")
SEVERITIES = ("error", "warning", "info")
PROBE_STATUSES = ("pass", "fail", "skipped")


@dataclass
class Finding:
    rule: str
    family: str
    severity: str
    message: str
    path: str | None = None
    line: int | None = None
    condition: str | None = None
    column: int | None = None
    end_line: int | None = None
    why: str | None = None
    fix: str | None = None
    code_frame: str | None = None
    # Extra machine-readable facts (e.g. measured numbers); must be JSON-serializable.
    data: dict[str, Any] = field(default_factory=dict)
    suppressed: str | None = None  # reason, when an inline allow[...] or a baseline accepted it

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        if self.condition is None:
            self.condition = FAMILIES[self.family]

    def fingerprint(self) -> str:
        """Identity that survives line shifts: rule, path and the message."""
        return f"{self.rule}|{self.path or ''}|{self.message}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: v for k, v in d.items() if v not in (None, {}) or k in ("path", "line")}


@dataclass
class ProbeResult:
    probe: str
    status: str
    detail: str
    condition: str | None = None
    family: str | None = None
    counterexample: dict[str, Any] | None = None
    replay: str | None = None  # a command that replays the counterexample
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in PROBE_STATUSES:
            raise ValueError(f"unknown probe status {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: v for k, v in d.items() if v not in (None, {}) or k in ("counterexample",)}


@dataclass
class Skipped:
    part: str
    reason: str


@dataclass
class Report:
    submission: str
    findings: list[Finding] = field(default_factory=list)
    probes: list[ProbeResult] = field(default_factory=list)
    claims: dict[str, Any] | None = None
    reproduction: dict[str, Any] | None = None
    skipped: list[Skipped] = field(default_factory=list)
    parts_run: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    error: str | None = None  # set when the audit could not be done

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def skip(self, part: str, reason: str) -> None:
        self.skipped.append(Skipped(part, reason))

    def active_findings(self) -> list[Finding]:
        return [f for f in self.findings if not f.suppressed]

    @property
    def verdict(self) -> str:
        if self.error:
            return "error"
        if any(f.severity == "error" for f in self.active_findings()):
            return "fail"
        return "pass"

    @property
    def exit_code(self) -> int:
        return {"pass": 0, "fail": 1, "error": 2}[self.verdict]

    def sorted(self) -> "Report":
        """Deterministic order: findings by path, line, rule; probes by name."""
        self.findings.sort(key=lambda f: (f.path or "", f.line or 0, f.column or 0, f.rule, f.message))
        self.probes.sort(key=lambda p: p.probe)
        return self

    def to_dict(self) -> dict[str, Any]:
        self.sorted()
        return {
            "tool": {"name": "golf-audit", "version": __version__, "rule_set": RULE_SET_VERSION},
            "submission": self.submission,
            "verdict": self.verdict,
            "error": self.error,
            "findings": [f.to_dict() for f in self.findings],
            "probes": [p.to_dict() for p in self.probes],
            "claims": self.claims,
            "reproduction": self.reproduction,
            "parts_run": list(self.parts_run),
            "skipped": [asdict(s) for s in self.skipped],
            "inputs": dict(sorted(self.inputs.items())),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False, default=_json_default) + "\n"


def _json_default(o: Any) -> Any:
    # numpy scalars and paths reach the report from checks; keep the report plain JSON.
    if hasattr(o, "item"):
        return o.item()
    return str(o)
