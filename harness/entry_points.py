"""Finding a submission's eval entry points, statically (``ast``; no code runs).

``find_entries`` reads the source: every module-level function whose name contains ``eval`` and
that takes a token stream (``val_tokens``, ``tokens``, ...) is an eval entry point; the *final*
one is the last such function reached from ``main()`` in call order (``main`` ->
``run_final_eval`` -> ``eval_val_ttt``), i.e. the one whose number the log prints last.
``Settings`` evaluates the expressions of the official run (hyperparameters, call-site keyword
arguments) that decide which branch calls which entry point. The parameter-name tables say what
the pipeline binds to each parameter (harness/submission_scorer.py).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

# Parameter names of an eval entry point, by what the pipeline binds to them.
TOKEN_PARAMS = ("val_tokens", "tokens", "val_data", "val_ids", "token_ids", "stream")
HPARAM_PARAMS = ("args", "h", "hparams", "hp", "hyperparameters", "cfg", "config")
MODEL_PARAMS = ("base_model", "model", "eval_model", "raw_model", "net", "gpt", "ema_model")
LOG_PARAMS = ("log0", "log", "log_fn", "logger", "print_fn")


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
    # Which element of the tuple it returns the official run prints as its val_bpb (``sw_loss, sw_bpb,
    # ng_bpb = eval_val_sliding(...)`` then ``log0(f"... val_bpb:{ng_bpb:.4f}")``): 2. None when the
    # call's result is not unpacked into names or no such print is found.
    claimed: int | None = None


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
            var, default = env_read(node)
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
            e.claimed = claimed_index(call, e.caller)
    return sorted(result, key=lambda e: (not e.final, e.line))


CLAIM_LABEL = re.compile(r"\bval_bpb\s*[:=]\s*$")


def claimed_index(call: ast.Call, caller: ast.FunctionDef) -> int | None:
    """The element of ``call``'s returned tuple that ``caller`` prints after ``val_bpb:`` (the number
    the run's log claims), when the result is unpacked into names (``a, b, c = call``)."""
    targets = next((a.targets[0].elts for a in ast.walk(caller) if isinstance(a, ast.Assign) and a.value is call
                    and len(a.targets) == 1 and isinstance(a.targets[0], (ast.Tuple, ast.List))), None)
    if not targets or not all(isinstance(t, ast.Name) for t in targets):
        return None
    names = [t.id for t in targets]
    for fs in ast.walk(caller):
        if not isinstance(fs, ast.JoinedStr) or fs.lineno < call.lineno:
            continue
        for before, part in zip(fs.values, fs.values[1:]):
            if isinstance(before, ast.Constant) and isinstance(before.value, str) and CLAIM_LABEL.search(before.value) \
                    and isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name) and part.value.id in names:
                return names.index(part.value.id)
    return None


def env_read(node) -> tuple[str | None, str | None]:
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
