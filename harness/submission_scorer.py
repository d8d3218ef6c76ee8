"""A Scorer over the submission's OWN evaluation code: per-position NLL without editing its source.

Runs inside the sandboxed child only (see harness/sandbox.py); ``score_streams`` is the driver.

How the pipeline is found. ``find_entries`` reads the source (``ast``, no code runs): every
module-level function whose name contains ``eval`` and that takes a token stream
(``val_tokens``, ``tokens``, ...) is an eval entry point; the *final* one is the last such
function reached from ``main()`` in call order (``main`` -> ``run_final_eval`` ->
``eval_val_ttt``), i.e. the one whose number the log prints last.

How it is driven. The submission is imported (harness/loader.py, under the launch's env:
``WORLD_SIZE=8`` and its README's settings), its model built from its own GPT class (harness/model_build.py; random init,
small dims), and the entry point called with arguments bound by parameter name: the
Hyperparameters instance, the model, ``rank``/``world_size``, the device, the generated stream as
``val_tokens`` (int64), byte LUTs, ``stride`` from the hyperparameters. The module sees the launch's
env (``WORLD_SIZE=8``: flags such as "cache on when world_size > 1" resolve as in the official
run); with ``world_size=W`` (the launch's) the eval function is called as ranks 0..W-1 in turn, each
from the same initial state (its own caches and TTT weights) on its own share of the windows, and
the per-position scores of all ranks are merged; collectives are single-rank shims. Each rank's
captured scores are checked against the loss it returns (check_capture): what cannot be traced
is a ScorerError, never a pass.

How per-position NLL is recovered (the capture). While the eval runs, a ``TorchFunctionMode``
tags tensors with the stream position they belong to:

- the model's logits (``forward_logits`` or ``forward``, called with gradients off) get the
  target index of each (row, column): each input row is located in the stream (the windows are
  slices of it), so column j of a row starting at ``ws`` predicts target ``ws + j``;
- tags follow the values through torch ops whose output keeps the leading (batch, time) shape
  (log_softmax, gather, cross_entropy with ``reduction='none'``, arithmetic, reshape, slicing,
  ``torch.where``) and through ``.numpy()`` into numpy (an ndarray subclass carries them through
  ufuncs, slicing and ``np.where``);
- a full sum of a per-position tensor/array is a *scoring record* (positions, values); a record
  counts as scored when its value is added into an accumulator (``loss_sum += ...``, a tensor
  in-place add or an add whose operand equals the record's value). If no add is seen (pure-Python
  accumulation), every record counts.

``nll[i]`` is the first scored value of target i, ``count[i]`` how many times it was scored,
``total_nll`` the sum of all scored records. Limits: values that leave torch/numpy through
``.item()``/``.tolist()`` before being summed, a loss reduced inside the model's own
``forward(x, y)`` (mean over the batch), and evals that do not slice their windows from the
stream they are given are not captured; the scorer then reports no scored positions, and the
probes say "not captured" rather than pass.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import inspect
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness import AuditError
from harness.scorer import ScoreResult

TOKEN_PARAMS = ("val_tokens", "tokens", "val_data", "val_ids", "token_ids", "stream")
HPARAM_PARAMS = ("args", "h", "hparams", "hp", "hyperparameters", "cfg", "config")
MODEL_PARAMS = ("base_model", "model", "eval_model", "raw_model", "net", "gpt", "ema_model")
LOG_PARAMS = ("log0", "log", "log_fn", "logger", "print_fn")
# Probe configuration: smaller dims and vocabulary than the official run; the pipeline logic is unchanged.
PROBE_ENV = {"VOCAB_SIZE": "128", "TRAIN_SEQ_LEN": "64", "EVAL_SEQ_LEN": "64", "EVAL_STRIDE": "16",
             "EVAL_BATCH_SEQS": "8", "TTT_CHUNK_TOKENS": "64", "TTT_BATCH_SEQS": "4"}
# Ranks the eval function is called as when the caller names none (in-process tools, tests); the
# probes pass the launch's world size (harness/launch.py; WORLD_SIZE=8 by default).
EVAL_WORLD_SIZE = 1
DEBUG = False


class ScorerError(AuditError):
    """The submission's eval cannot be driven."""


# ---------------------------------------------------------------------------------------------
# Finding the eval entry points (static, no code runs)
# ---------------------------------------------------------------------------------------------

@dataclass
class Entry:
    name: str
    params: list[str]
    line: int
    final: bool = False
    # The keyword arguments of the call that runs it last on the main path, and the function that
    # makes that call (where names in those arguments are assigned): call-site values to bind.
    call_args: dict[str, ast.expr] = field(default_factory=dict)
    caller: ast.FunctionDef | None = None


class Settings:
    """Values of simple expressions under the official run, for choosing and calling the eval.

    Evaluates constants, hyperparameter attributes (``args.ngram_eval_order``), environment reads
    (``int(os.environ.get("TTT_CHUNK_TOKENS", "32768"))``) as the child's environment has them,
    comparisons, ``not``/``and``/``or``, and names assigned once in the function that evaluates them.
    Anything else is unknown (``UNKNOWN``): the caller then keeps its static choice.
    """

    def __init__(self, hparams) -> None:
        self.hparams = hparams

    def value(self, node, fn: ast.FunctionDef | None = None, depth: int = 0):
        import os

        if depth > 4 or node is None:
            return UNKNOWN
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in HPARAM_PARAMS:
            return getattr(self.hparams, node.attr, UNKNOWN)
        if isinstance(node, ast.Call):
            var, default = _env_read(node)
            if var is not None:
                return os.environ.get(var, default)
            if isinstance(node.func, ast.Name) and node.func.id in ("int", "float", "bool", "str") and len(node.args) == 1:
                v = self.value(node.args[0], fn, depth + 1)
                try:
                    return UNKNOWN if v is UNKNOWN else {"int": int, "float": float, "bool": bool, "str": str}[node.func.id](v)
                except (TypeError, ValueError):
                    return UNKNOWN
            return UNKNOWN
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            v = self.value(node.operand, fn, depth + 1)
            return UNKNOWN if v is UNKNOWN else not v
        if isinstance(node, ast.BoolOp):
            vals = [self.value(v, fn, depth + 1) for v in node.values]
            if any(v is UNKNOWN for v in vals):
                return UNKNOWN
            return all(vals) if isinstance(node.op, ast.And) else any(vals)
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            a, b = self.value(node.left, fn, depth + 1), self.value(node.comparators[0], fn, depth + 1)
            ops = {ast.Eq: lambda: a == b, ast.NotEq: lambda: a != b, ast.Lt: lambda: a < b, ast.LtE: lambda: a <= b,
                   ast.Gt: lambda: a > b, ast.GtE: lambda: a >= b}
            if a is UNKNOWN or b is UNKNOWN or type(node.ops[0]) not in ops:
                return UNKNOWN
            try:
                return ops[type(node.ops[0])]()
            except TypeError:
                return UNKNOWN
        if isinstance(node, ast.Name) and fn is not None:
            assigned = [a.value for a in fn.body if isinstance(a, ast.Assign) and len(a.targets) == 1
                        and isinstance(a.targets[0], ast.Name) and a.targets[0].id == node.id]
            return self.value(assigned[0], fn, depth + 1) if len(assigned) == 1 else UNKNOWN
        return UNKNOWN


UNKNOWN = object()


SCORING_NAMES = {"cross_entropy", "log_softmax", "softmax", "nll_loss", "forward_logits", "log_softmax_"}


def find_entries(source: str, settings: Settings | None = None) -> list[Entry]:
    """Eval entry points that take a token stream, final one (last reached from main) marked.

    An entry point is a module-level function named ``*eval*`` with a token-stream parameter that
    computes scores itself or through helpers (cross_entropy, log_softmax, forward_logits, ...)
    and does not hand the stream to another entry point (``run_final_eval`` is not one). With
    ``settings``, an ``if`` whose test they decide follows only the branch the official run takes.
    """
    tree = ast.parse(source)
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}

    def called(fn: ast.FunctionDef) -> list[ast.Call]:
        calls = [c for c in ast.walk(fn) if isinstance(c, ast.Call)]
        return sorted(calls, key=lambda c: (c.lineno, c.col_offset))

    def names(fn: ast.FunctionDef) -> set[str]:
        out = set()
        for n in ast.walk(fn):
            if isinstance(n, ast.Attribute):
                out.add(n.attr)
            elif isinstance(n, ast.Name):
                out.add(n.id)
        return out

    def scores(name: str, depth: int, seen: set[str]) -> bool:
        fn = funcs[name]
        ns = names(fn)
        params = {a.arg for a in fn.args.args}
        model_calls = any(isinstance(c.func, ast.Name) and c.func.id in params and c.func.id in MODEL_PARAMS
                          for c in called(fn))
        if ns & SCORING_NAMES or model_calls:
            return True
        return depth < 3 and any(scores(c, depth + 1, seen | {c}) for c in ns if c in funcs and c not in seen)

    candidates = {}
    for name, fn in funcs.items():
        params = [a.arg for a in fn.args.args + fn.args.kwonlyargs]
        if "eval" in name.lower() and any(p in TOKEN_PARAMS for p in params) and scores(name, 0, {name}):
            candidates[name] = Entry(name, params, fn.lineno)
    entries = {n: e for n, e in candidates.items()
               if not any(isinstance(c.func, ast.Name) and c.func.id in candidates and c.func.id != n for c in called(funcs[n]))}
    # (entry, side) in execution order; side: "" on the main path, "loop" for periodic validation
    # inside the training loop, "else" for the alternative of an if whose body already evaluates.
    order: list[tuple[str, str]] = []

    def reaches(node: ast.AST, depth: int = 0) -> bool:
        for c in ast.walk(node):
            if isinstance(c, ast.Call) and isinstance(c.func, ast.Name):
                if c.func.id in entries or (c.func.id in funcs and depth < 3 and reaches(funcs[c.func.id], depth + 1)):
                    return True
        return False

    calls: dict[str, tuple[ast.Call, ast.FunctionDef]] = {}

    def visit(node: ast.AST, side: str, depth: int, seen: set[str], fn: ast.FunctionDef) -> None:
        if isinstance(node, (ast.For, ast.While, ast.AsyncFor)):
            for child in ast.iter_child_nodes(node):
                visit(child, side or "loop", depth, seen, fn)
            return
        taken = settings.value(node.test, fn) if settings is not None and isinstance(node, ast.If) else UNKNOWN
        if taken is not UNKNOWN:  # the official run takes one branch only
            for b in (node.body if taken else node.orelse):
                visit(b, side, depth, seen, fn)
            return
        if isinstance(node, ast.If) and any(reaches(b) for b in node.body) and node.orelse:
            visit(node.test, side, depth, seen, fn)
            for b in node.body:
                visit(b, side, depth, seen, fn)
            for b in node.orelse:
                visit(b, side or "else", depth, seen, fn)
            return
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            for child in ast.iter_child_nodes(node):
                visit(child, side, depth, seen, fn)
            callee = node.func.id
            if callee in entries:
                order.append((callee, side))
                if not side:
                    calls[callee] = (node, fn)
            elif callee in funcs and callee not in seen and depth < 4:
                for b in funcs[callee].body:
                    visit(b, side, depth + 1, seen | {callee}, funcs[callee])
            return
        for child in ast.iter_child_nodes(node):
            visit(child, side, depth, seen, fn)

    if "main" in funcs:
        for b in funcs["main"].body:
            visit(b, "", 0, {"main"}, funcs["main"])
    result = list(entries.values())
    main_path = [name for name, side in order if not side]
    final = (main_path or [name for name, _ in order] or [e.name for e in result[-1:]] or [None])[-1]
    for e in result:
        e.final = e.name == final
        if e.name in calls:
            call, e.caller = calls[e.name]
            e.call_args = {k.arg: k.value for k in call.keywords if k.arg}
    return sorted(result, key=lambda e: (not e.final, e.line))


# ---------------------------------------------------------------------------------------------
# The capture: position tags through torch and numpy
# ---------------------------------------------------------------------------------------------

class TaggedArray(np.ndarray):
    """A numpy array whose leading dims carry stream positions (``pos``) through ufuncs and slicing."""

    def __array_finalize__(self, obj):
        self.pos = getattr(obj, "pos", None) if obj is not None and getattr(obj, "shape", None) == self.shape else None

    def __getitem__(self, idx):
        out = super().__getitem__(idx)
        if isinstance(out, TaggedArray):
            out.pos = _index_tags(self.pos, idx, out.shape)
        return out

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [i.view(np.ndarray) if isinstance(i, TaggedArray) else i for i in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, TaggedArray) else o for o in kwargs["out"])
        out = getattr(ufunc, method)(*plain, **kwargs)
        tags = next((i.pos for i in inputs if isinstance(i, TaggedArray) and i.pos is not None), None)
        if tags is None:
            return out
        if method == "reduce" and ufunc is np.add and np.ndim(out) == 0 and inputs[0].pos is not None \
                and inputs[0].shape == inputs[0].pos.shape and kwargs.get("axis") in (None, 0) and inputs[0].ndim <= 1:
            CAPTURE.record(inputs[0].pos, np.asarray(plain[0], dtype=np.float64), float(out))
            return out
        if method == "__call__" and isinstance(out, np.ndarray) and out.shape[: tags.ndim] == tags.shape:
            return _tag_np(out, tags)
        return out

    def __array_function__(self, func, types, args, kwargs):
        plain_args = [_untagged(a) for a in args]
        out = func(*plain_args, **kwargs)
        if func is np.concatenate and isinstance(args[0], (list, tuple)) and kwargs.get("axis", 0) == 0:
            return _concatenated(args[0], out)
        tags = next((a.pos for a in args if isinstance(a, TaggedArray) and a.pos is not None), None)
        if func is np.sum and tags is not None and np.ndim(out) == 0:
            a = args[0]
            if isinstance(a, TaggedArray) and a.pos is not None and a.shape == a.pos.shape:
                CAPTURE.record(a.pos, np.asarray(plain_args[0], dtype=np.float64), float(out))
            return out
        if tags is not None and isinstance(out, np.ndarray) and out.shape[: tags.ndim] == tags.shape:
            return _tag_np(out, tags)
        return out

    def sum(self, *a, **k):
        return np.add.reduce(self, *a, **k) if not a and not k else super().sum(*a, **k)


def _untagged(a):
    """A TaggedArray as a plain array, inside a list or tuple too (``np.concatenate([a, b])``):
    one left tagged would dispatch back here without end."""
    if isinstance(a, TaggedArray):
        return a.view(np.ndarray)
    return type(a)(_untagged(x) for x in a) if isinstance(a, (list, tuple)) else a


def _concatenated(parts, out: np.ndarray):
    """Arrays of positions joined along their first axis carry their positions joined."""
    if parts and all(isinstance(p, TaggedArray) and p.pos is not None and p.pos.ndim == 1 for p in parts):
        return _tag_np(out, np.concatenate([p.pos for p in parts]))
    return out


def _tag_np(arr: np.ndarray, tags: np.ndarray) -> TaggedArray:
    t = arr.view(TaggedArray)
    t.pos = tags
    return t


def _index_tags(tags, idx, out_shape):
    """Apply a tensor/array index to the tags (leading dims only); None when it does not map."""
    if tags is None:
        return None
    try:
        if not isinstance(idx, tuple):
            idx = (idx,)
        if any(i is Ellipsis or i is None for i in idx):
            return None
        idx = tuple(np.asarray(i.detach().cpu()) if hasattr(i, "detach") else i for i in idx)
        t = tags[idx[: tags.ndim]]
    except (IndexError, TypeError, ValueError):
        return None
    t = np.asarray(t)
    return t if tuple(out_shape[: t.ndim]) == t.shape else None


@dataclass
class Record:
    pos: np.ndarray
    values: np.ndarray
    total: float
    used: bool = False


class Capture:
    """Collects scoring records while one eval runs (one global instance: the child is single-threaded)."""

    def __init__(self) -> None:
        self.active = False
        self.records: list[Record] = []
        self.adds: list[float] = []
        self.n = 0

    def start(self, n: int) -> None:
        self.active, self.records, self.adds, self.n = True, [], [], n

    def record(self, pos: np.ndarray, values: np.ndarray, total: float) -> None:
        if not self.active:
            return
        pos, values = np.asarray(pos).reshape(-1), np.asarray(values, dtype=np.float64).reshape(-1)
        keep = pos >= 0
        if keep.any():
            self.records.append(Record(pos[keep], values[keep], float(total)))

    def result(self) -> ScoreResult:
        self.active = False
        used = self.scoring(self.records)
        nll = np.full(self.n, np.nan)
        count = np.zeros(self.n, dtype=np.int64)
        for r in used:
            p = r.pos[r.pos < self.n]
            v = r.values[r.pos < self.n]
            first = count[p] == 0
            nll[p[first]] = v[first]
            np.add.at(count, p, 1)
        return ScoreResult(nll=nll, count=count, total_nll=float(sum(r.total for r in used)))

    def scoring(self, records: list[Record]) -> list[Record]:
        """The records that reached the eval's accumulator: added as tensors (``used``), else by value."""
        return [r for r in records if r.used] or self._matched(records)

    def _matched(self, records: list[Record]) -> list[Record]:
        # Records whose value was added to an accumulator by value (float()/python numbers). The
        # eval may have reduced in float32 (a model's mean loss times the count) where the record
        # summed in float64: equal to float32 precision is the same value.
        adds = np.array(sorted(set(self.adds)), dtype=np.float64)
        hit = []
        for r in records:
            if _added(adds, r.total):
                hit.append(r)
            elif r.total != 0 and _added(adds, -r.total):
                # ``loss_sum += float(-np.log(p).sum())``: the sum of log-probabilities, negated after.
                hit.append(Record(r.pos, -r.values, -r.total, True))
        return hit or records


def _added(adds: np.ndarray, total: float) -> bool:
    """Whether ``total`` is one of the values added by value, to float32 precision."""
    return bool(adds.size) and bool(np.any(np.abs(adds - total) <= 1e-6 * max(abs(total), 1.0)))


CAPTURE = Capture()


def _torch_mode():
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    Tensor = torch.Tensor
    shape_ops = {Tensor.reshape, Tensor.view, torch.reshape, Tensor.flatten, torch.flatten, Tensor.squeeze,
                 torch.squeeze, Tensor.unsqueeze, torch.unsqueeze, Tensor.contiguous, Tensor.view_as, Tensor.reshape_as}
    sums = {Tensor.sum, torch.sum}
    adds = {Tensor.__iadd__, Tensor.add_, Tensor.__add__, Tensor.__radd__, torch.add, Tensor.add}
    from_array = {torch.as_tensor, torch.tensor, torch.asarray}

    class Mode(TorchFunctionMode):
        """Propagates position tags (``Mode.tags``: id(tensor) -> (weakref, tags))."""

        def __init__(self) -> None:
            super().__init__()
            self.tags: dict[int, tuple[Any, np.ndarray]] = {}
            self.loss_tags: np.ndarray | None = None  # set while model(x, y) computes its own loss
            self.paused = 0  # depth of model calls in progress: their internals are not tracked
            self.sum_ids: dict[int, Record] = {}

        def tag(self, t, tags: np.ndarray) -> None:
            import weakref

            try:
                ref = weakref.ref(t)
            except TypeError:
                return
            self.tags[id(t)] = (ref, tags)
            if len(self.tags) > 50_000:  # drop entries of dead tensors
                self.tags = {k: v for k, v in self.tags.items() if v[0]() is not None}

        def get(self, t):
            e = self.tags.get(id(t))
            return e[1] if e is not None and e[0]() is t else None

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if self.loss_tags is not None and func is F.cross_entropy and CAPTURE.active:
                self._record_loss(func, args, kwargs)
            if self.paused or not CAPTURE.active:
                return out
            try:
                self._after(func, args, kwargs, out)
            except _Replace as r:  # ``.numpy()`` of a tagged tensor: hand back the tagged ndarray
                return r.value
            except Exception as e:  # never let bookkeeping change what the submission computes
                if DEBUG:
                    raise
                del e
            return out

        def _record_loss(self, func, args, kwargs) -> None:
            tags = self.loss_tags.reshape(-1)
            inp, target = args[0], args[1]
            if inp.dim() != 2 or inp.shape[0] != tags.size:
                return
            kw = {key: v for key, v in kwargs.items() if key != "reduction"}
            vals = func(inp.float(), target, *args[2:], reduction="none", **kw).detach().double().cpu().numpy()
            CAPTURE.record(tags, vals, float(vals[tags >= 0].sum()))

        def _after(self, func, args, kwargs, out) -> None:
            if func in from_array and args and isinstance(args[0], TaggedArray) and args[0].pos is not None \
                    and isinstance(out, Tensor) and tuple(out.shape[: args[0].pos.ndim]) == args[0].pos.shape:
                self.tag(out, args[0].pos)
                return
            if func in adds:
                for a in args[1:2]:
                    rec = self.sum_ids.get(id(a)) if isinstance(a, Tensor) else None
                    if rec is not None:
                        rec.used = True
                    elif isinstance(a, (float, int)) or (isinstance(a, Tensor) and a.dim() == 0):
                        CAPTURE.adds.append(float(a))
            tensors = [a for a in _flat(args, kwargs) if isinstance(a, Tensor)]
            tags = next((g for g in (self.get(a) for a in tensors) if g is not None), None)
            if tags is None:
                return
            src = next(a for a in tensors if self.get(a) is tags)
            if func in (F.cross_entropy, F.nll_loss) and isinstance(out, Tensor) and out.dim() == 0 \
                    and args and src is args[0] and src.dim() == 2 and tags.shape == (src.shape[0],):
                # A reduced loss over tagged rows (``reduction="sum"``): its per-position terms.
                kw = {key: v for key, v in kwargs.items() if key != "reduction"}
                vals = func(src.float(), args[1], *args[2:], reduction="none", **kw).detach().double().cpu().numpy()
                keep = tags >= 0
                if keep.any():
                    rec = Record(tags[keep], vals[keep], float(vals.sum()))
                    CAPTURE.records.append(rec)
                    if kwargs.get("reduction", "mean") == "sum":
                        self.sum_ids[id(out)] = rec
                        self.tag_scalar(out, rec)
                return
            if func in sums and isinstance(out, Tensor) and out.dim() == 0 and src.shape == tags.shape and len(args) == 1 and not kwargs:
                vals = src.detach().to("cpu", copy=True).double().numpy()
                rec = Record(tags.reshape(-1), vals.reshape(-1), float(out))
                keep = rec.pos >= 0
                if keep.any():
                    rec = Record(rec.pos[keep], rec.values[keep], rec.total)
                    CAPTURE.records.append(rec)
                    self.sum_ids[id(out)] = rec
                    self.tag_scalar(out, rec)
                return
            if func is Tensor.numpy and isinstance(out, np.ndarray):
                if out.shape[: tags.ndim] == tags.shape:
                    raise _Replace(_tag_np(out, tags))
                return
            outs = out if isinstance(out, (tuple, list)) else (out,)
            for o in outs:
                if not isinstance(o, Tensor):
                    continue
                if func is Tensor.__getitem__:
                    t = _index_tags(tags, args[1], tuple(o.shape))
                elif func in shape_ops:
                    t = _reshape_tags(tags, tuple(o.shape))
                elif tuple(o.shape[: tags.ndim]) == tags.shape:
                    t = tags
                else:
                    t = None
                if t is not None:
                    self.tag(o, t)

        def tag_scalar(self, out, rec) -> None:
            import weakref

            try:
                weakref.finalize(out, self.sum_ids.pop, id(out), None)
            except TypeError:
                pass

    return Mode()


@contextlib.contextmanager
def _from_numpy_tagged(torch, mode):
    """``torch.from_numpy`` of a tagged array gives a tagged tensor while an eval runs (the function
    does not dispatch through torch function modes, so the module attribute is swapped for the call)."""
    orig = torch.from_numpy

    def from_numpy(arr):
        out = orig(arr)
        if isinstance(arr, TaggedArray) and arr.pos is not None and tuple(out.shape[: arr.pos.ndim]) == arr.pos.shape:
            mode.tag(out, arr.pos)
        return out

    torch.from_numpy = from_numpy
    try:
        yield
    finally:
        torch.from_numpy = orig


def returned_losses(value) -> list[float]:
    """The finite numbers an eval returned (``(val_loss, val_bpb)``, a dict of metrics, one float)."""
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, (list, tuple)):
        value = [value]
    return [float(v) for v in value if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def check_capture(records: list, returned, fn_name: str, rank: int) -> None:
    """Fail closed when the per-position scores captured from one rank's call are not the scores it used.

    A captured mean NLL that is none of the numbers the call returned (its mean loss in nats or bits
    per token; the same total is also accepted) means the probes would judge something other than
    what the submission scores: a ScorerError, never a pass. A call that returns no finite number
    (a rank without windows, an eval that returns nothing) cannot be checked this way.
    """
    numbers = returned_losses(returned)
    if not numbers:
        return
    used = CAPTURE.scoring(records)
    scored = sum(int(r.pos.shape[0]) for r in used)
    if scored == 0:
        raise ScorerError(f"{fn_name} returned {numbers[0]:.6g} as rank {rank} but none of its per-position "
                          "scores could be captured")
    total = sum(r.total for r in used)
    mean = total / scored
    candidates = (mean, mean / math.log(2), total)
    if any(math.isclose(n, c, rel_tol=2e-3, abs_tol=1e-6) for n in numbers for c in candidates):
        return
    raise ScorerError(
        f"the per-position scores captured from {fn_name} as rank {rank} (mean NLL {mean:.6g} nats over "
        f"{scored} scorings) match none of the numbers it returned ({', '.join(f'{n:.6g}' for n in numbers[:4])}): "
        "part of its scoring could not be traced")


class _Replace(Exception):
    def __init__(self, value):
        self.value = value


def _flat(args, kwargs):
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, (list, tuple)):
            yield from a
        else:
            yield a


def _reshape_tags(tags: np.ndarray, shape: tuple) -> np.ndarray | None:
    """Tags for a reshaped tensor: the leading dims of ``shape`` whose product is the tag count."""
    prod = 1
    for k, d in enumerate(shape, start=1):
        prod *= d
        if prod == tags.size:
            return tags.reshape(shape[:k])
        if prod > tags.size:
            break
    return None


# ---------------------------------------------------------------------------------------------
# The pipeline in the child
# ---------------------------------------------------------------------------------------------

@dataclass
class PipelineInfo:
    entry: str
    entries: list[str]
    vocab_size: int
    world_size: int
    stateful: bool
    seq_len: int | None
    stride: int | None
    bos_id: int | None
    hashed_tables: dict[str, int] = field(default_factory=dict)
    build: dict = field(default_factory=dict)


class SubmissionPipeline:
    """The submission's eval entry point on our streams: implements the Scorer protocol in the child."""

    def __init__(self, entry_file: str, *, env: dict | None = None, entry_name: str | None = None,
                 world_size: int = EVAL_WORLD_SIZE, overrides: dict | None = None, seed: int = 0,
                 seq_env: bool = True, launch_env: dict | None = None) -> None:
        import torch

        from harness.drivers import _prepare
        from harness.loader import parsable_source, read_source

        torch.manual_seed(seed)
        self.module, self.model, self.hparams, build = _prepare(
            {"entry": entry_file, "small": True, "env": {**(PROBE_ENV if seq_env else {}), **(env or {})},
             "launch_env": launch_env})
        source = parsable_source(read_source(entry_file)[0], entry_file)
        self.settings = Settings(self.hparams)
        entries = find_entries(source, self.settings)
        if not entries:
            raise ScorerError("no eval entry point taking a token stream (eval_val*(..., val_tokens, ...)) found")
        chosen = next((e for e in entries if e.name == entry_name), None) if entry_name else entries[0]
        if chosen is None:
            raise ScorerError(f"no eval entry point named {entry_name!r}")
        self.entry = chosen
        self.param_attrs = _param_attrs(source, chosen.name)
        for k, v in (overrides or {}).items():
            setattr(self.hparams, k, v)
        self.randomized = _randomize_zeros(self.model, seed)
        self._attach(getattr(self.module, chosen.name), [e.name for e in entries], world_size=world_size,
                     launch_env=launch_env, seed=seed, source=source, build=build)

    def _attach(self, fn, entries: list[str], *, world_size: int, launch_env: dict | None, seed: int,
                source: str, build: dict) -> None:
        """Wrap ``self.model`` (logits tagged by stream position) for scoring with the eval ``fn``.

        Separate from the build so that a model built elsewhere (by the submission's own main(),
        harness/pipeline_run.py) is captured the same way."""
        self.fn = fn
        self.vocab_size = int(getattr(self.hparams, "vocab_size", 0) or 1024)
        self.bos_id = _bos_id(self.module)
        self.world_size = world_size
        # Ranks of the official launch: each holds its own share of the stream in its caches.
        self.launch_world_size = max(1, int(float((launch_env or {}).get("WORLD_SIZE", 8))))
        self.model.eval()
        self.params = list(self.model.parameters())
        self.snapshot = copy.deepcopy(self.model.state_dict())
        self.base_versions = [p._version for p in self.params]
        self.cache: dict[bytes, Any] = {}
        self.mode = _torch_mode()
        self.luts = _luts(self.vocab_size, seed)
        self.watch: set[int] = set()
        self.watched: list[tuple[int, np.ndarray]] = []
        self.rank_watched: list[int] = []  # the rank whose call produced each watched row
        self.current_rank = 0
        self.forwards = 0
        self.rank_plan: dict[int, list[int]] = {}  # stream length -> ranks that score something
        self.rank_owner: dict[int, np.ndarray] = {}  # stream length -> the rank scoring each position first
        self.stream: np.ndarray | None = None
        self._wrap_model()
        self.info = PipelineInfo(
            entry=fn.__name__, entries=entries, vocab_size=self.vocab_size, world_size=world_size,
            stateful=False, seq_len=_int_attr(self.hparams, ("eval_seq_len", "train_seq_len")),
            stride=_int_attr(self.hparams, ("eval_stride", "stride")), bos_id=self.bos_id,
            hashed_tables=hashed_tables(self.hparams, source), build=build)
        self.table_descriptors = install_table_sizes(self.module, self.info.hashed_tables)

    # -- model wrapper: locate rows, tag logits, cache pristine forwards, watch positions -------
    def _wrap_model(self) -> None:
        import torch

        model = self.model
        for name in ("forward_logits", "forward"):
            orig = getattr(model, name, None)
            if orig is None or not callable(orig):
                continue
            setattr(model, name, self._wrapped(orig, torch, arg=0))
        # Module-level ``forward_logits(model, input_ids)`` helpers some evals call instead.
        for name, fn in list(vars(self.module).items()):
            if inspect.isfunction(fn) and "logits" in name.lower() and fn.__module__ == self.module.__name__:
                params = list(inspect.signature(fn).parameters)
                if len(params) >= 2 and params[0].lower() in MODEL_PARAMS:
                    setattr(self.module, name, self._wrapped(fn, torch, arg=1))

    def _wrapped(self, orig, torch, arg: int):
        """The model call, with pristine-weight forwards cached and outputs tagged by stream position."""

        def call(*args, **k):
            input_ids = args[arg] if len(args) > arg else None
            extra = args[arg + 1:]
            grad = torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
            self.mode.paused += 1
            try:
                pristine = not grad and not self.model.training and self._pristine()
                if pristine and not extra and not k and isinstance(input_ids, torch.Tensor):
                    key = orig.__name__.encode() + str(tuple(input_ids.shape)).encode() + input_ids.detach().cpu().numpy().tobytes()
                    hit = self.cache.get(key)
                    if hit is not None:
                        out = hit.clone()
                    else:
                        out = orig(*args)
                        self.forwards += 1
                        if len(self.cache) < 4096 and isinstance(out, torch.Tensor):
                            self.cache[key] = out.detach().clone()
                elif not grad and extra and isinstance(input_ids, torch.Tensor) and isinstance(extra[0], torch.Tensor):
                    out = self._loss_forward(orig, args, k, input_ids, torch)
                else:
                    out = orig(*args, **k)
                    self.forwards += 1
                if grad:
                    self.info.stateful = True
            finally:
                self.mode.paused -= 1
            if not grad and isinstance(out, torch.Tensor) and out.dim() == 3 and isinstance(input_ids, torch.Tensor):
                tags = self._row_tags(input_ids)
                if tags is not None:
                    self.mode.tag(out, tags)
                    if self.watch:
                        hit = np.isin(tags, list(self.watch))
                        for r, c in zip(*np.nonzero(hit)):
                            self.watched.append((int(tags[r, c]), out[r, c].detach().float().cpu().numpy().copy()))
                            self.rank_watched.append(self.current_rank)
            return out

        call.__name__ = getattr(orig, "__name__", "forward")
        return call

    def _loss_forward(self, orig, args, k, input_ids, torch):
        """``model(x, y)`` returning a reduced loss: the mode records the per-position NLL of its cross_entropy."""
        self.mode.loss_tags = self._row_tags(input_ids)
        try:
            out = orig(*args, **k)
        finally:
            self.mode.loss_tags = None
        self.forwards += 1
        return out

    def _pristine(self) -> bool:
        return all(p._version == v for p, v in zip(self.params, self.base_versions))

    def _row_tags(self, x) -> np.ndarray | None:
        """Target index predicted at each (row, column) of a model input, -1 where not a stream slice."""
        s = self.stream
        if s is None:
            return None
        xs = x.detach().cpu().numpy()
        if xs.ndim != 2:
            return None
        n = s.shape[0] - 1
        tags = np.full(xs.shape, -1, dtype=np.int64)
        k = min(4, xs.shape[1])
        for r in range(xs.shape[0]):
            ws = self._locate(xs[r], k)
            if ws is None:
                continue
            m = min(xs.shape[1], n - ws)
            eq = xs[r, :m] == s[ws : ws + m]
            bad = np.nonzero(~eq)[0]
            m = int(bad[0]) if bad.size else m
            tags[r, :m] = ws + np.arange(m)
        return tags

    def _locate(self, row: np.ndarray, k: int) -> int | None:
        key = row[:k].tobytes()
        cands = self._index.get(key, [])
        if not cands:
            # A window of the last k-1 targets or fewer, padded after the stream's end.
            n = self.stream.shape[0] - 1
            cands = [ws for ws in range(max(0, n - k + 1), n) if np.array_equal(row[: n - ws], self.stream[ws:n])]
        if len(cands) <= 1:
            return cands[0] if cands else None
        # Several starts share the first k tokens: take the one matching the longest prefix; at equal
        # length, the one whose match runs to the end of the stream (a tail window, padded after it).
        best, best_key, tie = None, (-1, False), False
        inputs = self.stream[:-1]  # model inputs never hold the last token (it is only a target)
        for ws in cands:
            seg = inputs[ws : ws + row.shape[0]]
            eq = seg == row[: seg.shape[0]]
            ln = int(np.argmin(eq)) if not eq.all() else seg.shape[0]
            key = (ln, ln == seg.shape[0] < row.shape[0])
            if key > best_key:
                best, best_key, tie = ws, key, False
            elif key == best_key:
                tie = True
        return None if tie else best

    # -- Scorer protocol ------------------------------------------------------------------------
    def score(self, tokens: np.ndarray, watch: tuple[int, ...] = ()) -> ScoreResult:
        import torch

        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 1 or tokens.shape[0] < 2:
            raise ScorerError("a stream needs at least 2 tokens")
        if tokens.min() < 0 or tokens.max() >= self.vocab_size:
            raise ScorerError(f"stream tokens must lie in [0, {self.vocab_size})")
        self.stream = tokens
        k = 4
        self._index: dict[bytes, list[int]] = {}
        for ws in range(tokens.shape[0] - 1):
            self._index.setdefault(tokens[ws : ws + k].tobytes(), []).append(ws)
        self.watch, self.watched, self.rank_watched = set(watch), [], []
        val = torch.from_numpy(tokens.copy())
        length = tokens.shape[0]
        CAPTURE.start(length - 1)
        returned, spans, errors = [], [], []
        try:
            with self.mode, _from_numpy_tagged(torch, self.mode):
                plan = self._plan(length, watch)
                for rank in plan:
                    self._restore()
                    self.current_rank = rank
                    before = len(CAPTURE.records)
                    try:
                        returned.append(self._call(val, rank))
                    except ScorerError:
                        raise
                    except Exception as e:
                        # A rank with no windows of a short stream may divide by its zero count
                        # (the real run all-reduces first); a rank that scored and then failed is fine too.
                        returned.append(None)
                        errors.append((rank, len(CAPTURE.records) > before, e))
                    spans.append((rank, before, len(CAPTURE.records), returned[-1]))
            self._learn_ranks(length, spans)
            if errors and len(errors) == len(plan) and not CAPTURE.records:
                rank, _, e = errors[0]
                raise ScorerError(f"{self.fn.__name__} raised on every rank: {type(e).__name__}: {str(e)[:160]}")
            for rank, first, end, value in spans:
                check_capture(CAPTURE.records[first:end], value, self.fn.__name__, rank)
        finally:
            res = CAPTURE.result()
            self.stream = None
        if not res.count.any():
            raise ScorerError(f"no per-position score of {self.fn.__name__} could be captured (its scores never "
                              "reached an accumulator through a traced operation)")
        res.returned = returned  # type: ignore[attr-defined]
        # Logits at a watched position count from the rank that scores it (another rank may see the
        # position as context after its own updates, as its own process would).
        owner = self.rank_owner.get(length)
        res.watched = [w for w, r in zip(self.watched, self.rank_watched)  # type: ignore[attr-defined]
                       if owner is None or owner[w[0]] in (-1, r)]
        return res

    def _plan(self, length: int, watch) -> list[int]:
        """The ranks to run on a stream of ``length``: every rank with windows, or, when only some
        positions are watched (a sweep), just the ranks that score them."""
        owner = self.rank_owner.get(length)
        if watch and owner is not None:
            ranks = {int(owner[t]) for t in watch if 0 <= t < owner.shape[0]}
            if ranks and -1 not in ranks:
                return sorted(ranks)
        return list(self.rank_plan.get(length, range(self.world_size)))

    def _learn_ranks(self, length: int, spans) -> None:
        # Which rank scores which position depends on the stream length only (the windows are
        # split by index): later streams of this length skip idle ranks, and sweeps run one rank.
        if length in self.rank_plan:
            return
        owner = np.full(length - 1, -1, dtype=np.int64)
        scored = []
        for rank, first, end, _ in spans:
            for rec in CAPTURE.records[first:end]:
                p = rec.pos[rec.pos < length - 1]
                owner[p] = np.where(owner[p] == -1, rank, owner[p])
            if end > first:
                scored.append(rank)
        if scored:
            self.rank_plan[length] = scored
            self.rank_owner[length] = owner

    def score_many(self, streams: list[np.ndarray], watch: tuple[int, ...] = ()) -> list[ScoreResult]:
        return [self.score(s, watch) for s in streams]

    def _restore(self) -> None:
        if not self._pristine():
            self.model.load_state_dict(self.snapshot)
            self.base_versions = [p._version for p in self.params]
        self.model.eval()

    def _call(self, val, rank: int):
        import torch

        self._rank_hparams(rank)
        sig = inspect.signature(self.fn)
        bound = {}
        for name, p in sig.parameters.items():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            value = self._bind(name, p, val, rank, torch)
            if value is _MISSING:
                if p.default is inspect.Parameter.empty:
                    raise ScorerError(f"cannot bind parameter {name!r} of {self.fn.__name__}")
                continue
            bound[name] = value
        out = self.fn(**bound)
        return _plain(out)

    def _bind(self, name: str, p, val, rank: int, torch):
        lname = name.lower()
        if lname in TOKEN_PARAMS and "val_tokens" in getattr(self, "param_attrs", {}).get(name, ()):
            return self._data_view(name, val)  # a validation-data object (val_data.val_tokens, its LUTs)
        if lname in TOKEN_PARAMS:
            return val
        if lname in HPARAM_PARAMS:
            return self.hparams
        if lname in MODEL_PARAMS:
            return self.model
        if lname in ("rank", "local_rank", "global_rank"):
            return rank
        if lname in ("world_size", "num_ranks"):
            return self.world_size
        if lname == "device":
            return torch.device("cpu")
        if lname in LOG_PARAMS:
            return lambda *a, **k: None
        if lname == "grad_accum_steps":
            return 1  # 8 // WORLD_SIZE on the official launch
        if lname == "master_process":
            return rank == 0
        if "lut" in lname:
            for key, lut in self.luts.items():
                if key in lname:
                    return lut
            if lname == "luts":
                return tuple(self.luts.values())
        if lname in ("stride", "eval_stride"):
            return self.info_stride_default(p)
        if lname in ("seq_len", "eval_seq_len", "train_seq_len"):
            v = _int_attr(self.hparams, (lname, "eval_seq_len", "train_seq_len"))
            return v if v is not None else _MISSING
        if lname == "vocab_size":
            return self.vocab_size
        entry = getattr(self, "entry", None)  # none when main() calls the eval itself (pipeline_run)
        if entry is not None and name in entry.call_args:  # what the official run's call passes (ttt_chunk_tokens=ttt_chunk)
            v = self.settings.value(entry.call_args[name], entry.caller)
            if v is not UNKNOWN:
                return v
        if p.default is not inspect.Parameter.empty:
            return _MISSING
        v = getattr(self.hparams, lname, _MISSING)
        return v

    def _rank_hparams(self, rank: int) -> None:
        """Hyperparameters that carry the process's place in the launch (``h.rank``, ``h.world_size``,
        ``h.local_rank``, ``h.is_main_process``: set from the environment in records that keep them
        there) say this rank's, as that process's own would."""
        values = {"rank": rank, "local_rank": rank % max(1, self.launch_world_size), "world_size": self.world_size,
                  "is_main_process": rank == 0, "master_process": rank == 0, "distributed": self.world_size > 1}
        for attr, v in values.items():
            if attr in vars(self.hparams) or attr in vars(type(self.hparams)):
                setattr(self.hparams, attr, v)

    def _data_view(self, name: str, val):
        """The object a ``val_data`` parameter stands for: the stream as ``val_tokens`` and each
        ``*_lut`` attribute the eval reads from it as our LUT of that name."""
        from types import SimpleNamespace

        view = SimpleNamespace(val_tokens=val)
        for attr in self.param_attrs.get(name, ()):
            lut = next((v for k, v in self.luts.items() if attr.startswith(k) and "lut" in attr), None)
            if lut is not None:
                setattr(view, attr, lut)
        return view

    def info_stride_default(self, p):
        v = _int_attr(self.hparams, ("eval_stride", "stride"))
        if v is not None:
            return v
        return _MISSING


_MISSING = object()


def _param_attrs(source: str, fn_name: str) -> dict[str, set[str]]:
    """parameter -> the attributes the module-level function ``fn_name`` reads from it."""
    fn = next((n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == fn_name), None)
    if fn is None:
        return {}
    params = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
    out: dict[str, set[str]] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in params:
            out.setdefault(node.value.id, set()).add(node.attr)
    return out


def _randomize_zeros(model, seed: int) -> list[str]:
    """Give zero-initialized parameters (output projections, gates) small random values.

    Many GPTs start their residual projections and gates at zero, which makes a freshly built
    model predict each position from its own token alone: no information would flow along the
    sequence, and a probe of causality would have nothing to see. Returns the names changed.
    """
    import torch

    gen = torch.Generator().manual_seed(seed + 1)
    changed = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.is_floating_point() and p.numel() and not p.any():
                fan_in = p.shape[-1] if p.dim() >= 2 else 1
                std = (0.5 / math.sqrt(fan_in)) if p.dim() >= 2 else 0.5
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.dtype) * std)
                changed.append(name)
    return changed


def _plain(out):
    if isinstance(out, (tuple, list)):
        return [_plain(o) for o in out]
    if hasattr(out, "item") and getattr(out, "ndim", 1) == 0:
        return float(out.item())
    if isinstance(out, (int, float)):
        return float(out)
    if isinstance(out, dict):
        return {str(k): _plain(v) for k, v in out.items() if isinstance(v, (int, float)) or hasattr(v, "item")}
    return None


def _int_attr(obj, names) -> int | None:
    for n in names:
        v = getattr(obj, n, None)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return int(v)
    return None


def _bos_id(module) -> int | None:
    for name in ("BOS_ID", "bos_id", "BOS_TOKEN_ID", "BOS"):
        v = getattr(module, name, None)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    hp = getattr(module, "Hyperparameters", None)
    v = getattr(hp, "bos_id", None)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


HASHED_TABLE_ATTR = re.compile(r"(bucket|hash_size|table_size|hash_bits|num_buckets)", re.I)
# A table size read from the environment inside the code (``int(os.environ.get("NGRAM_BUCKETS",
# "4194304"))`` in the eval) is named by this prefix and the variable: "$NGRAM_BUCKETS".
ENV_TABLE = "$"


def hashed_tables(hparams, source: str | None = None) -> dict[str, int]:
    """Sizes of hashed tables (n-gram buckets, hint tables): hyperparameter name -> value, and
    ``$VAR`` -> value for each environment variable the source reads a table size from."""
    out = {}
    for name in dir(hparams):
        if name.startswith("_") or not HASHED_TABLE_ATTR.search(name):
            continue
        v = getattr(hparams, name, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 1:
            out[name] = v
    if source is not None:
        out.update(env_tables(source))
        out.update(class_tables(source))
    return out


def env_tables(source: str) -> dict[str, int]:
    """``$VAR`` -> size for every ``os.environ.get("VAR", default)`` / ``os.getenv`` / ``os.environ["VAR"]``
    whose name sizes a hashed table, valued as the running environment (the launch's) or the default."""
    import os

    out = {}
    for node in ast.walk(ast.parse(source)):
        var, default = _env_read(node)
        if var is None or not HASHED_TABLE_ATTR.search(var):
            continue
        raw = os.environ.get(var, default)
        try:
            v = int(float(raw)) if raw is not None else None
        except (TypeError, ValueError):
            continue
        if v is not None and v > 1:
            out[ENV_TABLE + var] = v
    return out


def _env_read(node) -> tuple[str | None, str | None]:
    """(variable, default as text) of an environment read, else (None, None)."""
    def is_environ(n) -> bool:
        return isinstance(n, ast.Attribute) and n.attr == "environ" or isinstance(n, ast.Name) and n.id == "environ"

    def const(n):
        return n.value if isinstance(n, ast.Constant) and isinstance(n.value, (str, int, float)) else None

    if isinstance(node, ast.Call) and node.args and isinstance(const(node.args[0]), str):
        f = node.func
        getter = (isinstance(f, ast.Attribute) and f.attr == "get" and is_environ(f.value)) or \
                 (isinstance(f, ast.Attribute) and f.attr == "getenv") or (isinstance(f, ast.Name) and f.id == "getenv")
        if getter:
            d = const(node.args[1]) if len(node.args) > 1 else None
            return node.args[0].value, None if d is None else str(d)
    if isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(const(node.slice), str):
        return node.slice.value, None
    return None, None


def class_tables(source: str) -> dict[str, int]:
    """``Class.ATTR`` -> size for every ``self.ATTR = <int>`` in a class's ``__init__`` whose name sizes
    a hashed table (a cache object built inside the eval: ``self.BUCKETS = 4_194_304``)."""
    out = {}
    for cls in ast.parse(source).body:
        if not isinstance(cls, ast.ClassDef):
            continue
        for fn in cls.body:
            if not (isinstance(fn, ast.FunctionDef) and fn.name == "__init__"):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, ast.Assign) or len(node.targets) != 1:
                    continue
                t = node.targets[0]
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self" \
                        and HASHED_TABLE_ATTR.search(t.attr):
                    v = _int_constant(node.value)
                    if v is not None and v > 1:
                        out[f"{cls.name}.{t.attr}"] = v
    return out


def _int_constant(node) -> int | None:
    """An int literal or a constant expression of them (``1 << 22``, ``2 ** 20``, ``4 * 1024``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if not isinstance(node, ast.BinOp):
        return None
    a, b = _int_constant(node.left), _int_constant(node.right)
    if a is None or b is None:
        return None
    if isinstance(node.op, ast.Mult):
        return a * b
    if isinstance(node.op, (ast.LShift, ast.Pow)) and 0 <= b <= 64:
        return a << b if isinstance(node.op, ast.LShift) else a ** b
    return None


class TableSize:
    """A class attribute that answers for ``self.ATTR`` on every instance: the value ``__init__``
    assigns, or, while a what-if is in force, the size the probe chose (installed by the pipeline
    on the classes ``class_tables`` names, so the table is built at that size)."""

    def __init__(self, name: str) -> None:
        self.name, self.override = name, None

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return self.override if self.override is not None else obj.__dict__.get(self.name)

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.name] = value


def install_table_sizes(module, tables: dict[str, int]) -> dict[str, TableSize]:
    """A TableSize on each ``Class.ATTR`` of ``tables`` that the module defines."""
    out = {}
    for key in tables:
        cls_name, _, attr = key.partition(".")
        cls = getattr(module, cls_name, None)
        if isinstance(cls, type) and attr:
            out[key] = TableSize(attr)
            setattr(cls, attr, out[key])
    return out


@contextlib.contextmanager
def sized_tables(pipe, sizes: dict[str, int]):
    """Hashed tables of ``pipe`` resized for the duration (hyperparameters set, ``$VAR`` exported,
    ``Class.ATTR`` answered by its TableSize), then restored."""
    import os

    hparams = pipe.hparams
    descriptors = getattr(pipe, "table_descriptors", {})
    saved_attrs, saved_env, saved_cls = {}, {}, {}
    try:
        for k, v in sizes.items():
            if k in descriptors:
                saved_cls[k] = descriptors[k].override
                descriptors[k].override = v
            elif k.startswith(ENV_TABLE):
                saved_env[k[1:]] = os.environ.get(k[1:])
                os.environ[k[1:]] = str(v)
            else:
                saved_attrs[k] = getattr(hparams, k)
                setattr(hparams, k, v)
        yield
    finally:
        for k, v in saved_attrs.items():
            setattr(hparams, k, v)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for k, v in saved_cls.items():
            descriptors[k].override = v


def collapsed(tables: dict[str, int]) -> dict[str, int]:
    """The what-if configuration: every hashed table down to a single bucket (``*_bits`` to 0)."""
    return {k: (0 if "bits" in k.lower() else 1) for k in tables}


def loaded(tables: dict[str, int], stream_len: int, inserted_per_rank: float) -> dict[str, int]:
    """Every hashed table sized so that a stream of ``stream_len`` tokens fills it as the official run
    fills the full-size table with its ``inserted_per_rank`` tokens (the same entries per bucket, so
    the same share of colliding keys): a power of two, at least one bucket; ``*_bits`` accordingly."""
    out = {}
    for k, size in tables.items():
        bits = "bits" in k.lower()
        buckets = (1 << size) if bits else size
        scaled = max(1.0, buckets * stream_len / max(inserted_per_rank, 1.0))
        p = max(0, round(math.log2(scaled)))
        out[k] = p if bits else min(1 << p, buckets)
    return out


def _luts(vocab: int, seed: int) -> dict[str, Any]:
    """Byte LUTs for the probe vocabulary: ids 0-3 are control pieces, about half the rest start a word."""
    import torch

    rng = np.random.default_rng(seed + 17)
    base = rng.integers(1, 6, size=vocab).astype(np.int16)
    lead = rng.random(vocab) < 0.5
    boundary = np.zeros(vocab, dtype=np.bool_)
    boundary[: min(4, vocab)] = True
    base[boundary] = 0
    lead[boundary] = False
    return {
        "base_bytes": torch.tensor(base, dtype=torch.int16),
        "has_leading_space": torch.tensor(lead, dtype=torch.bool),
        "is_boundary": torch.tensor(boundary, dtype=torch.bool),
    }


# ---------------------------------------------------------------------------------------------
# Sandbox driver and the parent-side Scorer
# ---------------------------------------------------------------------------------------------

def score_streams(args: dict) -> dict:
    """Driver: score a batch of streams (each from a fresh pipeline state) in one child."""
    t0 = time.perf_counter()
    pipe = SubmissionPipeline(args["entry"], env=args.get("env"), entry_name=args.get("entry_name"),
                              world_size=int(args.get("world_size", EVAL_WORLD_SIZE)),
                              overrides=args.get("overrides"), seed=int(args.get("seed", 0)),
                              launch_env=args.get("launch_env"))
    t1 = time.perf_counter()
    out = []
    for s in args["streams"]:
        r = pipe.score(np.asarray(s, dtype=np.int64))
        out.append({"nll": r.nll, "count": r.count, "total_nll": r.total_nll})
    return {"results": out, "entry": pipe.info.entry, "vocab_size": pipe.vocab_size, "forwards": pipe.forwards,
            "setup_s": t1 - t0, "score_s": time.perf_counter() - t1}


class SandboxedSubmissionScorer:
    """Parent-side Scorer: each ``score_many`` batch is one sandbox call (one import, one model build)."""

    def __init__(self, sub, *, python: str | None = None, env: dict | None = None, world_size: int = EVAL_WORLD_SIZE,
                 entry_name: str | None = None, seed: int = 0, limits=None, launch=None) -> None:
        if sub.entry is None:
            raise ScorerError("the submission has no train_gpt.py to evaluate")
        self.sub, self.python, self.env, self.world_size = sub, python, env, world_size
        self.launch_env = dict(launch.env) if launch is not None else None  # harness.launch.Launch
        self.entry_name, self.seed, self.limits = entry_name, seed, limits
        self.vocab_size = int((env or {}).get("VOCAB_SIZE", PROBE_ENV["VOCAB_SIZE"]))
        self.bos_id = None
        self.last: dict = {}

    def score(self, tokens: np.ndarray) -> ScoreResult:
        return self.score_many([tokens])[0]

    def score_many(self, streams: list[np.ndarray]) -> list[ScoreResult]:
        from harness.sandbox import Limits, run_sandboxed

        rel = self.sub.rel(self.sub.entry)
        r = run_sandboxed("harness.submission_scorer:score_streams",
                          {"entry": f"$SUBMISSION/{rel}", "streams": [np.asarray(s, dtype=np.int64).tolist() for s in streams],
                           "env": self.env, "world_size": self.world_size, "entry_name": self.entry_name, "seed": self.seed,
                           "launch_env": self.launch_env},
                          copy_dir=self.sub.root, python=self.python, limits=self.limits or Limits(threads=1))
        if not r.ok:
            raise ScorerError(f"scoring in the sandbox failed: {r.error}")
        self.last = {k: v for k, v in r.value.items() if k != "results"}
        return [ScoreResult(nll=d["nll"], count=d["count"], total_nll=float(d["total_nll"])) for d in r.value["results"]]


def bits(nats: float) -> float:
    return nats / math.log(2.0)
