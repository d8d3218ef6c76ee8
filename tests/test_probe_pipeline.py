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

import math

import numpy as np
import pytest

from checks.parts import AuditOptions, run_parts
from checks.probes import whole_pipeline
from harness import pipeline_run, shards
from harness.cuda_on_cpu import cuda_as_cpu
from harness.pipeline_run import val_stream
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
     "                                     (\"harness.pipeline_run\", \"fingerprints\", lambda m: {k: \"0\" * 16 for k in m.state_dict()})):\n"
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
    assert r.data["weights_changed_before_eval"] is False  # the fingerprints were forged; the scores were not


def test_a_child_that_forges_a_pass_on_the_result_channel_does_not_pass(tmp_path):
    report = probe(rewritten(tmp_path, "forges", FORGES_A_PASS))
    r = result(report)
    assert r.status == "could-not-run" and "holds no per-position NLL" in r.detail
    assert report.verdict == "incomplete"


# ---------------------------------------------------------------- the driver's parts, without main()

def observed(nll, count=None, last=None, weights=None, sizes=None) -> whole_pipeline.Observation:
    nll = np.asarray(nll, dtype=np.float64)
    return whole_pipeline.Observation(
        nll=nll, nll_last=nll if last is None else np.asarray(last, dtype=np.float64),
        count=np.ones(nll.shape, dtype=np.int64) if count is None else np.asarray(count),
        weights=weights or {"w": "0" * 16}, sizes=sizes or {"w": 10}, entry="eval_val", final_call=["eval_val", 0],
        eval_adapts=False, cuda_on_cpu=False, own_depth=None, env={})


def test_a_rescoring_that_reads_the_future_shows_in_the_last_scores():
    a = observed([1.0, 2.0, 3.0, 4.0])
    b = observed([1.0, 2.0, 3.0, 4.0], last=[1.0, 2.5, 3.0, 4.0], count=[1, 2, 1, 1])
    assert whole_pipeline.moved_before(a, a, 4, 0.0) is None
    m = whole_pipeline.moved_before(a, b, 4, whole_pipeline.TOL)
    assert m["largest_moved"] == 1 and m["rescore"] and m["nll_diff"] == pytest.approx(0.5)


def test_an_answer_that_is_not_an_observation_is_refused():
    s = np.arange(10, dtype=np.int64)
    good = {"nll": np.zeros(9), "nll_last": np.zeros(9), "count": np.ones(9, dtype=np.int64), "tokens": s,
            "weights": {"w": "ab" * 8}, "sizes": {"w": 4}, "entry": "eval_val", "final_call": ["eval_val", 0],
            "env": {}}
    assert whole_pipeline.observation(good, s).entry == "eval_val"
    for bad in ({**good, "tokens": s[::-1].copy()}, {**good, "nll": np.zeros(8)}, {**good, "weights": {"w": "x"}},
                {**good, "count": np.zeros(9, dtype=np.int64)}, {**good, "final_call": ["other", 0]},
                {"cex": None, "weights_changed": False}):
        with pytest.raises(whole_pipeline.Unfinished):
            whole_pipeline.observation(bad, s)


def test_weights_moved_only_where_quantized_is_calibration_else_training():
    sizes = {"mlp.fc": 131072, "attn_scale": 256, "norm": 256}
    base = observed([1.0], sizes=sizes, weights={n: "0" * 16 for n in sizes})

    def family(tensors):
        o = whole_pipeline.Outcome(example={}, tokenizer="t", runs=[base], original=0, moved=None, tensors=tensors)
        return whole_pipeline._family(o, Report(submission="x"))

    assert family(["mlp.fc"]) == "val-calibration"
    assert family(["attn_scale", "mlp.fc"]) == "val-data-in-training"


def test_the_generated_stream_never_ends_on_a_lone_bos():
    for n in (129, 257, 2049):
        s = val_stream(0, n, 1024, bos=1)
        assert s[0] == 1 and s[-1] != 1 and (s == 1).sum() == (n - 2) // shards.DOC_TOKENS + 1


def test_concatenated_positions_keep_their_tags():
    from harness.capture import Capture, TaggedArray, _tag_np

    capture = Capture()
    a, b = _tag_np(np.ones(3), np.arange(3), capture), _tag_np(np.ones(2), np.arange(3, 5), capture)
    out = np.concatenate([a, b])
    assert isinstance(out, TaggedArray) and list(out.pos) == [0, 1, 2, 3, 4]
    assert np.stack([a, a]).shape == (2, 3)  # a list of tagged arrays does not dispatch back without end


def test_cuda_generators_and_inference_mode_on_the_cpu():
    import torch

    with cuda_as_cpu(), pipeline_run.inference_mode_as_no_grad():
        assert torch.Generator(device="cuda").device.type == "cpu"
        with torch.inference_mode():
            cache = torch.ones(3)
        w = torch.ones(3, requires_grad=True)
        (w * cache).sum().backward()  # a cache made under inference mode enters autograd later
    assert w.grad is not None and torch.inference_mode is not pipeline_run._inference_mode


def test_outer_evals_and_tied_widths():
    source = (
        "import os\n"
        "class Hyperparameters:\n"
        "    model_dim = int(os.environ.get(\"MODEL_DIM\", 512))\n"
        "    embedding_dim = int(os.environ.get(\"EMBEDDING_DIM\", 512))\n"
        "    head_dim = 64\n"
        "def eval_val_store(args, base_model, val_tokens):\n    return 0.0\n"
        "def eval_two_pass(args, base_model, val_tokens):\n    return eval_val_store(args, base_model, val_tokens)\n"
        "def run_eval(args, val_tokens):\n    return eval_val_store(args, None, val_tokens)\n")
    assert pipeline_run.outer_evals(source, ["eval_val_store"]) == ["eval_two_pass"]
    namespace: dict = {}
    exec(compile(source, "<test>", "exec"), namespace)
    assert pipeline_run.tied_widths([namespace["Hyperparameters"]()], source) == ["EMBEDDING_DIM"]
    single = source.replace('"EMBEDDING_DIM"', "'EMBEDDING_DIM'")  # minified records quote with '
    assert pipeline_run.tied_widths([namespace["Hyperparameters"]()], single) == ["EMBEDDING_DIM"]


def test_a_second_pass_that_returns_only_its_own_mean_is_traced():
    from harness.capture import Capture, Record, check_capture
    from harness.scorer import ScorerError

    capture = Capture()
    pos = np.arange(4)
    first = Record(pos, np.array([7.0, 7.0, 7.0, 7.0]), 28.0)
    rescored = Record(pos, np.array([1.0, 2.0, 3.0, 2.0]), 8.0)
    check_capture(capture, [first, rescored], (2.0, 2.0 / math.log(2)), "eval_two_pass", 0)  # the last pass
    check_capture(capture, [first, rescored], (7.0,), "eval_two_pass", 0)  # the first pass
    check_capture(capture, [first, rescored], (4.5,), "eval_two_pass", 0)  # every scoring
    with pytest.raises(ScorerError, match="could not be traced"):
        check_capture(capture, [first, rescored], (3.0,), "eval_two_pass", 0)
    assert list(pipeline_run.last_scores([first, rescored], 5)[:4]) == [1.0, 2.0, 3.0, 2.0]


def test_the_driven_source_is_read_as_this_python_reads_it(tmp_path):
    import ast

    entry = tmp_path / "train_gpt.py"
    entry.write_text('def eval_val(model, val_tokens):\n    return f"{"a" + "b"}"\n\ndef main():\n    pass\n')
    ast.parse(pipeline_run.driven_source(str(entry)))  # a 3.12 f-string, on any supported Python


def test_the_number_the_run_claims_must_be_explained_by_the_captured_scores():
    from harness.capture import Capture, Claimed, Record, check_capture, target_bytes
    from harness.scorer import ScorerError

    tokens = np.array([0, 1, 2, 1, 2])
    base = np.array([0, 2, 3])
    lead = np.array([False, True, False])
    boundary = np.array([True, False, False])
    nbytes = target_bytes(tokens, base, lead, boundary)
    assert list(nbytes[0]) == [2, 3, 3, 3] and list(nbytes[1]) == [3, 3, 3, 3] and list(nbytes[2]) == [2, 3, 2, 3]
    capture = Capture()
    rec = Record(np.arange(4), np.array([1.0, 2.0, 1.0, 2.0]), 6.0)
    bpb = 6.0 / 11 / math.log(2)  # the challenge's count: no leading space after a boundary
    claimed = Claimed(2, nbytes)
    # The claimed element is the captured scores' bits per byte: explained.
    check_capture(capture, [rec], (1.5, bpb * 1.001, bpb), "eval_val", 0, claimed)
    # The model's loss is element 0, but the printed val_bpb (element 2) came from elsewhere: fail closed.
    with pytest.raises(ScorerError, match="element 2"):
        check_capture(capture, [rec], (1.5, bpb, 0.39), "eval_val", 0, claimed)
    # The claimed element is element 1 again: the mixture that sets them apart never acted.
    with pytest.raises(ScorerError, match="never acted"):
        check_capture(capture, [rec], (1.5, bpb, bpb * (1 + 1e-9)), "eval_val", 0, claimed)
    # Without a claimed element only the returned loss is checked.
    check_capture(capture, [rec], (1.5, bpb, 0.39), "eval_val", 0)


def test_the_claimed_element_is_the_one_main_prints_as_val_bpb():
    import ast

    from harness.entry_points import claimed_index

    source = (
        "def main():\n"
        "    loss, bpb, ng_bpb = eval_val_ngram(args, model)\n"
        "    log0(f'final loss:{loss:.4f} val_bpb:{ng_bpb:.4f}')\n"
        "def other():\n"
        "    loss, bpb = eval_val(args, model)\n"
        "    log0(f'val_loss:{loss:.4f} val_bpb: {bpb}')\n"
        "def bare():\n"
        "    result = eval_val(args, model)\n"
        "    log0(f'val_bpb:{result}')\n")
    tree = ast.parse(source)
    for fn, want in zip(tree.body, (2, 1, None)):
        call = next(n for n in ast.walk(fn) if isinstance(n, ast.Call) and getattr(n.func, "id", "").startswith("eval"))
        assert claimed_index(call, fn) == want
