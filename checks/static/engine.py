"""The static rule engine: parse a submission's Python files with libcst, run the label-flow analysis
(the ``flow`` package) over all of them together, and let each rule turn the resulting events into findings.

Never executes submission code. Self-extracting wrappers are unpacked (``harness.unwrap``) and the
code inside is checked. Results are cached by the content hash of the sources (and the rule set), so
a rescan of unchanged folders reads one small JSON file per folder.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import importlib
import json
import os
import pkgutil
import re
import textwrap
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import libcst as cst

from harness import __version__
from harness.launch import official_default, resolve_launch
from harness.unwrap import WrapperError, unwrap_source
from reports.model import FAMILIES, RULE_SET_VERSION

from . import codedeps, flow
from .flow import vocab
from .trainlogs import read_logs, train_stop_s
from .reading import NotParsed, on_large_stack
from .reading import parse as read_python

# The official run when the folder names no launch (harness/launch.py resolves the launch of a folder:
# its README's or run script's env, torchrun's ranks; every other setting at the code's default).
OFFICIAL_ENV = dict(official_default().env)
MAX_SOURCE_BYTES = 5_000_000
_SUPPRESS = re.compile(r"#\s*golf-audit:\s*allow\[([A-Za-z0-9_, ]+)\]\s*(.*)$")


class Rule:
    """Base of every static rule. A rule is one class in ``checks/static/rules/``: its docstring holds
    what it finds, ``Why:``, ``Example:`` and ``Fix:``; ``VALID`` and ``INVALID`` hold code that must
    stay silent and code that must fire on the lines ending ``# <- fires`` (the test suite runs both)."""

    ID = ""
    NAME = ""
    family = ""
    severity = "error"
    KINDS: tuple[str, ...] = ()  # flow events this rule reports
    NEEDS_SINK = False  # report only when the value reaches a score accumulation
    NEEDS_REPORTED = False  # report only when the value may reach the reported score (flow/reported.py)
    VALID: list[str] = []
    INVALID: list[str] = []

    @property
    def condition(self) -> str:
        return FAMILIES[self.family]

    @classmethod
    def sections(cls) -> dict[str, str]:
        doc = textwrap.dedent("\n".join((cls.__doc__ or "").splitlines()[1:]))
        first = (cls.__doc__ or "").splitlines()[0].strip() if cls.__doc__ else ""
        out = {"what": first, "why": "", "example": "", "fix": ""}
        current = "what"
        for line in doc.splitlines():
            head = line.strip().rstrip(":").lower()
            if line.strip().endswith(":") and head in ("why", "example", "fix"):
                current = head
                continue
            out[current] += line + "\n"
        return {k: (textwrap.dedent(v).strip() if k == "example" else " ".join(v.split())) for k, v in out.items()}

    def accepts(self, ev: flow.Event, ctx: "Context") -> bool:
        return True

    def severity_for(self, ev: flow.Event, ctx: "Context") -> str:
        return self.severity

    def message(self, ev: flow.Event, ctx: "Context") -> str:  # pragma: no cover - every rule overrides it
        return self.sections()["what"]

    def unchecked(self, ev: flow.Event) -> bool:
        """The finding marks code the rules cannot examine (validation data handed to native code): the static
        part is then incomplete, never a pass (``checks/static/__init__.py``)."""
        return False

    def check_module(self, module: flow.ModuleInfo, ctx: "Context") -> list[tuple]:
        """Rules that read a module's structure rather than flow events override this: (node, message) or
        (node, message, {"disabled": bool, "where": qualified function name, "severity": this finding's
        severity when it differs from the rule's, "line": the line when the rule knows it})."""
        return []


def all_rules() -> list[Rule]:
    from . import rules as pkg

    found = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        mod = importlib.import_module(f"{pkg.__name__}.{info.name}")
        for obj in vars(mod).values():
            if isinstance(obj, type) and issubclass(obj, Rule) and obj is not Rule and obj.ID and obj.__module__ == mod.__name__:
                found.append(obj())
    return sorted(found, key=lambda r: r.ID)


def rule_by_id(rid: str) -> Rule | None:
    return next((r for r in all_rules() if r.ID.upper() == rid.upper()), None)


@dataclass
class Source:
    rel: str  # path relative to the submission folder
    text: str  # the code checked (unpacked when the file is a self-extracting wrapper)
    wrapped: bool = False


class Context:
    """What rules may ask about an event's location."""

    def __init__(self, prog: flow.Program, entry: str | None = None, train_stop_s: float | None = None):
        self.prog = prog
        self.reachable = _imported_from(prog, entry)
        self.train_stop_s = train_stop_s  # when the logs show the timed training stopped (None: no logs say)

    def in_submission_code(self, gid: int) -> bool:
        """Whether the node's file is the entry script or a file it imports (directly or not)."""
        return self.prog.nodes[gid][0].path in self.reachable

    def code(self, gid: int) -> str:
        _, node, _ = self.prog.nodes[gid]
        text = flow.code(node).strip()
        text = " ".join(text.split())
        return text if len(text) <= 90 else text[:87] + "..."

    def where(self, gid: int) -> str:
        return self.prog.nodes[gid][2]

    def fact(self, kind: str, gid: int) -> flow.Event | None:
        return self.prog.facts.get((kind, gid))


def parse(text: str) -> cst.Module:
    """The libcst tree of a source (NotParsed when CPython or libcst rejects it)."""
    return read_python(text)[0]


def analyse(sources: list[Source], env: dict[str, str], train_stop: float | None = None,
            logs: list[str] = ()) -> tuple[list[dict], list[str]]:
    """Findings (as dicts with ``rel`` paths) and one-line notes on files that could not be parsed;
    ``train_stop``: the seconds at which the logs show the timed training stopped, when they show it;
    ``logs``: the texts of the claimed runs' logs (which branches they show taken: flow/runlogs.py)."""
    return on_large_stack(_analyse_program, sources, env, train_stop, logs)


def _analyse_program(sources: list[Source], env: dict[str, str], train_stop: float | None = None,
                     logs: list[str] = ()) -> tuple[list[dict], list[str]]:
    prog = flow.Program(env, logs)
    with _cyclic_gc_paused():
        try:
            return _analyse(prog, sources, train_stop)
        finally:
            prog.release()


@contextlib.contextmanager
def _cyclic_gc_paused():
    """Parsing builds millions of objects that live until the analysis ends; every pass of the cyclic
    garbage collector meanwhile walks all of them (about an eighth of a check's time) and finds nothing
    to free. The trees are freed by reference counting (``Program.release``)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _analyse(prog: flow.Program, sources: list[Source], train_stop: float | None = None) -> tuple[list[dict], list[str]]:
    notes = []
    by_rel = {}
    for src in sources:
        try:
            tree, text = read_python(src.text)
        except NotParsed as e:
            notes.append(f"{src.rel}: not parsed as Python ({e})")
            continue
        name = src.rel[:-3].replace("/", ".") if src.rel.endswith(".py") else src.rel
        prog.add_module(src.rel, name, tree, text)
        by_rel[src.rel] = src
    try:
        prog.analyse()
    except RecursionError:
        # nested deeper than the analysis follows, though CPython compiles it: nothing of it is checked
        entry = sources[0].rel if sources else "<none>"
        return [], notes + [f"{entry}: not analysed (code nested deeper than the static analysis follows)"]
    ctx = Context(prog, sources[0].rel if sources else None, train_stop)
    rules = all_rules()
    out: list[dict] = []
    by_kind: dict[str, list[Rule]] = {}
    for r in rules:
        for k in r.KINDS:
            by_kind.setdefault(k, []).append(r)
    for (kind, gid), ev in sorted(prog.facts.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        for rule in by_kind.get(kind, []):
            disabled = ev.disabled
            if rule.NEEDS_REPORTED and not flow.reaches_reported(prog.facts, kind, gid, ev.data.get("scores", False)):
                continue
            if rule.NEEDS_SINK:
                reached = prog.facts.get((vocab.sink(kind), gid))
                if reached is None:
                    continue
                disabled = disabled or reached.disabled
            if not rule.accepts(ev, ctx):
                continue
            module, node, where = prog.nodes[gid]
            out.append(_finding(rule, module, by_rel[module.path], node, where, rule.message(ev, ctx),
                                _off_severity(disabled, rule.severity_for(ev, ctx)), disabled,
                                unchecked=rule.unchecked(ev) and not disabled))
    for m in prog.modules:
        for rule in rules:
            for node, msg, *more in rule.check_module(m, ctx):
                extra = more[0] if more else {}
                disabled = extra.get("disabled") or False
                out.append(_finding(rule, m, by_rel[m.path], node, extra.get("where", ""), msg,
                                    _off_severity(disabled, extra.get("severity", rule.severity)), disabled,
                                    extra.get("line")))
    out = _apply_suppressions(out, by_rel)
    out.sort(key=lambda f: (f["rel"], f["line"] or 0, f["column"] or 0, f["rule"], f["message"]))
    dedup, seen = [], set()
    for f in out:
        key = (f["rel"], f["line"], f["rule"], f["message"])
        if key not in seen:
            seen.add(key)
            dedup.append(f)
    return dedup, notes


def _imported_from(prog: flow.Program, entry: str | None) -> set[str]:
    """Paths of the entry module and every submission module it imports, transitively."""
    start = next((m for m in prog.modules if m.path == entry), None)
    if start is None:
        return {m.path for m in prog.modules}
    seen, stack = {start.path}, [start]
    while stack:
        m = stack.pop()
        for full in m.aliases.values():
            parts = full.lstrip(".").split(".")
            for k in range(len(parts), 0, -1):
                target = prog.by_name.get(".".join(parts[:k])) or prog.by_name.get(parts[k - 1])
                if target is not None and target.path not in seen:
                    seen.add(target.path)
                    stack.append(target)
                    break
    return seen


def locate(module: flow.ModuleInfo, node: cst.CSTNode, where: str) -> tuple[int, int]:
    """(line, column), 1-based, of a node: its code searched from the start of its function.

    Computing libcst positions for the whole module costs more than parsing it; a finding needs the
    position of one node, so it is looked up in the source text instead.
    """
    text = flow.code(node).strip()
    first = text.splitlines()[0] if text else ""
    src = module.source
    start = 0
    if where and where != "<module>":
        name = where.rsplit(".", 1)[-1]
        m = re.search(rf"^[ \t]*(?:async[ \t]+)?def[ \t]+{re.escape(name)}[ \t]*\(", src, re.M)
        if m:
            start = m.start()
    at = src.find(first, start) if first else -1
    if at < 0:
        at = src.find(first) if first else -1
    if at < 0:
        return (src.count("\n", 0, start) + 1, 1)
    line = src.count("\n", 0, at) + 1
    col = at - (src.rfind("\n", 0, at) + 1) + 1
    return line, col


def code_frame(source: str, line: int, context: int = 2) -> str:
    lines = source.splitlines()
    lo, hi = max(1, line - context), min(len(lines), line + context)
    width = len(str(hi))
    return "\n".join(f"{'>' if i == line else ' '} {i:>{width}} | {lines[i - 1]}" for i in range(lo, hi + 1))


def _off_severity(disabled: bool | str, severity: str) -> str:
    """The severity of a finding in code that is off: info under the launch; at most a warning where only
    the claimed runs' logs show it off (the code as submitted runs it under its own defaults)."""
    if isinstance(disabled, str):
        return "warning" if severity == "error" else severity
    return "info" if disabled else severity


def _finding(rule: Rule, module: flow.ModuleInfo, src: Source, node, where: str, message: str, severity: str,
             disabled: bool | str, line: int | None = None, unchecked: bool = False) -> dict:
    """``line``, when given, places the finding (a rule that reads the source with ``ast`` knows it)."""
    line, col = (line, 1) if line else locate(module, node, where)
    if src.wrapped:
        message += " (in the code unpacked from the self-extracting wrapper)"
    if isinstance(disabled, str):
        message += f"; {disabled}"
    elif disabled:
        message += "; disabled in the submitted configuration (under the resolved launch: the report's launch)"
    sec = rule.sections()
    return {"rule": rule.ID, "family": rule.family, "severity": severity, "message": message, "rel": src.rel,
            "line": line, "column": col, "why": sec["why"] or None, "fix": sec["fix"] or None,
            "code_frame": code_frame(src.text, line), "suppressed": None, "unchecked": unchecked}


def _apply_suppressions(findings: list[dict], sources: dict[str, Source]) -> list[dict]:
    """``# golf-audit: allow[ID] reason`` on the finding's line or the line above accepts it; an allow
    without a reason is itself a warning."""
    out = []
    lines_of = {rel: s.text.splitlines() for rel, s in sources.items()}
    for f in findings:
        lines = lines_of.get(f["rel"], [])
        for ln in (f["line"], f["line"] - 1):
            if not (1 <= ln <= len(lines)):
                continue
            m = _SUPPRESS.search(lines[ln - 1])
            if not m or f["rule"].upper() not in {x.strip().upper() for x in m.group(1).split(",")}:
                continue
            reason = m.group(2).strip()
            if reason:
                f["suppressed"] = reason
            else:
                out.append({**f, "rule": "GA100", "family": "structure", "severity": "warning",
                            "message": f"allow[{f['rule']}] without a reason: say why the finding does not apply",
                            "line": ln, "column": m.start() + 1, "why": None, "fix": None,
                            "code_frame": code_frame(sources[f["rel"]].text, ln), "suppressed": None, "unchecked": False})
                f["suppressed"] = "allowed inline (no reason given)"
            break
        out.append(f)
    return out


# --- sources, cache, parallel runs -------------------------------------------------------------

def read_sources(root: Path, files: list[Path]) -> tuple[list[Source], list[str]]:
    out, notes = [], []
    for f in files:
        rel = f.relative_to(root).as_posix() if f.is_relative_to(root) else f.name
        try:
            if f.stat().st_size > MAX_SOURCE_BYTES:
                notes.append(f"{rel}: larger than {MAX_SOURCE_BYTES} bytes, not checked")
                continue
            text = f.read_bytes().decode("utf-8", errors="replace")
        except OSError as e:
            notes.append(f"{rel}: cannot read: {e.strerror}")
            continue
        wrapped = False
        try:
            inner, layers = unwrap_source(text, f)
            if layers:
                text, wrapped = inner, True
        except WrapperError as e:
            notes.append(f"{rel}: {e}")
        out.append(Source(rel, text.replace("\r\n", "\n"), wrapped))
    return out, notes


def cache_dir() -> Path | None:
    d = os.environ.get("GOLF_AUDIT_CACHE")
    if d == "":
        return None
    return Path(d) if d else Path(".golf-audit-cache")


def analyser_files(here: Path | None = None) -> list[Path]:
    """Every file of the static check's code: ``checks/static/**`` and the project modules they import."""
    here = (here or Path(__file__).resolve().parent)
    return codedeps.own_dependencies(sorted(here.rglob("*.py")), here.parents[1])


@functools.cache
def _engine_digest() -> str:
    """Hash of the analyser's own code: a changed rule, engine or module they use never reads an old result."""
    here = Path(__file__).resolve().parent
    return codedeps.digest(analyser_files(here), here.parents[1])


def cache_key(raw: list[tuple[str, bytes]], env: dict[str, str]) -> str:
    """Key of one check: the files' bytes as found (before unpacking), the settings, the analyser's code."""
    h = hashlib.sha256(f"{__version__}|{RULE_SET_VERSION}|{_engine_digest()}|{json.dumps(env, sort_keys=True)}".encode())
    for rel, data in sorted(raw):
        h.update(b"\0" + rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def _raw_files(root: Path, files: list[Path]) -> list[tuple[str, bytes]]:
    out = []
    for f in files:
        rel = f.relative_to(root).as_posix() if f.is_relative_to(root) else f.name
        try:
            if f.stat().st_size > MAX_SOURCE_BYTES:
                out.append((rel, b"<too large>"))
                continue
            out.append((rel, f.read_bytes()))
        except OSError as e:
            out.append((rel, f"<unreadable: {e.strerror}>".encode()))
    return out


def _cache_path(root: Path, files: list[Path], env: Mapping[str, str], logs: list[Path] = ()) -> Path | None:
    cdir = cache_dir()
    if cdir is None:
        return None
    key = cache_key(_raw_files(root, [*files, *logs]), dict(env))
    return cdir / "static" / key[:2] / f"{key}.json"


def cached(path: Path | None):
    if path is None:
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return doc["findings"], doc["notes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_files(root: Path, files: list[Path], env: Mapping[str, str], use_cache: bool = True,
                logs: list[Path] = ()) -> tuple[list[dict], list[str]]:
    """Findings for one submission's files under the environment of its launch (``Launch.env``: env reads
    resolve to it, so code it switches off is reported as disabled), and notes on files not checked
    (cached by content hash, environment and training logs)."""
    path = _cache_path(root, files, env, logs) if use_cache else None
    hit = cached(path)
    if hit is not None:
        return hit
    sources, notes = read_sources(root, files)
    texts = read_logs(list(logs), root)
    findings, parse_notes = analyse(sources, dict(env), train_stop_s(texts), texts)
    result = (findings, notes + parse_notes)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"findings": result[0], "notes": result[1]}, sort_keys=True), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass
    return result


def _folder_inputs(folder: str):
    from harness.submission import load_submission

    sub = load_submission(folder)
    return sub.root, sub.sources, resolve_launch(sub.root).env, sub.logs


def check_folder(folder: str, use_cache: bool = True) -> tuple[list[dict], list[str]]:
    root, files, env, logs = _folder_inputs(folder)
    return check_files(root, files, env, use_cache, logs)


def check_many(folders: list[str], jobs: int = 2, use_cache: bool = True) -> dict[str, tuple[list[dict], list[str]]]:
    """Check many submission folders; cached ones are read here, the rest run ``jobs`` processes at a time."""
    results: dict[str, tuple[list[dict], list[str]]] = {}
    todo = []
    for f in folders:
        hit = cached(_cache_path(*_folder_inputs(f))) if use_cache else None
        if hit is not None:
            results[f] = hit
        else:
            todo.append(f)
    if jobs <= 1 or len(todo) <= 1:
        results.update({f: check_folder(f, use_cache) for f in todo})
    else:
        # the largest folders first, so that two processes finish together
        todo.sort(key=lambda f: -sum(p.stat().st_size for p in _folder_inputs(f)[1]))
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            results.update(zip(todo, pool.map(check_folder, todo, [use_cache] * len(todo), chunksize=1)))
    return {f: results[f] for f in folders}
