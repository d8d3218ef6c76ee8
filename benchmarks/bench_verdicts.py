"""Verdicts measured on a labelled corpus of real submissions (``benchmarks/corpus.tsv``).

    python benchmarks/bench_verdicts.py PARAMETER_GOLF_GIT [--mode check|audit] [--family F]
                                        [--jobs N] [--json OUT] [--timeout S] [--corpus TSV]

PARAMETER_GOLF_GIT is a clone or bare mirror of openai/parameter-golf (pull-request heads under
``refs/pull/N/head``). Each corpus row names a submission folder at a commit; the folder is
materialised blob by blob into a cache under the temporary directory, keyed by commit (blobs the
mirror lacks, such as large artifacts, are skipped and listed), then the golf-audit of this checkout
runs on it in its own process (``check``: static rules; ``audit``: static, claims and probes with no
artifact), ``--format json``.

Scoring (error-level findings only):
- a flagged folder is *caught* when it gets an error of one of its expected families, otherwise
  *missed* (a crash or timeout is a miss, reported as such);
- a *false alarm* is an error whose family the folder does not expect (on a legal folder: any error);
- precision is the share of error findings whose family the folder expects.
Folders whose expected families no part of the chosen mode can report (e.g. ``significance`` under
``check``) are listed as out of scope and left out of the rates.

Prints per family and per rule: caught, missed, false alarms and precision, then per folder the misses
and false alarms, so a rule author sees what to fix.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reports.model import FAMILIES  # noqa: E402

CORPUS = Path(__file__).resolve().with_name("corpus.tsv")
LEGAL = "legal"
STATUSES = {"M": "maintainer ruled or closed", "C": "community flagged", "L": "labelled from the code, no ruling found",
            "R": "merged record"}
COLUMNS = ("pr", "commit", "folder", "expected", "status", "evidence")
HEX40 = re.compile(r"[0-9a-f]{40}")
ERROR = "error"
# The parts each mode runs: their rules' families (``golf-audit rules`` of this checkout) are what the mode
# can report. ``audit`` without an artifact runs no reproduction.
MODE_PARTS = {"check": frozenset({"static"}), "audit": frozenset({"static", "claims", "probes", "data", "sandbox"})}
PARTS = frozenset().union(*MODE_PARTS.values(), {"reproduction"})


class CorpusError(ValueError):
    """A corpus row that does not follow the format."""


@dataclasses.dataclass(frozen=True)
class Entry:
    pr: str  # PR number, or "merged" for a record on main
    commit: str
    folder: str
    expected: frozenset[str]  # empty for a legal folder
    status: str
    evidence: str
    # Families only one part reports on a folder whose code is legal (``claims:structure``: a merged
    # record without its log): (part, family). Under a mode without that part the folder is legal.
    by_part: frozenset[tuple[str, str]] = frozenset()

    @property
    def legal(self) -> bool:
        return not self.expected

    def in_mode(self, parts: frozenset[str]) -> "Entry":
        """The row as a mode running ``parts`` sees it: its part-qualified families those parts report."""
        if not self.by_part:
            return self
        return dataclasses.replace(self, expected=frozenset(f for p, f in self.by_part if p in parts), by_part=frozenset())

    @property
    def label(self) -> str:
        return f"{'#' + self.pr if self.pr.isdigit() else self.pr}:{self.folder.rsplit('/', 1)[-1]}"


def parse_corpus(text: str) -> list[Entry]:
    """Rows of the corpus TSV (``#`` lines are comments; the first other line is the header)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise CorpusError("corpus is empty")
    rows = list(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    if tuple(rows[0]) != COLUMNS:
        raise CorpusError(f"header must be {' '.join(COLUMNS)!r} (tab-separated), got {rows[0]!r}")
    return [_entry(i, row) for i, row in enumerate(rows[1:], start=2)]


def _entry(n: int, row: list[str]) -> Entry:
    if len(row) != len(COLUMNS):
        raise CorpusError(f"row {n}: {len(row)} fields, expected {len(COLUMNS)}")
    pr, commit, folder, expected, status, evidence = (c.strip() for c in row)
    if not (pr.isdigit() or pr == "merged"):
        raise CorpusError(f"row {n}: pr must be a number or 'merged', got {pr!r}")
    if not HEX40.fullmatch(commit):
        raise CorpusError(f"row {n}: commit must be 40 lowercase hex digits, got {commit!r}")
    if not folder.startswith("records/") or ".." in folder.split("/"):
        raise CorpusError(f"row {n}: folder must be a path under records/, got {folder!r}")
    tokens = [] if expected == LEGAL else [f.strip() for f in expected.split(",")]
    by_part = frozenset(tuple(tok.split(":", 1)) for tok in tokens if ":" in tok)
    fams = frozenset(tok.rsplit(":", 1)[-1] for tok in tokens)
    unknown = sorted(f for f in fams if f not in FAMILIES) + sorted(p for p, _ in by_part if p not in PARTS)
    if unknown or not (fams or expected == LEGAL):
        raise CorpusError(f"row {n}: unknown family or part {', '.join(unknown) or expected!r}")
    if by_part and len(by_part) != len(tokens):
        raise CorpusError(f"row {n}: a row's families are all part-qualified (legal code) or none are")
    if status not in STATUSES:
        raise CorpusError(f"row {n}: status must be one of {', '.join(STATUSES)}, got {status!r}")
    if (status == "R") != (pr == "merged"):
        raise CorpusError(f"row {n}: status R goes with pr 'merged' and only with it")
    if not evidence:
        raise CorpusError(f"row {n}: evidence is empty")
    return Entry(pr, commit, folder, fams, status, evidence, by_part)


# ---------------------------------------------------------------- materialising a folder at a commit


@dataclasses.dataclass
class Materialised:
    path: Path | None
    missing: list[str]  # blobs the repository lacks (skipped)
    error: str | None = None


def cache_root() -> Path:
    return Path(os.environ.get("GOLF_AUDIT_CORPUS_CACHE") or Path(tempfile.gettempdir()) / "golf-audit-corpus")


def materialise(git_dir: str, entry: Entry, root: Path) -> Materialised:
    """Write ``entry.folder`` as of ``entry.commit`` under ``root/<commit>/`` (once; reruns reuse it)."""
    base = root / entry.commit
    dest = base / entry.folder
    stamp = base / f".done-{hashlib.sha256(entry.folder.encode()).hexdigest()[:16]}.json"
    if stamp.is_file():
        return Materialised(dest, json.loads(stamp.read_text())["missing"])
    try:
        blobs = _tree_blobs(git_dir, entry.commit, entry.folder)
    except subprocess.CalledProcessError as e:
        return Materialised(None, [], f"git ls-tree failed: {_first_line(e.stderr)}")
    if not blobs:
        return Materialised(None, [], f"no files under {entry.folder} at {entry.commit[:12]}")
    missing = _write_blobs(git_dir, blobs, base)
    stamp.write_text(json.dumps({"missing": missing}))
    return Materialised(dest, missing)


def _tree_blobs(git_dir: str, commit: str, folder: str) -> list[tuple[str, str]]:
    out = _git(git_dir, "ls-tree", "-r", "-z", commit, "--", folder.rstrip("/") + "/")
    blobs = []
    for rec in out.split(b"\0"):
        if not rec:
            continue
        meta, path = rec.split(b"\t", 1)
        _mode, kind, sha = meta.decode().split()
        if kind == "blob":
            blobs.append((sha, path.decode("utf-8", "surrogateescape")))
    return blobs


def _write_blobs(git_dir: str, blobs: list[tuple[str, str]], base: Path) -> list[str]:
    """Fetch all blobs in one ``git cat-file --batch``; return the paths whose blob is absent."""
    proc = subprocess.run(
        ["git", f"--git-dir={git_dir}", "cat-file", "--batch"],
        input="".join(f"{sha}\n" for sha, _ in blobs).encode(), capture_output=True, check=True,
    )
    data, pos, missing = proc.stdout, 0, []
    for sha, rel in blobs:
        nl = data.index(b"\n", pos)
        header = data[pos:nl].decode().split()
        pos = nl + 1
        if header[-1] == "missing":
            missing.append(rel)
            continue
        size = int(header[2])
        target = base / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[pos:pos + size])
        pos += size + 1
    return missing


def _git(git_dir: str, *args: str) -> bytes:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], capture_output=True, check=True).stdout


def _first_line(b: bytes | str | None) -> str:
    s = b.decode(errors="replace") if isinstance(b, bytes) else (b or "")
    return (s.strip().splitlines() or [""])[0]


# ---------------------------------------------------------------- running golf-audit on a folder


@dataclasses.dataclass
class Outcome:
    """What golf-audit said of one folder: its error findings, or why there is no report."""

    errors: list[dict]
    lesser: list[dict]  # warning and info findings (shown when an expected family was only warned)
    verdict: str | None
    crash: str | None = None
    missing: list[str] = dataclasses.field(default_factory=list)


def golf_audit_command(mode: str, folder: Path) -> list[str]:
    return [sys.executable, str(ROOT / "cli.py"), mode, str(folder), "--format", "json"]


def checkout_digest() -> str:
    """Hash of this checkout's own Python code: a changed analysis never reads another's cached result."""
    h = hashlib.sha256()
    for p in sorted([ROOT / "cli.py", *(q for d in ("checks", "harness", "reports") for q in (ROOT / d).rglob("*.py"))]):
        h.update(p.relative_to(ROOT).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def run_golf_audit(mode: str, folder: Path, timeout: float, digest: str) -> Outcome:
    env = dict(os.environ, GOLF_AUDIT_CACHE=str(cache_root() / f"static-cache-{digest}"))
    try:
        proc = subprocess.run(golf_audit_command(mode, folder), capture_output=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return Outcome([], [], None, crash=f"timed out after {timeout:.0f} s")
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        return Outcome([], [], None, crash=f"exit {proc.returncode}, no JSON report: {_first_line(proc.stderr)}")
    return outcome_from_report(report)


def outcome_from_report(report: dict) -> Outcome:
    findings = report.get("findings") or []
    errors = [f for f in findings if f.get("severity") == ERROR]
    lesser = [f for f in findings if f.get("severity") != ERROR]
    return Outcome(errors, lesser, report.get("verdict"))


# ---------------------------------------------------------------- scoring


@dataclasses.dataclass
class Tally:
    caught: int = 0
    missed: int = 0
    false_alarm_folders: int = 0
    true_findings: int = 0
    false_findings: int = 0

    @property
    def precision(self) -> float | None:
        n = self.true_findings + self.false_findings
        return self.true_findings / n if n else None


@dataclasses.dataclass
class FolderScore:
    entry: Entry
    outcome: Outcome
    in_scope: bool
    caught: bool
    false_alarms: list[dict]
    warned_only: list[str]  # expected families found below error level


@dataclasses.dataclass
class Scores:
    folders: list[FolderScore]
    by_family: dict[str, Tally]
    by_rule: dict[str, Tally]
    total: Tally
    legal_with_error: int
    crashes: int
    checkout: str = ""  # digest of the golf-audit code that produced the outcomes


def score_folder(entry: Entry, outcome: Outcome, mode_families: frozenset[str]) -> FolderScore:
    in_scope = entry.legal or bool(entry.expected & mode_families)
    got = {f.get("family") for f in outcome.errors}
    caught = not entry.legal and outcome.crash is None and bool(got & entry.expected)
    false_alarms = [f for f in outcome.errors if f.get("family") not in entry.expected]
    lesser = {f.get("family") for f in outcome.lesser}
    warned = sorted((entry.expected & lesser) - got)
    return FolderScore(entry, outcome, in_scope, caught, false_alarms, warned)


def score(pairs: list[tuple[Entry, Outcome]], mode_families: frozenset[str],
          parts: frozenset[str] = MODE_PARTS["audit"]) -> Scores:
    folders = [score_folder(e.in_mode(parts), o, mode_families) for e, o in pairs]
    by_family: dict[str, Tally] = defaultdict(Tally)
    by_rule: dict[str, Tally] = defaultdict(Tally)
    total = Tally()
    for fs in folders:
        if not fs.in_scope:
            continue
        _tally_folder(fs, mode_families, by_family, by_rule, total)
    legal_bad = sum(1 for fs in folders if fs.entry.legal and fs.outcome.errors)
    crashes = sum(1 for fs in folders if fs.in_scope and fs.outcome.crash)
    return Scores(folders, dict(by_family), dict(by_rule), total, legal_bad, crashes)


def _tally_folder(fs: FolderScore, mode_families, by_family, by_rule, total) -> None:
    e, errors = fs.entry, fs.outcome.errors
    got = {f.get("family") for f in errors} if fs.outcome.crash is None else set()
    for fam in sorted(e.expected & mode_families):
        if fam in got:
            by_family[fam].caught += 1
        else:
            by_family[fam].missed += 1
    if not e.legal:
        if fs.caught:
            total.caught += 1
        else:
            total.missed += 1
    for fam in sorted({f.get("family") for f in fs.false_alarms}):
        by_family[fam].false_alarm_folders += 1
    if fs.false_alarms:
        total.false_alarm_folders += 1
    _tally_rules(e, errors, by_family, by_rule, total)


def _tally_rules(e: Entry, errors: list[dict], by_family, by_rule, total) -> None:
    rules_caught, rules_false = set(), set()
    for f in errors:
        fam, rule, ok = f.get("family"), f.get("rule"), f.get("family") in e.expected
        for t in (by_family[fam], by_rule[rule], total):
            if ok:
                t.true_findings += 1
            else:
                t.false_findings += 1
        (rules_caught if ok else rules_false).add(rule)
    for rule in rules_caught:
        by_rule[rule].caught += 1
    for rule in rules_false:
        by_rule[rule].false_alarm_folders += 1


# ---------------------------------------------------------------- report


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _rate(a: int, n: int) -> str:
    return f"{a}/{n} ({100 * a / n:.0f}%)" if n else f"{a}/0"


def render_table(scores: Scores, mode: str) -> str:
    scoped = [fs for fs in scores.folders if fs.in_scope]
    flagged = [fs for fs in scoped if not fs.entry.legal]
    legal = [fs for fs in scoped if fs.entry.legal]
    t = scores.total
    out = [
        f"- mode: {mode}; {len(scores.folders)} folders ({len(flagged)} flagged and {len(legal)} legal in scope, "
        f"{len(scores.folders) - len(scoped)} out of scope)",
        f"- flagged caught with an expected family: {_rate(t.caught, len(flagged))}",
        f"- precision of error findings: {_pct(t.precision)} ({t.true_findings} right, {t.false_findings} wrong)",
        f"- legal folders with an error: {scores.legal_with_error}/{len(legal)}",
        f"- legal folders' verdicts: {legal_verdicts(legal)}",
        f"- folders with no report (crash or timeout): {scores.crashes}",
        "",
        "| family | flagged | caught | missed | false-alarm folders | error findings right/wrong | precision |",
        "|---|---|---|---|---|---|---|",
    ]
    for fam in sorted(scores.by_family, key=list(FAMILIES).index):
        x = scores.by_family[fam]
        out.append(f"| {fam} | {x.caught + x.missed} | {x.caught} | {x.missed} | {x.false_alarm_folders} | "
                   f"{x.true_findings}/{x.false_findings} | {_pct(x.precision)} |")
    out += ["", "| rule | folders caught | false-alarm folders | error findings right/wrong | precision |",
            "|---|---|---|---|---|"]
    for rule in sorted(scores.by_rule):
        x = scores.by_rule[rule]
        out.append(f"| {rule} | {x.caught} | {x.false_alarm_folders} | {x.true_findings}/{x.false_findings} | "
                   f"{_pct(x.precision)} |")
    return "\n".join(out) + "\n"


def legal_verdicts(legal: list[FolderScore]) -> str:
    """How many legal folders got each verdict (``pass 9, incomplete 4``): a legal folder that is not a
    PASS is no false alarm, and no pass either (fail closed), which the error counts do not show."""
    counts = Counter(fs.outcome.verdict or "no report" for fs in legal)
    return ", ".join(f"{v} {n}" for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


def render_folders(scores: Scores) -> str:
    out = ["", "misses and false alarms, per folder:"]
    for fs in scores.folders:
        lines = _folder_lines(fs)
        if lines:
            out.append(f"- {fs.entry.label} [{','.join(sorted(fs.entry.expected)) or LEGAL}] {fs.entry.commit[:12]}")
            out += [f"    {ln}" for ln in lines]
    if len(out) == 2:
        out.append("(none)")
    return "\n".join(out) + "\n"


def _folder_lines(fs: FolderScore) -> list[str]:
    lines = []
    if not fs.in_scope:
        return []
    if fs.outcome.crash:
        lines.append(f"NO REPORT: {fs.outcome.crash}")
    elif not fs.entry.legal and not fs.caught:
        warned = f" (only below error: {', '.join(fs.warned_only)})" if fs.warned_only else ""
        lines.append(f"MISSED{warned}")
    for f in fs.false_alarms:
        lines.append(f"FALSE ALARM {f.get('rule')} {f.get('family')} {f.get('path')}:{f.get('line')}: "
                     f"{str(f.get('message', ''))[:160]}")
    if lines and fs.outcome.missing:
        lines.append(f"(blobs absent from the mirror, skipped: {', '.join(fs.outcome.missing[:5])}"
                     f"{' ...' if len(fs.outcome.missing) > 5 else ''})")
    return lines


def scores_json(scores: Scores, mode: str) -> dict:
    def tally(x: Tally) -> dict:
        return {**dataclasses.asdict(x), "precision": x.precision}

    return {
        "mode": mode,
        "checkout": scores.checkout,
        "total": tally(scores.total),
        "legal_with_error": scores.legal_with_error,
        "crashes": scores.crashes,
        "by_family": {k: tally(v) for k, v in sorted(scores.by_family.items())},
        "by_rule": {k: tally(v) for k, v in sorted(scores.by_rule.items())},
        "folders": [
            {"pr": fs.entry.pr, "commit": fs.entry.commit, "folder": fs.entry.folder,
             "expected": sorted(fs.entry.expected) or [LEGAL], "in_scope": fs.in_scope, "caught": fs.caught,
             "crash": fs.outcome.crash, "verdict": fs.outcome.verdict, "missing_blobs": fs.outcome.missing,
             "errors": fs.outcome.errors, "lesser": fs.outcome.lesser, "false_alarms": fs.false_alarms,
             "warned_only": fs.warned_only}
            for fs in scores.folders
        ],
    }


# ---------------------------------------------------------------- main


def mode_families(mode: str) -> frozenset[str]:
    """Families the chosen mode can report: those of the rules of the parts it runs (from this checkout)."""
    proc = subprocess.run([sys.executable, str(ROOT / "cli.py"), "rules", "--format", "json"],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    return frozenset(f for r in json.loads(proc.stdout) if r["part"] in MODE_PARTS[mode]
                     for f in (r.get("families") or [r["family"]]))


TRANSIENT = ("timed out", "not materialised")


class OutcomeLog:
    """Outcomes already obtained with this mode and this version of the code, one JSON line per folder.

    Written as each folder finishes, so an interrupted run loses nothing and a rerun of the same code
    only examines the folders it has not seen (``--fresh`` ignores the log).
    """

    def __init__(self, path: Path, fresh: bool):
        self.path = path
        self.known: dict[tuple[str, str], Outcome] = {} if fresh else self._read(path)
        self._lock = threading.Lock()

    @staticmethod
    def _read(path: Path) -> dict[tuple[str, str], Outcome]:
        known = {}
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return known
        for line in lines:
            try:
                d = json.loads(line)
                known[(d["commit"], d["folder"])] = Outcome(d["errors"], d["lesser"], d["verdict"], d["crash"], d["missing"])
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by an interrupted run
        return known

    def record(self, entry: Entry, out: Outcome) -> None:
        if out.crash and out.crash.startswith(TRANSIENT):
            return  # a timeout or a folder that could not be written says nothing about this code
        line = json.dumps({"commit": entry.commit, "folder": entry.folder, **dataclasses.asdict(out)}, sort_keys=True)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")


def examine(git_dir: str, entry: Entry, mode: str, timeout: float, digest: str) -> Outcome:
    mat = materialise(git_dir, entry, cache_root())
    if mat.path is None:
        return Outcome([], [], None, crash=f"not materialised: {mat.error}")
    out = run_golf_audit(mode, mat.path, timeout, digest)
    out.missing = mat.missing
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("git", metavar="PARAMETER_GOLF_GIT", help="clone or bare mirror of openai/parameter-golf")
    ap.add_argument("--mode", choices=("check", "audit"), default="check")
    ap.add_argument("--family", help="only folders expecting this family (and the legal ones)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=None, help="seconds per folder (default 300 check, 1800 audit)")
    ap.add_argument("--json", metavar="OUT", help="write the scores and every folder's findings here")
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--fresh", action="store_true", help="examine every folder again, even those already examined "
                    "with this mode and this version of the code")
    args = ap.parse_args(argv)
    try:
        entries = parse_corpus(Path(args.corpus).read_text(encoding="utf-8"))
        git_dir = resolve_git_dir(args.git)
    except (OSError, CorpusError) as e:
        print(f"bench_verdicts: error: {e}", file=sys.stderr)
        return 2
    if args.family:
        if args.family not in FAMILIES:
            print(f"bench_verdicts: error: unknown family {args.family!r}", file=sys.stderr)
            return 2
        entries = [e for e in entries if e.legal or args.family in e.expected]
    timeout = args.timeout or (300.0 if args.mode == "check" else 1800.0)
    fams, digest = mode_families(args.mode), checkout_digest()
    log = OutcomeLog(cache_root() / f"outcomes-{args.mode}-{digest}.jsonl", args.fresh)

    done = iter(range(1, len(entries) + 1))

    def one(e: Entry) -> Outcome:
        if (e.commit, e.folder) in log.known:
            return log.known[(e.commit, e.folder)]
        out = examine(git_dir, e, args.mode, timeout, digest)
        log.record(e, out)
        print(f"[{next(done)}] {e.label}: {out.crash or out.verdict}", file=sys.stderr, flush=True)
        return out

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        outcomes = list(pool.map(one, entries))
    scores = score(list(zip(entries, outcomes)), fams, MODE_PARTS[args.mode])
    scores.checkout = digest
    sys.stdout.write(render_table(scores, args.mode) + render_folders(scores))
    if args.json:
        Path(args.json).write_text(json.dumps(scores_json(scores, args.mode), indent=1, sort_keys=True) + "\n")
    return 0


def resolve_git_dir(path: str) -> str:
    """The git directory of a bare mirror or of a clone's work tree."""
    for cand in (Path(path) / ".git", Path(path)):
        try:
            return _git(str(cand), "rev-parse", "--absolute-git-dir").decode().strip()
        except (subprocess.CalledProcessError, OSError):
            continue
    raise CorpusError(f"{path}: not a git repository")


if __name__ == "__main__":
    sys.exit(main())
