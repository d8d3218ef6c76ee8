"""The bytes-per-token table of a submission, evaluated on sample SentencePiece pieces.

BPB divides the scored nats by the UTF-8 bytes of the scored text. The challenge's ``train_gpt.py``
builds that denominator per token from three tables (``build_sentencepiece_luts``):

- base bytes: the piece's UTF-8 length with one leading "▁" removed; 1 for a byte-fallback piece
  ("<0x0A>"); 0 for control, unknown and unused pieces;
- has leading space: the piece starts with "▁" (the space is one byte, added back at scoring time
  only when the previous token is not a boundary);
- is boundary: control, unknown and unused pieces.

A submission's own table builder is read here with a small evaluator over its ``ast`` (the code is
never executed): the function runs on a fake tokenizer whose vocabulary is ``SAMPLES`` and whatever
it returns is compared with the reference values. Anything the evaluator does not model makes the
result undecided (``None``), never a verdict.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass

SPACE = "\u2581"
NORMAL, BYTE, CONTROL, UNKNOWN = "normal", "byte", "control", "unknown"
# (piece, kind): a spaced word, a bare word, a lone space, multi-byte UTF-8, byte fallback, specials
SAMPLES: tuple[tuple[str, str], ...] = (
    ("<unk>", UNKNOWN), ("<s>", CONTROL), ("</s>", CONTROL), (SPACE + "the", NORMAL), ("the", NORMAL),
    (SPACE, NORMAL), (SPACE + "\u00e9t\u00e9", NORMAL), ("\u20ac", NORMAL), ("<0x0A>", BYTE), ("<0xE2>", BYTE),
)
MAX_STEPS = 20_000  # statements and expressions evaluated per builder; the sample vocabulary is tiny
MAX_TABLE = 1 << 16  # entries of one table or range; a builder sized by a default vocabulary stays below
_PIECE_CALLS = frozenset({"id_to_piece", "IdToPiece"})
_ARRAY_MODULES = frozenset({"torch", "numpy", "sentencepiece"})


def reference(piece: str, kind: str) -> tuple[int, bool, bool]:
    """(base bytes, has leading space, is boundary) of one piece under the challenge's rule."""
    if kind in (CONTROL, UNKNOWN):
        return 0, False, True
    if kind == BYTE:
        return 1, False, False
    spaced = piece.startswith(SPACE)
    return len((piece[1:] if spaced else piece).encode("utf-8")), spaced, False


class Undecided(Exception):
    """The builder does something the evaluator does not model."""


@dataclass(frozen=True)
class Tables:
    """What a builder returned, by role: ``base`` bytes per sample, ``space`` the leading-space flags
    (None when no returned table holds them) and ``space_at`` its position in the returned tuple."""

    base: tuple
    space: tuple | None
    space_at: int | None


def builders(tree: ast.Module) -> list[ast.FunctionDef]:
    """Functions that read piece text from a tokenizer (``sp.id_to_piece(i)``)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
                isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) and c.func.attr in _PIECE_CALLS
                for c in ast.walk(node)):
            out.append(node)
    return out


def evaluate(fn: ast.FunctionDef, aliases: dict[str, str]) -> Tables | None:
    """The tables ``fn`` builds for ``SAMPLES``, or None when the evaluator cannot follow it."""
    try:
        returned = _Evaluator(aliases).run(fn)
    except (Undecided, TypeError, ValueError, IndexError, KeyError, ZeroDivisionError, AttributeError):
        return None
    tables = list(returned) if isinstance(returned, tuple) else [returned]
    # a table may be sized past the tokenizer (a larger model vocabulary): those ids hold no piece
    tables = [tuple(t[:len(SAMPLES)]) for t in tables if isinstance(t, list) and len(t) >= len(SAMPLES)]
    if not tables:
        return None
    base = next((t for t in tables if any(not isinstance(v, bool) and v > 1 for v in t)), None)
    if base is None:
        return None
    spaced = [reference(p, k)[1] for p, k in SAMPLES]
    at = next((i for i, t in enumerate(tables) if t is not base and [bool(v) for v in t] == spaced), None)
    return Tables(base, tables[at] if at is not None else None, at)


def import_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> top-level module for ``import numpy as np`` and the like."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = a.name.split(".")[0]
    return out


class _Tokenizer:
    """A SentencePiece processor whose vocabulary is ``SAMPLES``."""

    def call(self, method: str, args: list):
        if method in ("vocab_size", "get_piece_size", "GetPieceSize", "piece_size", "__len__"):
            return len(SAMPLES)
        if method in ("load", "Load", "LoadFromFile", "init"):
            return None
        if not args or not isinstance(args[0], int) or not 0 <= args[0] < len(SAMPLES):
            raise Undecided(method)
        piece, kind = SAMPLES[args[0]]
        answers = {"id_to_piece": piece, "IdToPiece": piece, "is_byte": kind == BYTE, "IsByte": kind == BYTE,
                   "is_control": kind == CONTROL, "IsControl": kind == CONTROL, "is_unknown": kind == UNKNOWN,
                   "IsUnknown": kind == UNKNOWN, "is_unused": False, "IsUnused": False}
        if method not in answers:
            raise Undecided(method)
        return answers[method]


def _bounded(table: list) -> list:
    if len(table) > MAX_TABLE:
        raise Undecided("table too large")
    return table


class _Return(Exception):
    def __init__(self, value):
        self.value = value


class _Loop(Exception):
    def __init__(self, brk: bool):
        self.brk = brk


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.BitOr: operator.or_,
           ast.BitAnd: operator.and_}
_CMPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
         ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
         ast.NotIn: lambda a, b: a not in b, ast.Is: operator.is_, ast.IsNot: operator.is_not}
_BUILTINS = {"len": len, "int": int, "float": float, "bool": bool, "str": str, "max": max, "min": min,
             "abs": abs, "range": lambda *a: _bounded(list(range(*a)[:MAX_TABLE + 1])), "list": list, "tuple": tuple,
             "enumerate": lambda x: list(enumerate(x))}
_STR_METHODS = frozenset({"startswith", "endswith", "encode", "decode", "replace", "lstrip", "rstrip", "strip",
                          "isdigit", "lower", "upper"})
_TABLE_METHODS = frozenset({"to", "cuda", "cpu", "long", "int", "float", "bool", "numpy", "tolist", "clone",
                            "copy", "contiguous", "astype"})


class _Evaluator:
    def __init__(self, aliases: dict[str, str]):
        self.aliases = aliases
        self.env: dict = {}
        self.steps = 0

    def run(self, fn: ast.FunctionDef):
        a = fn.args
        params = a.posonlyargs + a.args
        defaults = [None] * (len(params) - len(a.defaults)) + list(a.defaults)
        receivers = {c.func.value.id for c in ast.walk(fn) if isinstance(c, ast.Call)
                     and isinstance(c.func, ast.Attribute) and isinstance(c.func.value, ast.Name)}
        for p, d in zip(params, defaults):
            if p.arg in ("self", "cls"):
                raise Undecided("method")
            if isinstance(d, ast.Constant):
                self.env[p.arg] = d.value
            elif p.arg in receivers:
                self.env[p.arg] = _Tokenizer()
            else:
                self.env[p.arg] = len(SAMPLES)  # a vocabulary size, or a device the tables ignore
        try:
            self.block(fn.body)
        except _Return as r:
            return r.value
        return None

    def tick(self):
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise Undecided("too long")

    def block(self, body):
        for st in body:
            self.stmt(st)

    def stmt(self, st):
        self.tick()
        if isinstance(st, ast.Return):
            raise _Return(self.expr(st.value) if st.value is not None else None)
        if isinstance(st, ast.Assign):
            value = self.expr(st.value)
            for t in st.targets:
                self.assign(t, value)
        elif isinstance(st, ast.AnnAssign) and st.value is not None:
            self.assign(st.target, self.expr(st.value))
        elif isinstance(st, ast.AugAssign):
            load = ast.Subscript(st.target.value, st.target.slice, ast.Load()) \
                if isinstance(st.target, ast.Subscript) else ast.Name(getattr(st.target, "id", ""), ast.Load())
            self.assign(st.target, self.binop(st.op, self.expr(load), self.expr(st.value)))
        elif isinstance(st, ast.If):
            self.block(st.body if self.truth(self.expr(st.test)) else st.orelse)
        elif isinstance(st, ast.For):
            self.loop(st)
        elif isinstance(st, (ast.Continue, ast.Break)):
            raise _Loop(isinstance(st, ast.Break))
        elif isinstance(st, ast.Expr):
            if not (isinstance(st.value, ast.Constant) and isinstance(st.value.value, str)):
                self.expr(st.value)
        elif not isinstance(st, (ast.Pass, ast.Assert)):
            raise Undecided(type(st).__name__)

    def loop(self, st: ast.For):
        for item in self.iterable(self.expr(st.iter)):
            self.assign(st.target, item)
            try:
                self.block(st.body)
            except _Loop as stop:
                if stop.brk:
                    return
        else:
            self.block(st.orelse)

    @staticmethod
    def iterable(v):
        if not isinstance(v, (list, tuple, str)):
            raise Undecided("iteration")
        return list(v)

    def assign(self, target, value):
        if isinstance(target, ast.Name):
            self.env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            values = list(value)
            if len(values) != len(target.elts):
                raise Undecided("unpacking")
            for t, v in zip(target.elts, values):
                self.assign(t, v)
        elif isinstance(target, ast.Subscript):
            table, index = self.expr(target.value), self.expr(target.slice)
            if not isinstance(table, list) or not isinstance(index, int):
                raise Undecided("store")
            table[index] = value
        else:
            raise Undecided("target")

    @staticmethod
    def truth(v) -> bool:
        if isinstance(v, (list, _Tokenizer)) or v is None:
            raise Undecided("truth of a table")
        return bool(v)

    def binop(self, op, a, b):
        if type(op) not in _BINOPS:
            raise Undecided("operator")
        if isinstance(a, list) and isinstance(b, int) and isinstance(op, ast.Mult):
            return _bounded(a * min(b, MAX_TABLE + 1))
        if isinstance(a, (list, _Tokenizer)) or isinstance(b, (list, _Tokenizer)):
            raise Undecided("table arithmetic")
        return _BINOPS[type(op)](a, b)

    def expr(self, e):
        self.tick()
        if isinstance(e, ast.Constant):
            return e.value
        if isinstance(e, ast.Name):
            if e.id in self.env:
                return self.env[e.id]
            if e.id in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[e.id]
            raise Undecided(e.id)
        if isinstance(e, (ast.Tuple, ast.List)):
            items = [self.expr(x) for x in e.elts]
            return tuple(items) if isinstance(e, ast.Tuple) else items
        if isinstance(e, ast.BinOp):
            return self.binop(e.op, self.expr(e.left), self.expr(e.right))
        if isinstance(e, ast.UnaryOp):
            v = self.expr(e.operand)
            if isinstance(e.op, ast.Not):
                return not self.truth(v)
            if isinstance(e.op, ast.USub) and isinstance(v, (int, float)):
                return -v
            raise Undecided("unary")
        if isinstance(e, ast.BoolOp):
            v = None
            for x in e.values:
                v = self.expr(x)
                if self.truth(v) == isinstance(e.op, ast.Or):
                    return v
            return v
        if isinstance(e, ast.Compare):
            left = self.expr(e.left)
            for op, c in zip(e.ops, e.comparators):
                right = self.expr(c)
                if not _CMPS[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(e, ast.IfExp):
            return self.expr(e.body if self.truth(self.expr(e.test)) else e.orelse)
        if isinstance(e, ast.Subscript):
            return self.subscript(self.expr(e.value), e.slice)
        if isinstance(e, ast.ListComp):
            return self.listcomp(e)
        if isinstance(e, ast.Call):
            return self.call(e)
        raise Undecided(type(e).__name__)

    def subscript(self, v, sl):
        if not isinstance(v, (str, bytes, list, tuple)):
            raise Undecided("subscript")
        if isinstance(sl, ast.Slice):
            parts = [self.expr(p) if p is not None else None for p in (sl.lower, sl.upper, sl.step)]
            return v[slice(*parts)]
        return v[self.expr(sl)]

    def listcomp(self, e: ast.ListComp):
        if len(e.generators) != 1 or e.generators[0].ifs:
            raise Undecided("comprehension")
        gen, saved, out = e.generators[0], dict(self.env), []
        for item in self.iterable(self.expr(gen.iter)):
            self.assign(gen.target, item)
            out.append(self.expr(e.elt))
        self.env = saved
        return out

    def call(self, e: ast.Call):
        f = e.func
        args = [self.expr(a) for a in e.args if not isinstance(a, ast.Starred)]
        if isinstance(f, ast.Name):
            if f.id not in _BUILTINS or f.id in self.env:
                raise Undecided(f.id)
            return _BUILTINS[f.id](*args)
        if not isinstance(f, ast.Attribute):
            raise Undecided("call")
        module = self.module_of(f.value)
        if module is not None:
            return self.array_call(f.attr, args, e)
        obj = self.expr(f.value)
        if isinstance(obj, _Tokenizer):
            return obj.call(f.attr, args)
        if isinstance(obj, (str, bytes)) and f.attr in _STR_METHODS:
            return getattr(obj, f.attr)(*args)
        if isinstance(obj, list) and f.attr in _TABLE_METHODS:
            return list(obj)
        raise Undecided(f.attr)

    def module_of(self, v) -> str | None:
        """``torch`` / ``numpy`` for ``torch.zeros`` or ``np.zeros``; the class of a SentencePiece processor."""
        if isinstance(v, ast.Name) and v.id not in self.env and self.aliases.get(v.id) in _ARRAY_MODULES:
            return self.aliases[v.id]
        return None

    def array_call(self, name: str, args: list, e: ast.Call):
        if name in ("zeros", "ones", "empty", "full"):
            shape = args[0] if args else None
            n = shape[0] if isinstance(shape, (tuple, list)) and len(shape) == 1 else shape
            if not isinstance(n, int):
                raise Undecided("shape")
            fill = {"zeros": 0, "empty": 0, "ones": 1}.get(name, args[1] if len(args) > 1 else None)
            if fill is None:
                raise Undecided("fill")
            is_bool = any(k.arg == "dtype" and "bool" in ast.unparse(k.value) for k in e.keywords)
            return _bounded([bool(fill) if is_bool else fill] * min(n, MAX_TABLE + 1))
        if name in ("tensor", "as_tensor", "array", "asarray", "from_numpy") and args and isinstance(args[0], list):
            return list(args[0])
        if name == "SentencePieceProcessor":
            return _Tokenizer()
        raise Undecided(name)


# ---------------------------------------------------------------------------------------------------
# Verdicts

@dataclass(frozen=True)
class Miscount:
    """One sample piece the submission's table counts differently from the challenge's rule (bytes)."""

    piece: str
    counted: int
    expected: int
    why: str


def miscounts(tables: Tables) -> list[Miscount]:
    """Sample pieces whose bytes at scoring time differ from the reference, with the reason.

    With a leading-space table, scoring adds 1 byte for a spaced piece after a non-boundary token, so
    the base count must leave the "▁" out; without one, the space counted in the base is the only count.
    """
    out = []
    for (piece, kind), counted in zip(SAMPLES, tables.base):
        expected, spaced, _ = reference(piece, kind)
        if counted == expected or (spaced and tables.space is None and counted == expected + 1):
            continue
        if spaced and counted > expected and tables.space is not None:
            why = 'the leading "▁" is counted in the base bytes and added again from the leading-space table'
        elif spaced and counted == expected + len(SPACE.encode("utf-8")):
            why = 'the "▁" is counted as its 3 UTF-8 bytes, though it stands for one space'
        elif kind == BYTE:
            why = "a byte-fallback piece is one byte of text, not the length of its name"
        elif kind in (CONTROL, UNKNOWN):
            why = "a control or unknown piece stands for no text"
        else:
            why = "the count is not the UTF-8 length of the piece"
        out.append(Miscount(piece, int(counted), expected, why))
    return out


def space_table_discarded(tree: ast.Module, fn: ast.FunctionDef, at: int) -> bool:
    """True when every call of ``fn`` unpacks its result and drops the table at position ``at``."""
    loads = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    seen = False
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and len(node.targets) == 1):
            continue
        f = node.value.func
        if (f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)) != fn.name:
            continue
        target = node.targets[0]
        if not isinstance(target, (ast.Tuple, ast.List)) or len(target.elts) <= at:
            return False
        seen = True
        kept = target.elts[at]
        if isinstance(kept, ast.Name) and kept.id != "_" and kept.id in loads:
            return False
    return seen


# Bytes per token a fixed divisor may plausibly stand for (the challenge's tokenizers give 2 to 5);
# a divisor of 1 or a bare log(2) is a conversion to bits, not a byte count.
BYTES_PER_TOKEN_RANGE = (1.5, 8.0)


@dataclass(frozen=True)
class FixedDivisor:
    """``loss / log(2) / C``: bits per token turned into bits per byte with a constant ``value``."""

    node: ast.BinOp
    value: float


def fixed_divisors(tree: ast.Module) -> list[FixedDivisor]:
    """Divisions of a loss by ln 2 and by a constant bytes-per-token, in any grouping."""
    consts = _numeric_names(tree)
    out = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)):
            continue
        divisors = _factors(node.right) + (_factors(node.left.right) if _is_div(node.left) else [])
        values = [_number(d, consts) for d in divisors]
        if not any(_is_ln2(d) for d in divisors):
            continue
        for v in values:
            if v is not None and BYTES_PER_TOKEN_RANGE[0] <= v <= BYTES_PER_TOKEN_RANGE[1]:
                out.append(FixedDivisor(node, v))
                break
    return out


def _is_div(e) -> bool:
    return isinstance(e, ast.BinOp) and isinstance(e.op, ast.Div)


def _factors(e) -> list:
    """The operands of a product (``a * b * c``); a single operand otherwise."""
    if isinstance(e, ast.BinOp) and isinstance(e.op, ast.Mult):
        return _factors(e.left) + _factors(e.right)
    return [e]


def _is_ln2(e) -> bool:
    return (isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute) and e.func.attr == "log"
            and len(e.args) == 1 and isinstance(e.args[0], ast.Constant) and e.args[0].value == 2)


def _number(e, consts: dict) -> float | None:
    if isinstance(e, ast.Constant) and isinstance(e.value, (int, float)) and not isinstance(e.value, bool):
        return float(e.value)
    if isinstance(e, ast.Name):
        return consts.get(e.id)
    return None


def _numeric_names(tree: ast.Module) -> dict[str, float]:
    """Names bound only ever to one numeric literal, anywhere in the module."""
    bound: dict[str, set] = {}
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name):
                    v = node.value if isinstance(node, ast.Assign) and t is n else None
                    num = v.value if isinstance(v, ast.Constant) and isinstance(v.value, (int, float)) \
                        and not isinstance(v.value, bool) and not isinstance(node, ast.AugAssign) else None
                    bound.setdefault(n.id, set()).add(num)
    return {k: float(next(iter(v))) for k, v in bound.items() if len(v) == 1 and None not in v}
