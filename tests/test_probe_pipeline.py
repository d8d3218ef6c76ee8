"""The whole-pipeline probe: the submission's own main() on generated shards, one val token changed.

The legal example trains, quantizes and evaluates without looking at val before scoring it: it
passes. A pre-quant TTT variant (AdamW epochs on the val tokens between training and the
artifact, the shape of PRs #1735/#1738/#1972; our own rewrite of the example, not their code)
fails with family val-data-in-training, and the eval-function probes alone cannot see it. The
bundled two-pass eval fails as multi-pass (its weights are the same in both runs). A main() that
requires CUDA runs with CUDA answered by the CPU; one that reads a file the probe cannot generate
is reported as could-not-run (fail closed), never a pass.
"""

from __future__ import annotations


import pytest

from checks.parts import AuditOptions, run_parts
from checks.probes import whole_pipeline
from harness.submission import load_submission
from reports.model import Report
from tests.conftest import SUBMISSIONS, rewritten_example

# (text in the legal example, pre-quant TTT on val in its place); each must occur exactly once.
PREQUANT_TTT = [
    ("        if master_process:\n            model_bytes = save_artifact(",
     "        ttt_opt = torch.optim.AdamW(base_model.parameters(), lr=args.lr)\n"
     "        for _epoch in range(2):\n"
     "            for i in range(0, val_tokens.numel() - 1 - args.train_seq_len, args.train_seq_len):\n"
     "                xv = val_tokens[i : i + args.train_seq_len][None].to(device)\n"
     "                yv = val_tokens[i + 1 : i + 1 + args.train_seq_len][None].to(device)\n"
     "                ttt_loss = base_model(xv, yv)\n"
     "                ttt_opt.zero_grad(set_to_none=True)\n"
     "                ttt_loss.backward()\n"
     "                ttt_opt.step()\n"
     "        if master_process:\n            model_bytes = save_artifact("),
]
# The records' opening: CUDA required, everything on a CUDA device, nvidia-smi in the log.
NEEDS_CUDA = [
    ("    device = torch.device(\"cuda\", int(os.environ.get(\"LOCAL_RANK\", \"0\"))) if torch.cuda.is_available() else torch.device(\"cpu\")\n",
     "    if not torch.cuda.is_available():\n"
     "        raise RuntimeError(\"CUDA is required\")\n"
     "    device = torch.device(\"cuda\", int(os.environ.get(\"LOCAL_RANK\", \"0\")))\n"
     "    torch.cuda.set_device(device)\n"
     "    import subprocess\n"
     "    print(subprocess.run([\"nvidia-smi\"], stdout=subprocess.PIPE, text=True).stdout)\n"),
]
# A file the probe cannot generate (data prep reading the raw documents).
READS_RAW_DOCS = [
    ("    sp = spm.SentencePieceProcessor(model_file=args.tokenizer_path)\n",
     "    Path(args.data_path, \"docs_selected.jsonl\").read_text()\n"
     "    sp = spm.SentencePieceProcessor(model_file=args.tokenizer_path)\n"),
]
# Code that turns on the audit from inside the child: the driver's decisions and fingerprints
# replaced (those of this probe's earlier layout too), so that no score and no weight seems to move.
TAMPERS_WITH_THE_DRIVER = [
    ("        if master_process:\n            model_bytes = save_artifact(",
     "        for _name, _attr, _value in ((\"checks.probes.whole_pipeline\", \"_moved\", lambda *a, **k: None),\n"
     "                                     (\"checks.probes.whole_pipeline\", \"moved_before\", lambda *a, **k: None),\n"
     "                                     (\"checks.probes.whole_pipeline\", \"changed_tensors\", lambda *a, **k: []),\n"
     "                                     (\"harness.pipeline_run\", \"fingerprint\", lambda m: \"0\" * 16),\n"
     "                                     (\"harness.pipeline_run\", \"fingerprints\", lambda m: {\"w\": \"0\" * 16})):\n"
     "            if _name in sys.modules:\n"
     "                setattr(sys.modules[_name], _attr, _value)\n"
     "        if master_process:\n            model_bytes = save_artifact("),
]
# A well-formed "passed" answer written on the child's result channel, then a silent exit.
FORGES_A_PASS = [
    ("    sp = spm.SentencePieceProcessor(model_file=args.tokenizer_path)\n",
     "    import json as _json\n"
     "    _value = {\"example\": {\"n\": 2049, \"t\": 1537, \"b\": 5}, \"entry\": \"eval_val\", \"env\": {},\n"
     "              \"tokenizer\": \"kjv_1024_bpe.model\", \"own_depth\": None, \"seconds\": [1.0, 1.0], \"scored\": 2048,\n"
     "              \"weights_changed\": False, \"cuda_on_cpu\": False, \"eval_adapts\": False, \"cex\": None}\n"
     "    _body = _json.dumps({\"ok\": True, \"value\": _value, \"blocked\": []}).encode()\n"
     "    os.write(int(sys.argv[1]), b\"GASB1 %d\\n\" % len(_body) + _body)\n"
     "    os._exit(0)\n"
     "    sp = spm.SentencePieceProcessor(model_file=args.tokenizer_path)\n"),
]


def rewritten(tmp_path, name: str, rewrites) -> str:
    return str(rewritten_example(tmp_path / name, "legal_sliding", rewrites))


def probe(path: str, replay: str | None = None, only=("whole-pipeline",)) -> Report:
    extra = {"probes": list(only)}
    if replay:
        extra["replay"] = replay
    report = Report(submission=path)
    run_parts(load_submission(path), AuditOptions(command="probe", profile="default", extra=extra), ["probes"], report)
    return report


def result(report: Report, name: str = whole_pipeline.NAME):
    return next(p for p in report.probes if p.probe == name)


def test_legal_example_passes():
    report = probe(str(SUBMISSIONS / "legal_sliding"))
    r = result(report)
    assert r.status == "pass", r.detail
    assert r.data["main_runs"] == 2 and r.data["weights_changed_before_eval"] is False
    assert r.data["scored_positions"] > 0 and report.verdict == "pass"


def test_prequant_ttt_on_val_fails_as_val_data_in_training(tmp_path):
    path = rewritten(tmp_path, "prequant_ttt", PREQUANT_TTT)
    report = probe(path, only=("whole-pipeline", "future-invariance"))
    assert result(report, "future-invariance").status == "pass"  # the eval function alone is causal
    r = result(report)
    assert r.status == "fail" and r.family == "val-data-in-training" and r.condition == "C1"
    cex = r.counterexample
    assert cex["largest_moved"] < cex["changed_index"] - 1 and abs(cex["nll_diff"]) > whole_pipeline.TOL
    assert r.data["weights_changed_before_eval"] is True and r.data["main_runs"] == 3
    assert report.verdict == "fail"
    finding = next(f for f in report.findings if f.rule == "PRB-whole-pipeline")
    assert finding.family == "val-data-in-training" and "--replay" in finding.fix
    # The printed spec replays exactly that example.
    again = result(probe(path, replay=cex["spec"]))
    assert again.status == "fail" and again.counterexample["largest_moved"] == cex["largest_moved"]


def test_two_pass_eval_fails_as_multi_pass():
    r = result(probe(str(SUBMISSIONS / "two_pass")))
    assert r.status == "fail" and r.family == "multi-pass"
    assert r.data["weights_changed_before_eval"] is False


def test_main_that_requires_cuda_runs_with_cuda_answered_by_the_cpu(tmp_path):
    report = probe(rewritten(tmp_path, "needs_cuda", NEEDS_CUDA))
    r = result(report)
    assert r.status == "pass", r.detail
    assert r.data["cuda_on_cpu"] is True and not report.findings


def test_main_that_reads_what_cannot_be_generated_could_not_run(tmp_path):
    report = probe(rewritten(tmp_path, "raw_docs", READS_RAW_DOCS))
    r = result(report)
    assert r.status == "could-not-run" and "docs_selected.jsonl" in r.detail and "train_gpt.py:" in r.detail
    assert "eval-function probes" in r.detail
    assert report.verdict == "incomplete"


def test_ci_profile_leaves_it_out():
    assert not whole_pipeline.wanted(AuditOptions(profile="ci"))
    assert whole_pipeline.wanted(AuditOptions(profile="default"))


@pytest.mark.parametrize("spec", ["whole-pipeline:n=9", "whole-pipeline:n=9,t=2,x=1", "whole-pipeline:n=a,t=1,b=2"])
def test_bad_replay_specs(spec):
    with pytest.raises(ValueError):
        whole_pipeline.parse(spec)


def test_score_first_ttt_passes_and_update_before_score_fails():
    assert result(probe(str(SUBMISSIONS / "ttt_score_first"))).status == "pass"
    r = result(probe(str(SUBMISSIONS / "ttt_update_before_score")))
    assert r.status == "fail" and r.family == "update-before-score"
    assert r.data["eval_adapts_weights"] is True and r.data["weights_changed_before_eval"] is False


def test_a_child_that_tampers_with_the_driver_does_not_pass(tmp_path):
    # Pre-quant TTT on val, and the driver's decisions replaced inside the child: the decisions are
    # made in the auditing process from the scores, which still move.
    r = result(probe(rewritten(tmp_path, "tampers", PREQUANT_TTT + TAMPERS_WITH_THE_DRIVER)))
    assert r.status == "fail", r.detail
    assert r.counterexample["positions_moved"] > 0


def test_a_child_that_forges_a_pass_on_the_result_channel_does_not_pass(tmp_path):
    report = probe(rewritten(tmp_path, "forges", FORGES_A_PASS))
    r = result(report)
    assert r.status == "could-not-run" and "holds no per-position NLL" in r.detail
    assert report.verdict == "incomplete"
