"""Every static rule's own examples, as tests (the Fixit pattern): INVALID code fires the rule on
the lines marked ``# <- fires`` and no other, VALID code stays silent (an info finding, for code
disabled in the official run, is silence). About 3 s for all rules."""

from __future__ import annotations

import textwrap

import pytest

from checks.static import engine
from reports.model import FAMILIES

RULES = engine.all_rules()
CASES = [(r.ID, kind, i) for r in RULES for kind in ("VALID", "INVALID") for i in range(len(getattr(r, kind)))]


FIRES = "# <- fires"  # ends each line of an INVALID example that its rule must report


def marked_lines(code: str) -> list[int]:
    """Line numbers (1-based, as findings give them) of the example's lines marked with FIRES."""
    return [i for i, line in enumerate(textwrap.dedent(code).splitlines(), 1) if line.rstrip().endswith(FIRES)]


def findings_for(code: str) -> list[dict]:
    found, notes = engine.analyse([engine.Source("example.py", textwrap.dedent(code))], dict(engine.OFFICIAL_ENV))
    assert not notes, notes
    return found


@pytest.mark.parametrize("rule_id,kind,index", CASES, ids=[f"{r}-{k.lower()}-{i}" for r, k, i in CASES])
def test_rule_examples(rule_id, kind, index):
    rule = engine.rule_by_id(rule_id)
    code = getattr(rule, kind)[index]
    fired = [f for f in findings_for(code) if f["rule"] == rule_id and f["severity"] != "info"]
    if kind == "INVALID":
        marked = marked_lines(code)
        assert marked, f"{rule_id} INVALID example {index}: end the line the rule must fire on with `{FIRES}`"
        assert sorted({f["line"] for f in fired}) == marked, (rule_id, index, [(f["line"], f["message"]) for f in fired])
        assert all(f["family"] == rule.family and f["code_frame"] for f in fired)
    else:
        assert not fired, [f["message"] for f in fired]


@pytest.mark.parametrize("rule", RULES, ids=[r.ID for r in RULES])
def test_rule_metadata(rule):
    sec = rule.sections()
    assert rule.ID.startswith("GA") and rule.family in FAMILIES and rule.severity in ("error", "warning", "info")
    assert sec["what"] and sec["why"] and sec["example"] and sec["fix"], sec
    assert rule.VALID and rule.INVALID
    assert rule.KINDS or type(rule).check_module is not engine.Rule.check_module


def test_rule_ids_are_unique_and_cover_the_code_families():
    ids = [r.ID for r in RULES]
    assert len(ids) == len(set(ids))
    covered = {r.family for r in RULES}
    assert {"target-in-key", "target-gated-mixing", "update-before-score", "multi-pass", "double-scoring",
            "unnormalized", "oracle-selection", "val-data-in-training", "val-calibration", "eval-time-optimization",
            "byte-accounting", "partial-eval", "external-access", "boundary-leak", "train-data-at-eval"} <= covered
