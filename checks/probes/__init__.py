"""Causality probes: the submission's own eval pipeline, run on generated streams (part "probes").

The probes run here, in golf-audit's process (checks/probes/engine.py), on a pipeline served by a
sandboxed child (harness/remote_pipeline.py): the child imports the submission, builds its model
(small dims, random init) and drives its final eval entry point under the official configuration
on the streams the probes choose, answering with scores only. Each probe (one module per
condition) is a hypothesis property whose first failure is shrunk to a minimal counterexample; a
second sandboxed run scores some of the same streams again (the cross-run check). Here the results become ProbeResults (with a
replay command) and, for failures, findings that carry the verdict.
"""

from __future__ import annotations

import shlex

from checks.parts import AuditOptions, launch_of
from checks.probes import whole_pipeline
from harness import AuditError
from harness.submission import Submission
from reports.model import Finding, ProbeResult, Report

SANDBOX_SECONDS = {"ci": 600.0, "default": 1800.0, "thorough": 7200.0}


def claim_facts(sub: Submission) -> dict:
    """Claimed val_bpb (with its printed precision) from submission.json, through the claims reader,
    or, where submission.json gives none, the final score a log prints; the val token count from the
    logs, through the one log parser."""
    from checks.claims import find_logs, read_claims
    from harness.logparse import parse_log
    from harness.safeio import read_text_bounded

    out: dict = {}
    claims = read_claims(sub)
    if claims is not None and claims.val_bpb is not None:
        out["val_bpb"] = float(claims.val_bpb)
        out["precision"] = 10.0 ** -getattr(claims.val_bpb, "decimals", 4)
    for log in find_logs(sub):
        try:
            run = parse_log(read_text_bounded(log, 64 << 20, within=sub.root))
        except AuditError:
            continue
        headline = run.headline()
        if "val_bpb" not in out and headline is not None:
            out["val_bpb"], out["precision"] = headline.val_bpb, 10.0 ** -headline.bpb_decimals
        if run.val_tokens and "val_tokens" not in out:
            out["val_tokens"] = run.val_tokens
    return out


def run(sub: Submission, opts: AuditOptions, report: Report) -> None:
    from harness.sandbox import limits_for

    if sub.entry is None:
        report.could_not_run("probes", "no train_gpt.py: no pipeline to run")
        return
    claim = claim_facts(sub)
    replay = opts.extra.get("replay")
    if whole_pipeline.is_spec(replay):
        try:
            whole_pipeline.parse(replay)
        except ValueError as e:
            raise AuditError(f"--replay: {e}") from None
        whole_pipeline.run(sub, opts, report, replay)
        return
    if replay:
        from checks.probes.engine import parse_spec

        try:
            parse_spec(replay)
        except ValueError as e:
            raise AuditError(f"--replay: {e}") from None
    launch = launch_of(sub, opts)
    # The eval runs as every rank of the launch, each on its own share with its own state.
    served = {"entry": f"$SUBMISSION/{sub.rel(sub.entry)}", "seed": opts.seed, "launch_env": dict(launch.env),
              "world_size": launch.world_size}
    args = {"profile": opts.profile, "seed": opts.seed, "replay": replay, "only": opts.extra.get("probes"),
            "claim": {k: claim[k] for k in ("val_bpb", "precision") if k in claim}, "val_tokens": claim.get("val_tokens")}
    limits = limits_for(opts, wall_seconds=SANDBOX_SECONDS.get(opts.profile, 1800.0), cpu_seconds=7200, threads=1)
    value, problem = _probe_runs(sub, opts, served, args, limits, report)
    if problem is not None and problem.cannot_run:  # no sandbox, CUDA did not start: the audit cannot be done here
        report.error = f"probes: {problem}"
        return
    if problem is not None:  # the submission could not be imported, built or driven: not examined, never a pass
        report.could_not_run("probes", f"the submission's eval could not be driven: {problem}")
        if not replay and whole_pipeline.wanted(opts):  # main() may still be drivable
            whole_pipeline.run(sub, opts, report)
        return
    entry = sub.display(sub.entry)
    pipeline = value["pipeline"]
    for r in value["results"]:
        add_result(report, sub, r, entry, pipeline, opts)
    for pr in report.probes:
        if pr.status == "could-not-run":
            report.could_not_run("probes", f"probe {pr.probe}: {pr.detail}")
    for r in value["results"]:
        if r.get("inconclusive") and r["status"] == "fail":  # observations that do not repeat decide nothing
            report.could_not_run("probes", f"probe {r['probe']}: {r['detail']}")
    # main() itself, after the eval-function probes (left out of the ci profile: it trains).
    if not replay and whole_pipeline.wanted(opts):
        whole_pipeline.run(sub, opts, report)


class _NotDone(Exception):
    """The probe runs could not be done (``cannot_run``: not here at all)."""

    def __init__(self, message: str, cannot_run: bool = False) -> None:
        super().__init__(message)
        self.cannot_run = cannot_run


def _probe_runs(sub: Submission, opts: AuditOptions, served: dict, args: dict, limits, report: Report):
    """The probes on the pipeline of one sandboxed run, then the cross-run check on a second:
    (the engine's value with the cross-run result among its results, None) or (None, _NotDone)."""
    from harness.remote_pipeline import Malformed
    from harness.sandbox import findings_from_blocked
    from harness.sandbox_session import RemoteError, SandboxSession, SessionLost

    from checks.probes import engine

    def session() -> SandboxSession:
        return SandboxSession("harness.remote_pipeline:serve", served, copy_dir=sub.root, python=opts.python,
                              limits=limits)

    runs = []
    try:
        runs.append(session())
        with runs[-1] as s:
            value = engine.run_probes(s, args)
        runs.append(session())
        with runs[-1] as s:
            value["results"].append(engine.cross_run(s, engine.cross_run_sample(value.pop("log")), value["tol"]))
        return value, None
    except SessionLost as e:
        return None, _NotDone(str(e), cannot_run=e.cannot_run)
    except (RemoteError, Malformed) as e:
        return None, _NotDone(str(e))
    finally:
        for run in runs:
            for f in findings_from_blocked(run.result(), sub):
                report.add(f)


def replay_command(sub: Submission, spec: str) -> str:
    return f"golf-audit probe {shlex.quote(sub.given)} --replay {shlex.quote(spec)}"


def add_result(report: Report, sub: Submission, r: dict, entry: str, pipeline: dict, opts: AuditOptions) -> None:
    data = dict(r.get("data") or {})
    data["entry_point"] = pipeline.get("entry")
    pr = ProbeResult(probe=r["probe"], status=r["status"], detail=r["detail"], condition=r.get("condition"),
                     family=r.get("family"), counterexample=r.get("counterexample"), data=data)
    if r.get("spec"):
        pr.counterexample = {**(pr.counterexample or {}), "spec": r["spec"]}
        pr.replay = replay_command(sub, r["spec"])
    report.probes.append(pr)
    if pr.status != "fail":
        return
    cex = pr.counterexample or {}
    severity, extra = "error", ""
    effect = data.get("effect") or {}
    if pr.probe == "exactly-once" and effect.get("within_hardware_noise"):
        severity = "warning"  # its bounded effect on the printed BPB is within what hardware explains
    if r.get("inconclusive"):
        severity = "warning"  # not a violation shown, but no verdict either: the part is incomplete
    if effect.get("bpb_effect_bound") is not None:
        extra = (f"; at the real val length ({effect['val_tokens']} tokens, seq_len {effect['seq_len']}, stride "
                 f"{effect['stride']}) {effect['extra_scorings']} extra scorings shift BPB by at most "
                 f"{effect['bpb_effect_bound']:.2e} (printed precision {effect.get('printed_precision')})")
    where = f"stream of {cex.get('stream_length')} tokens, position {cex.get('position')}"
    if cex.get("tokens"):
        where += f", tokens {cex['tokens'][0]} -> {cex['tokens'][1]}"
    if cex.get("nll_diff") is not None:
        where += f", NLL diff {cex['nll_diff']:+.4g} nats"
    if cex.get("sum_p") is not None:
        where += f", sum_v p = {cex['sum_p']:.4g}"
    report.add(Finding(
        rule=r.get("rule") or f"PRB-{pr.probe}", family=pr.family or "structure", severity=severity,
        condition=pr.condition,
        path=entry, line=None,
        message=f"probe {pr.probe} fails on {pipeline.get('entry')}(): {where}{extra}",
        why=r["detail"], fix=f"replay: {pr.replay}", data={"counterexample": cex},
    ))
