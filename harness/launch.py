"""The official launch of a submission, resolved once from its folder and read by every part.

The challenge runs a record as ``torchrun --standalone --nproc_per_node=8 train_gpt.py`` on 8 GPUs,
with the environment its README (or a run script it ships) sets. Submissions switch behaviour on
that environment (``NGRAM_CACHE=1``, ``"1" if world_size > 1 else "0"``), so the static rules, the
probes, the reproduction and the claims audit must all see the same one. This module finds it:

- launch lines in the README's code fences and inline code, in every form the records use:
  ``VAR=x torchrun ...``, ``env VAR=x python ...``, ``export VAR=x`` lines, lines continued with
  ``\\``, ``for SEED in 1 2 3; do ... done`` loops (one launch per value), ``uv run torchrun``,
  ``python -m torch.distributed.run``;
- env blocks: fenced lines that only assign (``NGRAM_CACHE=1  NGRAM_ALPHA=0.40``), read as the
  settings of the run wherever they stand in the README;
- run scripts shipped in the folder (``bash run.sh``, ``./run.sh``, ``SEED=42 bash run.sh``), read
  with shell semantics (only exported variables reach the launch); when the README launches
  nothing, the folder's ``*.sh`` files are read instead;
- ``torchrun --nproc_per_node N`` (``--nproc-per-node``, ``--nnodes``) for the world size, and the
  challenge's defaults (8 ranks; ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` as
  torchrun sets them for rank 0) for whatever the folder leaves open.

Nothing here executes submission code or the shell: the lines are tokenized with ``shlex`` and only
the assignments and launcher arguments are interpreted. Every value records where it came from.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Mapping, Protocol

from harness import AuditError
from harness.safeio import read_text_bounded

OFFICIAL_WORLD_SIZE = 8  # the challenge's machine: torchrun --nproc_per_node=8 on 8 GPUs
OFFICIAL_DEFAULT = "official default"
TORCHRUN_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
MAX_README_BYTES = 2_000_000
MAX_SCRIPT_BYTES = 500_000
MAX_SCRIPTS = 40
MAX_LAUNCHES = 64
MAX_LOOP_VALUES = 16
SCRIPT_DEPTH = 3  # a README calling run.sh calling run_seed.sh

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ASSIGN = re.compile(rf"^({_NAME})=(.*)$", re.S)
_EXPANSION = re.compile(r"\$(?:\{(" + _NAME + r")(?:(:?[-=])([^}]*))?\}|(" + _NAME + r"|\d))")
_PYTHON = re.compile(r"^(?:.*/)?python(?:\d+(?:\.\d+)?)?$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_PLACEHOLDER = re.compile(r"=<(\w*)[^<>\s]*>")  # SEED=<SEED>: a value for the reader to fill in
_SUBSTITUTION = re.compile(r"\$\((?:[^()]|\([^()]*\))*\)|`[^`]*`")  # $(date), `nproc`: not known without running
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")  # names an env block sets (not "torch==2.9", "reserve=4s")
_ARRAY_START = re.compile(rf"^\s*(?:declare\s+-a\s+|local\s+)?({_NAME})=\(")
_ARRAY_USE = re.compile(rf"\$\{{({_NAME})\[[@*]\]\}}")
_INLINE_CODE = re.compile(r"`([^`]+)`")
_SEPARATORS = {";", "&&", "||", "|", "&", "(", ")", ";;"}
_WRAPPERS = {"time", "nohup", "exec", "command", "stdbuf", "nice", "srun"}
# torchrun options that take no value; every other ``--option`` without ``=`` takes the next token.
_TORCHRUN_FLAGS = {"--standalone", "--no_python", "--no-python", "-m", "--module", "--run_path", "--run-path"}
_NPROC = ("--nproc_per_node", "--nproc-per-node")
_NNODES = ("--nnodes",)


@dataclass(frozen=True)
class Launch:
    """One launch of the submission: the environment its rank-0 process sees and where each value came from."""

    env: Mapping[str, str]  # README / run-script variables, plus WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE
    world_size: int  # nproc_per_node * nnodes
    sources: Mapping[str, str]  # var -> "README.md:42", "run.sh:3", "torchrun --nproc_per_node (README.md:42)", ...
    command: str | None  # the launch line as written (continued lines joined); None for the official default
    origin: str  # "README.md:40-43", "run.sh:12 (via README.md:64)", "official default"
    script: str | None = None  # the Python file launched ("train_gpt.py"), as written
    nproc_per_node: int = OFFICIAL_WORLD_SIZE

    def for_rank(self, rank: int) -> dict[str, str]:
        """The environment of rank ``rank`` of this launch (torchrun sets RANK and LOCAL_RANK per process)."""
        if not 0 <= rank < self.world_size:
            raise ValueError(f"rank {rank} is outside a world of {self.world_size}")
        env = dict(self.env)
        env["RANK"] = str(rank)
        env["LOCAL_RANK"] = str(rank % self.nproc_per_node)
        return env

    def settings(self) -> dict[str, str]:
        """The variables the folder sets itself (everything but the launcher's rank variables)."""
        return {k: v for k, v in self.env.items() if k not in TORCHRUN_VARS}

    def to_report(self) -> dict:
        return {"env": dict(sorted(self.env.items())), "world_size": self.world_size,
                "sources": dict(sorted(self.sources.items())), "command": self.command, "origin": self.origin}


class ClaimsLike(Protocol):
    def seed_ids(self) -> list[int]: ...


def official_default() -> Launch:
    """The challenge's launch when the folder names none: 8 ranks, every setting at the code's default."""
    env, sources = _rank_env(OFFICIAL_WORLD_SIZE, OFFICIAL_WORLD_SIZE, OFFICIAL_DEFAULT)
    return Launch(env=env, world_size=OFFICIAL_WORLD_SIZE, sources=sources, command=None, origin=OFFICIAL_DEFAULT)


def _rank_env(world: int, local: int, source: str) -> tuple[dict[str, str], dict[str, str]]:
    env = {"WORLD_SIZE": str(world), "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": str(local)}
    return env, {k: source for k in env}


# ---- reading the folder -----------------------------------------------------------------------------

def resolve_launches(folder: str | os.PathLike) -> list[Launch]:
    """Every launch the folder describes, in file order (README first); [official default] if none."""
    root = Path(folder)
    if root.is_file():
        root = root.parent
    scripts = _Scripts(root)
    found: list[Launch] = []
    readme = _readme(root)
    settings: dict[str, _Value] = {}
    if readme is not None:
        reader = _Reader(scripts, markdown=True)
        found = reader.read(_read(readme, MAX_README_BYTES, root), readme.name)
        settings = reader.env_block
    if not found:
        for rel in scripts.names():
            found += _Reader(scripts, markdown=False).read(scripts.text(rel) or "", rel)
    if found:
        return _unique(found)[:MAX_LAUNCHES]
    declared = declared_hardware(_read(readme, MAX_README_BYTES, root), readme.name) if readme is not None else None
    return [_with_settings(declared or official_default(), settings)]


def _with_settings(launch: Launch, settings: Mapping[str, "_Value"]) -> Launch:
    """A launch with the settings of the README's env blocks (``NGRAM_EVAL_ENABLED=1`` lines in a fence
    under "Key Environment Variables"), when the README names them but no launch line."""
    if not settings:
        return launch
    keep = {k: v for k, v in settings.items() if k not in launch.env}
    where = sorted({v.source.rsplit(":", 1)[0] for v in keep.values()})
    return replace(launch, origin=f"{launch.origin}, settings of {', '.join(where)}", env={**{k: v.value for k, v in keep.items()}, **launch.env},
                   sources={**{k: v.source for k, v in keep.items()}, **launch.sources})


# "trained on 1×A100-40GB", "| Hardware | 8xH100 SXM |", "GPU: 1×RTX 5090": the count of accelerators
# right after the words that introduce the hardware the run used (not a comparison in prose).
_DECLARED_GPUS = re.compile(
    r"(?:trained on|training on|ran on|run on|hardware\s*\**\s*[:|]|gpus?\s*\**\s*[:|])[\s*|:]*(?:a\s+)?"
    r"(\d{1,2})\s*[×xX]\s*(?:NVIDIA\s+)?(?:H100|H200|H20|A100|A10G?|A6000|L40S?|L4|V100|T4|B200|GH200|RTX\s*\d+|GPUs?)",
    re.I)


def declared_hardware(readme: str, name: str) -> Launch | None:
    """A folder with no launch line whose README states the hardware its run used: that many ranks
    (the first line that introduces the hardware with one count, "trained on 1×A100"), else None."""
    for n, line in enumerate(readme.splitlines(), start=1):
        counts = {int(m.group(1)) for m in _DECLARED_GPUS.finditer(line)}
        if len(counts) == 1:
            world = counts.pop()
            if world >= 1:
                env, sources = _rank_env(world, world, f"hardware stated in {name}:{n}")
                return Launch(env=env, world_size=world, sources=sources, command=None,
                              origin=f"hardware stated in {name}:{n}", nproc_per_node=world)
    return None


def resolve_launch(folder: str | os.PathLike, claim: ClaimsLike | None = None) -> Launch:
    """The launch of the claimed result: the one whose values the claimed runs' logs print (the seed, the
    settings), else the first the folder describes, else the official default."""
    launches = resolve_launches(folder)
    logs = _claimed_logs(Path(folder), claim)
    if len(launches) == 1:
        return with_logged_settings(launches[0], logs)
    scores = [_agreement(launch, logs) for launch in launches]
    best = max(scores)
    return with_logged_settings(launches[scores.index(best)] if best > 0 else launches[0], logs)


def _readme(root: Path) -> Path | None:
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return None
    hits = [root / n for n in names if n.lower() == "readme.md" and (root / n).is_file()]
    return hits[0] if hits else None


def _read(path: Path, limit: int, root: Path) -> str:
    try:
        return read_text_bounded(path, limit, within=root)
    except AuditError:
        return ""


class _Scripts:
    """The shell scripts shipped in the folder, by relative path, read on demand."""

    def __init__(self, root: Path):
        self.root = root
        self._paths: dict[str, Path] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
            for n in sorted(filenames):
                if n.endswith(".sh") and len(self._paths) < MAX_SCRIPTS:
                    p = Path(dirpath) / n
                    self._paths[p.relative_to(root).as_posix()] = p

    def names(self) -> list[str]:
        return list(self._paths)

    def find(self, written: str) -> str | None:
        """The shipped script a command names (``./run.sh``, ``eval/eval.sh``, a repo path ending in it)."""
        w = written.lstrip("./") if written.startswith("./") else written
        if w in self._paths:
            return w
        tails = [rel for rel in self._paths if w.endswith("/" + rel) or rel == Path(w).name]
        return tails[0] if len(tails) == 1 else None

    def text(self, rel: str) -> str | None:
        return _read(self._paths[rel], MAX_SCRIPT_BYTES, self.root) if rel in self._paths else None


def _unique(launches: list[Launch]) -> list[Launch]:
    seen, out = set(), []
    for launch in launches:
        key = (tuple(sorted(launch.env.items())), launch.world_size, launch.script)
        if key not in seen:
            seen.add(key)
            out.append(launch)
    return out


# ---- logical lines --------------------------------------------------------------------------------

@dataclass
class _Line:
    text: str
    first: int  # 1-based
    last: int


def _markdown_lines(text: str) -> Iterable[tuple[_Line, bool]]:
    """(logical line, inside a code fence): fenced lines joined over trailing backslashes; outside the
    fences, the inline code spans and lines that start with a launcher (markdown escapes removed)."""
    fenced = False
    pending: _Line | None = None
    for no, raw in enumerate(text.splitlines(), 1):
        if _FENCE.match(raw):
            if pending is not None:
                yield pending, True
                pending = None
            fenced = not fenced
            continue
        if not fenced:
            for span in _prose_code(raw):
                yield _Line(span, no, no), False
            continue
        pending = _join(pending, raw, no)
        if not raw.rstrip().endswith("\\"):
            yield pending, True
            pending = None
    if pending is not None:
        yield pending, True


# A README table of the run's settings: "| Parameter | Value |" then "| NGRAM_TWO_PASS_ENABLED | 1 |" rows.
_SETTINGS_HEADER = re.compile(r"^\|\s*[^|]*\|\s*\**(?:value|values|setting|default)\**\s*\|", re.I)
_TABLE_ROW = re.compile(r"^\|\s*`?([A-Z][A-Z0-9_]*)`?\s*\|\s*`?([^|`\s]+)`?[^|]*\|")
_TABLE_RULE = re.compile(r"^\|[\s:|-]+\|\s*$")
_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+$")  # 262,144: one number, not a list
# What a variable is set to: numbers and lists of them, booleans, lower-case words ("lzma"); not the
# prose of a component table ("| MLP | 3× |", "| XSA | All |").
_TABLE_VALUE = re.compile(r"^(?:[+-]?\.?\d[\w.,+-]*|true|false|True|False|[a-z][a-z0-9_.-]*)$")


def _table_settings(text: str, name: str) -> dict[str, "_Value"]:
    """Settings written as a two-column markdown table of variables and values (outside code fences),
    each with its line: the lowest-precedence source of a launch's env (fences and launch lines win)."""
    out: dict[str, _Value] = {}
    in_table = fenced = False
    for no, raw in enumerate(text.splitlines(), 1):
        if _FENCE.match(raw):
            fenced, in_table = not fenced, False
            continue
        line = raw.strip().replace("\\_", "_")
        if fenced or not line.startswith("|"):
            in_table = False
            continue
        if _SETTINGS_HEADER.match(line):
            in_table = True
            continue
        m = _TABLE_ROW.match(line)
        if in_table and m and _is_table_setting(m.group(1), m.group(2)) and not _TABLE_RULE.match(line):
            value = m.group(2).replace(",", "") if _THOUSANDS.match(m.group(2)) else m.group(2)
            out[m.group(1)] = _Value(value, f"{name}:{no}")
    return out


def _is_table_setting(name: str, value: str) -> bool:
    """An env variable's row: a name with an underscore (``NGRAM_EVAL_ORDER``, not ``MLP``) and a value."""
    return bool(_ENV_NAME.match(name)) and "_" in name.strip("_") and bool(_TABLE_VALUE.match(value))


def _prose_code(raw: str) -> list[str]:
    line = raw.replace("\\_", "_").replace("\\*", "*")
    spans = [s for s in _INLINE_CODE.findall(line) if _mentions_launcher(s)]
    bare = re.sub(r"^\s*(?:[-*>]\s+|\$\s+)*", "", line)
    if not spans and "`" not in line and re.match(rf"^(?:{_NAME}=\S*\s+)*(?:torchrun|python3?)\s", bare):
        spans = [bare]
    return spans


def _mentions_launcher(s: str) -> bool:
    return bool(re.search(r"\btorchrun\b|\bpython[\d.]*\s.*\.py\b|\b(?:bash|sh)\s+\S+\.sh\b|(?:^|\s)\./\S+\.sh\b", s))


def _script_lines(text: str) -> Iterable[tuple[_Line, bool]]:
    pending: _Line | None = None
    for no, raw in enumerate(text.splitlines(), 1):
        pending = _join(pending, raw, no)
        if not raw.rstrip().endswith("\\"):
            yield pending, True
            pending = None
    if pending is not None:
        yield pending, True


def _join(pending: _Line | None, raw: str, no: int) -> _Line:
    body = raw.rstrip().rstrip("\\")  # "\\" ends a continued line in markdown-escaped fences
    if pending is None:
        return _Line(body.strip(), no, no)
    return _Line((pending.text + " " + body.strip()).strip(), pending.first, no)


def _tokens(text: str) -> list[str]:
    text = _PLACEHOLDER.sub(r"=${\1_PLACEHOLDER_UNSET}", text)
    text = _SUBSTITUTION.sub("${COMMAND_OUTPUT_UNKNOWN}", text)
    lex = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
    lex.whitespace_split = True
    lex.commenters = "#"
    try:
        return list(lex)
    except ValueError:  # an unclosed quote (an apostrophe in prose): read the words as they stand
        return text.split("#")[0].split()


# ---- interpretation -------------------------------------------------------------------------------

@dataclass
class _Value:
    value: str
    source: str


@dataclass
class _State:
    """What a shell (or a reader of the README) knows at a point: exported variables reach launches;
    plain shell variables only expand ``$VAR``."""

    exported: dict[str, _Value] = field(default_factory=dict)
    shell: dict[str, _Value] = field(default_factory=dict)
    loops: list[tuple[str, list[str]]] = field(default_factory=list)

    def lookup(self, name: str) -> str | None:
        v = self.shell.get(name) or self.exported.get(name)
        return v.value if v else None


class _Reader:
    """Reads one file's lines and collects the launches they make, in order."""

    def __init__(self, scripts: _Scripts, *, markdown: bool, depth: int = 0, via: str | None = None,
                 state: _State | None = None):
        self.scripts = scripts
        self.markdown = markdown
        self.depth = depth
        self.via = via
        self.state = state or _State()
        self.env_block: dict[str, _Value] = {}  # README assignment-only lines: settings of every launch
        self.found: list[_Found] = []
        self.name = ""
        self.arrays: dict[str, list[str]] = {}  # bash arrays: env_vars=( A=1 B=2 ) ... env "${env_vars[@]}"
        self._array: str | None = None  # the array whose lines are being read

    def read(self, text: str, name: str) -> list[Launch]:
        self.name = name
        if self.markdown:
            self.env_block.update(_table_settings(text, name))
        lines = _markdown_lines(text) if self.markdown else _script_lines(text)
        for line, code in lines:
            self._line(line, code)
        return [f.build(self.env_block, self.via) for f in self.found]

    def _where(self, line: _Line) -> str:
        span = f"{line.first}" if line.first == line.last else f"{line.first}-{line.last}"
        return f"{self.name}:{span}"

    def _line(self, line: _Line, code: bool) -> None:
        text = self._array_words(line.text, self._where(line))
        if text is None:
            return
        segment: list[str] = []
        for tok in self._splice(_tokens(text)) + [";"]:
            if tok in _SEPARATORS:
                self._segment(segment, line, code)
                segment = []
            else:
                segment.append(tok)

    def _array_words(self, text: str, where: str) -> str | None:
        """Collects the words of ``NAME=( ... )`` (over one or many lines); returns the text left to read
        as commands, or None when the whole line belonged to an array."""
        if self._array is None:
            m = _ARRAY_START.match(text)
            if not m:
                return text
            self._array, text = m.group(1), text[m.end():]
            self.arrays[self._array] = []
        body, closed, rest = text.partition(")")
        self.arrays[self._array] += [_Word(t, where) for t in _tokens(body)]
        if not closed:
            return None
        self._array = None
        return rest

    def _splice(self, toks: list[str]) -> list[str]:
        """``"${name[@]}"`` replaced by the array's words."""
        out = []
        for tok in toks:
            m = _ARRAY_USE.fullmatch(tok)
            out += self.arrays.get(m.group(1), []) if m else [tok]
        return out

    def _segment(self, toks: list[str], line: _Line, code: bool) -> None:
        if not toks:
            return
        if toks[0] == "for" and len(toks) >= 3 and toks[2] == "in":
            values = [w for t in toks[3:] if t != "do" for w in (self._expand(t) or "").split()]
            self.state.loops.append((toks[1], values[:MAX_LOOP_VALUES]))
            return
        if toks[0] == "done":
            if self.state.loops:
                self.state.loops.pop()
            return
        if toks[0] in ("do", "then", "else"):
            toks = toks[1:]
        if toks and toks[0] not in ("if", "elif", "fi", "while", "until", "[", "[[", "echo", "cd", "mkdir"):
            self._command(toks, line, code)

    def _command(self, toks: list[str], line: _Line, code: bool) -> None:
        where = self._where(line)
        toks = _drop_wrappers(toks)
        if toks and toks[0] == "export":
            self._export(toks[1:], where)
            return
        prefix, rest = _assignments(toks, where)
        if rest and rest[0] == "env":
            more, rest = _assignments(_env_options(rest[1:]), where)
            prefix.update(more)
        rest = _drop_wrappers(_drop_runner(rest))
        if not rest or not re.match(r"^[\w./~$-]", rest[0]):  # nothing, or a note: "X=1 (capped)"
            self._bare(prefix, code)
            return
        launcher = _launcher(rest, self.scripts)
        if launcher is None:
            return
        launcher.line, launcher.where = line, where
        for combo in self._loop_values():
            bound = self._bind(prefix, combo)
            if launcher.shell_script is not None:
                self._run_script(launcher, bound, rest)
            else:
                self.found.append(_Found(dict(self.state.exported), bound, launcher))

    def _export(self, toks: list[str], where: str) -> None:
        for tok in toks:
            m = _ASSIGN.match(tok)
            if m:
                value = self._expand(m.group(2))
                if value is not None:
                    self.state.exported[m.group(1)] = self.state.shell[m.group(1)] = _Value(value, where)
            elif re.fullmatch(_NAME, tok) and tok in self.state.shell:
                self.state.exported[tok] = self.state.shell[tok]

    def _bare(self, assigned: dict[str, _Value], code: bool) -> None:
        """Assignments with no command: shell variables in a script; in the README's code fences, the
        settings of the run (an env block)."""
        bound = {k: v for k, v in self._bind(assigned, {}).items() if _ENV_NAME.match(k) and not v.value.startswith("=")}
        self.state.shell.update(bound)
        if self.markdown and code:
            self.env_block.update(bound)

    def _bind(self, assigned: dict[str, _Value], combo: Mapping[str, str]) -> dict[str, _Value]:
        """The assignments with ``$VAR`` expanded (loop variables of this iteration first); a value that
        cannot be known is left out."""
        out = {}
        for k, v in assigned.items():
            value = self._expand(v.value, combo)
            if value is not None:
                out[k] = _Value(value, v.source)
        return out

    def _expand(self, text: str, extra: Mapping[str, str] | None = None) -> str | None:
        """``$VAR``, ``${VAR}``, ``${VAR:-default}`` against what is known; None when something is unknown
        (a command substitution, an unset variable with no default)."""
        if "$(" in text or "`" in text:
            return None
        missing = False

        def sub(m: re.Match) -> str:
            nonlocal missing
            name = m.group(1) or m.group(4)
            value = (extra or {}).get(name)
            if value is None:
                value = self.state.lookup(name)
            if value is None and m.group(2) is not None:
                default = self._expand(m.group(3), extra)
                missing = missing or default is None
                return default or ""
            if value is None:
                missing = True
            return value or ""

        out = _EXPANSION.sub(sub, text)
        return None if missing else out

    def _loop_values(self) -> list[dict[str, str]]:
        if not self.state.loops:
            return [{}]
        names = [n for n, _ in self.state.loops]
        combos = itertools.product(*(v for _, v in self.state.loops))
        return [dict(zip(names, vals)) for vals in itertools.islice(combos, MAX_LAUNCHES)]

    def _run_script(self, launcher: "_Launcher", prefix: dict[str, _Value], rest: list[str]) -> None:
        rel = self.scripts.find(launcher.shell_script or "")
        if rel is None or self.depth >= SCRIPT_DEPTH:
            return
        state = _State(exported={**self.state.exported, **prefix})
        args = rest[rest.index(launcher.shell_script) + 1:] if launcher.shell_script in rest else []
        state.shell.update({str(i): _Value(a, launcher.where) for i, a in enumerate(args, 1) if "$" not in a})
        inner = _Reader(self.scripts, markdown=False, depth=self.depth + 1, via=self.via or launcher.where, state=state)
        for launch in inner.read(self.scripts.text(rel) or "", rel):
            self.found.append(_Found(built=launch))


class _Word(str):
    """A word spliced in from a bash array: it remembers the line it was written on."""

    where: str

    def __new__(cls, text: str, where: str):
        obj = super().__new__(cls, text)
        obj.where = where
        return obj


@dataclass
class _Found:
    """A launch line met while reading: the exported variables then, its own assignments, its launcher
    (or a launch already built by a run script it called)."""

    exported: dict[str, _Value] = field(default_factory=dict)
    prefix: dict[str, _Value] = field(default_factory=dict)
    launcher: "_Launcher | None" = None
    built: Launch | None = None

    def build(self, env_block: dict[str, _Value], via: str | None) -> Launch:
        """Precedence, lowest first: the README's env blocks, exported variables, the line's own
        assignments, then what torchrun sets (WORLD_SIZE, RANK, LOCAL_RANK, LOCAL_WORLD_SIZE)."""
        if self.built is not None:
            keep = {k: v for k, v in env_block.items() if k not in self.built.env}
            return replace(self.built, env={**{k: v.value for k, v in keep.items()}, **self.built.env},
                           sources={**{k: v.source for k, v in keep.items()}, **self.built.sources})
        assert self.launcher is not None
        return self.launcher.launch({**env_block, **self.exported, **self.prefix}, via)


def _assignments(toks: list[str], where: str) -> tuple[dict[str, _Value], list[str]]:
    """Leading ``VAR=value`` words (values as written, expanded later) and the words after them."""
    out: dict[str, _Value] = {}
    i = 0
    while i < len(toks) and (m := _ASSIGN.match(toks[i])):
        out[m.group(1)] = _Value(m.group(2), getattr(toks[i], "where", where))
        i += 1
    return out, toks[i:]


def _drop_wrappers(toks: list[str]) -> list[str]:
    while toks and (toks[0] in _WRAPPERS or toks[0] == "sudo"):
        toks = toks[1:]
        while toks and toks[0].startswith("-"):
            toks = toks[1:]
    return toks


def _drop_runner(toks: list[str]) -> list[str]:
    """``uv run``, ``poetry run``, ``pipenv run``: the command after them is the launch."""
    if len(toks) >= 2 and toks[0] in ("uv", "poetry", "pipenv", "rye") and toks[1] == "run":
        toks = toks[2:]
        while toks and toks[0].startswith("-"):
            toks = toks[1:]
    return toks


def _env_options(toks: list[str]) -> list[str]:
    while toks and toks[0].startswith("-"):
        toks = toks[2:] if toks[0] in ("-u", "--unset", "-C", "--chdir") else toks[1:]
    return toks


# ---- launchers ------------------------------------------------------------------------------------

@dataclass
class _Launcher:
    """A recognised launcher: torchrun (or ``python -m torch.distributed.run``), plain python, or a
    shipped shell script."""

    kind: str  # "torchrun" or "python"
    script: str | None = None
    nproc: tuple[int, str] | None = None  # (value, the option as written)
    nnodes: tuple[int, str] | None = None
    shell_script: str | None = None
    line: _Line | None = None
    where: str = ""

    def launch(self, values: dict[str, _Value], via: str | None) -> Launch:
        env = {k: v.value for k, v in values.items()}
        sources = {k: v.source for k, v in values.items()}
        origin = self.where + (f" (via {via})" if via else "")
        world, local = self._world(env, sources)
        env.update({"WORLD_SIZE": str(world), "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": str(local)})
        return Launch(env=env, world_size=world, sources=sources, command=self.line.text if self.line else None,
                      origin=origin, script=self.script, nproc_per_node=local)

    def _world(self, env: dict[str, str], sources: dict[str, str]) -> tuple[int, int]:
        if self.kind == "torchrun":
            local = self.nproc[0] if self.nproc else OFFICIAL_WORLD_SIZE
            nodes = self.nnodes[0] if self.nnodes else 1
            local_src = f"torchrun {self.nproc[1]} ({self.where})" if self.nproc else \
                f"{OFFICIAL_DEFAULT} (torchrun without --nproc_per_node)"
            world_src = local_src if not self.nnodes else f"torchrun {self.nproc[1] if self.nproc else ''} " \
                f"{self.nnodes[1]} ({self.where})".replace("  ", " ")
            sources.update({"WORLD_SIZE": world_src, "LOCAL_WORLD_SIZE": local_src,
                            "RANK": f"torchrun, rank 0 ({self.where})", "LOCAL_RANK": f"torchrun, rank 0 ({self.where})"})
            return local * nodes, local
        # a plain python launch: the rank variables the command line sets, else the official 8-rank run
        world = _int(env.get("WORLD_SIZE"))
        if world is None or world < 1:
            world = OFFICIAL_WORLD_SIZE
            sources["WORLD_SIZE"] = f"{OFFICIAL_DEFAULT} (python launch without torchrun)"
        local = _int(env.get("LOCAL_WORLD_SIZE")) or world
        sources.setdefault("LOCAL_WORLD_SIZE", sources["WORLD_SIZE"])
        for k in ("RANK", "LOCAL_RANK"):
            sources[k] = OFFICIAL_DEFAULT + ", rank 0"
        return world, min(local, world)


def _int(s: str | None) -> int | None:
    try:
        return int(s) if s is not None else None
    except ValueError:
        return None


def _launcher(toks: list[str], scripts: _Scripts) -> _Launcher | None:
    head = toks[0]
    if head == "torchrun" or head.endswith("/torchrun"):
        return _torchrun(toks[1:])
    if _PYTHON.match(head):
        args = _python_options(toks[1:])
        if len(args) >= 2 and args[0] == "-m" and args[1] in ("torch.distributed.run", "torch.distributed.launch"):
            return _torchrun(args[2:])
        if args and args[0].endswith(".py") and _is_training_script(args[0]):
            return _Launcher("python", script=args[0])
        return None
    if head in ("bash", "sh", "source", ".", "zsh"):
        args = [t for t in toks[1:] if not t.startswith("-")]
        return _Launcher("shell", shell_script=args[0]) if args and args[0].endswith(".sh") else None
    if head.endswith(".sh"):
        return _Launcher("shell", shell_script=head)
    return None


def _python_options(toks: list[str]) -> list[str]:
    while toks and toks[0].startswith("-") and toks[0] != "-m":
        toks = toks[2:] if toks[0] in ("-X", "-W") else toks[1:]
    return toks


def _is_training_script(script: str) -> bool:
    """A training script run by plain python (not the data download, a tokenizer or a preparation tool)."""
    return Path(script).name.startswith("train") and "/data/" not in f"/{script}"


def _torchrun(toks: list[str]) -> _Launcher | None:
    out = _Launcher("torchrun")
    i = 0
    while i < len(toks) and toks[i].startswith("-"):
        opt, eq, value = toks[i].partition("=")
        if not eq and opt not in _TORCHRUN_FLAGS and i + 1 < len(toks):
            value = toks[i + 1]
            i += 1
        written = f"{opt}={value}" if eq else f"{opt} {value}"
        if opt in _NPROC:
            out.nproc = (_nproc(value), written)
        elif opt in _NNODES:
            out.nnodes = (_nnodes(value), written)
        i += 1
    if i < len(toks) and toks[i].endswith(".py"):
        out.script = toks[i].replace("${COMMAND_OUTPUT_UNKNOWN}/", "")
        return out
    return None


def _nproc(value: str) -> int:
    """``--nproc_per_node``: a number, or ``gpu``/``auto`` (one per GPU: 8 on the official machine)."""
    n = _int(value)
    return n if n is not None and n >= 1 else OFFICIAL_WORLD_SIZE


def _nnodes(value: str) -> int:
    """``--nnodes``: a number or a range ``MIN:MAX`` (the run uses the maximum)."""
    n = _int(value.split(":")[-1])
    return n if n is not None and n >= 1 else 1


# ---- choosing the claimed launch ------------------------------------------------------------------

MAX_LOG_BYTES = 4_000_000
MAX_LOGS = 50


@dataclass
class _LogEvidence:
    seeds: set[int]
    text: str
    name: str = ""


def _claimed_logs(root: Path, claim: ClaimsLike | None) -> list[_LogEvidence]:
    """The logs of the claimed runs: those whose seed the claim names (all of them without a claim)."""
    from harness.logparse import parse_log  # the one reader of seeds in logs

    logs = []
    for path in _log_files(root):
        text = _read(path, MAX_LOG_BYTES, root)
        if text:
            run = parse_log(text, path.name)
            logs.append(_LogEvidence(run.seeds(), text, path.relative_to(root).as_posix()))
    claimed = set(claim.seed_ids()) if claim is not None else set()
    chosen = [log for log in logs if log.seeds & claimed]
    return chosen or logs


# The settings a run's log prints about itself: hyperparameter dumps (``  ttt_enabled: True``,
# ``prequant_ttt_epochs: 21``) and env lines (``TTT_ENABLED=1``), one setting alone on its line near the
# top of the log; only booleans and numbers, so paths and messages are never taken for settings.
# ``name: value`` or ``NAME=value`` with no space around "=": a log that prints its own source (``ws = 0``,
# ``KEEP_FLOAT_MAX_NUMEL = 4096``) prints code, not settings.
_LOGGED_SETTING = re.compile(r"^\s*([a-z][a-z0-9_]*|[A-Z][A-Z0-9_]*)(?:\s*:\s*|=)(True|False|[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$")
LOGGED_SETTINGS_LINES = 400  # a dump is printed before training starts
_NOT_SETTINGS = {*TORCHRUN_VARS, "SEED"}  # the launcher's ranks; the seed is matched to the claim


def logged_settings(text: str, name: str) -> dict[str, tuple[str, str]]:
    """The settings one log prints, as env variables: NAME -> (value, "name:line"); True/False as 1/0."""
    out: dict[str, tuple[str, str]] = {}
    for n, line in enumerate(text.splitlines()[:LOGGED_SETTINGS_LINES], start=1):
        m = _LOGGED_SETTING.match(line)
        if m and m.group(1).upper() not in _NOT_SETTINGS:
            value = {"True": "1", "False": "0"}.get(m.group(2), m.group(2))
            out.setdefault(m.group(1).upper(), (value, f"{name}:{n}"))
    return out


def with_logged_settings(launch: Launch, logs: list["_LogEvidence"]) -> Launch:
    """The launch with the settings the claimed runs' logs print for variables it leaves open (the README
    and run scripts name none): what the run used, where every log that prints it agrees."""
    found: dict[str, tuple[str, str]] = {}
    clash: set[str] = set()
    for log in logs:
        for var, (value, where) in logged_settings(log.text, log.name).items():
            if var in found and found[var][0] != value:
                clash.add(var)
            found.setdefault(var, (value, where))
    keep = {k: v for k, v in found.items() if k not in clash and k not in launch.env}
    if not keep:
        return launch
    return replace(launch, env={**launch.env, **{k: v for k, (v, _) in keep.items()}},
                   sources={**launch.sources, **{k: f"{where} (printed by the run)" for k, (_, where) in keep.items()}})


def _log_files(root: Path) -> list[Path]:
    from harness.submission import LOG_SUFFIXES, NOT_LOGS

    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        found += [Path(dirpath) / n for n in sorted(filenames)
                  if n.lower().endswith(LOG_SUFFIXES) and n not in NOT_LOGS]
        if len(found) >= MAX_LOGS:
            break
    return found[:MAX_LOGS]


def _agreement(launch: Launch, logs: list[_LogEvidence]) -> int:
    """How many of the launch's own settings the logs print with the same value (a seed the logs
    report counts when it is the launch's SEED)."""
    score = 0
    for name, value in launch.settings().items():
        if name == "SEED":
            score += any(_int(value) in log.seeds for log in logs)
            continue
        pattern = re.compile(rf"(?<![\w.]){re.escape(name)}\s*[:=]\s*['\"]?{re.escape(value)}(?![\w.])", re.I)
        score += any(pattern.search(log.text) for log in logs)
    return score
