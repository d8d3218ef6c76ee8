"""Causality probes on every bundled example (the acceptance test of the probes).

Cost: one sandboxed probe run per example under the ``ci`` profile (about 10-40 s each on one
core; about 3 minutes for all with -n 2), plus two short sandbox calls for the scorer and a
replay. Violating examples must fail the probe of their family with a shrunk counterexample;
legal examples must pass every probe.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

from checks.probes.streams import make_documents, make_stream
from tests.cli_run import run_cli
from tests.conftest import SUBMISSIONS
from harness.examples import EXAMPLES
from harness.entry_points import find_entries

_CACHE: dict[str, tuple[int, dict]] = {}


def probe_json(name: str) -> tuple[int, dict]:
    if name not in _CACHE:
        r = run_cli("probe", f"submissions/{name}", "--profile", "ci", "--format", "json", timeout=900)
        assert r.returncode in (0, 1), r.stderr
        _CACHE[name] = (r.returncode, json.loads(r.stdout))
    return _CACHE[name]


# The probe that must catch each violating example (its family's probe).
EXPECTED = {"ngram_target_in_key": "bucket-collapse", "tilt_target_gated": "normalization",
            "ttt_update_before_score": "score-before-update", "two_pass": "future-invariance",
            "double_score_tail": "exactly-once", "boundary_leak": "document-isolation"}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_probes_on_example(name):
    rc, doc = probe_json(name)
    family = EXAMPLES[name].family
    probes = {p["probe"]: p for p in doc["probes"]}
    assert {"future-invariance", "normalization", "exactly-once", "determinism"} <= set(probes)
    failed = [p for p in doc["probes"] if p["status"] == "fail"]
    if family is None:
        assert rc == 0 and not failed, [(p["probe"], p.get("counterexample")) for p in failed]
        assert probes["normalization"]["status"] == "pass"
        return
    assert rc == 1
    ours = probes[EXPECTED[name]]
    assert ours["status"] == "fail" and ours["family"] == family, (ours, [(p["probe"], p["family"]) for p in failed])
    cex = ours["counterexample"]
    assert cex["stream_length"] >= 2 and 0 <= cex["position"] < cex["stream_length"]
    assert "spec" in cex and ours["replay"].startswith(f"golf-audit probe submissions/{name} --replay ")
    assert any(f["family"] == family and f["rule"] == f"PRB-{ours['probe']}" for f in doc["findings"])


def test_counterexamples_are_shrunk():
    _, doc = probe_json("double_score_tail")
    p = next(p for p in doc["probes"] if p["probe"] == "exactly-once")
    # The tail re-scoring needs only a stream a little longer than one stride of the probe config.
    assert p["counterexample"]["stream_length"] <= 40 and p["counterexample"]["count"] >= 2
    assert "effect" in p["data"] and p["data"]["effect"]["extra_scorings"] > 0


def test_replay_reproduces_the_counterexample():
    _, doc = probe_json("double_score_tail")
    p = next(p for p in doc["probes"] if p["probe"] == "exactly-once")
    r = run_cli("probe", "submissions/double_score_tail", "--replay", p["counterexample"]["spec"], "--format", "json",
                timeout=600)
    assert r.returncode == 1, r.stderr
    again = [q for q in json.loads(r.stdout)["probes"] if q["probe"] != "cross-run"]
    assert len(again) == 1 and again[0]["status"] == "fail"
    assert {k: v for k, v in again[0]["counterexample"].items()} == p["counterexample"]


def test_bad_replay_spec_is_a_usage_error():
    r = run_cli("probe", "submissions/legal_sliding", "--replay", "no-such-probe:seed=1")
    assert r.returncode == 2 and "unknown probe" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("probe", "submissions/legal_sliding", "--replay", "exactly-once:seed=x")
    assert r.returncode == 2 and r.stderr.count("\n") == 1


def test_final_entry_points_are_found_statically():
    want = {"legal_sliding": "eval_val_sliding", "ngram_target_in_key": "eval_val_sliding_ngram",
            "ttt_score_first": "eval_val_ttt", "two_pass": "eval_val_two_pass", "tilt_target_gated": "eval_val_sliding_tilt"}
    for name, entry in want.items():
        entries = find_entries((SUBMISSIONS / name / "train_gpt.py").read_text())
        assert entries[0].final and entries[0].name == entry, (name, entries)
        assert "run_final_eval" not in [e.name for e in entries]


@given(st.integers(0, 999), st.integers(64, 300))
def test_generated_streams_locate_every_window(seed, n):
    s = make_stream(seed, n, 128)
    assert s.shape == (n,) and s.min() >= 4 and s.max() < 128
    assert np.array_equal(s, make_stream(seed, n, 128))
    # every 24-token window is unique, so the scorer can map model inputs back to positions
    windows = {s[i : i + 24].tobytes() for i in range(n - 23)}
    assert len(windows) == n - 23


@given(st.integers(0, 999), st.integers(64, 600), st.integers(24, 128))
def test_bos_led_streams_keep_every_window_unique(seed, n, doc):
    s = make_stream(seed, n, 128, bos=1, doc_tokens=doc)
    assert list(np.flatnonzero(s == 1)) == list(range(0, n - 1, doc)) and s[-1] != 1
    assert len({s[i : i + 24].tobytes() for i in range(n - 23)}) == n - 23


@pytest.mark.parametrize("world,n,doc", [(1, 512, 128), (8, 8 * 96, 48), (8, 8 * 40, 24)])
def test_probe_streams_give_every_rank_documents(world, n, doc):
    from types import SimpleNamespace

    from checks.probes.base import Context

    ctx = Context(pipe=SimpleNamespace(vocab_size=128, bos_id=None, world_size=world), tol=1e-6, norm_tol=1e-4)
    s = ctx.stream(5, n)
    assert ctx.bos == 1 and list(np.flatnonzero(s == 1)) == list(range(0, n - 1, doc))
    share = n // world
    assert all((s[r * share : (r + 1) * share] == 1).any() for r in range(world))


def test_documents_start_with_bos():
    s, starts = make_documents(3, 3, 128, bos=1)
    assert [int(s[i]) for i in starts] == [1, 1, 1] and int((s == 1).sum()) == 3


def test_sandboxed_scorer_recovers_per_position_nll():
    from harness.submission import load_submission
    from harness.remote_pipeline import SandboxedSubmissionScorer

    streams = [make_stream(s, 90, 128) for s in (1, 2)]
    legal = SandboxedSubmissionScorer(load_submission(SUBMISSIONS / "legal_sliding")).score_many(streams)
    for r in legal:
        assert (r.count == 1).all() and np.isfinite(r.nll).all()
        assert r.total_nll == pytest.approx(r.nll.sum(), rel=1e-9)
    tail = SandboxedSubmissionScorer(load_submission(SUBMISSIONS / "double_score_tail")).score_many(streams[:1])[0]
    assert tail.count.max() > 1 and tail.total_nll > np.nansum(tail.nll)
    # the first scorings are the legal ones: same model, same windows up to the tail
    assert np.allclose(tail.nll, legal[0].nll, atol=1e-5)


def test_final_entry_is_the_one_the_official_run_takes():
    src = '''
def eval_val(args, model, val_tokens):
    return model(val_tokens[:-1], val_tokens[1:])

def eval_val_sliding(args, base_model, val_tokens, stride):
    return F.cross_entropy(base_model.forward_logits(val_tokens), val_tokens)

def main():
    for step in range(10):
        eval_val(args, model, val_tokens)          # periodic validation while training
    if args.eval_stride > 0:
        eval_val_sliding(args, base_model, val_tokens, stride=64)
    else:
        eval_val(args, model, val_tokens)
'''
    entries = find_entries(src)
    assert [(e.name, e.final) for e in entries] == [("eval_val_sliding", True), ("eval_val", False)]


@pytest.mark.parametrize("bound, severity", [(5e-5, "warning"), (1e-4, "warning"), (3e-4, "error"), (None, "error")])
def test_tail_rescoring_is_an_error_only_above_what_hardware_explains(bound, severity):
    """Shared tail code re-scores a few tokens: a warning while its bounded BPB effect at the real
    validation length is at most 1e-4, an error above it or when nothing bounds it."""
    from checks.parts import AuditOptions
    from checks.probes import add_result
    from checks.probes.exactly_once import HARDWARE_NOISE_BPB
    from harness.submission import load_submission
    from reports.model import Report

    effect = {} if bound is None else {"bpb_effect_bound": bound, "val_tokens": 62_021_632, "seq_len": 2048,
                                       "stride": 64, "extra_scorings": 3, "printed_precision": 1e-8,
                                       "within_hardware_noise": bound <= HARDWARE_NOISE_BPB}
    r = {"probe": "exactly-once", "status": "fail", "detail": "d", "condition": "C4", "family": "double-scoring",
         "counterexample": {"stream_length": 21, "position": 16}, "data": {"effect": effect}}
    report = Report(submission="x")
    sub = load_submission(SUBMISSIONS / "double_score_tail")
    add_result(report, sub, r, "train_gpt.py", {"entry": "eval_val_sliding"}, AuditOptions())
    assert [f.severity for f in report.findings] == [severity]


def test_the_score_a_tail_effect_is_bounded_by_is_the_logged_one_where_submission_json_has_none(tmp_path):
    """A folder whose submission.json names no val_bpb (a merged record that wrote val_loss) still has
    its tail re-scoring bounded: by the final score its log prints, at that line's precision."""
    import json
    import shutil

    from checks.probes import claim_facts
    from harness.submission import load_submission

    sub = tmp_path / "no_bpb"
    shutil.copytree(SUBMISSIONS / "legal_sliding", sub, ignore=shutil.ignore_patterns("*.ptz", "*.pt"))
    claimed = claim_facts(load_submission(sub))
    meta = json.loads((sub / "submission.json").read_text())
    assert claimed["val_bpb"] == pytest.approx(float(meta["val_bpb"]), abs=1e-4)
    meta.pop("val_bpb")
    (sub / "submission.json").write_text(json.dumps(meta))
    logged = claim_facts(load_submission(sub))
    assert logged["val_bpb"] > 0 and logged["precision"] == pytest.approx(1e-8)
    assert logged["val_tokens"] == claimed["val_tokens"]
