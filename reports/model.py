"""The report every audit part writes into and every renderer reads from.

Stable JSON shape: see the contract (``tool``, ``submission``, ``verdict``, ``findings``,
``probes``, ``claims``, ``reproduction``). Fields added beyond it (``launch``, ``skipped``, ``inputs``,
``rule_set``) are extensions; nothing here holds timestamps or absolute paths, so two audits of
the same inputs serialize byte-identically.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any

from reports.base import __version__

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
# family -> what it means, in a few words (rule help text, report legends).
FAMILY_TITLES: dict[str, str] = {
    "target-in-key": "a key or index used to read a probability is built from the scored target",
    "target-gated-mixing": "a mixing gate, weight or branch is chosen from the scored target",
    "unnormalized": "the score is not taken from a full normalized distribution over the vocabulary",
    "oracle-selection": "the better of several scorings of the same tokens is kept",
    "multi-pass": "validation is rescored with state built from the whole stream",
    "update-before-score": "adaptive state is updated on tokens before they are scored",
    "val-data-in-training": "validation tokens are trained on before evaluation",
    "val-calibration": "quantization or calibration statistics are read from validation data",
    "train-data-at-eval": "training data is read after the training time cap or during evaluation",
    "eval-time-optimization": "parameters are optimized on a loss over the positions then scored",
    "boundary-leak": "information crosses document boundaries in a per-document evaluation",
    "byte-accounting": "bytes per token are not counted by the challenge's byte rule",
    "partial-eval": "only part of the validation set is scored",
    "double-scoring": "a validation token is scored more than once, or skipped",
    "external-access": "network, downloads or outside programs are used",
    "size-cap": "the artifact (code + compressed model) exceeds 16,000,000 bytes",
    "time-cap": "training or evaluation exceeds 600 seconds",
    "significance": "the improvement over the record is not significant",
    "claims-mismatch": "claimed numbers do not match the submission's own logs or files",
    "structure": "files are missing, unreadable or malformed",
}
CONDITIONS = ("C1", "C2", "C3", "C4", "rules")
CONDITION_TITLES: dict[str, str] = {
    "C1": "C1 strict causal dependence",
    "C2": "C2 full normalized distribution",
    "C3": "C3 score before update",
    "C4": "C4 single left-to-right pass",
    "rules": "Challenge rules",
}
SEVERITIES = ("error", "warning", "info")
# "could-not-run": the probe was asked for and the submission's pipeline could not be driven for it
# (or its scores could not be captured); the audit is then incomplete, never a pass.
PROBE_STATUSES = ("pass", "fail", "skipped", "could-not-run")
# The verdict of a report, in the order one outranks the next: an audit that could not be done,
# a violation found, a part asked for that could not run, and nothing of these.
VERDICT_EXIT = {"error": 2, "fail": 1, "incomplete": 2, "pass": 0}


# What each part's findings rest on (docs/threat-model.md): the submission's files, read by
# golf-audit alone; or the submission's own code run in the sandbox, whose answers golf-audit
# checks against each other but which a submission that lies consistently can still shape.
FILES = "files"
SANDBOXED_RUN = "sandboxed-run"
PART_EVIDENCE = {"data": FILES, "claims": FILES, "static": FILES, "probes": SANDBOXED_RUN, "reproduction": SANDBOXED_RUN}
EVIDENCE_MEANING = {
    FILES: "the submission's files, read by golf-audit; none of its code run",
    SANDBOXED_RUN: "the submission's code run in the sandbox: its own answers, checked against each other by golf-audit",
}


@dataclass
class Finding:
    rule: str
    family: str
    severity: str
    message: str
    path: str | None = None
    line: int | None = None
    condition: str | None = None
    column: int | None = None  # 1-based, as editors and SARIF count
    end_line: int | None = None
    why: str | None = None
    fix: str | None = None
    code_frame: str | None = None
    # Extra machine-readable facts (e.g. measured numbers); must be JSON-serializable.
    data: dict[str, Any] = field(default_factory=dict)
    suppressed: str | None = None  # reason, when an inline allow[...] or a baseline accepted it
    part: str | None = None  # the audit part that reported it (set by checks.parts.run_parts)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        if self.condition is None:
            self.condition = FAMILIES[self.family]

    def fingerprint(self, folder: str = "") -> str:
        """Identity that survives line shifts: rule, path and the message with line numbers masked.

        With ``folder`` (the submission folder), a path under it counts from it, so the identity does
        not depend on how the folder was typed.
        """
        path, base = (self.path or "").replace("\\", "/"), folder.replace("\\", "/").rstrip("/")
        if base and path.startswith(base + "/"):
            path = path[len(base) + 1:]
        return f"{self.rule}|{path}|{_LINE_REF.sub(_mask_line, self.message)}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: v for k, v in d.items() if v not in (None, {}) or k in ("path", "line")}


# "line 1143", "lines 10-12", "train_gpt.py:1143:9": references that move when code above them moves.
_LINE_REF = re.compile(r"\b(lines?\s+)\d+(?:\s*[-–]\s*\d+)?|(\.py):\d+(?::\d+)?")


def _mask_line(m: re.Match) -> str:
    return f"{m.group(1)}N" if m.group(1) else f"{m.group(2)}:N"


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
    """A part with nothing to run on by design (``--no-exec``, no artifact under ``audit``)."""

    part: str
    reason: str


@dataclass
class NotRun:
    """A part (or one probe) that was asked for and could not run: the audit is incomplete."""

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
    incomplete: list[NotRun] = field(default_factory=list)
    parts_run: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    error: str | None = None  # set when the audit could not be done
    launch: dict[str, Any] | None = None  # the official launch the parts used (harness.launch.Launch.to_report)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def skip(self, part: str, reason: str) -> None:
        self.skipped.append(Skipped(part, reason))

    def could_not_run(self, part: str, reason: str) -> None:
        """``part`` was asked for and could not examine the submission: never a pass (fail closed)."""
        self.incomplete.append(NotRun(part, reason))

    def active_findings(self) -> list[Finding]:
        return [f for f in self.findings if not f.suppressed]

    @property
    def verdict(self) -> str:
        if self.error:
            return "error"
        if any(f.severity == "error" for f in self.active_findings()):
            return "fail"
        if self.incomplete:
            return "incomplete"
        return "pass"

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT[self.verdict]

    def evidence(self) -> dict[str, Any]:
        """Which parts the verdict rests on, and what each of them rests on: on a fail, the parts
        whose error findings decide it; otherwise every part that ran."""
        if self.verdict == "fail":
            parts = {f.part or "unknown" for f in self.active_findings() if f.severity == "error"}
        else:
            parts = set(self.parts_run)
        return {"verdict_rests_on": [{"part": p, "evidence": PART_EVIDENCE.get(p, SANDBOXED_RUN)} for p in sorted(parts)],
                "meaning": {k: v for k, v in EVIDENCE_MEANING.items()
                            if any(PART_EVIDENCE.get(p, SANDBOXED_RUN) == k for p in parts)}}

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
            "launch": self.launch,
            "parts_run": list(self.parts_run),
            "evidence": self.evidence(),
            "skipped": [asdict(s) for s in self.skipped],
            "incomplete": [asdict(s) for s in self.incomplete],
            "inputs": dict(sorted(self.inputs.items())),
        }

    def to_json(self) -> str:
        return json.dumps(finite(self.to_dict()), indent=2, sort_keys=False, allow_nan=False,
                          default=json_default) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Report":
        """Rebuild a report from its JSON form (``to_dict``); the verdict follows from the findings."""
        try:
            return cls(
                submission=d["submission"],
                findings=[Finding(**f) for f in d.get("findings", [])],
                probes=[ProbeResult(**p) for p in d.get("probes", [])],
                claims=d.get("claims"),
                reproduction=d.get("reproduction"),
                skipped=[Skipped(**s) for s in d.get("skipped", [])],
                incomplete=[NotRun(**s) for s in d.get("incomplete", [])],
                parts_run=list(d.get("parts_run", [])),
                inputs=dict(d.get("inputs", {})),
                error=d.get("error"),
                launch=d.get("launch"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a golf-audit report: {e}") from None


# Characters that act on a terminal or reorder text instead of showing: C0 controls but tab and
# newline, DEL, C1 controls (ESC and CSI start terminal escape sequences), and the bidirectional
# overrides and isolates (text that reads differently from what it is).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def plain(text: str) -> str:
    """``text`` with every control character written out as a visible escape (``\\x1b``)."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


def without_controls(obj: Any) -> Any:
    """A copy of a report (or any part of one) with ``plain`` applied to every string in it, and
    every NaN or infinite float as None (``finite``).

    Reports carry text the submission controls (messages quoting its code, its paths, its
    errors, its README and logs): every renderer gets it through here (reports.render).
    """
    if isinstance(obj, str):
        return plain(obj)
    if isinstance(obj, float):
        return finite(obj)
    if isinstance(obj, list):
        return [without_controls(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(without_controls(v) for v in obj)
    if isinstance(obj, dict):
        return {without_controls(k): without_controls(v) for k, v in obj.items()}
    if is_dataclass(obj) and not isinstance(obj, type):
        return replace(obj, **{f.name: without_controls(getattr(obj, f.name)) for f in fields(obj) if f.init})
    return obj


def finite(o: Any) -> Any:
    """``o`` with every NaN or infinite float (a position not scored, a ratio over nothing) as null:
    JSON has no such numbers, and a report must always serialize."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite(v) for v in o]
    if hasattr(o, "item") and hasattr(o, "dtype") and getattr(o, "shape", None) == ():
        return finite(o.item())
    return o


def json_default(o: Any) -> Any:
    # numpy scalars and paths reach the report from checks; keep the report plain JSON.
    if hasattr(o, "item"):
        return o.item()
    return str(o)
