"""Claims audit: the bundled examples pass; crafted copies that lie fail with the right family.

In-process (no subprocess) except for the CLI options; about 5 s on one core.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from checks.claims import agrees, run as claims_run
from harness.logparse import PATTERNS, decimals, parse_log, seed_in_name
from checks.claims.stats import t_sf, welch_improvement
from checks.claims.subjson import load_json, parse_claims
from checks.parts import AuditOptions
from harness.submission import load_submission
from reports.model import Report
from tests.cli_run import report_validator, run_cli
from tests.conftest import SUBMISSIONS

EXAMPLES = sorted(p.name for p in SUBMISSIONS.iterdir() if (p / "submission.json").is_file())


def audit(folder: Path, **opts) -> Report:
    report = Report(submission=folder.as_posix())
    claims_run(load_submission(folder), AuditOptions(**opts), report)
    return report


def active(report: Report, severity: str = "error") -> list[tuple[str, str]]:
    return sorted((f.rule, f.family) for f in report.findings if f.severity == severity)


def families(report: Report) -> set[str]:
    return {f.family for f in report.findings if f.severity == "error"}


@pytest.fixture
def copy(tmp_path):
    def make(name: str = "legal_sliding") -> Path:
        dst = tmp_path / name
        shutil.copytree(SUBMISSIONS / name, dst, ignore=shutil.ignore_patterns("*.ptz"))
        return dst
    return make


def edit_json(folder: Path, change) -> None:
    p = folder / "submission.json"
    d = json.loads(p.read_text())
    change(d)
    p.write_text(json.dumps(d, indent=2))


def edit_text(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


# Read here with one small regex, independently of harness/logparse.py: the examples' final
# scored line, `<stage>_exact val_loss:<x> val_bpb:<y>` (the last one a log prints).
EXACT_FINAL = re.compile(r"^(\w+)_exact val_loss:([0-9.]+) val_bpb:([0-9.]+)$", re.M)


def logged_finals(folder: Path) -> dict[int, tuple[str, float]]:
    """Seed (from the log's file name) -> (stage, val_bpb) of the last exact final line of its log."""
    out = {}
    for log in folder.glob("train_seed*.log"):
        stage, _, bpb = EXACT_FINAL.findall(log.read_text())[-1]
        out[int(re.fullmatch(r"train_seed(\d+)\.log", log.name).group(1))] = (stage, float(bpb))
    return out


def logged_mean(folder: Path) -> float:
    finals = logged_finals(folder)
    return sum(b for _, b in finals.values()) / len(finals)


# ---- the bundled examples --------------------------------------------------------------------------

@pytest.mark.parametrize("name", EXAMPLES)
def test_bundled_example_claims_hold(name):
    r = audit(SUBMISSIONS / name)
    assert r.verdict == "pass", [f.message for f in r.findings]
    assert not [f for f in r.findings if f.severity == "warning"], [f.message for f in r.findings]
    c = r.claims
    claimed = json.loads((SUBMISSIONS / name / "submission.json").read_text())["val_bpb"]
    assert c["claim_matches_logs"] and c["claimed_bpb"] == claimed
    assert len(c["seed_bpbs"]) == len(list((SUBMISSIONS / name).glob("train_seed*.log")))


def test_legal_sliding_numbers_come_from_its_three_logs():
    folder = SUBMISSIONS / "legal_sliding"
    c = audit(folder).claims
    finals = logged_finals(folder)
    assert len(finals) == 3 and sorted(c["seeds"]) == sorted(finals)
    assert {c["log_stage"]} == {stage for stage, _ in finals.values()}
    assert sorted(c["seed_bpbs"]) == pytest.approx(sorted(b for _, b in finals.values()), abs=1e-12)
    assert c["log_mean_bpb"] == pytest.approx(logged_mean(folder), abs=1e-9)  # the report keeps 10 places
    assert all(b <= 16_000_000 for b in c["seed_bytes_total"])
    report_validator().validate(json.loads(audit(SUBMISSIONS / "legal_sliding").to_json()))


# ---- crafted copies that lie ---------------------------------------------------------------------

def test_claimed_bpb_not_the_log_mean(copy):
    d = copy()
    edit_json(d, lambda j: j.update(val_bpb=round(logged_mean(d) - 0.03, 4)))
    r = audit(d)
    assert ("CLM010", "claims-mismatch") in active(r)
    assert not r.claims["claim_matches_logs"]


def test_claim_rounded_to_fewer_digits_still_agrees(copy):
    import math

    d = copy()
    mean = logged_mean(d)
    rounded, truncated = round(mean, 4), math.floor(mean * 1e4) / 1e4
    assert rounded != truncated  # this example's mean tells the two apart
    edit_json(d, lambda j: j.update(val_bpb=rounded))  # the mean to 4 places
    assert "CLM010" not in {f.rule for f in audit(d).findings}
    edit_json(d, lambda j: j.update(val_bpb=truncated))  # truncated: also what it prints
    assert "CLM010" not in {f.rule for f in audit(d).findings}
    edit_json(d, lambda j: j.update(val_bpb=round(truncated - 1e-4, 4)))  # neither
    assert ("CLM010", "claims-mismatch") in active(audit(d))


def test_per_seed_value_not_in_its_log(copy):
    d = copy()
    edit_json(d, lambda j: j["seeds"]["42"].update(val_bpb=1.96))
    assert ("CLM011", "claims-mismatch") in active(audit(d))


def test_val_loss_mismatch_is_a_warning(copy):
    d = copy()
    edit_json(d, lambda j: j.update(val_loss=4.2))
    r = audit(d)
    assert ("CLM013", "claims-mismatch") in active(r, "warning") and r.verdict == "pass"


def test_std_mismatch_is_a_warning(copy):
    d = copy()
    edit_json(d, lambda j: j.update(std_bpb=0.01))
    assert ("CLM012", "claims-mismatch") in active(audit(d), "warning")


def test_bytes_code_is_the_entry_file(copy):
    d = copy()
    edit_json(d, lambda j: j.update(bytes_code=1234))
    r = audit(d)  # a wrong number, but the real total stays far under the cap
    assert ("CLM020", "claims-mismatch") in active(r, "warning") and r.verdict == "pass"


def test_understated_bytes_code_that_hides_a_size_cap_violation(copy):
    d = copy()
    # The claimed total fits only because bytes_code leaves out most of the committed code (the #1959 case).
    edit_json(d, lambda j: j.update(bytes_code=1234, bytes_total=15_999_000))
    r = audit(d)
    assert ("CLM020", "size-cap") in active(r)
    assert any("over the 16,000,000-byte cap" in f.message for f in r.findings if f.rule == "CLM020")


def test_code_that_differs_from_the_logged_run(copy):
    d = copy()
    with open(d / "train_gpt.py", "a") as f:
        f.write("# changed after the run\n")
    r = audit(d)
    assert ("CLM022", "claims-mismatch") in active(r, "warning")
    assert ("CLM020", "claims-mismatch") in active(r, "warning")  # bytes_code is the logged size now


def test_size_cap_from_the_log(copy):
    d = copy()
    edit_text(d / "train_seed42.log", "Total submission size int6+zstd: 310098 bytes",
              "Total submission size int6+zstd: 16000001 bytes")
    r = audit(d)
    assert ("CLM030", "size-cap") in active(r)
    assert ("CLM021", "claims-mismatch") in active(r, "warning")  # seed 42's bytes_total no longer matches



@pytest.mark.parametrize("model, fits", [(15_950_000, True), (15_990_000, False)])
def test_a_logged_total_that_counts_other_code_is_judged_with_the_committed_code(copy, model, fits):
    # The run counted its uncompressed source (90,000 bytes); the committed train_gpt.py (a compressed
    # wrapper, here the example's 22,843 bytes) is what the submission counts.
    d = copy()
    log = d / "train_seed42.log"
    edit_text(log, "Serialized model int6+zstd: 287255 bytes\nCode size: 22843 bytes\n"
                   "Total submission size int6+zstd: 310098 bytes",
              f"Serialized model int6+zstd: {model} bytes\nCode size: 90000 bytes\n"
              f"Total submission size int6+zstd: {model + 90000} bytes")
    r = audit(d)
    assert (("CLM030", "size-cap") in active(r)) != fits
    assert (("CLM030", "size-cap") in active(r, "warning")) == fits

def test_size_cap_from_the_json(copy):
    d = copy()
    edit_json(d, lambda j: j.update(bytes_total=16_000_001))
    assert ("CLM030", "size-cap") in active(audit(d))


def test_training_time_cap(copy):
    d = copy()
    log = d / "train_seed1337.log"
    text = log.read_text()
    text += "stopping_early: wallclock_cap train_time:700000ms step:150/200\n"
    log.write_text(text)
    assert ("CLM040", "time-cap") in active(audit(d))


def test_eval_time_cap(copy):
    d = copy()
    log = d / "train_seed2025.log"
    log.write_text(re.sub(r"(final_int6_sliding_window val_loss:\S+ val_bpb:\S+ stride:64 eval_time:)\d+ms",
                          r"\g<1>612000ms", log.read_text()))
    assert ("CLM041", "time-cap") in active(audit(d))


def test_time_caps_are_info_on_the_non_record_track(copy, tmp_path):
    d = copy()
    (d / "train_seed1337.log").write_text((d / "train_seed1337.log").read_text()
                                          + "stopping_early: wallclock_cap train_time:700000ms step:150/200\n")
    track = tmp_path / "track_non_record_16mb"
    track.mkdir()
    moved = Path(shutil.move(str(d), str(track / "x")))
    r = audit(moved)
    assert "time-cap" not in families(r)
    assert any(f.rule == "CLM040" and f.severity == "info" for f in r.findings)


def test_missing_files_are_structure(copy):
    d = copy()
    (d / "README.md").unlink()
    r = audit(d)
    assert ("CLM001", "structure") in active(r, "warning")
    (d / "submission.json").unlink()
    assert ("CLM001", "structure") in active(audit(d))


def test_a_seed_without_a_log(copy):
    d = copy()
    (d / "train_seed2025.log").unlink()
    r = audit(d)
    assert ("CLM015", "claims-mismatch") in active(r)


def test_readme_that_never_states_the_claim(copy):
    d = copy()
    claimed = json.loads((d / "submission.json").read_text())["val_bpb"]
    edit_text(d / "README.md", f"**val_bpb: {claimed}**", "**val_bpb: 1.8**")
    text = (d / "README.md").read_text()
    (d / "README.md").write_text(re.sub(r"\d\.\d{3,}", "x", text))
    assert ("CLM014", "claims-mismatch") in active(audit(d), "warning")


def test_unknown_metric_format_is_reported(copy):
    d = copy()
    with open(d / "train_seed42.log", "a") as f:
        f.write("final_magic_cache score val_bpb:1.5000\n")
    r = audit(d)
    unk = [f for f in r.findings if f.rule == "CLM005"]
    assert unk and unk[0].family == "structure" and "final_magic_cache" in unk[0].message


@pytest.mark.parametrize("text", ["{", '{"val_bpb": 1.2,}', "[1, 2]", '{"val_bpb": NaN}', "\x00\xff"])
def test_malformed_json_is_one_structure_error(copy, text):
    d = copy()
    (d / "submission.json").write_text(text, encoding="utf-8", errors="surrogateescape")
    r = audit(d)
    errs = [f for f in r.findings if f.rule == "CLM003"]
    assert errs and all("\n" not in f.message for f in errs) and errs[0].family == "structure"


@pytest.mark.parametrize("value", ['"abc"', "true", "[1.9]", '{"x": 1}'])
def test_wrong_types_are_named(copy, value):
    d = copy()
    text = (d / "submission.json").read_text()
    claimed = f'"val_bpb": {json.loads(text)["val_bpb"]}'
    assert claimed in text
    (d / "submission.json").write_text(text.replace(claimed, f'"val_bpb": {value}', 1))
    errs = [f.message for f in audit(d).findings if f.rule == "CLM003"]
    assert any("val_bpb" in m for m in errs), errs


def test_numbers_written_as_strings_are_accepted(copy):
    d = copy()
    text = (d / "submission.json").read_text()
    claimed = json.loads(text)["val_bpb"]  # whatever the example's build printed
    quoted = text.replace(f'"val_bpb": {claimed}', f'"val_bpb": "{claimed}"', 1)
    assert quoted != text
    (d / "submission.json").write_text(quoted)
    r = audit(d)
    assert r.verdict == "pass" and r.claims["claimed_bpb"] == pytest.approx(claimed)


# ---- significance ------------------------------------------------------------------------------------

def test_welch_against_a_much_worse_baseline_passes():
    r = audit(SUBMISSIONS / "legal_sliding", baseline_bpb=2.5)
    assert "significance" not in families(r)
    assert r.claims["significance_p"] < 0.01


def test_welch_against_a_close_baseline_fails():
    r = audit(SUBMISSIONS / "legal_sliding", baseline_bpb=1.976)
    assert ("CLM050", "significance") in active(r)
    assert r.claims["significance_p"] >= 0.01


def test_welch_needs_two_seeds():
    assert ("CLM050", "significance") in active(audit(SUBMISSIONS / "ttt_score_first", baseline_bpb=2.5))


def test_welch_against_a_baseline_folder(copy):
    base = copy()
    for p in base.glob("train_seed*.log"):  # the same runs, 0.05 bpb worse
        p.write_text(re.sub(r"(_exact val_loss:\S+ val_bpb:)(\d\.\d+)",
                            lambda m: f"{m.group(1)}{float(m.group(2)) + 0.05:.8f}", p.read_text()))
    r = audit(SUBMISSIONS / "legal_sliding", baseline_record=str(base))
    assert "significance" not in families(r) and r.claims["significance_p"] < 0.01
    r = audit(SUBMISSIONS / "legal_sliding", baseline_record=str(SUBMISSIONS / "legal_sliding"))
    assert ("CLM050", "significance") in active(r)


def test_cli_baseline_options():
    ok = run_cli("claims", "submissions/legal_sliding", "--baseline-bpb", "2.5", "--format", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["claims"]["significance_p"] < 0.01
    bad = run_cli("claims", "submissions/legal_sliding", "--baseline-record", "no/such/folder")
    assert bad.returncode == 2 and "--baseline-record" in bad.stderr
    bad = run_cli("claims", "submissions/legal_sliding", "--baseline-bpb", "-1")
    assert bad.returncode == 2 and "--baseline-bpb" in bad.stderr


# ---- the pieces ------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.name)
def test_every_pattern_reads_its_example(pattern):
    assert pattern.regex.match(pattern.example), pattern.name
    run = parse_log(pattern.example + "\n")
    assert not run.unknown


def test_log_parser_on_a_log_with_its_script_printed_first():
    text = "\n".join([
        '    log0(f"final_int8_zlib_roundtrip_exact val_loss:{q_val_loss:.8f} val_bpb:{q_val_bpb:.8f}")',
        "    b_loss = b_bpb = 0.0",
        "seed:7",
        "step:100/200 val_loss:2.5000 val_bpb:1.5000 train_time:1000ms step_avg:10.00ms",
        "stopping_early: wallclock_cap train_time:600038ms step:13780/20000",
        "Code size: 47642 bytes",
        "Total submission size: 67272625 bytes",
        "Total submission size int8+zlib: 15863489 bytes",
        "final_int8_zlib_roundtrip val_loss:2.0727 val_bpb:1.2244 eval_time:1401ms",
        "final_int8_zlib_roundtrip_exact val_loss:2.07269931 val_bpb:1.22436570",
        "1776144156.999 quantized_ttt_phased val_loss:2.76951521 val_bpb:1.07216564 eval_time:500104ms",
        "1776144156.999 total_eval_time:500.1s",
    ])
    r = parse_log(text, "logs/train_seed7.log")
    h = r.headline()
    assert (r.seed, h.stage, h.val_bpb, h.eval_s) == (7, "quantized_ttt_phased", 1.07216564, 500.104)
    rt = [m for m in r.finals() if m.stage == "final_int8_zlib_roundtrip"][0]
    assert (rt.val_bpb, rt.bpb_decimals, rt.eval_s) == (1.2243657, 8, 1.401)
    assert r.bytes_total() == 15863489 and r.train_s == 600.038 and r.total_eval_s == 500.1
    assert [m.stage for m in r.metrics if m.diagnostic] == ["step val"] and not r.unknown


def test_a_final_line_with_the_neural_score_before_the_reported_one():
    text = "\n".join([
        "final_int8_zlib_roundtrip_exact val_loss:1.97382834 val_bpb:1.16901232",
        "final_sliding_window sliding_bpb:1.1478 val_bpb:0.3922 eval_time:193472ms",
        "final_sliding_window_exact sliding_bpb:1.14775606 val_bpb:0.39220592",
    ])
    r = parse_log(text, "train.log")
    h = r.headline()
    assert (h.stage, h.val_bpb, h.eval_s) == ("final_sliding_window", 0.39220592, 193.472) and not r.unknown


def test_seed_from_file_names():
    assert [seed_in_name(n) for n in ("train_seed42.log", "ternary_log_7.txt", "run_s1337.txt", "log_10mins_seed-42.txt",
                                      "train_v3.txt", "train.log")] == [42, 7, 1337, 42, None, None]


def test_decimals_and_agreement():
    assert [decimals(s) for s in ("1.2300", "2", "1e-3", "1.5E+1")] == [4, 0, 3, 0]
    assert agrees(1.1929, 4, 1.19295) and agrees(1.1929, 4, 1.19299) and not agrees(1.1929, 4, 1.19301)
    assert agrees(1.1929, 4, 1.19285) and not agrees(1.1929, 4, 1.19284)


@pytest.mark.parametrize("t,df,p", [(2.015, 5, 0.05), (3.365, 5, 0.01), (4.604, 4, 0.005), (31.821, 1, 0.01),
                                    (2.326, 1e7, 0.01), (0.0, 3, 0.5)])
def test_t_tail_matches_tables(t, df, p):
    assert t_sf(t, df) == pytest.approx(p, rel=2e-3, abs=1e-6)


def test_welch_one_sided():
    r = welch_improvement([1.10, 1.11, 1.12], [1.20, 1.21, 1.22], 0.0)
    assert r.df == pytest.approx(4.0) and r.t == pytest.approx(0.1 / (0.01 * (2 / 3) ** 0.5))
    assert r.significant
    assert not welch_improvement([1.10, 1.11, 1.12], [1.20, 1.21, 1.22], 0.099).significant
    fixed = welch_improvement([1.10, 1.11, 1.12], [1.20], 0.0)
    assert fixed.df == pytest.approx(2.0)
    assert welch_improvement([1.1], [1.2], 0.0) is None


def test_json_shapes_of_the_records():
    shapes = [
        '{"val_bpb": 1.1, "seed_results": {"1337": {"val_bpb": 1.10, "artifact_bytes": 15000000, "steps": 10}}}',
        '{"mean_val_bpb": 1.1, "seeds": {"0": {"val_bpb": 1.1, "train_time_ms": 588004, "ttt_time_ms": 293430}}}',
        '{"val_bpb": 1.0912, "seeds": [42, 0], "seed_scores": [1.09057, 1.09084], "eval_time_seconds": [83, 83]}',
        '{"val_bpb": "1.1", "bytes_total": "15,000,000", "seeds": [1], "seed_results": {"1": {"val_var_bpb": 1.1}}}',
    ]
    for s in shapes:
        c = parse_claims(load_json(s))
        assert not c.problems and c.val_bpb is not None and c.seeds, s
    c = parse_claims(load_json(shapes[1]))
    assert c.seeds[0].train_time_s == 588.004 and c.seeds[0].eval_time_s == 293.43
    c = parse_claims(load_json(shapes[2]))
    assert [s.seed for s in c.seeds] == [42, 0] and c.seeds[0].eval_time_s == 83.0
    assert parse_claims(load_json('{"val_bpb": 1.10}')).val_bpb.decimals == 2
    bad = parse_claims(load_json('{"val_bpb": true, "bytes_total": 1.5, "seeds": {"x": {}}, "name": 3}'))
    assert len(bad.problems) == 4


def test_bytes_code_of_a_variant_entry_file(copy):
    d = copy()
    (d / "train_gpt_variant.py").write_text("print('variant')\n" * 10)
    edit_json(d, lambda j: j.update(bytes_code=(d / "train_gpt_variant.py").stat().st_size))
    assert "CLM020" not in {f.rule for f in audit(d).findings}


def test_claim_that_is_a_training_time_value(copy):
    d = copy("ttt_score_first")
    log = d / "train_seed1337.log"
    text = re.sub(r"^final_.*$", "", log.read_text(), flags=re.M)  # a run that never printed its final score
    log.write_text(text + "step:200/200 val_loss:4.2000 val_bpb:1.9991 train_time:500000ms step_avg:2500.00ms\n")
    edit_json(d, lambda j: (j.update(val_bpb=1.9991), j.pop("seeds", None)))
    msgs = [f.message for f in audit(d).findings if f.rule == "CLM010"]
    assert msgs and "diagnostic 'step val'" in msgs[0]
