"""The probe engine: runs in golf-audit's process, on a pipeline scored in a sandboxed child.

``run_probes`` takes a sandbox session in which the submission is imported once and its pipeline
built (harness/remote_pipeline.py); for each probe it searches with ``hypothesis.find`` for an
example that breaks the property, shrinking the first one found to a minimal counterexample. Every
stream is chosen and every verdict reached here; the child only answers with scores.
``cross_run`` asks a separate sandboxed run for some of the same scorings again. Search and shrinking share a time
budget per probe (the profile's), after which no new failure is accepted and the smallest found so
far is reported. ``replay`` runs one probe on one example given by its spec.
"""

from __future__ import annotations

import importlib
import random
import time
from typing import NamedTuple

import numpy as np

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import Flaky, NoSuchExample

from checks.probes.base import Context, NotApplicable, Probe
from harness.scorer import ScorerError

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


class Search(NamedTuple):
    """What one probe's search found: the (shrunk) failing example and its counterexample, or None;
    how many generated examples were scored; and whether the profile's time budget ended the search
    (then the count, and possibly the example, depend on the machine's speed: the report says so)."""
    example: dict | None
    counterexample: dict | None
    tried: int
    cut_by_budget: bool = False


def _search(probe: Probe, ctx: Context, profile: str, seed: int) -> Search:
    base, budget = PROFILES.get(profile, PROFILES["default"])
    n_examples = max(3, base // probe.cost)
    t0 = time.perf_counter()
    found: dict = {}
    tried = 0
    cut = False
    unscorable: list[str] = []

    seen: dict[str, bool] = {}

    def fails(ex: dict) -> bool:
        nonlocal tried, cut
        spec = spec_string(probe.name, ex)
        if spec in seen:  # the same answer for the same example, in time or out of it
            return seen[spec]
        if time.perf_counter() - t0 > budget:
            cut = True
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

    # report_multiple_bugs=False: the search stops at its first failure and shrinks it (hypothesis
    # would otherwise keep generating for up to 10 s of wall clock, so the count of examples tried
    # would depend on the machine's speed and the report would not repeat byte for byte).
    s = settings(max_examples=n_examples, database=None, deadline=None, derandomize=False, report_multiple_bugs=False,
                 suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    try:
        ex = find(probe.strategy(ctx), fails, settings=s, random=random.Random(seed))
    except Flaky:  # the pipeline answered differently for one example: report the smallest failure seen
        if not found:
            raise ScorerError("the eval gave different answers for the same generated stream") from None
        spec = min(found, key=lambda k: (len(k), k))
        return Search(parse_spec(spec)[1], found[spec], tried - len(unscorable), cut)
    except NoSuchExample:
        if tried and len(unscorable) == tried:
            raise ScorerError(f"the eval could not score any generated stream: {unscorable[0]}") from None
        if not tried:
            raise ScorerError("no generated stream could be scored within the probe's time budget")
        return Search(None, None, tried - len(unscorable), cut)
    return Search(ex, found.get(spec_string(probe.name, ex)) or probe.check(ctx, ex), tried - len(unscorable), cut)


def _budget_note(search: Search, profile: str) -> str:
    if not search.cut_by_budget:
        return ""
    seconds = PROFILES.get(profile, PROFILES["default"])[1]
    return f"; the search stopped at the {profile} profile's {seconds:g} s budget"


def _budget_data(search: Search) -> dict:
    """Only a cut search adds a key, so that reports of searches the clock did not end stay identical."""
    return {"cut_by_time_budget": True} if search.cut_by_budget else {}


def _result(probe: Probe, ctx: Context, status: str, detail: str, ex=None, cex=None, **data) -> dict:
    out = {"probe": probe.name, "status": status, "detail": detail, "condition": probe.condition,
           "family": probe.family, "data": data}
    if cex is not None:
        out["family"] = probe.family_of(ctx, cex) if probe.family_of else probe.family
        out["counterexample"] = {k: v for k, v in cex.items() if k != "family"}
        out["spec"] = spec_string(probe.name, ex)
    return out


def run_probes(session, args: dict) -> dict:
    """Every probe (or the one in ``args['replay']``) on the submission's pipeline that ``session``
    serves (harness/remote_pipeline.py): scoring in the sandboxed child, search and verdicts here."""
    from harness.remote_pipeline import RemotePipeline

    pipe = RemotePipeline(session, session.description, seed=int(args.get("seed", 0)))
    ctx = Context(pipe=pipe, tol=1e-5, norm_tol=2e-2 if pipe.info.build.get("autocast_bf16") else 1e-3,
                  val_tokens=args.get("val_tokens"), claim=args.get("claim") or {})
    out = run_context(ctx, args, official=pipe.official)
    info = pipe.info
    return {"results": out, "log": pipe.log, "tol": ctx.tol,
            "pipeline": {"entry": info.entry, "entries": info.entries, "vocab_size": pipe.vocab_size,
                         "world_size": pipe.world_size, "stateful": info.stateful, "seq_len": info.seq_len,
                         "stride": info.stride, "hashed_tables": info.hashed_tables,
                         "model": info.build.get("construction"), "forwards": pipe.forwards}}


# The cross-run check: scorings of the probe run asked again of a separate sandboxed run.
CROSS_RUN = "cross-run"
CROSS_RUN_RULE = "PRB-cross-run"
CROSS_RUN_SCORINGS = 6
CROSS_RUN_TITLE = "the same streams scored again in a separate sandboxed run give the same scores"


def cross_run_sample(log: list, k: int = CROSS_RUN_SCORINGS) -> list:
    """Up to ``k`` scorings spread over the run, first and last included, each of another stream."""
    distinct, seen = [], set()
    for asked in log:
        key = (asked.tokens.tobytes(), tuple(asked.watch), tuple(sorted((asked.sizes or {}).items())))
        if key not in seen:
            seen.add(key)
            distinct.append(asked)
    if len(distinct) <= k:
        return distinct
    picks = sorted({round(i * (len(distinct) - 1) / (k - 1)) for i in range(k)})
    return [distinct[i] for i in picks]


def cross_run(session, sample: list, tol: float) -> dict:
    """Score ``sample`` again, in reverse order and with the same ranks run, on the pipeline ``session``
    serves (which ranks a run skips depends on what it scored before: the replay runs the same); a result dict
    that fails at the first scoring whose NLL (watched positions, or all) or counts disagree."""
    import contextlib

    from harness.remote_pipeline import RemotePipeline

    base = {"probe": CROSS_RUN, "rule": CROSS_RUN_RULE, "condition": "rules", "family": "claims-mismatch",
            "data": {"scorings": len(sample)}}
    if not sample:
        return {**base, "status": "skipped", "detail": "no scoring of the probe run to ask again"}
    pipe = RemotePipeline(session, session.description)
    for asked in reversed(sample):
        with pipe.resized(asked.sizes) if asked.sizes else contextlib.nullcontext():
            again = pipe.score(asked.tokens, tuple(asked.watch), asked.ranks)
        where = np.asarray(asked.watch, dtype=np.int64) if asked.watch else np.arange(asked.nll.shape[0])
        a, b = asked.nll[where], again.nll[where]
        moved = (np.isnan(a) != np.isnan(b)) | (np.abs(np.nan_to_num(a) - np.nan_to_num(b)) > tol)
        moved |= asked.count[where] != again.count[where]
        if moved.any():
            i = int(where[np.argmax(moved)])
            cex = {"stream_length": int(asked.tokens.shape[0]), "position": i,
                   "nll": [float(asked.nll[i]), float(again.nll[i])], "nll_diff": float(again.nll[i] - asked.nll[i]),
                   "counts": [int(asked.count[i]), int(again.count[i])]}
            # Either the submission answers differently once it has seen a probe, or state outlives a
            # call in the child: the observations cannot carry a verdict either way (never a pass).
            return {**base, "status": "fail", "counterexample": cex, "inconclusive": True,
                    "detail": f"{CROSS_RUN_TITLE}: fails (the probe verdicts of this run rest on scores the "
                              "pipeline does not give again)"}
    return {**base, "status": "pass", "detail": f"{CROSS_RUN_TITLE} (held on {len(sample)} scorings)"}


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
                search = _search(probe, ctx, args.get("profile", "default"), int(args.get("seed", 0)))
                ex, cex, tried = search.example, search.counterexample, search.tried
        except NotApplicable as e:
            reason = str(e)
        except ScorerError as e:  # asked for and not done: never a pass
            out.append(_result(probe, ctx, "could-not-run", str(e)))
            continue
        if reason:
            out.append(_result(probe, ctx, "skipped", reason))
            continue
        cut = _budget_note(search, args.get("profile", "default"))
        if cex is None:
            out.append(_result(probe, ctx, "pass", f"{probe.title} (held on {tried} generated examples{cut})",
                               examples=tried, **_budget_data(search)))
            continue
        res = _result(probe, ctx, "fail", f"{probe.title}: fails{cut}", ex, cex, examples=tried, **_budget_data(search))
        if probe.name == "exactly-once" and official is not None:
            from checks.probes.exactly_once import effect_at_val_length

            try:
                res["data"]["effect"] = effect_at_val_length(ctx, official())
            except Exception as e:  # the official-length run is extra information, not the verdict
                res["data"]["effect_error"] = f"{type(e).__name__}: {str(e)[:160]}"
        out.append(res)
    return out
