"""Build a submission's model the way its ``main()`` does, and get logits out of it.

``find_construction`` reads the source with libcst (no code runs): it finds the call in ``main()``
that constructs the model (``base_model = GPT(vocab_size=args.vocab_size, ...)``), following
helper functions that main calls (``build_model(args)``, ``train_and_eval(h, device)``), and
records the argument expressions and the local names they depend on.

``build_model`` runs in the sandboxed child only: it evaluates those expressions against the
imported module, the Hyperparameters instance and main's simple local assignments, and calls the
constructor. ``logits_fn`` returns a function ``input_ids (B, T) -> logits (B, T, V)``: the
model's ``forward_logits`` when it has one; otherwise the model's own ``forward`` runs and the
logits are taken where they enter the loss (the baseline's forward returns only the loss).
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from harness import AuditError

MAX_HELPER_DEPTH = 3
PREFERRED_TARGETS = ("base_model", "model", "raw_model", "gpt")
# Names main() usually derives from the launch; bound to a single local rank.
LAUNCH_LOCALS = {"rank": 0, "world_size": 1, "local_rank": 0, "master_process": True, "distributed": False,
                 "grad_accum_steps": 1}
# Smaller model for a CPU forward: the Hyperparameters read these env vars in most records.
SMALL_ENV = {"NUM_LAYERS": "2", "MODEL_DIM": "64", "NUM_HEADS": "4", "NUM_KV_HEADS": "2",
             "TRAIN_SEQ_LEN": "64", "EVAL_SEQ_LEN": "64", "BIGRAM_VOCAB_SIZE": "64", "BIGRAM_DIM": "16",
             "VE_DIM": "16", "XSA_LAST_N": "1", "MLP_MULT": "2"}


class BuildError(AuditError):
    """The model cannot be constructed the way main() does."""


# Packages that only ship GPU kernels (CUDA / Triton) for the layers they provide: a model built
# from them has no PyTorch path to run on CPU.
GPU_ONLY_PACKAGES = {
    "mamba_ssm": "Mamba SSM: CUDA/Triton kernels only",
    "causal_conv1d": "CUDA kernels only",
    "selective_scan_cuda": "CUDA extension",
}


def gpu_only_reason(e: BaseException) -> str | None:
    """A one-line reason when ``e`` is the import of a GPU-only kernel package, else None."""
    if isinstance(e, ModuleNotFoundError) and e.name:
        root = e.name.split(".")[0]
        if root in GPU_ONLY_PACKAGES:
            return f"needs GPU: model layers from {root} ({GPU_ONLY_PACKAGES[root]}; no PyTorch path, not installed)"
    return None


@dataclass
class Scope:
    """One function on the path main() -> ... -> constructor call."""

    name: str
    params: list[str]
    bindings: dict[str, str]  # parameter -> argument expression in the caller's scope
    assigns: dict[str, str]  # simple local assignments ``name = expr`` before the call


@dataclass
class Construction:
    """How main() constructs the model, as source expressions."""

    callee: str  # class name in the module
    target: str | None  # the variable it is assigned to
    args: list[str]
    kwargs: dict[str, str]
    line: int
    scopes: list[Scope] = field(default_factory=list)  # outermost (main) first

    def describe(self) -> str:
        parts = self.args + [f"{k}={v}" for k, v in self.kwargs.items()]
        text = ", ".join(parts)
        return f"{self.callee}({text[:160]}{'...' if len(text) > 160 else ''}) at line {self.line}"


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _base_names(cls: cst.ClassDef) -> list[str]:
    out = []
    for b in cls.bases:
        v = b.value
        while isinstance(v, cst.Attribute):
            out.append(v.attr.value)
            v = v.value
        if isinstance(v, cst.Name):
            out.append(v.value)
    return out


class _Index:
    def __init__(self, source: str):
        try:
            self.wrapper = MetadataWrapper(cst.parse_module(source))
        except cst.ParserSyntaxError as e:
            raise BuildError(f"cannot parse the submission: {str(e).splitlines()[0][:120]}") from None
        self.positions = self.wrapper.resolve(PositionProvider)
        module = self.wrapper.module
        self.functions = {n.name.value: n for n in module.body if isinstance(n, cst.FunctionDef)}
        classes = {n.name.value: n for n in module.body if isinstance(n, cst.ClassDef)}
        # ``class GPT(GPT):`` redefines a class on top of its earlier definition: it inherits those bases.
        earlier: dict[str, list[str]] = {}
        for n in module.body:
            if isinstance(n, cst.ClassDef):
                own = [b for b in _base_names(n) if b != n.name.value]
                earlier[n.name.value] = earlier.get(n.name.value, []) + own
        self.modules = set()
        changed = True
        while changed:  # classes deriving (transitively) from nn.Module
            changed = False
            for name, c in classes.items():
                bases = [b for b in _base_names(c) if b != name] + (earlier[name] if name in _base_names(c) else [])
                if name not in self.modules and any(b == "Module" or b in self.modules for b in bases):
                    self.modules.add(name)
                    changed = True
        # A component is a module class another module class instantiates; the model is not.
        self.components = set()
        for name in self.modules:
            for call in _calls(classes[name]):
                callee = _callee(call)
                if callee in self.modules and callee != name:
                    self.components.add(callee)

    def line(self, node: cst.CSTNode) -> int:
        return self.positions[node].start.line


def _calls(node: cst.CSTNode) -> list[cst.Call]:
    out: list[cst.Call] = []

    class V(cst.CSTVisitor):
        def visit_Call(self, n: cst.Call) -> None:
            out.append(n)

    node.visit(V())
    return out


def _callee(call: cst.Call) -> str | None:
    return call.func.value if isinstance(call.func, cst.Name) else None


def _statements(fn: cst.FunctionDef):
    """Simple statements of a function body in source order, nested blocks included."""
    out = []

    class V(cst.CSTVisitor):
        def visit_SimpleStatementLine(self, n: cst.SimpleStatementLine) -> None:
            out.append(n)

        def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
            return n is fn  # skip nested function bodies

    fn.visit(V())
    return out


def _assigned_call(stmt: cst.SimpleStatementLine):
    """(target name, outermost call) of ``name = Call(...)[.to(...)...]`` statements."""
    for small in stmt.body:
        value, target = None, None
        if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
            value, target = small.value, small.targets[0].target.value
        elif isinstance(small, cst.AnnAssign) and small.value is not None and isinstance(small.target, cst.Name):
            value, target = small.value, small.target.value
        elif isinstance(small, cst.Return) and small.value is not None:
            value, target = small.value, None
        elif isinstance(small, cst.Expr):
            value = small.value
        if value is None:
            continue
        # Peel method chains: GPT(...).to(device).bfloat16()
        while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and isinstance(value.func.value, cst.Call):
            value = value.func.value
        if isinstance(value, cst.Call):
            yield target, value


def _simple_assigns(fn: cst.FunctionDef, before_line: int, index: _Index) -> dict[str, str]:
    out: dict[str, str] = {}
    for stmt in _statements(fn):
        if index.line(stmt) >= before_line:
            break
        for small in stmt.body:
            if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
                out.setdefault(small.targets[0].target.value, _code(small.value))
            elif isinstance(small, cst.AnnAssign) and small.value is not None and isinstance(small.target, cst.Name):
                out.setdefault(small.target.value, _code(small.value))
    return out


def _params(fn: cst.FunctionDef) -> list[str]:
    return [p.name.value for p in [*fn.params.posonly_params, *fn.params.params, *fn.params.kwonly_params]]


def _bind(fn: cst.FunctionDef, call: cst.Call) -> dict[str, str]:
    params = _params(fn)
    bound: dict[str, str] = {}
    pos = [a for a in call.args if a.keyword is None and not a.star]
    for name, a in zip(params, pos):
        bound[name] = _code(a.value)
    for a in call.args:
        if a.keyword is not None:
            bound[a.keyword.value] = _code(a.value)
    for p in fn.params.params:
        if p.name.value not in bound and p.default is not None:
            bound[p.name.value] = _code(p.default)
    return bound


def _search(index: _Index, fn: cst.FunctionDef, depth: int, seen: set[str]) -> list[Construction]:
    """Every construction of a model class in ``fn`` and the helpers it calls, in source order."""
    found: list[Construction] = []
    for stmt in _statements(fn):
        for target, call in _assigned_call(stmt):
            name = _callee(call)
            line = index.line(call)
            if name in index.modules and name not in index.components:
                if any(a.star for a in call.args):
                    continue  # */** arguments cannot be replayed from the source
                scope = Scope(fn.name.value, _params(fn), {}, _simple_assigns(fn, line, index))
                args = [_code(a.value) for a in call.args if a.keyword is None]
                kwargs = {a.keyword.value: _code(a.value) for a in call.args if a.keyword is not None}
                found.append(Construction(name, target, args, kwargs, line, [scope]))
            elif name in index.functions and name not in seen and depth < MAX_HELPER_DEPTH:
                helper = index.functions[name]
                for inner in _search(index, helper, depth + 1, seen | {name}):
                    inner.scopes[0].bindings = _bind(helper, call)
                    inner.scopes.insert(0, Scope(fn.name.value, _params(fn), {}, _simple_assigns(fn, line, index)))
                    found.append(inner)
    return found


def _entry_function(index: _Index) -> cst.FunctionDef | None:
    if "main" in index.functions:
        return index.functions["main"]
    # No main(): the ``if __name__ == "__main__":`` block, read as a function body.
    for node in index.wrapper.module.body:
        if isinstance(node, cst.If) and "__main__" in _code(node.test):
            return cst.FunctionDef(name=cst.Name("__main__"), params=cst.Parameters(), body=node.body)
    return None


def find_construction(source: str) -> Construction:
    """The model construction main() performs (libcst; nothing is executed).

    Several classes may be built (the model, a TTT adapter wrapping it, an EMA copy): the one
    assigned to ``base_model``/``model`` wins, then the first that takes no other model.
    """
    if not source.strip():
        raise BuildError("the script is empty: no code to import")
    index = _Index(source)
    main = _entry_function(index)
    if main is None:
        raise BuildError("no main() function and no __main__ block: cannot tell how the model is constructed")
    found = _search(index, main, 0, {"main"})
    if not found:
        raise BuildError("main() constructs no nn.Module subclass defined in the submission")
    named = [c for c in found if c.target in PREFERRED_TARGETS]
    plain = [c for c in found if not any(m in " ".join([*c.args, *c.kwargs.values()]) for m in ("model", "net"))]
    return (named or plain or found)[0]


# ---------------------------------------------------------------- evaluation (sandboxed child only)

class _Locals(dict):
    """Lazy locals of one scope: simple assignments are evaluated on first use."""

    def __init__(self, module_ns: dict, scope: Scope, parent: "_Locals | None", preset: dict):
        super().__init__()
        self.module_ns, self.scope, self.parent, self.preset = module_ns, scope, parent, preset
        self.active: set[str] = set()

    def __missing__(self, key: str):
        if key in self.preset:
            return self.preset[key]
        expr = self.scope.bindings.get(key) if self.parent is not None else None
        if expr is not None:
            value = self.parent.evaluate(expr)
        elif key in self.scope.assigns and key not in self.active:
            self.active.add(key)
            try:
                value = self.evaluate(self.scope.assigns[key])
            finally:
                self.active.discard(key)
        elif key in self.module_ns:
            return self.module_ns[key]
        elif hasattr(builtins, key):
            return getattr(builtins, key)
        else:
            raise KeyError(key)
        self[key] = value
        return value

    def evaluate(self, expr: str):
        return eval(compile(expr.strip(), "<main>", "eval"), self.module_ns, self)  # noqa: S307 - sandboxed child


def construct(module, construction: Construction, device: str = "cpu", hparams: Any | None = None):
    """Call the constructor with main()'s arguments; returns (model, hparams instance or None)."""
    import torch

    preset = dict(LAUNCH_LOCALS)
    preset["device"] = torch.device(device)
    hp_cls = getattr(module, "Hyperparameters", None)
    if hparams is None and hp_cls is not None:
        hparams = hp_cls()
    scope_locals: _Locals | None = None
    for scope in construction.scopes:
        names = dict(preset)
        if hparams is not None:
            # main()'s own ``args = Hyperparameters()`` must give our instance, not a second one.
            for name, expr in scope.assigns.items():
                if expr.replace(" ", "") in ("Hyperparameters()", "Hyperparameters.from_env()"):
                    names[name] = hparams
        scope_locals = _Locals(module.__dict__, scope, scope_locals, names)
    assert scope_locals is not None
    cls = getattr(module, construction.callee)
    try:
        args = [scope_locals.evaluate(a) for a in construction.args]
        kwargs = {k: scope_locals.evaluate(v) for k, v in construction.kwargs.items()}
    except KeyError as e:
        raise BuildError(f"cannot resolve {e.args[0]!r} in {construction.describe()}") from None
    except Exception as e:  # the submission's own code raised while computing an argument
        raise BuildError(f"evaluating the arguments of {construction.describe()}: {type(e).__name__}: {str(e)[:120]}") from None
    model = cls(*args, **kwargs)
    return model.to(device), hparams


def x_device(model) -> str:
    p = next(iter(model.parameters()), None)
    return p.device.type if p is not None else "cpu"


class _Captured(Exception):
    def __init__(self, logits):
        self.logits = logits


def uses_bf16_autocast(source: str) -> bool:
    """main() runs its model under ``torch.autocast(..., dtype=torch.bfloat16)``."""
    return re.search(r"autocast\([^)]*bfloat16", source) is not None


# Second arguments of a diffusion model's ``forward_logits(x_t, sigma)``: the noise level / timestep.
TIMESTEP_NAMES = ("sigma", "t", "timestep", "timesteps", "time", "noise_level")


def logits_fn(model, autocast: bool = False, conditioned: bool = False) -> Callable:
    """``input_ids (B, T) int64 -> logits (B, T, V)`` of the model (float32).

    ``autocast``: run under bf16 autocast, as main() does (see ``uses_bf16_autocast``).
    ``conditioned``: a model whose ``forward_logits`` also needs a timestep (a diffusion model, not
    an autoregressive one) gets a function that runs it at t = 0.5 for every row; that function has
    ``conditioned_on`` (the extra parameter names). Such logits are not next-token predictions:
    only the forward check asks for them, scoring never does.
    """
    import torch
    import torch.nn.functional as F

    import contextlib
    import inspect

    low = any(p.dtype in (torch.bfloat16, torch.float16) for p in model.parameters())
    # Weights cast to bf16 expect the autocast main() runs the model under.
    ctx = (lambda: torch.autocast(x_device(model), dtype=torch.bfloat16)) if (low or autocast) else contextlib.nullcontext

    fl = getattr(model, "forward_logits", None)
    if callable(fl):
        required = [p for p in inspect.signature(fl).parameters.values()
                    if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        extra = [p.name for p in required[1:]]
        if len(required) > 1 and conditioned and all(n in TIMESTEP_NAMES for n in extra):
            # A diffusion model: forward_logits(x_t, sigma). One forward at a mid noise level.
            def at_timestep(x):
                t = torch.full((x.shape[0],), 0.5, device=x.device)
                with ctx():
                    return fl(x, *(t for _ in extra)).float()

            at_timestep.conditioned_on = extra
            return at_timestep
        if len(required) != 1:
            raise BuildError(f"forward_logits takes {len(required)} required arguments "
                             f"({', '.join(p.name for p in required)}), not input_ids alone: "
                             "not an autoregressive next-token model")

        def direct(x):
            with ctx():
                return fl(x).float()

        return direct

    # A per-token loss path (``reduction="none"``) is the plain cross-entropy one.
    extra = {"reduction": "none"} if "reduction" in inspect.signature(model.forward).parameters else {}

    def via_loss(x):
        # The baseline's forward ends in F.cross_entropy(logits, targets): stop there and keep the logits.
        orig = F.cross_entropy

        def capture(input, target, *a, **k):
            raise _Captured(input)

        F.cross_entropy = capture
        try:
            with ctx():
                model(x, torch.zeros_like(x), **extra)
        except _Captured as c:
            # (B, rows, V): rows is T, or fewer when harness/headtrim.py trims the projection.
            return c.logits.float().reshape(x.shape[0], -1, c.logits.shape[-1])
        finally:
            F.cross_entropy = orig
        raise BuildError("the model's forward does not compute F.cross_entropy on its logits; cannot take logits")

    return via_loss
