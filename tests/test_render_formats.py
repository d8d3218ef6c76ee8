"""Renderers on a report that has every kind of content: schemas, structure, determinism."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from reports import baseline
from reports.model import Finding, ProbeResult, Report
from reports.render import formats, render, render_many
from reports.schema import report_schema
from tests.conftest import data_file


def full_report(submission: str = "records/track_10min_16mb/2026-01-01_Example") -> Report:
    r = Report(submission=submission)
    r.inputs = {"README.md": "a" * 64, "submission.json": "b" * 64, "train_gpt.py": "c" * 64}
    r.parts_run = ["data", "claims", "static", "probes"]
    r.add(Finding("TIK001", "target-in-key", "error", "the target `tgt_np` is XORed into `full_key` at line 143",
                  path="train_gpt.py", line=143, column=17, end_line=144,
                  code_frame="  142 |     ctx = hash_ctx(x)\n> 143 |     full_key = ctx ^ (tgt_np * P)\n    |                 ^^^^^^",
                  why="the count read for position t depends on x_t (C1)", fix="key the table on the context only"))
    r.add(Finding("SUP001", "double-scoring", "warning", "tail windows re-score 960 positions", path="helpers/eval.py",
                  line=12, suppressed="allow[SUP001] measured effect below print precision"))
    r.add(Finding("CLM010", "claims-mismatch", "error", "submission.json claims 1.1000 but the logs give 1.1023 | 1.1019"))
    r.add(Finding("DATA001", "structure", "info", "validation data: 1 shard(s), 71478 scored tokens", data={"tokens": 71478}))
    r.probes = [
        ProbeResult("normalization", "fail", "sum over the vocabulary of p_t = 277.3 at position 41", condition="C2",
                    family="target-in-key", counterexample={"length": 42, "position": 41, "sum": 277.3},
                    replay="golf-audit probe records/x --seed 7"),
        ProbeResult("future_invariance", "pass", "200 examples", condition="C1"),
        ProbeResult("exactly_once", "skipped", "no eval entry point found", condition="C4"),
    ]
    r.claims = {"claimed_bpb": 1.1, "seed_bpbs": [1.0998, 1.1001, 1.1001], "bytes_total": 15_863_489, "bytes_code": 47_642}
    r.reproduction = {"reported_bpb": 1.1, "reproduced_bpb": 1.10000031, "legal_bpb": 1.2371, "tokens": 71_478}
    r.skip("reproduction", "no artifact found in the folder; pass --artifact")
    return r


def error_report() -> Report:
    return Report(submission="records/broken", error="train_gpt.py: cannot read: Permission denied")


@pytest.fixture(scope="module")
def sarif_validator():
    return jsonschema.Draft7Validator(json.loads(data_file("sarif-schema-2.1.0.json").read_text()))


@pytest.fixture(scope="module")
def report_validator():
    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_every_format_is_registered():
    assert formats() == ["text", "json", "sarif", "markdown", "junit"]


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "markdown", "junit"])
@pytest.mark.parametrize("make", [full_report, error_report, lambda: Report(submission="s")])
def test_rendering_is_deterministic_and_does_not_change_the_report(fmt, make):
    r = make()
    before = r.to_json()
    assert render(r, fmt) == render(make(), fmt)
    assert render_many([r, make()], fmt) == render_many([make(), make()], fmt)
    assert r.to_json() == before


def test_json_validates_and_round_trips(report_validator):
    for r in (full_report(), error_report(), Report(submission="s")):
        d = json.loads(render(r, "json"))
        report_validator.validate(d)
        assert Report.from_dict(d).to_json() == r.to_json()
    many = json.loads(render_many([full_report(), error_report()], "json"))
    assert [d["verdict"] for d in many] == ["fail", "error"]
    for d in many:
        report_validator.validate(d)


def test_report_schema_rejects_what_the_contract_forbids(report_validator):
    good = json.loads(full_report().to_json())
    for mutate in (
        lambda d: d.pop("verdict"),
        lambda d: d.__setitem__("verdict", "ok"),
        lambda d: d["findings"][0].__setitem__("family", "made-up"),
        lambda d: d["findings"][0].__setitem__("severity", "fatal"),
        lambda d: d["findings"][0].__setitem__("line", 0),
        lambda d: d["probes"][0].__setitem__("status", "flaky"),
        lambda d: d["inputs"].__setitem__("x.py", "not-a-hash"),
        lambda d: d.__setitem__("claims", []),
        lambda d: (d.__setitem__("verdict", "error"), d.__setitem__("error", None)),
    ):
        bad = copy.deepcopy(good)
        mutate(bad)
        assert not report_validator.is_valid(bad), mutate


def test_sarif_validates_against_the_official_schema(sarif_validator):
    for doc in (render(full_report(), "sarif"), render(error_report(), "sarif"),
                render_many([full_report(), full_report("records/other"), error_report()], "sarif")):
        sarif_validator.validate(json.loads(doc))


def test_sarif_rules_results_and_locations():
    sarif = json.loads(render(full_report(), "sarif"))
    run = sarif["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert {"TIK001", "SUP001", "CLM010", "DATA001", "probe/normalization"} <= set(rules)
    tik = rules["TIK001"]
    assert tik["properties"]["family"] == "target-in-key" and tik["properties"]["condition"] == "C1"
    assert tik["defaultConfiguration"]["level"] == "error"
    assert tik["help"]["text"] and tik["help"]["markdown"] and tik["fullDescription"]["text"]
    by_rule = {res["ruleId"]: res for res in run["results"]}
    loc = by_rule["TIK001"]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "records/track_10min_16mb/2026-01-01_Example/train_gpt.py", "uriBaseId": "%SRCROOT%"}
    assert loc["region"] == {"startLine": 143, "startColumn": 17, "endLine": 144}
    # location-less findings sit on the file that makes the claim, probes on the entry file
    claim_uri = by_rule["CLM010"]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert claim_uri.endswith("/submission.json")
    probe = by_rule["probe/normalization"]
    assert probe["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("/train_gpt.py")
    assert "277.3" in probe["message"]["text"] and "--seed 7" in probe["message"]["text"]
    assert "probe/future_invariance" not in by_rule  # passing probes are not results
    assert by_rule["SUP001"]["suppressions"][0]["kind"] == "inSource"
    for res in run["results"]:
        assert run["tool"]["driver"]["rules"][res["ruleIndex"]]["id"] == res["ruleId"]
        assert res["partialFingerprints"]["golfAudit/v1"]
    notes = [n["message"]["text"] for n in run["invocations"][0]["toolExecutionNotifications"]]
    assert any("reproduction skipped" in n for n in notes) and any("exactly_once skipped" in n for n in notes)
    assert run["invocations"][0]["exitCode"] == 1


def test_sarif_fingerprints_survive_line_shifts_and_differ_across_folders():
    a, b = full_report(), full_report()
    b.findings[0].line += 30
    b.findings[0].message = b.findings[0].message.replace("line 143", "line 173")
    fa = json.loads(render(a, "sarif"))["runs"][0]["results"]
    fb = json.loads(render(b, "sarif"))["runs"][0]["results"]
    assert [x["partialFingerprints"] for x in fa] == [x["partialFingerprints"] for x in fb]
    fc = json.loads(render(full_report("records/other"), "sarif"))["runs"][0]["results"]
    assert fa[0]["partialFingerprints"] != fc[0]["partialFingerprints"]


def test_paths_already_joined_with_the_submission_are_not_joined_twice():
    r = full_report("submissions/x")
    r.findings[0].path = "submissions/x/train_gpt.py"
    sarif = json.loads(render(r, "sarif"))
    uris = {res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for res in sarif["runs"][0]["results"]}
    assert "submissions/x/train_gpt.py" in uris and "submissions/x/submissions/x/train_gpt.py" not in uris


def test_markdown_comment():
    md = render(full_report(), "markdown")
    assert md.startswith("<!-- golf-audit report -->\n")
    assert "❌ FAIL" in md
    assert "[`train_gpt.py:143`](records/track_10min_16mb/2026-01-01_Example/train_gpt.py#L143-L144)" in md
    assert "1.1023 \\| 1.1019" in md  # a pipe in a message does not break the table
    assert "| `normalization` | C2 | ❌ fail |" in md and "golf-audit probe records/x --seed 7" in md
    assert "| val_bpb | 1.10000000 | 1.10000000 | 1.10000031 | 1.23710000 |" in md
    assert "**reproduction**: no artifact found" in md
    linked = render(full_report(), "markdown", link_base="https://github.com/o/r/blob/abc/")
    assert "(https://github.com/o/r/blob/abc/records/track_10min_16mb/2026-01-01_Example/train_gpt.py#L143-L144)" in linked
    scan = render_many([full_report(), error_report()], "markdown")
    assert "2 submission(s)" in scan and "⚠️ ERROR" in scan and "Permission denied" in scan


def test_junit_cases():
    root = ET.fromstring(render(full_report(), "junit"))
    suite = root.find("testsuite")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["TIK001 target-in-key"].find("failure") is not None
    assert cases["CLM010 claims-mismatch"].find("failure") is not None
    assert cases["SUP001 double-scoring"].find("failure") is None  # accepted
    assert cases["DATA001 structure"].find("failure") is None
    assert cases["normalization"].find("failure") is not None
    assert cases["future_invariance"].find("failure") is None and cases["future_invariance"].find("skipped") is None
    assert cases["exactly_once"].find("skipped") is not None
    assert cases["reproduction"].find("skipped").get("message").startswith("no artifact")
    assert int(suite.get("tests")) == len(cases) == int(root.get("tests"))
    assert int(root.get("failures")) == 3 and int(root.get("skipped")) == 2
    err = ET.fromstring(render(error_report(), "junit"))
    assert err.get("errors") == "1" and "Permission denied" in err.find("testsuite/testcase/error").get("message")


def test_text_report_sections():
    out = render(full_report(), "text")
    first = out.splitlines()[0]
    assert first.startswith("verdict: FAIL") and "2 error(s)" in first
    assert "C1 strict causal dependence" in out and "Challenge rules" in out and "C4 single left-to-right pass" in out
    assert "full_key = ctx ^ (tgt_np * P)" in out  # the code frame
    assert "train_gpt.py:143:17" in out and "fix: key the table on the context only" in out
    assert "accepted: allow[SUP001]" in out
    assert "counterexample" in out and "replay: golf-audit probe records/x --seed 7" in out
    assert "1.10000031" in out and "1.23710000" in out and "15,863,489" in out
    assert "reproduction: no artifact found" in out
    table = render_many([full_report(), error_report()], "text", root="records")
    assert "track_10min_16mb/2026-01-01_Example" in table and "target-in-key" in table
    assert "Permission denied" in table and "1 fail" in table and "1 error" in table


def test_baseline_accepts_known_findings_only():
    r = full_report()
    text = baseline.dumps([r])
    doc = json.loads(text)
    # info and inline-allowed findings need no baseline entry
    assert sorted(e["rule"] for e in doc["accepted"]) == ["CLM010", "TIK001"]
    accepted = {(e["submission"], e["fingerprint"]) for e in doc["accepted"]}
    moved = full_report()
    moved.findings[0].line = 200
    moved.findings[0].message = moved.findings[0].message.replace("line 143", "line 200")
    moved.add(Finding("TIK002", "target-in-key", "error", "a new lookup keyed on the target", path="train_gpt.py", line=210))
    assert baseline.apply(moved, accepted) == 2
    assert [f.rule for f in moved.active_findings() if f.severity == "error"] == ["TIK002"]
    assert moved.verdict == "fail"
    other = full_report("./records/track_10min_16mb/2026-01-01_Example/")
    baseline.apply(other, accepted)
    assert other.verdict == "pass"  # the same folder written differently
    elsewhere = full_report("records/elsewhere")
    assert baseline.apply(elsewhere, accepted) == 0 and elsewhere.verdict == "fail"


def _docstring_sections(path) -> dict[str, str]:
    """A rule file's class docstring split at its Why:/Example:/Fix: headings, read here with ast."""
    import ast
    import textwrap

    tree = ast.parse(path.read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and any(
        isinstance(t, ast.Assign) and any(getattr(x, "id", "") == "ID" for x in t.targets) for t in n.body)]
    lines = ast.get_docstring(cls).splitlines()
    out, current = {"what": []}, "what"
    for line in lines:
        if line.strip().rstrip(":").lower() in ("why", "example", "fix") and line.strip().endswith(":"):
            current = line.strip().rstrip(":").lower()
            out[current] = []
            continue
        out[current].append(line)
    return {k: textwrap.dedent("\n".join(v)).strip() for k, v in out.items()}


def test_sarif_rule_help_is_each_rules_own_documentation(sarif_validator):
    """A static run lists every static rule file's rule, with help made of that rule's own docstring;
    a part's ID (claims, probes) gets the same what/why/example/fix that `golf-audit explain` prints."""
    from tests.conftest import ROOT

    r = Report(submission="submissions/x")
    r.parts_run = ["static", "claims"]
    r.add(Finding("CLM010", "claims-mismatch", "error", "submission.json claims 1.1 but the logs give 1.2"))
    doc = json.loads(render(r, "sarif"))
    sarif_validator.validate(doc)
    rules = {x["id"]: x for x in doc["runs"][0]["tool"]["driver"]["rules"]}
    rule_files = sorted((ROOT / "checks" / "static" / "rules").glob("ga[0-9]*.py"))
    file_ids = {p.name[:5].upper() for p in rule_files}
    assert file_ids and file_ids <= set(rules)
    for path in rule_files:
        sec = _docstring_sections(path)
        md = rules[path.name[:5].upper()]["help"]["markdown"]
        assert " ".join(sec["why"].split()) in md and " ".join(sec["fix"].split()) in md, path.name
        assert all(line.strip() in md for line in sec["example"].splitlines()), path.name
    clm = rules["CLM010"]
    assert clm["properties"]["family"] == "claims-mismatch" and clm["properties"]["condition"] == "rules"
    from tests.cli_run import run_cli

    explained = run_cli("explain", "CLM010").stdout
    why = explained.split("Why is this bad?\n", 1)[1].split("\n\n", 1)[0].strip()
    assert why and why in clm["help"]["markdown"]
    # a clean static run is one passing JUnit case per rule
    case = ET.fromstring(render(r, "junit")).find("testsuite/testcase[@name='GA101 target-in-key']")
    assert case is not None and case.find("failure") is None
    # without the static part only the IDs the report mentions are listed
    r.parts_run = ["claims"]
    assert [x["id"] for x in json.loads(render(r, "sarif"))["runs"][0]["tool"]["driver"]["rules"]] == ["CLM010"]


def test_baseline_does_not_depend_on_how_the_folder_was_typed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    typed = full_report("records/x")
    typed.findings[0].path = "records/x/train_gpt.py"  # as the static part writes it: folder + file
    accepted = {(e["submission"], e["fingerprint"]) for e in json.loads(baseline.dumps([typed]))["accepted"]}
    absolute = full_report(str(tmp_path / "records" / "x"))
    absolute.findings[0].path = str(tmp_path / "records" / "x" / "train_gpt.py")
    assert baseline.apply(absolute, accepted) == 2 and absolute.verdict == "pass"


def test_numbers_are_formatted_for_their_kind():
    from reports.render.common import fmt_value

    assert fmt_value([1337, 42], "seeds") == "1337, 42"  # seeds are names, not amounts
    assert fmt_value([308743], "seed_bytes_total") == "308,743"
    assert fmt_value(49.26, "seed_train_s") == "49.260"
    assert fmt_value(1.1, "claimed_bpb") == "1.10000000"
    assert fmt_value(None) == "–" and fmt_value(True) == "true"
    assert fmt_value({"eval_val_sliding": 1.9731994604504324}) == "eval_val_sliding: 1.97319946"


def test_a_position_not_scored_is_null_in_json_and_every_format_renders():
    """A counterexample may hold NaN (a position the changed stream no longer scores): JSON has no
    NaN, so it is null there, and no format fails on it."""
    from reports.model import ProbeResult, Report

    r = Report(submission="x")
    r.probes.append(ProbeResult(probe="future-invariance", status="fail", detail="d",
                                counterexample={"nll": [1.0, float("nan")], "nll_diff": float("inf")}))
    doc = json.loads(r.to_json())
    assert doc["probes"][0]["counterexample"] == {"nll": [1.0, None], "nll_diff": None}
    for fmt in ("text", "json", "sarif", "markdown", "junit"):
        assert render(r, fmt)
