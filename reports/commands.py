"""Commands that do not audit one submission: rules, explain, scan."""

from __future__ import annotations

import json
import os
import posixpath
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from checks import catalog
from checks.static.engine import rule_by_id
from harness import AuditError
from reports import progress
from reports.model import Report, plain
from reports.output import check_destinations, emit, gate, render_options
from reports.render import render_many



def _rule_doc(e: catalog.Entry) -> dict:
    rule = rule_by_id(e.id) if e.part is catalog.Part.STATIC else None
    return {"id": e.id, "name": e.name, "part": e.part.value, "family": e.family, "families": list(e.families),
            "condition": e.condition, "severity": e.severity, "what": e.what, "why": e.why, "example": e.example,
            "fix": e.fix, "valid_examples": len(rule.VALID) if rule else 0,
            "invalid_examples": len(rule.INVALID) if rule else 0}


def rules(args) -> int:
    """List every finding ID of every part (text table, JSON or a Markdown table)."""
    docs = [_rule_doc(e) for e in catalog.entries()]
    if args.format == "json":
        text = json.dumps(docs, indent=2) + "\n"
    elif args.format == "markdown":
        rows = [f"| {d['id']} | {d['part']} | {d['name']} | {d['family']} | {d['condition']} | {d['severity']} | {d['what']} |"
                for d in docs]
        text = "\n".join(["| rule | part | name | family | condition | severity | finds |", "|---|---|---|---|---|---|---|",
                          *rows]) + "\n"
    elif args.format == "text":
        wi, wn = max(len(d["id"]) for d in docs), max(len(d["name"]) for d in docs)
        text = "".join(f"{d['id']:<{wi}}  {d['part']:<12}  {d['name']:<{wn}}  {d['condition']:<5}  {d['severity']:<7}  "
                       f"{d['what']}\n" for d in docs)
        text += f"{len(docs)} IDs; `golf-audit explain ID` shows one.\n"
    else:
        raise AuditError(f"rules: --format {args.format} is not available here (use text, json or markdown)")

    emit(text, args.output)
    return 0


def explain(args) -> int:
    """One ID as a reviewer reads it: what it does, why it is bad, an example, what to do instead."""
    e = catalog.entry(args.rule)
    if e is None:
        raise AuditError(f"no rule {args.rule!r} (`golf-audit rules` lists them)")
    example = "\n".join("    " + ln for ln in e.example.splitlines())
    sys.stdout.write(f"{e.id} {e.name} ({e.part.value}; {', '.join(e.families)}, {e.condition}, {e.severity})\n\n"
                     f"What it does\n  {e.what}\n\nWhy is this bad?\n  {e.why}\n\n"
                     f"Example\n{example}\n\nUse instead\n  {e.fix}\n")
    return 0


# --- scan -------------------------------------------------------------------------------------

# Folders never searched for submissions.
SCAN_SKIP_DIRS = {".git", "__pycache__", "node_modules", ".venv", "venv", ".golf-audit-cache", ".hypothesis"}
# Options a scan hands on to the audit of each folder (flag, attribute, takes a value).
SCAN_PASSTHROUGH = [("--val", "val", True), ("--tokenizer", "tokenizer", True), ("--max-tokens", "max_tokens", True),
                    ("--device", "device", True), ("--seed", "seed", True), ("--python", "python", True),
                    ("--baseline-bpb", "baseline_bpb", True), ("--baseline-record", "baseline_record", True),
                    ("--no-exec", "no_exec", False),
                    ("--unsafe-no-sandbox", "unsafe_no_sandbox", False)]


def is_submission_dir(path: Path) -> bool:
    """A folder with a train_gpt*.py or a submission*.json (some records name it submission_<variant>.json)."""
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return any((n.startswith("train_gpt") and n.endswith(".py")) or (n.startswith("submission") and n.endswith(".json"))
               for n in names)


def find_submissions(paths: list[str]) -> list[str]:
    """Every submission folder at or below the given paths, as ``given/relative`` paths, sorted.

    A folder that is a submission is not searched further (its sub-folders are its helpers). A
    file stands for the submission folder that holds it (its own folder or, for helper files, up
    to two levels higher), or for itself when it is a lone .py file.
    """
    found: list[str] = []
    for given in paths:
        p = Path(given)
        if not p.exists():
            raise AuditError(f"{given}: no such file or directory")
        if p.is_file():
            holder = next((d for d in (p.parent, p.parent.parent, p.parent.parent.parent) if is_submission_dir(d)), None)
            if holder is not None:
                found.append(posixpath.normpath(holder.as_posix()))
            elif p.suffix == ".py":
                found.append(posixpath.normpath(p.as_posix()))
            continue
        for dirpath, dirnames, _ in os.walk(p):
            if is_submission_dir(Path(dirpath)):
                dirnames[:] = []
                found.append(posixpath.normpath(Path(dirpath).as_posix()))
                continue
            dirnames[:] = sorted(d for d in dirnames if d not in SCAN_SKIP_DIRS and not d.startswith("."))
    return sorted(set(found))


def _child_command(args, folder: str) -> list[str]:
    cmd = [sys.executable, "-m", "cli", args.mode, folder, "--format", "json"]
    for flag, attr, has_value in SCAN_PASSTHROUGH:
        v = getattr(args, attr, None)
        if has_value and v is not None and not (attr == "device" and v == "cpu") and not (attr == "seed" and v == 0):
            cmd += [flag, str(v)]
        elif not has_value and v:
            cmd.append(flag)
    return cmd


def audit_folder(args, folder: str) -> Report:
    """Audit one folder in its own process; whatever goes wrong there becomes an error report."""
    try:
        proc = subprocess.run(_child_command(args, folder), capture_output=True, text=True, timeout=args.timeout,
                              stdin=subprocess.DEVNULL, errors="replace")
    except subprocess.TimeoutExpired:
        return Report(submission=folder, error=f"timed out after {args.timeout:g} s")
    except OSError as e:
        return Report(submission=folder, error=f"cannot start the audit: {e.strerror}")
    if proc.stdout.strip():
        try:
            return Report.from_dict(json.loads(proc.stdout))
        except (json.JSONDecodeError, ValueError, AttributeError):
            pass
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    reason = lines[-1] if lines else f"exited with code {proc.returncode} and no report"
    if proc.returncode < 0:
        reason = f"crashed (signal {-proc.returncode})" + (f": {reason}" if lines else "")
    for prefix in ("golf-audit: error: ", "golf-audit: "):
        if reason.startswith(prefix):
            reason = reason[len(prefix):]
            break
    return Report(submission=folder, error=reason[:300])


def scan(args) -> int:
    """Audit every submission folder under the trees in parallel processes; exit with the worst code."""
    if args.jobs < 1:
        raise AuditError("--jobs must be at least 1")
    if args.artifact:
        raise AuditError("--artifact names one submission's artifact; scan finds each folder's own")

    check_destinations(args)
    folders = find_submissions(args.path)
    if args.list:
        sys.stdout.write("".join(f + "\n" for f in folders))
        return 0
    if not folders:
        raise AuditError(f"{', '.join(args.path)}: no submission folder found (a folder with train_gpt*.py or submission*.json)")
    reports: dict[str, Report] = {}
    show = sys.stderr.isatty()
    with progress.task(show, f"scan ({args.mode})", total=len(folders)) as advance, \
            ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(audit_folder, args, f): f for f in folders}
        for fut in as_completed(futures):
            reports[futures[fut]] = fut.result()
            advance(1)
    ordered = [reports[f] for f in folders]

    gate(ordered, args)
    root = args.path[0] if len(args.path) == 1 else None
    emit(render_many(ordered, args.format, root=root, **render_options(args)), args.output)
    failed = [r for r in ordered if r.error]
    if failed:
        print(f"golf-audit: error: {len(failed)} of {len(ordered)} folder(s) could not be audited "
              f"(first: {plain(failed[0].submission)}: {plain(failed[0].error)})", file=sys.stderr)
    return max(r.exit_code for r in ordered)
