"""Claims audit: what a submission says about itself against its own files and the challenge rules.

Never runs submission code. Reads the folder layout, ``submission.json`` (``subjson``), the train
logs (``logparse``) and the README, then checks:

- the claimed val_bpb (and val_loss) is the mean of the per-seed final values in the logs, to the
  digits printed on both sides; per-seed numbers in the JSON match that seed's log; the std;
- the README states the claimed val_bpb;
- ``bytes_code`` is the size of the committed entry file (or of all committed .py files);
  ``bytes_total`` matches the logged totals and is at most 16,000,000 bytes for every seed;
- training and evaluation each take at most 600 s per seed (the 10-minute track only);
- with ``--baseline-bpb`` or ``--baseline-record``, the one-sided Welch test that the improvement
  is at least 0.005 nats at p < 0.01.

Findings use the families ``structure``, ``claims-mismatch``, ``size-cap``, ``time-cap`` and
``significance``; the numbers land in ``report.claims``.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness import AuditError
from harness.safeio import read_text_bounded
from harness.submission import LOG_SUFFIXES, NOT_LOGS, Submission, load_submission
from reports.model import Finding, Report

from checks.claims import stats
from harness.logparse import LogRun, Metric, decimals, parse_log
from checks.claims.subjson import Claims, Num, load_json, parse_claims

SIZE_CAP = 16_000_000  # bytes, decimal
TIME_CAP_S = 600.0
# The training loop checks its timer once per step, so the last step ends a little after the cap.
TIMER_SLACK_S = 1.0
MAX_LOG_BYTES = 64_000_000
MAX_JSON_BYTES = 2_000_000
MAX_README_BYTES = 2_000_000
MAX_LOGS = 200
LARGE_FILE_BYTES = 10_000_000  # a committed file this large is a dataset or a checkpoint, not a submission file
WALK_LIMIT = 20_000


def _f(rule: str, family: str, severity: str, message: str, path: str | None = None, line: int | None = None,
       **data) -> Finding:
    return Finding(rule=rule, family=family, severity=severity, message=message, path=path, line=line,
                   data={k: v for k, v in data.items() if v is not None})


# ---- matching numbers to the printed precision -------------------------------------------------

def agrees(claimed: float, claimed_decimals: int, value: float, value_err: float = 0.0) -> bool:
    """Could ``claimed`` (printed with ``claimed_decimals``) be ``value`` (known to +-``value_err``)
    rounded or truncated to that many digits?"""
    h = 0.5 * 10.0 ** -claimed_decimals
    fuzz = 1e-9 * max(1.0, abs(claimed))
    return value + value_err >= claimed - h - fuzz and value - value_err <= claimed + 2 * h + fuzz


def printed_err(metrics: list[Metric]) -> float:
    """Half a unit in the last printed place of the least precise value: what rounding can hide."""
    return max(0.5 * 10.0 ** -m.bpb_decimals for m in metrics)


def fmt(x: float, d: int = 8) -> str:
    return f"{x:.{d}f}"


# ---- files ----------------------------------------------------------------------------------------

def find_logs(sub: Submission) -> list[Path]:
    """Train logs: the folder's own, plus those in sub-folders (``logs/``, re-run folders)."""
    found = list(sub.logs)
    real_root = os.path.realpath(sub.root)
    seen = 0
    for dirpath, dirnames, filenames in os.walk(sub.root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        seen += len(filenames)
        if seen > WALK_LIMIT:
            break
        if Path(dirpath) == sub.root:
            continue
        for n in sorted(filenames):
            p = Path(dirpath) / n
            if n.lower().endswith(LOG_SUFFIXES) and n not in NOT_LOGS and _inside(p, real_root) and p.is_file():
                found.append(p)
    return sorted(set(found), key=lambda p: sub.rel(p))[:MAX_LOGS]


def _inside(p: Path, real_root: str) -> bool:
    return os.path.realpath(p).startswith(real_root.rstrip(os.sep) + os.sep)


def find_json(sub: Submission) -> Path | None:
    if sub.submission_json is not None:
        return sub.submission_json
    # Some records name it submission_<variant>.json; use it when it is the only one.
    cands = sorted(p for p in sub.root.glob("submission*.json") if p.is_file() and _inside(p, os.path.realpath(sub.root)))
    return cands[0] if len(cands) == 1 else None


def entry_files(sub: Submission) -> list[Path]:
    """The Python file(s) a reviewer may run: train_gpt.py first, then the other top-level
    train_gpt*.py (records with variants ship several), else the top-level train*.py, else a lone .py."""
    top = [p for p in sub.sources if p.parent == sub.root]
    gpt = [p for p in top if p.name.startswith("train_gpt")]
    if gpt:
        return sorted(gpt, key=lambda p: (p != sub.entry, p.name))
    train = [p for p in top if p.name.startswith("train")]
    return train or (top if len(top) == 1 else [])


def layout(sub: Submission, report: Report, json_path: Path | None, logs: list[Path]) -> None:
    missing = []
    if json_path is None:
        missing.append(("submission.json", "error"))
    if not entry_files(sub):
        missing.append(("the Python entry file (train_gpt.py)", "error"))
    if not logs:
        missing.append(("a train log (*.log or *.txt)", "error"))
    if sub.readme is None:
        missing.append(("README.md", "warning"))
    for what, sev in missing:
        report.add(_f("CLM001", "structure", sev, f"missing from the submission folder: {what}"))
    seen = 0
    for dirpath, dirnames, filenames in os.walk(sub.root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for n in sorted(filenames):
            seen += 1
            if seen > WALK_LIMIT:
                return
            p = Path(dirpath) / n
            try:
                st = p.lstat()
            except OSError:
                continue
            if st.st_size > LARGE_FILE_BYTES and p.is_file() and not p.is_symlink():
                report.add(_f("CLM002", "structure", "warning",
                              f"{sub.rel(p)} is {st.st_size:,} bytes: a committed file this large is data or a "
                              f"checkpoint, not part of a submission", sub.rel(p), size=st.st_size))


# ---- run selection --------------------------------------------------------------------------------

@dataclass
class Selection:
    runs: list[LogRun]
    stage: str | None  # the stage whose per-run values the claim is compared with
    metrics: list[Metric] = field(default_factory=list)
    matched: bool = False
    how: str = ""


def common_stages(runs: list[LogRun]) -> list[str]:
    """Stages every run prints, in the first run's order, the headline stage last."""
    if not runs:
        return []
    sets = [{m.stage for m in r.finals()} for r in runs]
    return [m.stage for m in runs[0].finals() if all(m.stage in s for s in sets)]


def stage_metrics(runs: list[LogRun], stage: str) -> list[Metric]:
    return [next(m for m in r.finals() if m.stage == stage) for r in runs]


def match_claim(runs: list[LogRun], claimed: Num | None) -> Selection | None:
    """The stage whose mean over ``runs`` the claim equals, or None; the latest stage wins ties."""
    if not runs or claimed is None:
        return None
    for stage in reversed(common_stages(runs)):
        ms = stage_metrics(runs, stage)
        if agrees(claimed, claimed.decimals, stats.mean([m.val_bpb for m in ms]), printed_err(ms)):
            return Selection(runs, stage, ms, matched=True)
    return None


def headline_selection(runs: list[LogRun]) -> Selection:
    """The comparison when nothing matches: each run's own headline, or the latest common stage."""
    stages = common_stages(runs)
    if stages:
        return Selection(runs, stages[-1], stage_metrics(runs, stages[-1]))
    heads = [r.headline() for r in runs]
    return Selection(runs, None, [h for h in heads if h is not None])


def seed_matches(run: LogRun, value: Num) -> Metric | None:
    for m in reversed(run.finals()):
        if agrees(value, value.decimals, m.val_bpb, 0.5 * 10.0 ** -m.bpb_decimals):
            return m
    return None


def select(runs: list[LogRun], claims: Claims) -> Selection | None:
    """The runs the claim is about, and the stage whose mean it is compared with.

    With seeds named in the JSON, one log per seed: the log of that seed (by the seed it prints or
    its file name) that shows the JSON's per-seed value, else any not yet used log that shows it,
    else the seed's last log. Without seeds, every distinct log, then (for a claim that does not
    say it is a mean over seeds) any single log.
    """
    if not runs:
        return None
    ids = claims.seed_ids()
    per_seed = {s.seed: s for s in claims.seeds}
    if ids:
        chosen: list[LogRun] = []
        for s in ids:
            want = per_seed.get(s)
            value = want.val_bpb if want else None
            own = [r for r in runs if s in r.seeds() and r not in chosen]
            pick = next((r for r in own if value is not None and seed_matches(r, value)), None)
            if pick is None and value is not None:
                pick = next((r for r in runs if r not in chosen and seed_matches(r, value)), None)
            pick = pick or (own[-1] if own else None)
            if pick is not None:
                chosen.append(pick)
        if chosen:
            sel = match_claim(chosen, claims.val_bpb) or per_seed_route(chosen, claims) or headline_selection(chosen)
            sel.how = sel.how or (f"the logs of the {len(chosen)} seed(s) submission.json lists"
                                  + (f" (of {len(ids)} listed)" if len(chosen) < len(ids) else ""))
            return sel
    sel = match_claim(runs, claims.val_bpb)
    if sel:
        sel.how = _all_runs(runs)
        return sel
    if len(runs) > 1 and claims.val_bpb is not None and (claims.n_seeds or 1) <= 1 and len(ids) <= 1:
        for r in reversed(runs):
            one = match_claim([r], claims.val_bpb)
            if one:
                one.how = f"one of {len(runs)} logged runs ({r.where})"
                return one
    sel = headline_selection(runs)
    sel.how = _all_runs(runs)
    return sel


def _all_runs(runs: list[LogRun]) -> str:
    if len(runs) == 1:
        return "the log"
    several = len({r.path for r in runs}) < len(runs)  # a log holding several runs
    return f"all {len(runs)} logged runs" if several else f"all {len(runs)} logs"


def per_seed_route(chosen: list[LogRun], claims: Claims) -> Selection | None:
    """The claim as the mean of the JSON's per-seed values, each of which its log shows.

    Averaging per-seed values that were already rounded can move the last digit of the mean;
    when every per-seed value matches its log, that is rounding, not a mismatch.
    """
    c = claims.val_bpb
    vals = [s.val_bpb for s in claims.seeds]
    if c is None or not vals or any(v is None for v in vals) or len(vals) != len(chosen):
        return None
    hits = [seed_matches(r, v) for r, v in zip(chosen, vals)]
    if any(h is None for h in hits):
        return None
    err = max(0.5 * 10.0 ** -v.decimals for v in vals)
    if not agrees(c, c.decimals, stats.mean([float(v) for v in vals]), err):
        return None
    sel = Selection(chosen, hits[-1].stage if len({h.stage for h in hits}) == 1 else None, hits, matched=True)
    sel.how = "the mean of the per-seed values submission.json gives, each shown by its log"
    return sel


def read_claims(sub: Submission) -> Claims | None:
    """What submission.json claims, read quietly (the part reports its problems); None when it cannot
    be read. The launch resolver picks the launch of these seeds."""
    json_path = find_json(sub)
    if json_path is None:
        return None
    try:
        return parse_claims(load_json(read_text_bounded(json_path, MAX_JSON_BYTES, within=sub.root)))
    except (AuditError, ValueError):
        return None


# ---- the part -------------------------------------------------------------------------------------

def run(sub: Submission, opts, report: Report) -> None:
    json_path = find_json(sub)
    log_paths = find_logs(sub)
    layout(sub, report, json_path, log_paths)
    non_record = _non_record(sub)

    claims = Claims()
    json_rel = sub.rel(json_path) if json_path else None
    if json_path is not None:
        try:
            doc = load_json(read_text_bounded(json_path, MAX_JSON_BYTES, within=sub.root), json_rel)
            claims = parse_claims(doc)
        except (AuditError, ValueError) as e:
            report.add(_f("CLM003", "structure", "error", str(e), json_rel))
        for p in claims.problems:
            report.add(_f("CLM003", "structure", "error", f"submission.json: {p}", json_rel))
        if claims.missing:
            report.add(_f("CLM004", "structure", "warning",
                          f"submission.json does not give {', '.join(claims.missing)}", json_rel,
                          missing=claims.missing))
        if claims.track and "non" in claims.track.lower():
            non_record = True

    runs, every, seen = [], [], {}
    for p in log_paths:
        rel = sub.rel(p)
        try:
            text = read_text_bounded(p, MAX_LOG_BYTES, within=sub.root)
        except AuditError as e:
            report.add(_f("CLM005", "structure", "warning", f"log not read: {e}", rel))
            continue
        digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
        r = parse_log(text, rel)
        if r.unknown:
            shown = "; ".join(f"line {n}: {t[:80]!r}" for n, t in r.unknown[:3])
            report.add(_f("CLM005", "structure", "warning",
                          f"{len(r.unknown)} metric line(s) in a format golf-audit does not read ({shown})",
                          rel, r.unknown[0][0], lines=[n for n, _ in r.unknown[:50]]))
        if r.seed_from == "log":
            m = re.search(r"seed[_-]?(\d{1,12})(?!\d)", rel.rsplit("/", 1)[-1])
            if m and int(m.group(1)) != r.seed:
                report.add(_f("CLM015", "claims-mismatch", "warning",
                              f"the file name says seed {m.group(1)} but the log prints seed {r.seed}", rel))
        if digest in seen:
            continue  # the same run committed twice (train.log and train_seed1337.log)
        seen[digest] = rel
        if r.headline() is None:
            every.append(r)
            report.add(_f("CLM005", "structure", "info", "no final val_bpb line in this log", rel))
            continue
        every.extend(r.runs())
        runs.extend(r.runs())

    sel = select(runs, claims)
    check_scores(report, claims, runs, every, sel, json_rel)
    check_sizes(report, sub, claims, every, sel, json_rel)
    check_times(report, claims, every, sel, json_rel, non_record)
    check_readme(report, sub, claims)
    sig = check_significance(report, opts, sel, claims)
    report.claims = summary(claims, sel, sig)


def _non_record(sub: Submission) -> bool:
    parts = [p.lower() for p in sub.root.resolve().parts[-3:]]
    return any("non_record" in p or "non-record" in p for p in parts)


def check_scores(report: Report, claims: Claims, runs: list[LogRun], every: list[LogRun], sel: Selection | None,
                 json_rel: str | None) -> None:
    c = claims.val_bpb
    listed = claims.seed_ids()
    for s in listed:
        if every and not any(s in r.seeds() for r in every):
            report.add(_f("CLM015", "claims-mismatch", "error",
                          f"submission.json lists seed {s} but no committed log is of that seed", json_rel, seed=s))
    if c is None:
        if json_rel and not claims.problems:
            hint = ""
            if claims.val_loss is not None and sel and sel.metrics and agrees(
                    claims.val_loss, claims.val_loss.decimals, stats.mean([m.val_bpb for m in sel.metrics]),
                    printed_err(sel.metrics)):
                hint = f" (its val_loss {claims.val_loss} is the logs' mean val_bpb)"
            report.add(_f("CLM003", "structure", "error", f"submission.json gives no val_bpb{hint}", json_rel))
        return
    if sel is None or not sel.metrics:
        report.add(_f("CLM010", "claims-mismatch", "error",
                      f"submission.json claims val_bpb {c} but no log shows a final val_bpb{_diagnostic_hint(every, c)}",
                      json_rel))
        return
    vals = [m.val_bpb for m in sel.metrics]
    mean = stats.mean(vals)
    where = ", ".join(f"{r.path}:{m.line}" for r, m in zip(sel.runs, sel.metrics))
    if not sel.matched:
        report.add(_f("CLM010", "claims-mismatch", "error",
                      f"submission.json claims val_bpb {c}, but the mean of the final values in {sel.how} "
                      f"({len(vals)} run(s), {sel.stage or 'last result'}) is {fmt(mean)} ({where})"
                      + _diagnostic_hint(every, c),
                      json_rel, claimed=float(c), log_mean=mean, values=vals))
    elif sel.how.startswith("one of"):
        same = sel.stage in common_stages(runs)
        ms = stage_metrics(runs, sel.stage) if same else headline_selection(runs).metrics
        report.add(_f("CLM010", "claims-mismatch", "warning",
                      f"val_bpb {c} is the value of {sel.how}, not the mean of the {len(runs)} logged runs "
                      f"({fmt(stats.mean([m.val_bpb for m in ms]))}"
                      + (f" at {sel.stage})" if same else ", each run's last result)"), json_rel, claimed=float(c)))
    # val_loss: the same stage's losses
    losses = [m.val_loss for m in sel.metrics if m.val_loss is not None]
    if claims.val_loss is not None and sel.matched and len(losses) == len(sel.metrics):
        lm = stats.mean(losses)
        err = max(0.5 * 10.0 ** -decimals(f"{x}") for x in losses) if losses else 0.0
        err = max(err, max(0.5 * 10.0 ** -m.bpb_decimals for m in sel.metrics))
        if not agrees(claims.val_loss, claims.val_loss.decimals, lm, err):
            # The score is val_bpb (CLM010); a val_loss that disagrees is bookkeeping, not a false score.
            report.add(_f("CLM013", "claims-mismatch", "warning",
                          f"submission.json claims val_loss {claims.val_loss}, but the logs' mean at the "
                          f"stage that gives its val_bpb ({sel.stage}) is {fmt(lm)}", json_rel,
                          claimed=float(claims.val_loss), log_mean=lm))
    # per-seed values
    for sc in claims.seeds:
        logs = [r for r in runs if sc.seed in r.seeds()]
        if not logs or sc.val_bpb is None or any(seed_matches(r, sc.val_bpb) for r in logs):
            continue
        shown = ", ".join(f"{r.path}: {m.stage} {m.val_bpb}" for r in logs for m in r.finals()[-2:])
        other = next((r for r in runs if r not in logs and seed_matches(r, sc.val_bpb)), None)
        elsewhere = (f"; it is the value of {other.path}, which is seed {other.seed}" if other else "")
        report.add(_f("CLM011", "claims-mismatch", "error",
                      f"submission.json gives seed {sc.seed} val_bpb {sc.val_bpb}, which no final line of that seed's "
                      f"log shows ({shown}){elsewhere}", json_rel, seed=sc.seed, claimed=float(sc.val_bpb)))
    # std
    if claims.bpb_std is not None and sel.matched and len(vals) >= 2:
        s1, s0 = stats.std(vals, 1), stats.std(vals, 0)
        err = printed_err(sel.metrics) * 2
        if not any(agrees(claims.bpb_std, claims.bpb_std.decimals, s, err) for s in (s1, s0)):
            report.add(_f("CLM012", "claims-mismatch", "warning",
                          f"submission.json gives val_bpb std {claims.bpb_std}; the {len(vals)} logged values give "
                          f"{s1:.8f} (sample) or {s0:.8f} (population)", json_rel,
                          claimed=float(claims.bpb_std), sample=s1, population=s0))


def _diagnostic_hint(runs: list[LogRun], c: Num) -> str:
    """Where the claimed number does appear, when it is a diagnostic (pre-quantization, training-time) value."""
    for r in runs:
        last = {m.stage: m for m in r.metrics if m.diagnostic}  # each diagnostic's final print only
        for m in sorted(last.values(), key=lambda m: -m.line):
            if agrees(c, c.decimals, m.val_bpb, 0.5 * 10.0 ** -m.bpb_decimals):
                return f"; the claim is the diagnostic '{m.stage}' value at {r.path}:{m.line}, not a final score"
    return ""


def check_sizes(report: Report, sub: Submission, claims: Claims, runs: list[LogRun], sel: Selection | None,
                json_rel: str | None) -> None:
    use = sel.runs if sel and sel.matched else runs
    all_py = sum(_size(p) for p in sub.sources)  # every committed .py file: the code the submission counts
    for r in use:
        t = r.bytes_total()
        if t is None or t <= SIZE_CAP:
            continue
        with_committed = committed_total(r, all_py)
        if with_committed is not None and with_committed <= SIZE_CAP:
            # The run counted other code than the committed one (its uncompressed source where a
            # compressed wrapper is committed, #1835): the logged model with the committed code fits.
            report.add(_f("CLM030", "size-cap", "warning",
                          f"the log's submission total is {t:,} bytes, over the {SIZE_CAP:,}-byte cap, but it counts "
                          f"{min(r.code_size().values()):,} bytes of code; with the committed {all_py:,} bytes of .py "
                          f"files it is {with_committed:,}, under the cap", r.path, r.sizes[-1][2],
                          bytes_total=t, seed=r.seed, with_committed_code=with_committed))
            continue
        report.add(_f("CLM030", "size-cap", "error",
                      f"the log's submission total is {t:,} bytes, over the {SIZE_CAP:,}-byte cap",
                      r.path, r.sizes[-1][2], bytes_total=t, seed=r.seed))
    if claims.bytes_total is not None and claims.bytes_total > SIZE_CAP:
        report.add(_f("CLM030", "size-cap", "error",
                      f"submission.json gives {claims.bytes_total_key} {claims.bytes_total:,} bytes, over the "
                      f"{SIZE_CAP:,}-byte cap", json_rel, bytes_total=claims.bytes_total))
    for sc in claims.seeds:
        if sc.bytes_total is not None and sc.bytes_total > SIZE_CAP:
            report.add(_f("CLM030", "size-cap", "error",
                          f"submission.json gives seed {sc.seed} {sc.bytes_total:,} bytes, over the {SIZE_CAP:,}-byte cap",
                          json_rel, seed=sc.seed, bytes_total=sc.bytes_total))
        logs = [r for r in use if sc.seed in r.seeds() and r.bytes_total() is not None]
        if sc.bytes_total is not None and logs and all(r.bytes_total() != sc.bytes_total for r in logs):
            # Over the cap, CLM030 already fails the logged total; under it, the mismatch is bookkeeping.
            report.add(_f("CLM021", "claims-mismatch", "warning",
                          f"submission.json gives seed {sc.seed} {sc.bytes_total:,} bytes; its log prints "
                          f"{', '.join(f'{r.bytes_total():,}' for r in logs)}", json_rel, seed=sc.seed))
    totals = [r.bytes_total() for r in use if r.bytes_total() is not None]
    anywhere = [r.bytes_total() for r in runs if r.bytes_total() is not None]
    if claims.bytes_total is not None and totals and claims.bytes_total not in anywhere \
            and abs(claims.bytes_total - stats.mean(totals)) > 1:
        report.add(_f("CLM021", "claims-mismatch", "warning",
                      f"submission.json gives {claims.bytes_total_key} {claims.bytes_total:,}, which is neither a "
                      f"logged submission total ({', '.join(f'{t:,}' for t in totals)}) nor their mean", json_rel))
    # code bytes
    entries = entry_files(sub)
    if not entries:
        return
    entry = _size(entries[0])
    names = sub.rel(entries[0])
    one_file = {_size(p) for p in entries} | {entry, all_py, sum(_size(p) for p in entries)}
    logged = sorted({b for r in use for b in r.code_size().values()})
    plain_logged = sorted({b for r in use for kind, b in r.code_size().items() if kind != "compressed"})
    if claims.bytes_code is not None and claims.bytes_code not in one_file:
        if claims.bytes_code in logged:
            report.add(_f("CLM020", "claims-mismatch", "warning",
                          f"bytes_code {claims.bytes_code:,} is the code size the logged run printed, but the "
                          f"committed {names} is {entry:,} bytes", json_rel, bytes_code=claims.bytes_code, entry=entry))
        else:
            # An error when the committed code would take the claimed total over the cap (the #1959 case);
            # otherwise a wrong number that changes nothing the rules measure.
            real_total = None if claims.bytes_total is None else claims.bytes_total - claims.bytes_code + entry
            over = real_total is not None and real_total > SIZE_CAP
            report.add(_f("CLM020", "size-cap" if over else "claims-mismatch", "error" if over else "warning",
                          f"bytes_code {claims.bytes_code:,} is not the size of the committed {names} ({entry:,} bytes)"
                          + (f" nor of all its .py files ({all_py:,})" if all_py != entry else "")
                          + (f"; the logs print {', '.join(f'{b:,}' for b in logged)}" if logged else "")
                          + (f"; with the committed code the total is {real_total:,} bytes, over the {SIZE_CAP:,}-byte cap"
                             if over else ""),
                          json_rel, bytes_code=claims.bytes_code, entry=entry))
    # A logged code size that no committed file (nor all of them) has: the run used other code.
    committed = {entry, all_py, *(_size(p) for p in sub.sources)}
    stray = [b for b in plain_logged if b not in committed]
    if stray:
        others = sorted({r.path for r in runs if r not in use for b in r.code_size().values() if b in committed})
        report.add(_f("CLM022", "claims-mismatch", "warning",
                      f"the logs of the claimed run(s) print a code size of {', '.join(f'{b:,}' for b in stray)} bytes, "
                      f"the size of no committed .py file (the committed {names} is {entry:,} bytes): those runs used "
                      f"other code" + (f" ({len(others)} other log(s) in the folder match the committed code)" if others else ""),
                      sub.rel(entries[0]), entry=entry, logged=stray))


def committed_total(run: LogRun, code: int) -> int | None:
    """A run's logged submission total with the code it counted replaced by ``code`` bytes: its total
    less the smallest code size it printed (the largest model it can have), plus ``code``. None when
    the run printed no code size."""
    sizes = run.code_size().values()
    total = run.bytes_total()
    if not sizes or total is None:
        return None
    return total - min(sizes) + code


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def check_times(report: Report, claims: Claims, runs: list[LogRun], sel: Selection | None, json_rel: str | None,
                non_record: bool) -> None:
    sev = "info" if non_record else "error"
    note = " (non-record track: no time cap)" if non_record else ""
    use = sel.runs if sel and sel.matched else runs
    stage_eval = {id(r): m.eval_s for r, m in zip(sel.runs, sel.metrics)} if sel else {}
    for r in use:
        train = r.train_s if r.train_s is not None else r.last_step_train_s
        if train is not None and train > TIME_CAP_S + TIMER_SLACK_S:
            report.add(_f("CLM040", "time-cap", sev,
                          f"training ran {train:.1f} s, over the {TIME_CAP_S:.0f} s cap{note}", r.path,
                          train_s=train, seed=r.seed))
        ev = r.total_eval_s if r.total_eval_s is not None else stage_eval.get(id(r))
        if ev is None and r.headline() is not None:
            ev = r.headline().eval_s
        if ev is not None and ev > TIME_CAP_S:
            report.add(_f("CLM041", "time-cap", sev,
                          f"evaluation took {ev:.1f} s, over the {TIME_CAP_S:.0f} s cap{note}", r.path,
                          eval_s=ev, seed=r.seed))
        elif r.total_eval_s is None:
            every = r.eval_times()
            total = math.fsum(every.values())
            if total > TIME_CAP_S and len(every) > 1:
                report.add(_f("CLM041", "time-cap", "info" if non_record else "warning",
                              f"the evaluations this log runs after training take {total:.1f} s together "
                              f"({', '.join(f'{k} {v:.1f} s' for k, v in every.items())}); over {TIME_CAP_S:.0f} s "
                              f"if they all belong to the submitted eval{note}", r.path, eval_s=total))
        if r.after_train_s is not None and r.after_train_s > TIME_CAP_S + TIMER_SLACK_S and not non_record:
            report.add(_f("CLM042", "time-cap", "warning",
                          f"the log prints {r.after_train_s:.1f} s elapsed when post-training work (quantization "
                          f"calibration) ends, past the {TIME_CAP_S:.0f} s training budget", r.path,
                          elapsed_s=r.after_train_s))
    for sc in claims.seeds:
        for what, v, rule in (("training", sc.train_time_s, "CLM040"), ("evaluation", sc.eval_time_s, "CLM041")):
            if v is not None and v > TIME_CAP_S + (TIMER_SLACK_S if rule == "CLM040" else 0):
                report.add(_f(rule, "time-cap", sev, f"submission.json gives seed {sc.seed} {what} time {v:.1f} s, "
                              f"over the {TIME_CAP_S:.0f} s cap{note}", json_rel, seed=sc.seed))
    if not claims.seeds:
        for what, vs, rule in (("training", [claims.train_time_s] if claims.train_time_s else [], "CLM040"),
                               ("evaluation", claims.eval_time_s, "CLM041")):
            for v in vs:
                if v > TIME_CAP_S + (TIMER_SLACK_S if rule == "CLM040" else 0):
                    report.add(_f(rule, "time-cap", sev, f"submission.json gives {what} time {v:.1f} s, over the "
                                  f"{TIME_CAP_S:.0f} s cap{note}", json_rel))


NUMBER = re.compile(r"(?<![\w.])(\d+\.\d{3,})(?![\w.])")


def check_readme(report: Report, sub: Submission, claims: Claims) -> None:
    if sub.readme is None or claims.val_bpb is None:
        return
    try:
        text = read_text_bounded(sub.readme, MAX_README_BYTES, within=sub.root)
    except AuditError as e:
        report.add(_f("CLM005", "structure", "warning", f"README not read: {e}", sub.rel(sub.readme)))
        return
    c = claims.val_bpb
    for m in NUMBER.finditer(text):
        x = float(m.group(1))
        d = decimals(m.group(1))
        # the README's number is the claim rounded (or truncated) to its own digits, or the other way round
        if agrees(x, d, c, 0.5 * 10.0 ** -c.decimals) or agrees(c, c.decimals, x, 0.5 * 10.0 ** -d):
            return
    report.add(_f("CLM014", "claims-mismatch", "warning",
                  f"the README never states the claimed val_bpb {c}", sub.rel(sub.readme), claimed=float(c)))


# ---- significance ---------------------------------------------------------------------------------

def baseline_values(opts) -> tuple[list[float] | None, str | None]:
    """Per-seed BPBs of the record to beat: --baseline-bpb (one value) or a baseline folder's logs."""
    folder = getattr(opts, "baseline_record", None)
    if folder:
        bsub = load_submission(folder)
        bjson = find_json(bsub)
        bclaims = Claims()
        if bjson is not None:
            try:
                bclaims = parse_claims(load_json(read_text_bounded(bjson, MAX_JSON_BYTES, within=bsub.root)))
            except ValueError:
                pass
        bruns = []
        for p in find_logs(bsub):
            r = parse_log(read_text_bounded(p, MAX_LOG_BYTES, within=bsub.root), bsub.rel(p))
            if r.headline() is not None:
                bruns.append(r)
        bsel = select(bruns, bclaims)
        if bsel is None or not bsel.metrics:
            raise AuditError(f"{folder}: the baseline folder has no log with a final val_bpb")
        return [m.val_bpb for m in bsel.metrics], f"{folder} ({len(bsel.metrics)} run(s), {bsel.stage})"
    if opts.baseline_bpb is not None:
        return [float(opts.baseline_bpb)], f"--baseline-bpb {opts.baseline_bpb}"
    return None, None


def check_significance(report: Report, opts, sel: Selection | None, claims: Claims) -> dict | None:
    base, label = baseline_values(opts)
    if base is None:
        return None
    if sel is None or not sel.metrics:
        report.add(_f("CLM050", "significance", "error", f"no per-seed val_bpb in the logs to test against {label}"))
        return {"baseline": label}
    vals = [m.val_bpb for m in sel.metrics]
    losses = [m.val_loss for m in sel.metrics if m.val_loss]
    if len(losses) == len(vals):
        ratio = stats.mean(vals) / stats.mean(losses)  # bits per byte per nat per token
    elif claims.val_loss and claims.val_bpb:
        ratio = float(claims.val_bpb) / float(claims.val_loss)
    else:
        report.add(_f("CLM050", "significance", "error",
                      f"cannot test against {label}: no val_loss to convert the {stats.MIN_IMPROVEMENT_NATS} nats margin to bpb"))
        return {"baseline": label}
    margin = stats.MIN_IMPROVEMENT_NATS * ratio
    res = stats.welch_improvement(vals, base, margin)
    out = {"baseline": label, "baseline_bpb": stats.mean(base), "margin_bpb": margin, "seeds": len(vals)}
    if res is None:
        report.add(_f("CLM050", "significance", "error",
                      f"{len(vals)} run(s) cannot show an improvement over {label} at p < {stats.ALPHA}: "
                      f"the test needs at least two seeds that vary"))
        return out
    out.update({"improvement_bpb": res.improvement, "t": res.t, "df": res.df, "p": res.p})
    if not res.significant:
        report.add(_f("CLM050", "significance", "error",
                      f"the improvement over {label} is {res.improvement:.5f} bpb; the record needs more than "
                      f"{margin:.5f} bpb (0.005 nats) at p < {stats.ALPHA}, one-sided Welch t = {res.t:.3f}, "
                      f"df = {res.df:.2f}, p = {res.p:.4f}", improvement=res.improvement, p=res.p))
    return out


def summary(claims: Claims, sel: Selection | None, sig: dict | None) -> dict:
    out: dict = {
        "claimed_bpb": float(claims.val_bpb) if claims.val_bpb is not None else None,
        "seed_bpbs": [m.val_bpb for m in sel.metrics] if sel else [],
        "bytes_total": claims.bytes_total,
        "bytes_code": claims.bytes_code,
    }
    if sel and sel.metrics:
        vals = [m.val_bpb for m in sel.metrics]
        out["seeds"] = [r.seed for r in sel.runs] if len(sel.runs) == len(vals) else []
        out["seed_logs"] = [r.path for r in sel.runs] if len(sel.runs) == len(vals) else []
        out["log_stage"] = sel.stage
        out["log_mean_bpb"] = round(stats.mean(vals), 10)
        s = stats.std(vals)
        out["log_std_bpb"] = round(s, 10) if s is not None else None
        out["claim_matches_logs"] = sel.matched
        out["seed_bytes_total"] = [r.bytes_total() for r in sel.runs]
        out["seed_train_s"] = [r.train_s if r.train_s is not None else r.last_step_train_s for r in sel.runs]
        out["seed_eval_s"] = [r.total_eval_s if r.total_eval_s is not None else m.eval_s for r, m in zip(sel.runs, sel.metrics)]
    if claims.val_loss is not None:
        out["claimed_val_loss"] = float(claims.val_loss)
    if claims.bpb_std is not None:
        out["claimed_std_bpb"] = float(claims.bpb_std)
    if sig:
        out.update({f"significance_{k}": v for k, v in sig.items()})
    return out
