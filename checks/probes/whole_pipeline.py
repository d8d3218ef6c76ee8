"""C1 over the whole pipeline: changing val token x_t never moves a final score before t.

The other probes drive the final eval function alone. Many violations happen before it: AdamW
epochs on the validation tokens before quantization (pre-quant TTT), GPTQ calibration batches
read from val, a first pass that builds state from the whole val stream. This probe runs the
submission's own main() (harness/pipeline_run.py: generated train and val shards, small dims, a
few training steps, the launch's env, sandboxed) on a val stream, then on the same stream with one
val token changed, and compares the final eval's per-position scores and the weights it starts
from. It fails when a score before t moves by more than ``TOL`` nats (by anything at all when the
weights moved: a quantized weight one step off moves scores by less than TOL), or when the weights
the final eval starts from moved with the val token: every score of that eval, the earlier
positions' included, then comes from weights fit to later val tokens. A failure is confirmed by a
third run on the unchanged stream (a pipeline that is not deterministic under fixed seeds is
reported as such, never as a violation).

Where things are computed: each run of main() is its own sandboxed child that is given one stream
and returns raw observations only (per-position NLL and counts, the tokens its final eval scored,
per-tensor weight fingerprints, the eval's name). This process draws the streams, picks the
changed token, checks each answer's shape and that the eval scored the stream it was given, and
makes every comparison; a child never learns which run it is, and nothing it says is a verdict.

Diagnosis: when the weights the final eval starts from differ between the two runs, val tokens
reached the weights before scoring (``val-data-in-training``, or ``val-calibration`` when the
static rules found calibration on val); otherwise the eval's own state read the future: its
adapted weights (``update-before-score``, when it trains during the eval) or other state built
from the stream (``multi-pass``).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sentencepiece as spm

import checks.probes as probes_package
from checks.parts import AuditOptions, launch_of
from harness.cuda_on_cpu import cuda_as_cpu
from harness.loader import import_submission, read_source
from harness.pipeline_run import QUANTIZED_ABOVE, config_objects, config_value, run_pipeline, tied_widths, val_stream
from harness.sandbox import SandboxResult, findings_from_blocked, limits_for, run_sandboxed
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
# What an observation may hold: more tensors or longer names are not the probe's small model.
MAX_TENSORS, MAX_NAME = 8192, 300
HEX16 = re.compile(r"[0-9a-f]{16}")
WIDTH_ENV = re.compile(r"[A-Z][A-Z0-9_]{0,60}_DIM")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")
SHOWN_TENSORS = 4  # changed tensors named in a finding


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

def configuration_in_child(args: dict) -> dict:
    """Driver: what main() will look for, read from its configuration objects: the file name of its
    tokenizer path and its vocabulary size (the auditing process picks the tokenizer from these),
    and the widths that follow the model width (harness/pipeline_run.py)."""
    with cuda_as_cpu():
        configs = config_objects(import_submission(args["entry"], launch_env=args.get("launch_env")))
    return {"tokenizer_name": os.path.basename(str(config_value(configs, "tokenizer_path", ""))),
            "vocab_size": int(config_value(configs, "vocab_size", 0) or 0),
            "tied_widths": tied_widths(configs, read_source(args["entry"])[0])}


def observe_in_child(args: dict) -> dict:
    """Driver: main() once on ``args['stream']``; raw observations only (harness/pipeline_run.py)."""
    return run_pipeline(args)


# ------------------------------------------------------------------------ in the auditing process

class Unfinished(Exception):
    """main() could not be driven, or its answers cannot be judged (one line: why)."""


class NoSandbox(Exception):
    """No sandbox could start: no submission code ran (one line: why)."""


@dataclass(frozen=True)
class Observation:
    """One run of main() as its child reported it, checked for shape: per target position the NLL
    (nats) and how often the final eval scored it; per state tensor a fingerprint."""
    nll: np.ndarray
    nll_last: np.ndarray  # the last score of each position: a rescoring pass shows here
    count: np.ndarray
    weights: dict[str, str]
    sizes: dict[str, int]  # elements of each floating-point state tensor
    entry: str
    final_call: list  # [entry point, ordinal]: the call main() ended on, which later runs capture
    eval_adapts: bool
    cuda_on_cpu: bool
    own_depth: str | None
    env: dict[str, str]


def observation(value, stream: np.ndarray) -> Observation:
    """The child's answer for ``stream`` as an Observation; Unfinished when it is not one (a message
    of another shape, arrays of the wrong type or length, a stream other than the one it was given)."""
    if not isinstance(value, dict):
        raise Unfinished("the child's answer is not an observation")
    nll, last, count = _scores(value, stream)
    weights, sizes = _fingerprints(value)
    entry, env, final_call, own_depth = (value.get(k) for k in ("entry", "env", "final_call", "own_depth"))
    if not (isinstance(entry, str) and IDENTIFIER.fullmatch(entry) and isinstance(env, dict)):
        raise Unfinished("the child's answer names no eval entry point")
    if not (isinstance(final_call, list) and len(final_call) == 2 and final_call[0] == entry
            and isinstance(final_call[1], int) and 0 <= final_call[1] < 1 << 20):
        raise Unfinished("the child's answer names no final eval call")
    return Observation(nll=nll, nll_last=last, count=count, weights=weights, sizes=sizes, entry=entry,
                       final_call=final_call, eval_adapts=value.get("eval_adapts") is True,
                       cuda_on_cpu=value.get("cuda_on_cpu") is True,
                       own_depth=own_depth[:MAX_NAME] if isinstance(own_depth, str) else None,
                       env={str(k)[:MAX_NAME]: str(v)[:MAX_NAME] for k, v in list(env.items())[:64]})


def _scores(value: dict, stream: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first NLL, last NLL, count) per target position, checked against the stream the run was given."""
    nll, last, count, tokens = (value.get(k) for k in ("nll", "nll_last", "count", "tokens"))
    if not all(isinstance(a, np.ndarray) and a.ndim == 1 for a in (nll, last, count, tokens)):
        raise Unfinished("the child's answer holds no per-position NLL, counts and tokens")
    if nll.dtype.kind != "f" or last.dtype.kind != "f" or count.dtype.kind not in "iu" or tokens.dtype.kind not in "iu":
        raise Unfinished("the child's per-position arrays have the wrong types")
    if not 2 <= tokens.shape[0] <= stream.shape[0] or not nll.shape == last.shape == count.shape \
            or nll.shape[0] != tokens.shape[0] - 1:
        raise Unfinished("the child's per-position arrays do not match the stream's length")
    if not np.array_equal(tokens, stream[: tokens.shape[0]]):
        raise Unfinished(f"the final eval {value.get('entry')}() scored tokens other than the val stream main() was given")
    if count.min() < 0 or not count.any():
        raise Unfinished("the final eval scored no position of the val stream")
    return nll.astype(np.float64), last.astype(np.float64), count.astype(np.int64)


def _fingerprints(value: dict) -> tuple[dict[str, str], dict[str, int]]:
    """(fingerprint, elements of the float ones) per state tensor, checked for shape."""
    weights, sizes = value.get("weights"), value.get("sizes")
    if not (isinstance(weights, dict) and 0 < len(weights) <= MAX_TENSORS
            and all(isinstance(k, str) and len(k) <= MAX_NAME and isinstance(v, str) and HEX16.fullmatch(v)
                    for k, v in weights.items())):
        raise Unfinished("the child's answer holds no weight fingerprints")
    if not (isinstance(sizes, dict) and set(sizes) <= set(weights)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in sizes.values())):
        raise Unfinished("the child's answer holds no tensor sizes")
    return weights, sizes


class Driver:
    """The sandboxed calls of one probe: one child per call, all within one wall-clock budget;
    what the sandbox denied is collected across them."""

    def __init__(self, sub: Submission, opts: AuditOptions) -> None:
        launch = launch_of(sub, opts)
        self.sub, self.opts = sub, opts
        self.tokenizers = [opts.tokenizer] if opts.tokenizer else bundled_tokenizers()
        self.base_args = {"entry": f"$SUBMISSION/{sub.rel(sub.entry)}", "launch_env": dict(launch.env),
                          "seed": opts.seed, "world_size": launch.world_size}
        self.world_size = max(1, int(launch.world_size))
        self.deadline = time.monotonic() + SECONDS.get(opts.profile, SECONDS["default"])
        self.blocked: list[dict] = []

    def call(self, target: str, args: dict) -> object:
        left = self.deadline - time.monotonic()
        if left < 1:
            raise Unfinished("it ran past the time budget")
        limits = limits_for(self.opts, wall_seconds=left, cpu_seconds=7200, threads=1)
        res = run_sandboxed(f"{__name__}:{target}", {**self.base_args, **args}, copy_dir=self.sub.root,
                            readable=self.tokenizers, python=self.opts.python, limits=limits)
        self.blocked += res.blocked
        if res.cannot_run:
            raise NoSandbox(res.error)
        if not res.ok:
            raise Unfinished("it ran past the time budget" if res.timed_out else res.error)
        return res.value

    def configuration(self) -> dict:
        value = self.call("configuration_in_child", {})
        widths = value.get("tied_widths") if isinstance(value, dict) else None
        if not (isinstance(value, dict) and isinstance(value.get("tokenizer_name"), str)
                and isinstance(value.get("vocab_size"), int) and isinstance(widths, list)
                and all(isinstance(w, str) and WIDTH_ENV.fullmatch(w) for w in widths[:64])):
            raise Unfinished("the child's answer is not a configuration")
        return {**value, "tied_widths": widths[:64]}

    def observe(self, stream: np.ndarray, setup: dict) -> Observation:
        """main() on ``stream``, in a sandbox of its own."""
        return observation(self.call("observe_in_child", {**setup, "stream": stream.tolist()}), stream)

    def findings(self) -> list[Finding]:
        return findings_from_blocked(SandboxResult(ok=True, blocked=self.blocked), self.sub)


def pick_tokenizer(config: dict, tokenizers: list[str]) -> tuple[str, int, int | None]:
    """The tokenizer main() will load: the one named like its default path, else one of its vocabulary
    size, else the smallest (VOCAB_SIZE then follows the tokenizer). Returns (path, vocabulary, BOS id)."""
    vocabs = {p: int(spm.SentencePieceProcessor(model_file=p).vocab_size()) for p in tokenizers}
    pick = next((p for p in vocabs if os.path.basename(p) == config["tokenizer_name"]), None) \
        or next((p for p in vocabs if vocabs[p] == config["vocab_size"]), None) or min(vocabs, key=vocabs.get)
    bos = int(spm.SentencePieceProcessor(model_file=pick).bos_id())
    return pick, vocabs[pick], bos if bos >= 0 else None


def pick_change(s: np.ndarray, base: Observation, bos: int | None) -> dict:
    """The token after three quarters of what the final eval scores (most scores lie before it),
    changed to the next id of the stream's own alphabet; a document's first token stays BOS."""
    scored = np.nonzero(base.count > 0)[0]
    t = min(int(scored[(3 * scored.size) // 4]) + 1, s.shape[0] - 1)
    t += int(s[t] == bos and t + 1 < s.shape[0])
    alphabet = np.unique(s[s != bos])
    return {"n": int(s.shape[0]), "t": t, "b": int(alphabet[(np.searchsorted(alphabet, s[t]) + 1) % alphabet.size])}


def changed_tensors(r1: Observation, r2: Observation) -> list[str]:
    """Names of the state tensors whose fingerprints differ (a tensor present in one run only counts)."""
    return sorted(k for k in set(r1.weights) | set(r2.weights) if r1.weights.get(k) != r2.weights.get(k))


def moved_before(r1: Observation, r2: Observation, t: int, tol: float) -> dict | None:
    """Targets 0..t-2 (input and target before token t) whose first or last score moved by more than
    ``tol`` nats, or that were scored a different number of times; None when none did."""
    k = min(max(t - 1, 0), r1.nll.shape[0], r2.nll.shape[0])
    first = np.abs(np.nan_to_num(r1.nll[:k], nan=0.0) - np.nan_to_num(r2.nll[:k], nan=0.0))
    last = np.abs(np.nan_to_num(r1.nll_last[:k], nan=0.0) - np.nan_to_num(r2.nll_last[:k], nan=0.0))
    diff = np.maximum(first, last)
    moved = np.nonzero((diff > tol) | (r1.count[:k] != r2.count[:k]))[0]
    if not moved.size:
        return None
    i = int(moved[np.argmax(diff[moved])])  # the earlier position that moved most
    rescore = bool(last[i] > first[i])  # the move is in a later score of a position scored more than once
    a1, a2 = (r1.nll_last, r2.nll_last) if rescore else (r1.nll, r2.nll)
    return {"position": int(moved[0]), "largest_moved": i, "nll": [float(a1[i]), float(a2[i])],
            "nll_diff": float(a2[i] - a1[i]), "positions_moved": int(moved.size), "rescore": rescore}


@dataclass
class Outcome:
    example: dict
    tokenizer: str
    runs: list[Observation]
    original: int  # the changed token's id before the change
    moved: dict | None
    tensors: list[str]  # state tensors the final eval starts from that moved with the val token


def probe(driver: Driver, replay: dict | None) -> Outcome:
    """The property on one example (``replay``) or on the one picked here; every decision is made in
    this process from the children's raw observations."""
    config = driver.configuration()
    tokenizer, vocab, bos = pick_tokenizer(config, driver.tokenizers)
    ex = dict(replay or {})
    n = ex.get("n") or driver.world_size * TOKENS_PER_RANK + 1
    s = val_stream(int(driver.opts.seed), n, vocab, bos)
    setup = {"tokenizer": tokenizer, "vocab_size": vocab, "tied_widths": config["tied_widths"]}
    base = driver.observe(s, setup)
    # The depth the first run needed and the call its final eval was, for every later run.
    setup.update(own_depth=base.own_depth, final_call=base.final_call)
    ex = ex or pick_change(s, base, bos)
    t, b = ex["t"], ex["b"] % vocab
    if not 0 < t < n or b == s[t]:
        raise Unfinished(f"replay example out of range: token {t} of {n} changed to {b}")
    s2 = s.copy()
    s2[t] = b
    changed = driver.observe(s2, setup)
    tensors = changed_tensors(base, changed)
    # Weights that moved with a val token before the eval: any earlier score they move at all counts.
    tol = 0.0 if tensors else TOL
    moved = moved_before(base, changed, t, tol)
    runs = [base, changed]
    if moved is not None or tensors:
        runs.append(confirm(driver, s, setup, base, tol))
    return Outcome(example={**ex, "b": b}, tokenizer=tokenizer, runs=runs, original=int(s[t]), moved=moved,
                   tensors=tensors)


def confirm(driver: Driver, s: np.ndarray, setup: dict, base: Observation, tol: float) -> Observation:
    """main() on the first stream again, in a sandbox of its own: every score and weight must repeat
    (a child cannot tell this run from the others, so it cannot agree with itself by arrangement)."""
    again = driver.observe(s, setup)
    noise = moved_before(base, again, s.shape[0] + 1, tol)
    if noise is not None:
        raise Unfinished(f"main() is not deterministic under fixed seeds: the same val stream gave NLL "
                         f"{noise['nll'][0]:.6g} then {noise['nll'][1]:.6g} at position {noise['largest_moved']}")
    if changed_tensors(base, again):
        raise Unfinished(f"main() is not deterministic under fixed seeds: the same val stream gave other weights "
                         f"({', '.join(changed_tensors(base, again)[:SHOWN_TENSORS])})")
    return again


def wanted(opts: AuditOptions) -> bool:
    only = opts.extra.get("probes")
    return opts.profile in SECONDS and (not only or NAME in only)


def run(sub: Submission, opts: AuditOptions, report: Report, replay: str | None = None) -> None:
    """Add the whole-pipeline ProbeResult (and a finding when it fails) to ``report``."""
    driver = Driver(sub, opts)
    try:
        outcome = probe(driver, parse(replay) if replay else None)
    except NoSandbox as e:
        report.error = f"probes: {e}"
        return
    except Unfinished as e:
        _could_not_run(report, str(e))
        return
    finally:
        for f in driver.findings():
            report.add(f)
    _report(sub, report, outcome)


def _could_not_run(report: Report, why: str) -> None:
    detail = (f"main() could not be driven on generated data ({why}); only the eval-function probes judged "
              "this submission, and they see the final eval alone, not what main() does before it")
    report.probes.append(ProbeResult(probe=NAME, status="could-not-run", detail=detail, condition=CONDITION,
                                     family=FAMILY))
    report.could_not_run("probes", f"probe {NAME}: {detail}")


def _report(sub: Submission, report: Report, o: Outcome) -> None:
    base = o.runs[0]
    scored = int(np.count_nonzero(base.count))
    # No timings: a report is the same, byte for byte, for the same input (tests/test_determinism.py).
    data = {"entry_point": base.entry, "main_runs": len(o.runs), "scored_positions": scored,
            "weights_changed_before_eval": bool(o.tensors), "eval_adapts_weights": base.eval_adapts,
            "rescored_positions": int(np.count_nonzero(base.count > 1)),
            "cuda_on_cpu": base.cuda_on_cpu, "own_depth": base.own_depth,
            "tokenizer": o.tokenizer.rsplit("/", 1)[-1], "env": base.env}
    ex, spec = o.example, spec_of(o.example)
    if o.moved is None and not o.tensors:
        report.probes.append(ProbeResult(
            probe=NAME, status="pass", condition=CONDITION, family=FAMILY, data=data,
            detail=f"{TITLE} (main() run {len(o.runs)} times; token {ex['t']} of {ex['n']} changed, "
                   f"{scored} positions scored)"))
        return
    family = _family(o, report)
    cex = {"stream_length": ex["n"], "changed_index": ex["t"], "tokens": [o.original, ex["b"]],
           "weights_changed": o.tensors[:SHOWN_TENSORS], "tensors_changed": len(o.tensors), **(o.moved or {})}
    pr = ProbeResult(probe=NAME, status="fail", condition=CONDITION, family=family, data=data,
                     detail=f"{TITLE}: fails", counterexample={**cex, "spec": spec},
                     replay=probes_package.replay_command(sub, spec))
    report.probes.append(pr)
    report.add(Finding(
        rule=f"PRB-{NAME}", family=family, severity="error", condition=CONDITION, path=sub.display(sub.entry),
        message=_failure_message(base.entry, ex, o), why=_failure_why(o), fix=f"replay: {pr.replay}",
        data={"counterexample": pr.counterexample}))


def _failure_message(entry: str, ex: dict, o: Outcome) -> str:
    head = f"probe {NAME} fails on main() -> {entry}(): val stream of {ex['n']} tokens, token {ex['t']} changed {o.original} -> {ex['b']}"
    parts = []
    if o.tensors:
        shown = ", ".join(o.tensors[:SHOWN_TENSORS]) + (f" and {len(o.tensors) - SHOWN_TENSORS} more" if len(o.tensors) > SHOWN_TENSORS else "")
        parts.append(f"the weights main() hands its final eval changed ({shown})")
    if o.moved:
        m = o.moved
        which = "the last score (a rescoring)" if m["rescore"] else "the score"
        parts.append(f"{which} at earlier position {m['largest_moved']} moved by {m['nll_diff']:+.4g} nats "
                     f"({m['positions_moved']} earlier positions moved)")
    else:
        parts.append("no earlier score moved at the probe's small dims")
    return f"{head}: {'; '.join(parts)} (confirmed by a run on the unchanged stream)"


def _failure_why(o: Outcome) -> str:
    if o.tensors:
        return ("the final eval starts from weights that depend on val tokens, later ones included: every score "
                "it gives, those of positions before the changed token too, depends on the future (C1)")
    return "the weights the final eval starts from are the same, its own state read the future: a val token " \
           "reached scores of positions before it (C1)"


def _family(o: Outcome, report: Report) -> str:
    if not o.tensors:  # the eval's own state read the future: through its adapted weights, or directly
        return "update-before-score" if o.runs[0].eval_adapts else FAMILY
    static = {f.family for f in report.findings if not f.rule.startswith("PRB-")}
    if "val-data-in-training" in static:
        return "val-data-in-training"
    return "val-calibration" if "val-calibration" in static or only_quantized_moved(o) else "val-data-in-training"


def only_quantized_moved(o: Outcome) -> bool:
    """Every tensor that moved is one the records quantize, and every float tensor they store as it is
    (norms, gains, scales) stayed: quantization moved with the val token (its calibration read val),
    no training on val did (that moves the small tensors too)."""
    sizes = o.runs[0].sizes
    kept = [n for n, k in sizes.items() if k <= QUANTIZED_ABOVE]
    return bool(kept) and all(sizes.get(n, 0) > QUANTIZED_ABOVE for n in o.tensors)
