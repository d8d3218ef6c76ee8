"""The probe engine: runs in the sandboxed child, one call for every probe of one submission.

``run_probes`` imports the submission once, builds its pipeline (harness/submission_scorer.py),
and for each probe searches with ``hypothesis.find`` for an example that breaks the property,
shrinking the first one found to a minimal counterexample. Search and shrinking share a time
budget per probe (the profile's), after which no new failure is accepted and the smallest found so
far is reported. ``replay`` runs one probe on one example given by its spec.
"""

from __future__ import annotations

import importlib
import random
import time

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import Flaky, NoSuchExample

from checks.probes.base import Context, NotApplicable, Probe
from harness.submission_scorer import ScorerError

PROBE_MODULES = ("future_invariance", "normalization", "score_before_update", "exactly_once",
                 "document_isolation", "determinism", "bucket_collapse")
# profile -> (example budget of a cost-1 probe, seconds per probe). The ci profile is bounded by
# examples only, so that its reports do not depend on the machine's load (the sandbox's wall-clock
# limit still ends a run that hangs).
PROFILES = {"ci": (16, float("inf")), "default": (40, 60.0), "thorough": (200, 600.0)}


def probes() -> list[Probe]:
    return [importlib.import_module(f"checks.probes.{m}").PROBE for m in PROBE_MODULES]


def spec_string(probe: str, ex: dict) -> str:
    return probe + ":" + ",".join(f"{k}={v}" for k, v in sorted(ex.items()))


def parse_spec(spec: str) -> tuple[str, dict]:
    """``name:key=int,...`` -> (probe name, example); ValueError on anything else."""
    name, _, rest = spec.partition(":")
    names = {p.name for p in probes()}
    if name not in names:
        raise ValueError(f"unknown probe {name!r} in replay spec (one of: {', '.join(sorted(names))})")
    ex = {}
    for part in filter(None, rest.split(",")):
        k, eq, v = part.partition("=")
        if not eq or not k.isidentifier():
            raise ValueError(f"bad replay spec item {part!r} (expected key=integer)")
        try:
            ex[k] = int(v)
        except ValueError:
            raise ValueError(f"bad replay spec item {part!r} (expected key=integer)") from None
    return name, ex


def _search(probe: Probe, ctx: Context, profile: str, seed: int) -> tuple[dict | None, dict | None, int]:
    base, budget = PROFILES.get(profile, PROFILES["default"])
    n_examples = max(3, base // probe.cost)
    t0 = time.perf_counter()
    found: dict = {}
    tried = 0
    unscorable: list[str] = []

    seen: dict[str, bool] = {}

    def fails(ex: dict) -> bool:
        nonlocal tried
        spec = spec_string(probe.name, ex)
        if spec in seen:  # the same answer for the same example, in time or out of it
            return seen[spec]
        if time.perf_counter() - t0 > budget:
            return False  # out of time: keep the smallest failure found so far
        tried += 1
        try:
            cex = probe.check(ctx, ex)
        except ScorerError as e:  # e.g. a stream shorter than the eval's window: not this example
            unscorable.append(str(e))
            seen[spec] = False
            return False
        if cex is not None:
            found[spec] = cex
        seen[spec] = cex is not None
        return seen[spec]

    s = settings(max_examples=n_examples, database=None, deadline=None, derandomize=False,
                 suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    try:
        ex = find(probe.strategy(ctx), fails, settings=s, random=random.Random(seed))
    except Flaky:  # the pipeline answered differently for one example: report the smallest failure seen
        if not found:
            raise ScorerError("the eval gave different answers for the same generated stream") from None
        spec = min(found, key=lambda k: (len(k), k))
        ex = parse_spec(spec)[1]
        return ex, found[spec], tried - len(unscorable)
    except NoSuchExample:
        if tried and len(unscorable) == tried:
            raise ScorerError(f"the eval could not score any generated stream: {unscorable[0]}") from None
        if not tried:
            raise ScorerError("no generated stream could be scored within the probe's time budget")
        return None, None, tried - len(unscorable)
    return ex, found.get(spec_string(probe.name, ex)) or probe.check(ctx, ex), tried - len(unscorable)


def _result(probe: Probe, ctx: Context, status: str, detail: str, ex=None, cex=None, **data) -> dict:
    out = {"probe": probe.name, "status": status, "detail": detail, "condition": probe.condition,
           "family": probe.family, "data": data}
    if cex is not None:
        out["family"] = probe.family_of(ctx, cex) if probe.family_of else probe.family
        out["counterexample"] = {k: v for k, v in cex.items() if k != "family"}
        out["spec"] = spec_string(probe.name, ex)
    return out


def _official_pipeline(args: dict):
    """The same eval at its official sequence length and stride (small model dims), for effect sizes."""
    import os

    from harness.submission_scorer import PROBE_ENV, SubmissionPipeline

    from harness.loader import import_submission

    keys = ("TRAIN_SEQ_LEN", "EVAL_SEQ_LEN", "EVAL_STRIDE", "EVAL_BATCH_SEQS")
    for k in keys:
        os.environ.pop(k, None)
    # The official values are the Hyperparameters' defaults under the official env.
    hp = import_submission(args["entry"], launch_env=args.get("launch_env")).Hyperparameters()
    env = {"VOCAB_SIZE": PROBE_ENV["VOCAB_SIZE"]}
    env.update({k: str(getattr(hp, k.lower())) for k in keys[:3] if isinstance(getattr(hp, k.lower(), None), int)})
    return SubmissionPipeline(args["entry"], env=env, seq_env=False, entry_name=args.get("entry_name"),
                              world_size=int(args.get("world_size", 1)), seed=int(args.get("seed", 0)),
                              launch_env=args.get("launch_env"))


def run_probes(args: dict) -> dict:
    """Driver: every probe (or the one in ``args['replay']``) on the submission's eval pipeline."""
    from harness.submission_scorer import SubmissionPipeline

    t0 = time.perf_counter()
    pipe = SubmissionPipeline(args["entry"], env=args.get("env"), entry_name=args.get("entry_name"),
                              world_size=int(args.get("world_size", 1)), seed=int(args.get("seed", 0)),
                              launch_env=args.get("launch_env"))
    ctx = Context(pipe=pipe, tol=1e-5, norm_tol=2e-2 if pipe.info.build.get("autocast_bf16") else 1e-3,
                  val_tokens=args.get("val_tokens"), claim=args.get("claim") or {})
    out = run_context(ctx, args, official=lambda: _official_pipeline(args))
    info = pipe.info
    return {"results": out, "pipeline": {"entry": info.entry, "entries": info.entries, "vocab_size": info.vocab_size,
                                         "world_size": info.world_size, "stateful": info.stateful,
                                         "seq_len": info.seq_len, "stride": info.stride,
                                         "hashed_tables": info.hashed_tables, "model": info.build.get("construction"),
                                         "forwards": pipe.forwards},
            "seconds": round(time.perf_counter() - t0, 1)}


def run_context(ctx: Context, args: dict, official=None) -> list[dict]:
    """Every probe (or the replayed one) on the pipeline of ``ctx``; a list of result dicts."""
    only = args.get("only")
    out = []
    replay = args.get("replay")
    if replay:
        name, ex = parse_spec(replay)
        probe = next(p for p in probes() if p.name == name)
        cex = probe.check(ctx, ex)
        status = "fail" if cex is not None else "pass"
        detail = f"replayed {replay}: " + ("the property fails" if cex else "the property holds")
        out.append(_result(probe, ctx, status, detail, ex, cex, replayed=True))
    for probe in ([] if replay else probes()):
        if only and probe.name not in only:
            continue
        try:
            reason = probe.applies(ctx)
            if not reason:
                ex, cex, tried = _search(probe, ctx, args.get("profile", "default"), int(args.get("seed", 0)))
        except NotApplicable as e:
            reason = str(e)
        except ScorerError as e:  # asked for and not done: never a pass
            out.append(_result(probe, ctx, "could-not-run", str(e)))
            continue
        if reason:
            out.append(_result(probe, ctx, "skipped", reason))
            continue
        if cex is None:
            out.append(_result(probe, ctx, "pass", f"{probe.title} (held on {tried} generated examples)",
                               examples=tried))
            continue
        res = _result(probe, ctx, "fail", f"{probe.title}: fails", ex, cex, examples=tried)
        if probe.name == "exactly-once" and official is not None:
            from checks.probes.exactly_once import effect_at_val_length

            try:
                res["data"]["effect"] = effect_at_val_length(ctx, official())
            except Exception as e:  # the official-length run is extra information, not the verdict
                res["data"]["effect_error"] = f"{type(e).__name__}: {str(e)[:160]}"
        out.append(res)
    return out
