"""C1 over the whole pipeline: changing val token x_t never moves a final score before t.

The other probes drive the final eval function alone. Many violations happen before it: AdamW
epochs on the validation tokens before quantization (pre-quant TTT), GPTQ calibration batches
read from val, a first pass that builds state from the whole val stream. This probe runs the
submission's own main() (harness/pipeline_run.py: generated train and val shards, small dims, a
few training steps, the launch's env, sandboxed) twice, the second time with one val token
changed and everything else equal, and compares the final eval's per-position scores: none
before t may move by more than ``TOL`` nats, nor at all when the weights the final eval starts
from moved with the val token (a quantized weight one step off moves scores by less than TOL). A move is confirmed by a third, unchanged run (a
pipeline that is not deterministic under fixed seeds is reported as such, never as a violation).

Diagnosis: when the weights the final eval starts from differ between the two runs, val tokens
reached the weights before scoring (``val-data-in-training``, or ``val-calibration`` when the
static rules found calibration on val); otherwise the eval's own state read the future: its
adapted weights (``update-before-score``, when it trains during the eval) or other state built
from the stream (``multi-pass``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import sentencepiece as spm

import checks.probes as probes_package
from checks.parts import AuditOptions, launch_of
from harness.pipeline_run import PipelineError, config_objects, config_value, run_pipeline, val_stream
from harness.sandbox import findings_from_blocked, limits_for, run_sandboxed
from harness.cuda_on_cpu import cuda_as_cpu
from harness.loader import import_submission
from harness.submission import Submission
from harness.submission_scorer import PROBE_ENV
from reports.model import Finding, ProbeResult, Report

NAME = "whole-pipeline"
CONDITION = "C1"
FAMILY = "multi-pass"
TOL = 1e-5  # nats
# Generated val tokens per rank of the launch (main() runs as rank 0 of it; four windows each).
TOKENS_PER_RANK = 4 * int(PROBE_ENV["TRAIN_SEQ_LEN"])
# Sandbox seconds per profile for all main() runs together; the ci profile leaves this probe out.
SECONDS = {"default": 600.0, "thorough": 1800.0}
TITLE = "changing val token x_t leaves every final score before t unchanged, through training, quantization and eval"


ROOT = Path(__file__).resolve().parents[2]


def bundled_tokenizers() -> list[str]:
    """The sentencepiece models this checkout carries: the examples' sp1024, the challenge's sp8192s."""
    found = [ROOT / "submissions" / "data" / "tokenizers" / "kjv_1024_bpe.model", *sorted((ROOT / "tests" / "data").glob("*.model"))]
    return [str(p) for p in found if p.is_file()]


def is_spec(spec: str | None) -> bool:
    return bool(spec) and spec.partition(":")[0] == NAME


def parse(spec: str) -> dict:
    """``whole-pipeline:b=..,n=..,t=..`` -> the example; ValueError on anything else."""
    ex = {}
    for part in filter(None, spec.partition(":")[2].split(",")):
        k, _, v = part.partition("=")
        if k not in ("n", "t", "b") or not v.lstrip("-").isdigit():
            raise ValueError(f"bad replay spec item {part!r} (expected n=, t=, b= integers)")
        ex[k] = int(v)
    if set(ex) != {"n", "t", "b"}:
        raise ValueError("a whole-pipeline spec names n, t and b")
    return ex


def spec_of(ex: dict) -> str:
    return f"{NAME}:" + ",".join(f"{k}={ex[k]}" for k in sorted(ex))


# ------------------------------------------------------------------------ in the sandboxed child

def _tokenizer(args: dict) -> tuple[str, int, int | None]:
    """The tokenizer main() will load: the one named like its default path, else one of its vocabulary
    size, else the smallest (VOCAB_SIZE then follows the tokenizer). Returns (path, vocabulary, BOS id)."""
    with cuda_as_cpu():
        configs = config_objects(import_submission(args["entry"], launch_env=args.get("launch_env")))
    vocabs = {p: int(spm.SentencePieceProcessor(model_file=p).vocab_size()) for p in args["tokenizers"]}
    want = os.path.basename(str(config_value(configs, "tokenizer_path", "")))
    default_vocab = int(config_value(configs, "vocab_size", 0) or 0)
    pick = next((p for p in vocabs if os.path.basename(p) == want), None) \
        or next((p for p in vocabs if vocabs[p] == default_vocab), None) or min(vocabs, key=vocabs.get)
    bos = int(spm.SentencePieceProcessor(model_file=pick).bos_id())
    return pick, vocabs[pick], bos if bos >= 0 else None


def check_in_child(args: dict) -> dict:
    """Driver: the property on one example (``args['replay']``) or on the one this probe picks."""
    tokenizer, vocab, bos = _tokenizer(args)
    runs_args = {**args, "tokenizer": tokenizer, "vocab_size": vocab}
    ex = dict(args.get("replay") or {})
    n = ex.get("n") or max(1, int(args.get("world_size", 1))) * TOKENS_PER_RANK + 1
    s = val_stream(int(args.get("seed", 0)), n, vocab, bos)
    first = run_pipeline({**runs_args, "streams": [s.tolist()]})
    runs_args["own_depth"] = first["own_depth"]  # the depth the first run needed, for every later one
    base = first["runs"][0]
    scored = np.nonzero(base["count"] > 0)[0]
    if not ex:
        # The token after three quarters of what rank 0 scores: most of its scores lie before it.
        t = int(scored[(3 * scored.size) // 4]) + 1
        t += int(s[t] == bos)  # a document's first token stays BOS
        alphabet = np.unique(s[s != bos])  # another token of the stream's own alphabet
        ex = {"n": n, "t": t, "b": int(alphabet[(np.searchsorted(alphabet, s[t]) + 1) % alphabet.size])}
    t, b = ex["t"], ex["b"] % vocab
    if not 0 < t < n or b == s[t]:
        raise PipelineError(f"replay example out of range: token {t} of {n} changed to {b}")
    s2 = s.copy()
    s2[t] = b
    changed = run_pipeline({**runs_args, "streams": [s2.tolist()]})["runs"][0]
    out = {"example": ex, "entry": first["entry"], "env": first["env"], "tokenizer": tokenizer,
           "own_depth": first["own_depth"],
           "seconds": [base["seconds"], changed["seconds"]], "scored": int(scored.size),
           "weights_changed": base["weights"] != changed["weights"], "cuda_on_cpu": bool(base["cuda_on_cpu"]), "eval_adapts": bool(base["eval_adapts"])}
    # Weights that moved with a val token before the eval: any earlier score they move at all counts
    # (a quantized weight one step off moves scores by less than TOL); otherwise TOL.
    tol = 0.0 if out["weights_changed"] else TOL
    moved = _moved(base, changed, t, tol)
    if moved is None:
        return {**out, "cex": None}
    again = run_pipeline({**runs_args, "streams": [s.tolist()]})["runs"][0]
    out["seconds"].append(again["seconds"])
    noise = _moved(base, again, n, tol)
    if noise is not None:
        raise PipelineError(f"main() is not deterministic under fixed seeds: the same val stream gave NLL "
                            f"{noise['nll'][0]:.6g} then {noise['nll'][1]:.6g} at position {noise['largest_moved']}")
    return {**out, "cex": {"stream_length": n, "changed_index": t, "tokens": [int(s[t]), int(b)], **moved}}


def _moved(r1: dict, r2: dict, t: int, tol: float) -> dict | None:
    """Targets 0..t-2 (input and target before token t) whose NLL moved by more than ``tol`` nats."""
    a1, a2 = r1["nll"][: max(t - 1, 0)], r2["nll"][: max(t - 1, 0)]
    diff = np.abs(np.nan_to_num(a1, nan=0.0) - np.nan_to_num(a2, nan=0.0))
    moved = np.nonzero(diff > tol)[0]
    if not moved.size:
        return None
    i = int(moved[np.argmax(diff[moved])])  # the earlier position that moved most
    return {"position": int(moved[0]), "largest_moved": i, "nll": [float(a1[i]), float(a2[i])],
            "nll_diff": float(a2[i] - a1[i]), "positions_moved": int(moved.size)}


# ------------------------------------------------------------------------ in the auditing process

def wanted(opts: AuditOptions) -> bool:
    only = opts.extra.get("probes")
    return opts.profile in SECONDS and (not only or NAME in only)


def run(sub: Submission, opts: AuditOptions, report: Report, replay: str | None = None) -> None:
    """Add the whole-pipeline ProbeResult (and a finding when it fails) to ``report``."""
    launch = launch_of(sub, opts)
    args = {"entry": f"$SUBMISSION/{sub.rel(sub.entry)}", "launch_env": dict(launch.env), "seed": opts.seed,
            "world_size": launch.world_size, "tokenizers": [opts.tokenizer] if opts.tokenizer else bundled_tokenizers(),
            "replay": parse(replay) if replay else None}
    limits = limits_for(opts, wall_seconds=SECONDS.get(opts.profile, SECONDS["default"]), cpu_seconds=7200, threads=1)
    res = run_sandboxed("checks.probes.whole_pipeline:check_in_child", args, copy_dir=sub.root,
                        readable=args["tokenizers"], python=opts.python, limits=limits)
    for f in findings_from_blocked(res, sub):
        report.add(f)
    if res.cannot_run:
        report.error = f"probes: {res.error}"
        return
    if not res.ok:
        why = "it ran past the time budget" if res.timed_out else res.error
        detail = (f"main() could not be driven on generated data ({why}); only the eval-function probes judged "
                  "this submission, and they see the final eval alone, not what main() does before it")
        report.probes.append(ProbeResult(probe=NAME, status="could-not-run", detail=detail, condition=CONDITION,
                                         family=FAMILY))
        report.could_not_run("probes", f"probe {NAME}: {detail}")
        return
    v = res.value
    cex = v["cex"]
    # No timings: a report is the same, byte for byte, for the same input (tests/test_determinism.py).
    data = {"entry_point": v["entry"], "main_runs": len(v["seconds"]),
            "scored_positions": v["scored"], "weights_changed_before_eval": v["weights_changed"],
            "eval_adapts_weights": v["eval_adapts"], "cuda_on_cpu": v["cuda_on_cpu"], "own_depth": v["own_depth"],
            "tokenizer": v["tokenizer"].rsplit("/", 1)[-1], "env": v["env"]}
    spec = spec_of(v["example"])
    if cex is None:
        report.probes.append(ProbeResult(
            probe=NAME, status="pass", condition=CONDITION, family=FAMILY, data=data,
            detail=f"{TITLE} (main() run {len(v['seconds'])} times; token {v['example']['t']} of "
                   f"{v['example']['n']} changed, {v['scored']} positions scored)"))
        if v["weights_changed"]:  # val data reached the model, though no earlier score showed it here
            report.add(Finding(
                rule=f"PRB-{NAME}", family=_family(True, False, report), severity="warning", condition=CONDITION,
                path=sub.display(sub.entry),
                message=(f"the weights main() hands its final eval {v['entry']}() changed when val token "
                         f"{v['example']['t']} of {v['example']['n']} changed; no earlier score moved at the probe's "
                         "small dims"),
                why="val tokens reach the weights before they are scored (training or calibration on val)",
                fix=f"replay: {probes_package.replay_command(sub, spec)}"))
        return
    family = _family(v["weights_changed"], v["eval_adapts"], report)
    pr = ProbeResult(probe=NAME, status="fail", condition=CONDITION, family=family, data=data,
                     detail=f"{TITLE}: fails", counterexample={**cex, "spec": spec}, replay=probes_package.replay_command(sub, spec))
    report.probes.append(pr)
    where = "the weights the final eval starts from changed" if v["weights_changed"] else \
        "the weights the final eval starts from are the same, its own state read the future"
    report.add(Finding(
        rule=f"PRB-{NAME}", family=family, severity="error", condition=CONDITION, path=sub.display(sub.entry),
        message=(f"probe {NAME} fails on main() -> {v['entry']}(): val stream of {cex['stream_length']} tokens, "
                 f"token {cex['changed_index']} changed {cex['tokens'][0]} -> {cex['tokens'][1]}, the score at "
                 f"earlier position {cex['largest_moved']} moved by {cex['nll_diff']:+.4g} nats "
                 f"({cex['positions_moved']} earlier positions moved)"),
        why=f"{where}: a val token reached scores of positions before it (C1)",
        fix=f"replay: {pr.replay}", data={"counterexample": pr.counterexample}))


def _family(weights_changed: bool, eval_adapts: bool, report: Report) -> str:
    if not weights_changed:  # the eval's own state read the future: through its adapted weights, or directly
        return "update-before-score" if eval_adapts else FAMILY
    static = {f.family for f in report.findings if not f.rule.startswith("PRB-")}
    return "val-calibration" if "val-calibration" in static and "val-data-in-training" not in static \
        else "val-data-in-training"
