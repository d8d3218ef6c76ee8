"""``submission.json``: one schema for the many shapes the records use, strict on types.

The records name the same facts in several ways (``val_bpb`` / ``mean_val_bpb`` / ``mean_bpb``,
``bytes_code`` / ``code_bytes``, per-seed results under ``seed_results`` or ``seeds`` as a dict, or
``seeds`` + ``seed_scores`` as parallel lists, times in ``*_ms`` or ``*_s``). ``parse_claims``
reads all of them into one ``Claims``; a field that is present with the wrong type (a word where
a number belongs, a boolean, a list) is a problem, reported, and never guessed at. Numbers
written as strings ("1.0823") are accepted as the number they spell. Printed precision is kept
(``Num.decimals``) because claims are compared with the logs to the digits they show.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from harness.logparse import decimals

# canonical name -> the keys the records use for it, in order of preference
TOP_ALIASES: dict[str, tuple[str, ...]] = {
    "val_bpb": ("val_bpb", "mean_val_bpb", "mean_bpb", "val_bpb_mean"),
    "val_loss": ("val_loss", "mean_val_loss", "mean_val_loss_nats", "val_loss_nats", "val_loss_mean"),
    "bpb_std": ("val_bpb_std", "std_bpb", "bpb_std", "std_val_bpb"),
    "loss_std": ("val_loss_std", "std_val_loss_nats", "val_loss_nats_std", "std_val_loss"),
    "bytes_total": ("bytes_total", "artifact_bytes", "artifact_size_bytes", "artifact_bytes_max"),
    "bytes_code": ("bytes_code", "code_bytes"),
    "train_time_s": ("train_time_seconds", "train_time_s", "wallclock_seconds"),
    "eval_time_s": ("eval_time_seconds", "eval_time_s"),
}
SEED_ALIASES: dict[str, tuple[str, ...]] = {
    "val_bpb": ("val_bpb", "bpb", "val_var_bpb"),
    "val_loss": ("val_loss", "val_loss_nats"),
    "bytes_total": ("bytes_total", "artifact_bytes", "artifact_size_bytes"),
    "train_time_s": ("train_time_s", "train_time_seconds"),
    "eval_time_s": ("eval_time_s", "eval_time_seconds", "ttt_eval_time_s"),
}
SEED_MS_ALIASES: dict[str, tuple[str, ...]] = {
    "train_time_s": ("train_time_ms",),
    "eval_time_s": ("eval_time_ms", "ttt_time_ms", "ttt_eval_time_ms"),
}
# The fields the challenge asks every submission.json for.
EXPECTED = ("author", "github_id", "name", "blurb", "date", "val_loss", "val_bpb", "bytes_total", "bytes_code")
TEXT_FIELDS = ("author", "github_id", "name", "blurb", "date", "track")
MAX_SEEDS = 1000


class Num(float):
    """A float that remembers how many decimals the file printed."""

    decimals: int

    def __new__(cls, value: float, decimals_: int):
        obj = super().__new__(cls, value)
        obj.decimals = decimals_
        return obj


@dataclass
class SeedClaim:
    seed: int
    val_bpb: Num | None = None
    val_loss: Num | None = None
    bytes_total: int | None = None
    train_time_s: float | None = None
    eval_time_s: float | None = None


@dataclass
class Claims:
    val_bpb: Num | None = None
    val_bpb_key: str | None = None
    val_loss: Num | None = None
    bpb_std: Num | None = None
    loss_std: Num | None = None
    bytes_total: int | None = None
    bytes_total_key: str | None = None
    bytes_code: int | None = None
    train_time_s: float | None = None
    eval_time_s: list[float] = field(default_factory=list)
    seeds: list[SeedClaim] = field(default_factory=list)
    seed_list: list[int] = field(default_factory=list)  # seeds named without results
    n_seeds: int | None = None
    track: str | None = None
    missing: list[str] = field(default_factory=list)  # expected fields not given
    problems: list[str] = field(default_factory=list)  # wrong types, bad seed keys

    def seed_ids(self) -> list[int]:
        return [s.seed for s in self.seeds] or list(self.seed_list)


def load_json(text: str, name: str = "submission.json") -> Any:
    """Parse JSON keeping printed decimals; raises ValueError with one line that says where it broke."""
    def number(s: str) -> Num:
        v = float(s)
        if not math.isfinite(v):
            raise ValueError(f"number out of range: {s[:40]}")
        return Num(v, decimals(s))

    def constant(s: str):
        raise ValueError(f"{s} is not a JSON number")

    try:
        return json.loads(text, parse_float=number, parse_int=lambda s: int(s) if len(s) <= 30 else number(s),
                          parse_constant=constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"{name}: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise ValueError(f"{name}: not valid JSON: nested too deeply") from None
    except ValueError as e:
        raise ValueError(f"{name}: not valid JSON: {str(e).splitlines()[0]}") from None


def _number(v: Any, where: str, problems: list[str], *, integer: bool = False) -> Num | int | None:
    """A JSON number (or a string that spells one); None when absent; a problem when it is anything else."""
    if v is None:
        return None
    if isinstance(v, bool):
        problems.append(f"{where} is a boolean, not a number")
        return None
    if isinstance(v, str):
        s = v.strip().replace(",", "").replace("_", "")
        try:
            f = float(s)
        except ValueError:
            problems.append(f"{where} is the text {v[:40]!r}, not a number")
            return None
        if not math.isfinite(f):
            problems.append(f"{where} is {v[:40]!r}, not a finite number")
            return None
        v = int(f) if integer and f == int(f) else Num(f, decimals(s))
    if isinstance(v, int):
        return v if integer else Num(float(v), 0)
    if isinstance(v, float):
        if integer:
            if v != int(v) or abs(v) > 1e15:
                problems.append(f"{where} is {v}, not a whole number of bytes")
                return None
            return int(v)
        return v if isinstance(v, Num) else Num(v, decimals(repr(v)))
    problems.append(f"{where} is a {_kind(v)}, not a number")
    return None


def _kind(v: Any) -> str:
    return {dict: "object", list: "list", str: "text"}.get(type(v), type(v).__name__)


def _first(d: dict, keys: tuple[str, ...]) -> tuple[str | None, Any]:
    for k in keys:
        if k in d and d[k] is not None:
            return k, d[k]
    return None, None


def _seed_key(k: Any, where: str, problems: list[str]) -> int | None:
    s = str(k).strip()
    if s.lstrip("-").isdigit() and len(s) <= 12:
        return int(s)
    problems.append(f"{where}: seed {s[:40]!r} is not a whole number")
    return None


def _seed_entry(seed: int, d: Any, where: str, problems: list[str]) -> SeedClaim | None:
    if not isinstance(d, dict):
        v = _number(d, where, problems)  # {"42": 1.0823}: a bare score per seed
        return SeedClaim(seed, val_bpb=v) if v is not None else None
    sc = SeedClaim(seed)
    for name, keys in SEED_ALIASES.items():
        k, v = _first(d, keys)
        if k is None:
            continue
        got = _number(v, f"{where}.{k}", problems, integer=(name == "bytes_total"))
        if got is not None:
            setattr(sc, name, float(got) if name.endswith("_time_s") else got)
    for name, keys in SEED_MS_ALIASES.items():
        if getattr(sc, name) is None:
            k, v = _first(d, keys)
            if k is not None:
                got = _number(v, f"{where}.{k}", problems)
                if got is not None:
                    setattr(sc, name, float(got) / 1000)
    return sc


def parse_claims(doc: Any) -> Claims:
    """Read a parsed submission.json into Claims; type problems land in ``Claims.problems``."""
    c = Claims()
    if not isinstance(doc, dict):
        c.problems.append(f"the top level is a {_kind(doc)}, not an object")
        return c
    p = c.problems
    for name in TEXT_FIELDS:
        v = doc.get(name)
        if v is not None and not isinstance(v, str):
            p.append(f"{name} is a {_kind(v)}, not text")
    c.track = doc.get("track") if isinstance(doc.get("track"), str) else None
    for name, keys in TOP_ALIASES.items():
        k, v = _first(doc, keys)
        if k is None:
            continue
        if name == "eval_time_s" and isinstance(v, list):  # one eval time per seed
            c.eval_time_s = [float(x) for x in (_number(x, f"{k}[{i}]", p) for i, x in enumerate(v[:MAX_SEEDS])) if x is not None]
            continue
        got = _number(v, k, p, integer=name in ("bytes_total", "bytes_code"))
        if got is None:
            continue
        if name == "eval_time_s":
            c.eval_time_s = [float(got)]
        elif name == "train_time_s":
            c.train_time_s = float(got)
        else:
            setattr(c, name, got)
        if name == "val_bpb":
            c.val_bpb_key = k
        if name == "bytes_total":
            c.bytes_total_key = k
    n = doc.get("n_seeds")
    if n is not None:
        got = _number(n, "n_seeds", p, integer=True)
        c.n_seeds = got if isinstance(got, int) else None
    # per-seed results: {"seed_results": {seed: {...}}}, {"seeds": {seed: {...}}},
    # {"seeds": [..], "seed_scores": [..]}, or {"seeds": [..]} alone
    table_key, table = _first(doc, ("seed_results", "per_seed", "seed_scores_by_seed"))
    seeds = doc.get("seeds")
    if table is None and isinstance(seeds, dict):
        table_key, table = "seeds", seeds
    if table is not None:
        if isinstance(table, dict):
            for k, v in list(table.items())[:MAX_SEEDS]:
                s = _seed_key(k, table_key, p)
                if s is not None:
                    e = _seed_entry(s, v, f"{table_key}.{k}", p)
                    if e is not None:
                        c.seeds.append(e)
        elif isinstance(table, list):  # [{"seed": 42, "val_bpb": ...}, ...]
            for i, v in enumerate(table[:MAX_SEEDS]):
                if not isinstance(v, dict) or "seed" not in v:
                    p.append(f"{table_key}[{i}] is not an object with a seed")
                    continue
                s = _seed_key(v["seed"], f"{table_key}[{i}]", p)
                if s is not None:
                    e = _seed_entry(s, v, f"{table_key}[{i}]", p)
                    if e is not None:
                        c.seeds.append(e)
        else:
            p.append(f"{table_key} is a {_kind(table)}, not an object of per-seed results")
    if isinstance(seeds, list):
        ids = [_seed_key(s, f"seeds[{i}]", p) for i, s in enumerate(seeds[:MAX_SEEDS])]
        c.seed_list = [s for s in ids if s is not None]
        scores = doc.get("seed_scores")
        if isinstance(scores, list) and not c.seeds:
            if len(scores) != len(seeds):
                p.append(f"seeds has {len(seeds)} entries but seed_scores has {len(scores)}")
            for s, v in zip(c.seed_list, scores):
                got = _number(v, f"seed_scores[{s}]", p)
                if got is not None:
                    c.seeds.append(SeedClaim(s, val_bpb=got))
        elif scores is not None and not isinstance(scores, list):
            p.append(f"seed_scores is a {_kind(scores)}, not a list")
    elif seeds is not None and not isinstance(seeds, dict):
        p.append(f"seeds is a {_kind(seeds)}, not a list or an object")
    elif seeds is None and "seed" in doc:
        s = _number(doc["seed"], "seed", p, integer=True)
        if isinstance(s, int):
            c.seed_list = [s]
    if c.eval_time_s and len(c.eval_time_s) == len(c.seeds):
        for sc, t in zip(c.seeds, c.eval_time_s):
            if sc.eval_time_s is None:
                sc.eval_time_s = t
    c.missing = [k for k in EXPECTED if not _present(doc, k)]
    return c


def _present(doc: dict, name: str) -> bool:
    if name in TOP_ALIASES:
        return _first(doc, TOP_ALIASES[name])[0] is not None
    return doc.get(name) not in (None, "")
