"""Reproduction: rerun a submission's evaluation on its artifact and put the numbers side by side.

``run(sub, opts, report)`` (the ``reproduction`` part) loads the artifact into the submission's
own model in the sandbox (harness/drivers.py:reproduce_eval) and gets back

- the submission's own eval functions' results on the same tokens (``eval_val_sliding`` and the
  final ``run_final_eval``, as main() calls them): the score *as submitted*;
- our reference pipelines on the same model: the sliding-window evaluator (harness/evaluate.py),
  and, where the hyperparameters name them, our n-gram caches and hint tilt (harness/caches.py)
  and chunked TTT (harness/ttt.py), each in its non-compliant and its legal variant.

It then reports: ``reported_bpb`` (the submission's log line for its final score), ``reproduced_bpb``
(the same eval rerun), ``explained_by`` (which of our pipelines gives the same number to 1e-6,
which names the component the score came from) and ``legal_bpb``: the same artifact with the
non-compliant component replaced by its legal variant, or switched off (the model alone) when we
have no legal variant of what the submission does. With ``--max-tokens`` every number is for that
prefix of the validation tokens, and the report says so.

With ``--nproc N`` (N > 1, or ``launch``: the world size of the submission's own launch) the
evaluation runs as torchrun would run it: N processes in the one sandbox (harness/ranks.py), the
windows split between them, caches kept per rank. Those numbers are the report's; the same rerun
in one process stands beside them (``single_process``), and ``REPRO004`` says when the submission's
score depends on how many processes computed it.
"""

from __future__ import annotations

from pathlib import Path

from harness import AuditError
from harness.logparse import parse_log
from harness.safeio import read_text_bounded
from harness.sandbox import findings_from_blocked, limits_for, run_sandboxed
from harness.submission import Submission
from reports.model import Finding, Report

TOLERANCE = 1e-6  # BPB; logs print 8 decimals
NPROC_LAUNCH = "launch"  # --nproc launch: as many processes as the submission's launch runs
MAX_LOG_BYTES = 32 << 20
# Our non-compliant pipeline -> (its legal variant, the violation family).
LEGAL_VARIANT = {
    "ngram_target-in-key": ("ngram_renormalized", "target-in-key"),
    "tilt_target_gated": ("tilt", "target-gated-mixing"),
    "ttt_update_before_score": ("ttt_score_first", "update-before-score"),
}
def log_metrics(text: str) -> list[tuple[str, float, float]]:
    """(label, val_loss, val_bpb) of every metrics line the log parser reads (harness/logparse.py),
    in order of last appearance; an ``X_exact`` line replaces X, a rounded X after it never does."""
    out: dict[str, tuple[float, float]] = {}
    exact: set[str] = set()
    order: list[str] = []
    for m in parse_log(text).metrics:
        if m.val_loss is None or (m.stage in exact and not m.exact):
            continue
        if m.stage in order:
            order.remove(m.stage)
        order.append(m.stage)
        out[m.stage] = (m.val_loss, m.val_bpb)
        if m.exact:
            exact.add(m.stage)
    return [(k, *out[k]) for k in order]


def pick_artifact(sub: Submission, given: str | None) -> Path | None:
    if given:
        p = Path(given)
        if not p.is_file():
            raise AuditError(f"{given}: artifact file not found")
        return p
    arts = sorted(sub.artifacts, key=lambda p: (not p.name.startswith("final_model"), p.name))
    return arts[0] if arts else None


def _in_sandbox_path(p: Path, root: Path) -> tuple[str, list[Path]]:
    """How the child sees ``p``: inside the copied submission, or readable from where it is."""
    try:
        return "$SUBMISSION/" + p.resolve().relative_to(root.resolve()).as_posix(), []
    except ValueError:
        return str(p.resolve()), [p.resolve()]


def run(sub: Submission, opts, report: Report) -> None:
    from checks.data import resolve_data
    from checks.parts import launch_of

    if sub.entry is None:
        report.could_not_run("reproduction", "no train_gpt.py to rerun")
        return
    artifact = pick_artifact(sub, opts.artifact)
    if artifact is None:
        if opts.command == "audit" and not opts.artifact:  # audit reproduces what the folder ships
            report.skip("reproduction", "no trained artifact in the folder; pass --artifact")
        else:
            report.could_not_run("reproduction", "no trained artifact found; pass --artifact")
        return
    val, tok = resolve_data(sub, opts)
    if val is None or tok is None:
        report.could_not_run("reproduction", "no validation data or tokenizer found; pass --val and --tokenizer")
        return
    art_arg, readable = _in_sandbox_path(artifact, sub.root)
    val_dir = Path(val).parent.resolve()
    readable += [val_dir, Path(tok).resolve()]
    entry_arg = "$SUBMISSION/" + sub.rel(sub.entry)
    args = {"entry": entry_arg, "artifact": art_arg, "val": str(val_dir / Path(val).name),
            "tokenizer": str(Path(tok).resolve()), "max_tokens": opts.max_tokens, "device": opts.device,
            "launch_env": dict(launch_of(sub, opts).env)}  # the model is built as the launch configures it
    nproc = nproc_of(sub, opts)
    runs = {}
    for ranks in sorted({1, nproc}):
        result = _rerun(args, readable, sub, opts, ranks)
        seen = {(f.rule, f.path, f.line, f.message) for f in report.findings}
        for f in findings_from_blocked(result, sub):
            if (f.rule, f.path, f.line, f.message) not in seen:  # each rank and run reports it again
                report.add(f)
        if not result.ok:
            on = f" on {ranks} processes" if ranks > 1 else ""
            if result.input_error or result.cannot_run:
                # The artifact, the validation shards or the tokenizer could not be read (truncated,
                # hostile, unknown layout: one of our readers' AuditError subclasses, told by type), or
                # no sandbox / CUDA could start: the reproduction cannot be done, which is not a pass.
                report.error = f"reproduction{on}: {result.error}"
                return
            report.could_not_run("reproduction", f"the evaluation could not be rerun{on}: {result.error}")
            return
        runs[ranks] = result.value
    report.reproduction = compare(runs[nproc], sub, opts.max_tokens, report)
    if nproc > 1:
        report.reproduction.update(nproc=nproc, backend=runs[nproc].get("backend"))
        report.reproduction["single_process"] = compare_processes(runs[nproc], runs[1], sub, nproc, report)


def nproc_of(sub: Submission, opts) -> int:
    """How many processes the reproduction runs the evaluation in (``--nproc``)."""
    from checks.parts import launch_of

    nproc = getattr(opts, "nproc", 1) or 1
    if nproc == NPROC_LAUNCH:
        return launch_of(sub, opts).world_size
    return int(nproc)


def _rerun(args: dict, readable: list[Path], sub: Submission, opts, ranks: int):
    # harness.caches_jit before the guards: numba reads and writes its kernel cache (beside our
    # code) at import; after them, the writes would be denied and the kernels compiled again.
    # Each rank is a process with its own threads: room for them under the task limit.
    limits = limits_for(opts, wall_seconds=float(opts.extra.get("repro_timeout", 3600)), ranks=ranks,
                        processes=max(128, 64 * ranks))
    return run_sandboxed("harness.drivers:reproduce_eval", args, copy_dir=sub.root, readable=readable,
                         python=opts.python, limits=limits, preload=("torch", "harness.caches_jit"))


def compare_processes(many: dict, one: dict, sub: Submission, nproc: int, report: Report) -> dict:
    """The one-process rerun beside the N-process one; REPRO004 when the submission's own score differs."""
    # The eval whose number the report reproduces (the log's final line, else eval_val_sliding).
    label = report.reproduction.get("reproduced_from") if report.reproduction else None
    own_many, own_one = many.get("own") or {}, one.get("own") or {}
    m = (label, own_many[label][1]) if label in own_many else None
    o = (label, own_one[label][1]) if label in own_one else None
    if m and o and m[0] == o[0] and abs(m[1] - o[1]) > TOLERANCE:
        report.add(Finding(
            rule="REPRO004", family="claims-mismatch", severity="warning", path=sub.display(sub.entry),
            message=(f"the submission's {m[0]} gives {m[1]:.8f} BPB on {nproc} processes and {o[1]:.8f} in one "
                     f"({m[1] - o[1]:+.2e}): its score depends on how many processes compute it (state kept "
                     f"per rank, such as a cache, or targets lost or repeated where the ranks' shares meet)"),
            data={"nproc": nproc, "bpb": m[1], "single_process_bpb": o[1], "label": m[0]}))
    return {"own_evals": {k: v[1] for k, v in sorted((one.get("own") or {}).items())},
            "pipelines": {k: v["val_bpb"] for k, v in sorted((one.get("ours") or {}).items())}}


def _read_logs(sub: Submission) -> dict[str, list[tuple[str, float, float]]]:
    out = {}
    for log in sub.logs:
        try:
            out[sub.rel(log)] = log_metrics(read_text_bounded(log, MAX_LOG_BYTES, within=sub.root))
        except AuditError:
            continue  # the claims part reports unreadable logs
    return {k: v for k, v in out.items() if v}


def compare(value: dict, sub: Submission, max_tokens: int | None, report: Report) -> dict:
    """The reproduction block of the report from what the sandboxed driver returned."""
    ours: dict = value.get("ours") or {}
    own: dict = value.get("own") or {}
    prefix = max_tokens is not None
    logs = _read_logs(sub)
    final_labels = [m[-1][0] for m in logs.values()]
    final_label = final_labels[0] if final_labels and len(set(final_labels)) == 1 else None

    # As submitted: the submission's own eval that printed the final line.
    reproduced, reproduced_from = None, None
    if final_label and final_label in own:
        reproduced, reproduced_from = own[final_label][1], final_label
    elif "eval_val_sliding" in own:
        reproduced, reproduced_from = own["eval_val_sliding"][1], "eval_val_sliding"

    # The log whose final number is this artifact's (one artifact, several seeds' logs).
    reported, reported_log = None, None
    finals = {name: m[-1][2] for name, m in logs.items()}
    if finals:
        reported_log = min(finals, key=lambda k: abs(finals[k] - reproduced) if reproduced is not None else 0)
        reported = finals[reported_log]

    # Which of our pipelines gives the same number: legal ones first (benefit of the doubt).
    explained_by = None
    if reproduced is not None:
        matches = [k for k, v in ours.items() if abs(v["val_bpb"] - reproduced) <= TOLERANCE]
        matches.sort(key=lambda k: (not ours[k]["legal"], k != "model"))
        explained_by = matches[0] if matches else None

    if explained_by in LEGAL_VARIANT:
        legal_key, family = LEGAL_VARIANT[explained_by]
    elif explained_by is not None:
        legal_key, family = explained_by, None
    else:
        legal_key, family = ("model" if "model" in ours else None), None
    legal = ours[legal_key]["val_bpb"] if legal_key else None
    legal_basis = (None if legal_key is None else
                   f"{ours[legal_key]['what']}" + ("" if explained_by else
                   " (the submission's final score is not explained by our reference pipelines: what it adds is switched off)"))

    where = f" on the first {value.get('tokens')} validation tokens" if prefix else ""
    if family is not None and reproduced is not None and legal is not None:
        report.add(Finding(
            rule="REPRO002", family=family, severity="error", path=sub.display(sub.entry),
            message=(f"the score as submitted ({reproduced:.6f} BPB{where}) is reproduced exactly by our "
                     f"{ours[explained_by]['what']}; with its legal variant ({ours[legal_key]['what']}) the same "
                     f"artifact scores {legal:.6f} BPB ({legal - reproduced:+.6f})"),
            data={"reproduced_bpb": reproduced, "legal_bpb": legal, "explained_by": explained_by}))
    if not prefix and reproduced is not None and reported is not None and abs(reported - reproduced) > TOLERANCE:
        report.add(Finding(
            rule="REPRO001", family="claims-mismatch", severity="warning", path=sub.rel(sub.root / reported_log),
            message=(f"rerunning the submission's eval on its artifact gives {reproduced:.8f} BPB; its log "
                     f"reports {reported:.8f} ({reproduced - reported:+.2e}); differences of 1e-4 or less can "
                     f"come from other hardware and kernels")))
    own_sliding = own.get("eval_val_sliding")
    if own_sliding and "model" in ours and abs(own_sliding[1] - ours["model"]["val_bpb"]) > TOLERANCE:
        report.add(Finding(
            rule="REPRO003", family="claims-mismatch", severity="warning", path=sub.display(sub.entry),
            message=(f"the submission's eval_val_sliding gives {own_sliding[1]:.8f} BPB{where}, our reference "
                     f"evaluator (every target scored once) {ours['model']['val_bpb']:.8f} on the same model: its "
                     f"windows or byte count differ from the challenge's")))

    out = {
        "reported_bpb": None if prefix else reported,
        "reproduced_bpb": reproduced,
        "legal_bpb": legal,
        "tokens": value.get("tokens"),
        "prefix": (f"numbers are for the first {value.get('tokens')} validation tokens only (--max-tokens), "
                   f"not comparable with the full-validation claim") if prefix else None,
        "reported_label": final_label,
        "reported_log": reported_log,
        "reported_in_log_bpb": reported,
        "reproduced_from": reproduced_from,
        "explained_by": explained_by,
        "legal_basis": legal_basis,
        "our_evaluator_bpb": ours.get("model", {}).get("val_bpb"),
        "own_evals": {k: v[1] for k, v in sorted(own.items())},
        "own_eval_errors": value.get("own_errors") or None,
        "pipelines": {k: v["val_bpb"] for k, v in sorted(ours.items())},
        "legal_pipelines": sorted(k for k, v in ours.items() if v["legal"]) or None,
        "artifact": ", ".join(str(value.get("artifact", {}).get(k)) for k in ("codec", "layout", "dequantizer")),
        "device": value.get("device"),  # where the model's weights were when it was scored
        "seq_len": value.get("seq_len"),
        "stride": value.get("stride"),
    }
    return {k: v for k, v in out.items() if v is not None or k in ("reported_bpb", "reproduced_bpb", "legal_bpb", "tokens")}

