"""Label-flow analysis over libcst: which values derive from validation data and from the scored target.

Every value carries a set of labels. Sources: file patterns of the validation (``val``) and training
(``train``) splits, shifted slices of validation data (``X[1:]``, ``X[i + 1]``, ``arange(a + 1, b + 1)``)
which hold the *target* x_t (``tgt``), log-probabilities and losses (``loss``), full distributions
(``dist``), environment variables (``env``). Labels flow through assignments, arithmetic, calls and
returns. A function is analysed once, its parameters standing as ``p:<i>`` placeholders; its summary
(return labels, effects, pending events) is instantiated at each call site, so a violation split
across helpers (key built in one function, read in another, summed in a third) is still seen.

Events are the facts rules read: a table read keyed by the target, a gate computed from the target,
an aggregate over the whole stream, a training step before a score, a window offset that re-scores the
tail, outside access. An event whose conditions still depend on placeholders is pending and travels to
the callers; it is dropped when no caller makes it true. Code under a condition that is false in the
official run (``WORLD_SIZE=8``, defaults of env-var settings, the README's run command) is analysed
but marked disabled.
"""

from __future__ import annotations

import ast
import collections.abc
import dataclasses
import functools
import re
import typing
from dataclasses import dataclass, field

import libcst as cst

Labels = frozenset
EMPTY: frozenset = frozenset()
# Labels that describe the current position's target; history tables never hold them.
CURRENT = frozenset({"tgt", "tgteq", "mix", "mixp", "tgtprob", "loss", "dist"})
STRUCTURAL_PREFIXES = ("ws:", "wend:", "wlen:", "cls:")
UNKNOWN = object()

_VAL_PATH = re.compile(r"(?<![a-z])(val|valid|validation)(?![a-z])", re.I)
_TRAIN_PATH = re.compile(r"(?<![a-z])train(?![a-z])", re.I)
_PATHISH = re.compile(r"[*/]|\.bin\b|\.npy\b|\.pt\b")

# Library calls by their last name (API semantics, not submission names).
SIZE_CALLS = {"len", "numel", "size", "dim", "ndimension", "nelement", "__len__"}
SIZE_ATTRS = {"shape", "ndim", "dtype", "device", "is_cuda", "itemsize", "nbytes"}
LOSS_CALLS = {"cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div"}
LOG_CALLS = {"log", "log2", "log10", "log1p", "log_"}
DIST_CALLS = {"softmax", "log_softmax", "sigmoid"}
AGGREGATE_CALLS = {"bincount", "histc", "histogram", "histogramdd", "unique", "Counter", "unique_consecutive"}
MIN_CALLS = {"minimum", "fmin", "min", "amin"}
READ_METHODS = {"gather", "take_along_dim", "index_select", "take", "get"}
TABLE_WRITE_FUNCS = {("add", "at"), ("subtract", "at"), ("maximum", "at")}
TABLE_WRITE_METHODS = {"index_add_", "scatter_add_", "scatter_", "index_put_", "index_copy_", "put_", "scatter_reduce_"}
# Keyword arguments that carry data into a library call (others: device, dtype, reduction, ...).
DATA_KEYWORDS = {"input", "target", "other", "index", "src", "source", "weight", "x", "y", "a", "b", "values", "logits",
                 "labels", "tensors", "out", "minlength", "weights"}
RANDOM_CALLS = {"randint", "randperm", "choice", "sample", "permutation", "shuffle", "multinomial"}
NETWORK_MODULES = ("socket", "urllib", "requests", "http", "httpx", "aiohttp", "huggingface_hub", "ftplib", "smtplib",
                   "paramiko", "websocket", "boto3", "gdown", "wget")
NETWORK_CALLS = {("torch", "hub"), ("datasets", "load_dataset"), ("transformers", "from_pretrained")}
CLOCK_CALLS = {"time.perf_counter", "time.time", "time.monotonic", "time.perf_counter_ns", "time.monotonic_ns"}
TRAIN_READ = frozenset({"train", "trainobj"})  # training files, or an object built on them (a loader)
OFFICIAL_CAP_S = 600.0  # the training budget of the record track
PROGRAM_CALLS = {("os", "system"), ("os", "popen"), ("os", "execv"), ("os", "execvp"), ("os", "spawnv")}


def flat(v) -> frozenset:
    if isinstance(v, frozenset):
        return v
    if isinstance(v, Tup):
        out = EMPTY
        for x in v.items:
            out = out | flat(x)
        return out
    if isinstance(v, It):
        return flat(v.elem)
    return EMPTY


@dataclass(frozen=True)
class Tup:
    items: tuple


@dataclass(frozen=True)
class It:
    elem: object


def join(a, b):
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, Tup) and isinstance(b, Tup) and len(a.items) == len(b.items):
        return Tup(tuple(join(x, y) for x, y in zip(a.items, b.items)))
    if isinstance(a, It) and isinstance(b, It):
        return It(join(a.elem, b.elem))
    if isinstance(a, frozenset) and isinstance(b, frozenset):
        return a | b
    return flat(a) | flat(b)


def elem(v):
    if isinstance(v, It):
        return v.elem
    return flat(v)


def has_placeholder(labels: frozenset) -> bool:
    return any("p:" in x for x in labels)


def substitute(v, args: list):
    """Replace ``p:<i>`` by the labels of argument i (and provenance labels keep their identity)."""
    if isinstance(v, Tup):
        return Tup(tuple(substitute(x, args) for x in v.items))
    if isinstance(v, It):
        return It(substitute(v.elem, args))
    if not any("p:" in x for x in v):
        return v
    out = set()
    for x in v:
        if x.startswith("p:"):
            i = int(x[2:])
            if i < len(args):
                out |= flat(args[i])
        elif x.startswith("eq?p:"):  # an equality test on argument i
            i = int(x[5:])
            a = flat(args[i]) if i < len(args) else EMPTY
            out.update("tgteq" if y == "tgt" else f"eq?{y}" if y.startswith("p:") else y
                       for y in a if y not in ("mix", "mixp") and not y.startswith("tgt?"))
        elif x.startswith("tgt?p:"):  # the target, if argument i turns out to be validation data
            i = int(x[6:])
            a = flat(args[i]) if i < len(args) else EMPTY
            if "val" in a and "inp" not in a:
                out.add("tgt")
            if "inp" not in a:
                out.update(f"tgt?{y}" for y in a if y.startswith("p:"))
        else:
            out.add(x)
    return frozenset(out)


@dataclass
class Need:
    labels: frozenset
    want: str  # a label that must be present, e.g. "tgt" or "val"

    def state(self) -> str:
        if self.want.startswith("!"):  # the label must be absent
            if self.want[1:] in self.labels:
                return "no"
            return "maybe" if has_placeholder(self.labels) else "yes"
        if self.want in self.labels:
            return "yes"
        return "maybe" if has_placeholder(self.labels) else "no"


@dataclass
class Event:
    kind: str
    node: int  # global node id of the location
    needs: tuple = ()
    disabled: bool = False
    data: dict = field(default_factory=dict)

    def state(self) -> str:
        states = [n.state() for n in self.needs]
        if "no" in states:
            return "no"
        return "maybe" if "maybe" in states else "yes"

    def instantiate(self, args: list, disabled: bool) -> "Event":
        needs = tuple(Need(flat(substitute(n.labels, args)), n.want) for n in self.needs)
        return Event(self.kind, self.node, needs, self.disabled or disabled, self.data)


@dataclass
class Effect:
    kind: str  # "train" or "score"
    origin: int  # node id where it happens in the deepest function
    labels: frozenset
    fresh: bool = False  # training of tensors created in the eval itself (eval-time optimization)
    data: tuple = ()  # "cap": (cap in seconds,); "tfwd": (disabled,)


@dataclass
class Summary:
    ret: object = None
    effects: list = field(default_factory=list)
    events: list = field(default_factory=list)
    param_writes: dict = field(default_factory=dict)  # param index -> labels written into it
    generator: bool = False


class FunctionDef:
    def __init__(self, node: cst.FunctionDef, module: "ModuleInfo", qualname: str, cls: str | None, outer=None):
        self.node, self.module, self.qualname, self.cls, self.outer = node, module, qualname, cls, outer
        p = node.params
        self.params = [x.name.value for x in [*p.posonly_params, *p.params]]
        self.kwonly = [x.name.value for x in p.kwonly_params]
        self.star = p.star_arg.name.value if isinstance(p.star_arg, cst.Param) else None
        self.summary: Summary | None = None
        self.in_progress = False
        self.called_in_loop = False
        self.called = False
        self.param_classes: dict[int, frozenset] = {}


@dataclass
class ModuleInfo:
    path: str  # relative path used in findings
    name: str  # dotted module name for imports between submission files
    tree: cst.Module
    source: str
    aliases: dict = field(default_factory=dict)  # local name -> dotted import path
    functions: dict = field(default_factory=dict)  # module-level name -> FunctionDef
    classes: dict = field(default_factory=dict)  # class name -> {method name: FunctionDef}
    bases: dict = field(default_factory=dict)
    globals: dict = field(default_factory=dict)  # module-level name -> value labels
    consts: dict = field(default_factory=dict)  # module-level name -> constant under the official run


class Program:
    """All Python modules of one submission, analysed together."""

    def __init__(self, official_env: dict[str, str]):
        self.modules: list[ModuleInfo] = []
        self.by_name: dict[str, ModuleInfo] = {}
        self.nodes: list[tuple[ModuleInfo, cst.CSTNode, str]] = []  # gid -> (module, node, function)
        self.node_ids: dict[int, int] = {}
        self.attrs: dict[str, frozenset] = {}  # attribute name -> labels (object-insensitive)
        self.attr_consts: dict[str, object] = {}  # attribute name -> constant (class-level settings)
        self.methods: dict[str, list[FunctionDef]] = {}  # method name -> defs in every class
        self.facts: dict[tuple, Event] = {}  # resolved events by (kind, node)
        self.env = official_env
        self.read_roots: dict[int, str] = {}  # target-keyed read -> the table variable it reads
        self.defs: list[FunctionDef] = []  # every function met, for release()
        self.class_settings: set[tuple] = set()  # (class, name) of class-level settings (not set by methods)

    def gid(self, module: ModuleInfo, node: cst.CSTNode, where: str) -> int:
        key = id(node)
        g = self.node_ids.get(key)
        if g is None:
            g = len(self.nodes)
            self.nodes.append((module, node, where))
            self.node_ids[key] = g
        return g

    def release(self) -> None:
        """Break the references between the program's parts (a module and its functions, a walker and the
        functions defined in it), so that the trees are freed as soon as the caller drops the program
        instead of waiting for the cyclic garbage collector. The program is not usable afterwards."""
        for f in self.defs:
            f.module = f.outer = None
        for m in self.modules:
            m.functions.clear()
            m.classes.clear()
        self.defs.clear()
        self.methods.clear()

    def add_module(self, path: str, name: str, tree: cst.Module, source: str) -> None:
        m = ModuleInfo(path, name, tree, source)
        self.modules.append(m)
        self.by_name[name] = m
        self.by_name.setdefault(name.rsplit(".", 1)[-1], m)
        for stmt in tree.body:
            self._declare(m, stmt)

    def _declare(self, m: ModuleInfo, stmt) -> None:
        if isinstance(stmt, cst.FunctionDef):
            m.functions[stmt.name.value] = FunctionDef(stmt, m, stmt.name.value, None)
            self.defs.append(m.functions[stmt.name.value])
        elif isinstance(stmt, cst.ClassDef):
            methods = {}
            for item in stmt.body.body:
                if isinstance(item, cst.FunctionDef):
                    f = FunctionDef(item, m, f"{stmt.name.value}.{item.name.value}", stmt.name.value)
                    methods[item.name.value] = f
                    self.defs.append(f)
                    self.methods.setdefault(item.name.value, []).append(f)
            m.classes[stmt.name.value] = methods
            m.bases[stmt.name.value] = [dotted(a.value) for a in stmt.bases]
        elif isinstance(stmt, cst.SimpleStatementLine):
            for s in stmt.body:
                if isinstance(s, cst.Import):
                    for a in s.names:
                        full = dotted(a.name)
                        local = a.asname.name.value if a.asname and isinstance(a.asname.name, cst.Name) else full.split(".")[0]
                        m.aliases[local] = full if a.asname else full.split(".")[0]
                elif isinstance(s, cst.ImportFrom) and not isinstance(s.names, cst.ImportStar):
                    mod = ("." * len(s.relative)) + (dotted(s.module) if s.module else "")
                    for a in s.names:
                        local = a.asname.name.value if a.asname and isinstance(a.asname.name, cst.Name) else dotted(a.name)
                        m.aliases[local] = f"{mod}.{dotted(a.name)}"
        elif isinstance(stmt, (cst.If, cst.Try)):
            for s in stmt.body.body:
                self._declare(m, s)

    # --- the whole program --------------------------------------------------------------------

    def analyse(self) -> None:
        for m in self.modules:
            Walker(self, m, None).module_prelude()
        # top-down from the module code (main()), so that a function first meets its callers' classes
        for m in self.modules:
            Walker(self, m, None).module_body()
        for m in self.modules:
            for f in list(m.functions.values()):
                self.summary(f)
            for methods in m.classes.values():
                for f in methods.values():
                    self.summary(f)
        # entry points nobody calls: their parameters hold no data we know of
        for m in self.modules:
            funcs = list(m.functions.values()) + [f for ms in m.classes.values() for f in ms.values()]
            for f in funcs:
                if not f.called and f.summary is not None:
                    none = [EMPTY] * (len(f.params) + 1)
                    for ev in f.summary.events:
                        inst = ev.instantiate(none, False)
                        if inst.state() == "yes":
                            self.record(inst)

    def summary(self, f: FunctionDef) -> Summary:
        if f.summary is not None:
            return f.summary
        if f.in_progress:  # recursion: an empty summary breaks the cycle
            return Summary()
        f.in_progress = True
        w = Walker(self, f.module, f)
        f.summary = w.run_function()
        f.in_progress = False
        return f.summary

    def record(self, ev: Event) -> None:
        # a training step reported once, where training and the later score first meet
        key = (ev.kind, ev.data["origin"]) if "origin" in ev.data else (ev.kind, ev.node)
        old = self.facts.get(key)
        if old is None or (old.disabled and not ev.disabled):
            self.facts[key] = ev

    def resolve_import(self, m: ModuleInfo, dotted_name: str):
        """A function or class of another submission file named by an import, or None."""
        mod, _, name = dotted_name.rpartition(".")
        target = self.by_name.get(mod.lstrip(".")) or self.by_name.get(mod.lstrip(".").rsplit(".", 1)[-1])
        if target is None or target is m:
            return None
        if name in target.functions:
            return target.functions[name]
        if name in target.classes:
            return ("class", target, name)
        return None


@functools.lru_cache(maxsize=65536)
def _literal_text(text: str):
    return ast.literal_eval(text)


def literal_value(node):
    """``node.evaluated_value`` of a number or plain string literal (libcst compiles the text each time)."""
    t = type(node)
    if t is cst.Integer or t is cst.Float or t is cst.SimpleString:
        return _literal_text(node.value)
    return node.evaluated_value


def dotted(node) -> str:
    t = type(node)  # exact types: libcst's concrete node classes have no subclasses
    if t is cst.Name:
        return node.value
    if t is cst.Attribute:
        return f"{dotted(node.value)}.{node.attr.value}"
    return ""


_EMPTY_MODULE = cst.Module(body=[])


class _FieldOrder(cst.CSTVisitor):
    """Records the fields libcst's own traversal visits on one node, in its order, without descending."""

    def __init__(self, root: cst.CSTNode):
        super().__init__()
        self.root, self.fields = root, []

    def on_visit(self, node) -> bool:
        return node is self.root

    def on_leave(self, original_node) -> None:
        pass

    def on_visit_attribute(self, node, attribute: str) -> None:
        if node is self.root and attribute not in self.fields:
            self.fields.append(attribute)

    def on_leave_attribute(self, original_node, attribute: str) -> None:
        pass


# Whitespace, comments and punctuation: ``walk`` skips them (no analysis reads them, and they are about
# two thirds of a tree's nodes). Operators are kept.
TRIVIA = (cst.BaseParenthesizableWhitespace, cst.Newline, cst.Comment, cst.TrailingWhitespace, cst.EmptyLine,
          cst.Comma, cst.Dot, cst.Colon, cst.Semicolon, cst.AssignEqual, cst.LeftParen, cst.RightParen,
          cst.LeftSquareBracket, cst.RightSquareBracket, cst.LeftCurlyBrace, cst.RightCurlyBrace)


@dataclass(frozen=True)
class _Fields:
    visited: tuple[str, ...]  # the fields libcst's own traversal visits, in its order
    check: tuple[str, ...]  # the node's other fields whose type allows a node (visited only when set)
    code: tuple[tuple[str, int], ...]  # visited fields that can hold more than trivia, with their shape


_ONE, _SEQ, _EITHER = 0, 1, 2  # a field holds one node (or None), a sequence of nodes, or either
_ORDER: dict[type, _Fields] = {}
_IS_NODE: dict[type, bool] = {}
_SENTINEL = cst.MaybeSentinel.DEFAULT


def _node_classes(ann) -> list | None:
    """Node classes a field annotation allows (through Optional, Union, Sequence); None if unreadable."""
    if isinstance(ann, type):
        return [ann] if issubclass(ann, cst.CSTNode) else []
    if isinstance(ann, str):
        return None
    out = []
    for a in typing.get_args(ann):
        if isinstance(a, str) and typing.get_origin(ann) is typing.Literal:
            continue
        sub = _node_classes(a)
        if sub is None:
            return None
        out += sub
    return out


def _shape(ann) -> int:
    """Whether a field annotation allows one node, a sequence of nodes, or either (or is unreadable)."""
    def shapes(a) -> set | None:
        if isinstance(a, type):
            return {_ONE} if issubclass(a, cst.CSTNode) else set()
        if typing.get_origin(a) is typing.Literal:
            return set()
        if typing.get_origin(a) in (collections.abc.Sequence, list, tuple):
            return {_SEQ}
        if typing.get_origin(a) is typing.Union:
            out = set()
            for x in typing.get_args(a):
                sub = shapes(x)
                if sub is None:
                    return None
                out |= sub
            return out
        return None
    found = shapes(ann)
    return found.pop() if found is not None and len(found) == 1 else _EITHER


def _field_order(node) -> _Fields:
    rec = _FieldOrder(node)
    node.visit(rec)
    visited = tuple(rec.fields)
    fields = {f.name: f.type for f in dataclasses.fields(node)}
    kinds = {a: _node_classes(t) for a, t in fields.items()}
    code = tuple((a, _shape(fields.get(a))) for a in visited
                 if not (kinds.get(a) and all(issubclass(k, TRIVIA) for k in kinds[a])))
    check = tuple(a for a in fields if a not in visited and kinds[a] != [])
    return _Fields(visited, check, code)


def _is_node(v) -> bool:
    known = _IS_NODE.get(type(v))
    if known is None:
        known = _IS_NODE[type(v)] = issubclass(type(v), cst.CSTNode)
    return known


def _holds_node(v) -> bool:
    if type(v) is tuple or type(v) is list:
        return any(_holds_node(x) for x in v)
    return _is_node(v)


def _read(node, fields: tuple[str, ...]) -> list:
    out = []
    for a in fields:
        v = getattr(node, a)
        if v is None or v is _SENTINEL:
            continue
        if _is_node(v):
            out.append(v)
        else:  # a sequence of nodes
            out.extend(v)
    return out


def _fields(node) -> _Fields | None:
    """The node type's recorded fields, or None when this node holds a node in a field the recording did
    not see visited (libcst skips some fields when they are empty): then only ``children`` is exact."""
    t = type(node)
    order = _ORDER.get(t)
    if order is None:
        order = _ORDER[t] = _field_order(node)
    for a in order.check:
        if _holds_node(getattr(node, a)):
            new = _field_order(node)
            if set(new.visited) >= set(order.visited):
                _ORDER[t] = new
            return None
    return order


def children(node) -> list:
    """``node.children`` (the child nodes in lexical order), read from the node's fields.

    libcst's ``children`` rebuilds the node through a visitor on every call (tens of microseconds);
    here the order of each node type's fields is recorded once from that same traversal.
    """
    order = _fields(node)
    return list(node.children) if order is None else _read(node, order.visited)


def code_children(node) -> list:
    """``children`` without whitespace, comments and punctuation."""
    order = _fields(node)
    if order is None:
        return [c for c in node.children if not isinstance(c, TRIVIA)]
    return _read(node, [a for a, _ in order.code])


def walk(node):
    """Every node from ``node`` down but whitespace, comments and punctuation, depth first with the later
    children first (a stack walk over ``children``, in the same order)."""
    stack = [node]
    pop, push, extend = stack.pop, stack.append, stack.extend
    orders = _ORDER
    while stack:
        n = pop()
        yield n
        order = orders.get(type(n))
        if order is None or order.check:
            order = _fields(n)
            if order is None:
                extend(code_children(n))
                continue
        for a, shape in order.code:
            v = getattr(n, a)
            if shape == _ONE:
                if v is not None and v is not _SENTINEL:
                    push(v)
            elif shape == _SEQ:
                if v is not None and v is not _SENTINEL:
                    extend(v)
            elif v is not None and v is not _SENTINEL:
                if _is_node(v):
                    push(v)
                else:
                    extend(v)


def code(node) -> str:
    try:
        return _EMPTY_MODULE.code_for_node(node)
    except Exception:  # noqa: BLE001 - a node we cannot print has no code to compare
        return ""


class Walker:
    """Walks one function (or a module's top level) in statement order."""

    def __init__(self, prog: Program, module: ModuleInfo, func: FunctionDef | None):
        self.p, self.m, self.f = prog, module, func
        self.env: dict[str, object] = {}
        self.consts: dict[str, object] = {}
        self.local_funcs: dict[str, FunctionDef] = {}
        self.summary = Summary()
        self.loop_depth = 0
        self.disabled = False
        self.effects: list[tuple[Effect, int]] = []  # (effect, site node id)
        self.where = func.qualname if func else "<module>"
        self.fresh_names: set[str] = set()
        self.loop_site: dict[int, int] = {}
        self.hooks = False
        self.nums: dict[str, object] = {}  # numbers under the official run, updated by augmented assignments
        self.caps: list[float] = []  # wall-clock caps compared inside the current outermost loop

    # --- entry points -------------------------------------------------------------------------

    def module_prelude(self) -> None:
        """Module-level constants and class-level settings (Hyperparameters), before any function."""
        for stmt in self.m.tree.body:
            if isinstance(stmt, cst.SimpleStatementLine):
                self.stmt(stmt)
            elif isinstance(stmt, cst.ClassDef):
                saved = dict(self.env)
                for item in stmt.body.body:
                    if isinstance(item, cst.SimpleStatementLine):
                        for s in item.body:
                            if isinstance(s, (cst.Assign, cst.AnnAssign)) and s.value is not None:
                                targets = [t.target for t in s.targets] if isinstance(s, cst.Assign) else [s.target]
                                v = flat(self.ev(s.value))
                                c = self.const(s.value)
                                for t in targets:
                                    if isinstance(t, cst.Name):
                                        self.env[t.value] = v  # later class attributes may use earlier ones
                                        self.consts[t.value] = c
                                        self.p.attrs[t.value] = self.p.attrs.get(t.value, EMPTY) | v
                                        key = (stmt.name.value, t.value)
                                        self.p.class_settings.add(key)
                                        self.p.attrs[key] = self.p.attrs.get(key, EMPTY) | v
                                        if c is not UNKNOWN:
                                            self.p.attr_consts[t.value] = c
                self.env = saved
        self.m.globals.update(self.env)
        self.m.consts.update(self.consts)

    def module_body(self) -> None:
        self.env = dict(self.m.globals)
        self.consts = dict(self.m.consts)
        for stmt in self.m.tree.body:
            if not isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                self.stmt(stmt)
        self.finish()

    def run_function(self) -> Summary:
        f = self.f
        for i, name in enumerate(f.params):
            self.env[name] = frozenset({f"p:{i}"}) | f.param_classes.get(i, EMPTY)
        for name in f.kwonly:
            self.env[name] = EMPTY
        if f.star:
            self.env[f.star] = frozenset({f"p:{len(f.params)}"})
        if f.outer is not None:  # closures read the enclosing function's values
            for k, v in f.outer.env.items():
                self.env.setdefault(k, v)
            self.consts.update(f.outer.consts)
            self.local_funcs.update(f.outer.local_funcs)
        for p in [*f.node.params.params, *f.node.params.kwonly_params]:
            if p.default is not None:
                c = self.const(p.default)
                if c is not UNKNOWN and p.name.value not in self.consts:
                    self.consts[p.name.value] = c
        self.block(f.node.body)
        for i, name in enumerate(f.params):
            v = flat(self.env.get(name, EMPTY)) - {f"p:{i}"} - f.param_classes.get(i, EMPTY)
            if v:
                self.summary.param_writes[i] = v
        self.finish()
        return self.summary

    def finish(self) -> None:
        """Order checks over this body's effects; resolve or keep this function's events."""
        seen_score = False
        for k, (eff, site) in enumerate(self.effects):
            if eff.kind == "score":
                seen_score = True
                continue
            if eff.kind != "train" or seen_score:
                continue
            later = [e for e, _ in self.effects[k + 1:] if e.kind == "score"]
            if not later:
                continue
            score_labels = EMPTY.union(*[e.labels for e in later])
            kind = "eto" if eff.fresh else "ubs"
            self.event(Event(kind, site, (Need(eff.labels, "val"), Need(score_labels, "val")),
                             data={"origin": eff.origin, "loop": self.loop_site.get(site, 0), "func": self.f}))
        self.late_train_reads()
        self.summary.effects = [e for e, _ in self.effects]
        self.summary.env = self.env
        self.summary.events = [e for e in self.summary.events if e.state() == "maybe"]

    def late_train_reads(self) -> None:
        """A forward on training data after a loop that stops at a wall-clock cap: work on the training
        shards after the timed training (GPTQ calibration). A cap below 600 s reserves time for it."""
        cap, seen = None, set()
        for eff, site in self.effects:
            if eff.kind == "cap":
                cap, seen = (eff.data[0] if cap is None else max(cap, eff.data[0])), set()
            elif eff.kind == "tfwd" and cap is not None and cap >= OFFICIAL_CAP_S and "val" not in eff.labels:
                # training data: a training-file label, or objects whose classes hold training files (known
                # once every function is analysed); the first forward of each kind after this cap stands
                # for the work (the calls inside a model's forward follow it)
                direct = bool(eff.labels & TRAIN_READ)
                classes = frozenset(x[4:] for x in eff.labels if x.startswith("cls:"))
                key = True if direct else classes
                if (direct or classes) and key not in seen:
                    seen.add(key)
                    self.event(Event("tlate", eff.origin, (), disabled=eff.data[0],
                                     data={"origin": eff.origin, "cap": cap, "direct": direct, "classes": classes}))

    # --- events -------------------------------------------------------------------------------

    def gid(self, node) -> int:
        return self.p.gid(self.m, node, self.where)

    def event(self, ev: Event) -> None:
        ev.disabled = ev.disabled or self.disabled
        st = ev.state()
        if st == "yes":
            self.p.record(ev)
        elif st == "maybe":
            self.summary.events.append(ev)

    # --- statements ---------------------------------------------------------------------------

    def block(self, body) -> None:
        stmts = body.body if hasattr(body, "body") else body
        if isinstance(stmts, (list, tuple)):
            for s in stmts:
                self.stmt(s)
        else:
            self.stmt(stmts)

    def stmt(self, s) -> None:
        if isinstance(s, cst.BaseSmallStatement):  # the body of a one-line suite: "if x: y = 1; z = 2"
            self.small(s)
        elif isinstance(s, cst.SimpleStatementLine):
            for x in s.body:
                self.small(x)
        elif isinstance(s, cst.If):
            self.if_stmt(s)
        elif isinstance(s, cst.For):
            it = self.ev(s.iter)
            self.loop(s, lambda: (self.assign(s.target, elem(it)), self.block(s.body)))
            if s.orelse:
                self.block(s.orelse.body)
        elif isinstance(s, cst.While):
            c = self.const(s.test)
            self.ev(s.test)
            if c is not UNKNOWN and not c:
                self.with_disabled(lambda: self.loop(s, lambda: self.block(s.body)))
            else:
                self.loop(s, lambda: (self.ev(s.test), self.block(s.body)))
        elif isinstance(s, cst.With):
            for item in s.items:
                v = self.ev(item.item)
                if item.asname is not None:
                    self.assign(item.asname.name, v)
            self.block(s.body)
        elif isinstance(s, cst.Try):
            self.block(s.body)
            for h in s.handlers:
                self.block(h.body)
            if s.orelse:
                self.block(s.orelse.body)
            if s.finalbody:
                self.block(s.finalbody.body)
        elif isinstance(s, cst.FunctionDef):
            f = FunctionDef(s, self.m, f"{self.where}.{s.name.value}", None, outer=self)
            self.local_funcs[s.name.value] = f
            self.p.defs.append(f)
            self.env[s.name.value] = EMPTY
        elif isinstance(s, cst.ClassDef):
            pass
        elif isinstance(s, cst.Match):
            self.ev(s.subject)
            for case in s.cases:
                self.block(case.body)
        elif hasattr(s, "body") and isinstance(getattr(s, "body"), cst.BaseSuite):
            self.block(s.body)

    def with_disabled(self, fn) -> None:
        old = self.disabled
        self.disabled = True
        try:
            fn()
        finally:
            self.disabled = old

    def if_stmt(self, s: cst.If) -> None:
        self.ev(s.test)
        c = self.const(s.test)
        if c is not UNKNOWN and not c:
            self.with_disabled(lambda: self.block(s.body))
        else:
            self.block(s.body)
        if s.orelse is not None:
            if c is not UNKNOWN and c:
                self.with_disabled(lambda: self.stmt(s.orelse) if isinstance(s.orelse, cst.If) else self.block(s.orelse.body))
            elif isinstance(s.orelse, cst.If):
                self.if_stmt(s.orelse)
            else:
                self.block(s.orelse.body)

    def loop(self, node, body_fn) -> None:
        self.loop_depth += 1
        outer = self.loop_depth == 1
        try:
            body_fn()
            if self.loop_depth == 1:  # a second walk carries values around the outermost loop
                n = len(self.effects)
                body_fn()
                del self.effects[n:]
        finally:
            self.loop_depth -= 1
        if outer and self.caps:  # the loop stops at a wall-clock cap: what follows runs after it
            g = self.gid(node)
            self.effects.append((Effect("cap", g, EMPTY, data=(max(self.caps),)), g))
            self.caps = []

    def small(self, x) -> None:
        if isinstance(x, cst.Assign):
            v = self.ev(x.value)
            n = self.num(x.value) if len(x.targets) == 1 and isinstance(x.targets[0].target, cst.Name) else UNKNOWN
            for t in x.targets:
                self.assign(t.target, v, value_node=x.value)
            if len(x.targets) == 1 and isinstance(x.targets[0].target, cst.Name):
                name = x.targets[0].target.value
                self.set_num(name, n)
                c = self.const(x.value)
                if c is not UNKNOWN:
                    self.consts[name] = c
                elif name in self.consts:
                    del self.consts[name]
                # acc = acc + v is an accumulation like acc += v
                if isinstance(x.value, cst.BinaryOperation) and isinstance(x.value.operator, cst.Add) \
                        and isinstance(x.value.left, cst.Name) and x.value.left.value == name:
                    self.accumulate(x, self.ev(x.value.right))
        elif isinstance(x, cst.AnnAssign):
            if x.value is not None:
                v = self.ev(x.value)
                self.assign(x.target, v, value_node=x.value)
                if isinstance(x.target, cst.Name):
                    c = self.const(x.value)
                    if c is not UNKNOWN:
                        self.consts[x.target.value] = c
        elif isinstance(x, cst.AugAssign):
            new = UNKNOWN
            if isinstance(x.target, cst.Name) and not self.loop_depth:  # a loop's walks would repeat it
                a, b = self.num(x.target), self.num(x.value)
                try:
                    op = getattr(cst, type(x.operator).__name__.replace("Assign", ""))()
                    new = UNKNOWN if UNKNOWN in (a, b) else _binop(op, a, b)
                except Exception:  # noqa: BLE001 - a value we cannot compute is unknown
                    new = UNKNOWN
            v = self.ev(x.value)
            if isinstance(x.target, cst.Subscript):
                self.write(x.target, v, x)
            else:
                self.assign(x.target, v)
                if isinstance(x.target, cst.Name):
                    self.set_num(x.target.value, new)
            if isinstance(x.operator, (cst.AddAssign, cst.SubtractAssign)):
                self.accumulate(x, v)
                if _is_gram(x.value):  # H += X^T X: a Hessian / calibration statistic
                    self.event(Event("vcal", self.gid(x), (Need(flat(v), "val"),), data={"how": "gram"}))
        elif isinstance(x, cst.Expr):
            self.ev(x.value)
        elif isinstance(x, cst.Return):
            if x.value is not None:
                self.summary.ret = join(self.summary.ret, self.ev(x.value))
        elif isinstance(x, (cst.Import, cst.ImportFrom)):
            self.p._declare(self.m, cst.SimpleStatementLine(body=[x]))
        elif isinstance(x, cst.Assert):
            self.ev(x.test)
        elif isinstance(x, cst.Raise):
            if x.exc is not None:
                self.ev(x.exc)
        elif isinstance(x, cst.Del):
            pass

    def accumulate(self, node, v) -> None:
        """``acc += v``: a score when v is a loss of validation data; its provenance reaches the score."""
        labels = flat(v)
        if "loss" not in labels:
            return
        g = self.gid(node)
        if "val" in labels or has_placeholder(labels):
            self.effects.append((Effect("score", g, labels), g))
            self.loop_site[g] = self.loop_depth
            # training-split data inside the score of validation data: the eval reads training shards
            self.event(Event("tde", g, (Need(labels, "train"), Need(labels, "val"))))
        for lab in labels:
            if "@" in lab:
                kind, _, origin = lab.partition("@")
                self.event(Event("sink:" + kind, int(origin), (Need(labels, "val"),)))

    def assign(self, target, v, value_node=None) -> None:
        if isinstance(target, cst.Name):
            if not self.disabled:  # code off in the official run leaves the numbers as they were
                self.nums.pop(target.value, None)
            if value_node is not None and self.is_fresh(value_node):
                v = flat(v) | {"fresh"}
            self.env[target.value] = join(self.env.get(target.value), v) if self.loop_depth else v
        elif isinstance(target, (cst.Tuple, cst.List)):
            elts = [e.value for e in target.elements]
            if isinstance(v, Tup) and len(v.items) == len(elts) and not any(isinstance(e, cst.StarredElement) for e in target.elements):
                for t, x in zip(elts, v.items):
                    self.assign(t, x)
            else:
                for t in elts:
                    self.assign(t, flat(v) if not isinstance(v, It) else elem(v))
        elif isinstance(target, cst.Attribute):
            key = dotted(target)
            if key:
                self.env[key] = join(self.env.get(key), v)
            labels = frozenset(x for x in flat(v) if not x.startswith("p:"))
            self.p.attrs[target.attr.value] = self.p.attrs.get(target.attr.value, EMPTY) | labels
            for c in self.classes_of(target.value):
                self.p.attrs[(c, target.attr.value)] = self.p.attrs.get((c, target.attr.value), EMPTY) | labels
            self.ev(target.value)
        elif isinstance(target, cst.Subscript):
            self.write(target, v, target)
        elif isinstance(target, cst.StarredElement):
            self.assign(target.value, flat(v))

    def classes_of(self, obj, labels=None) -> list[str]:
        if isinstance(obj, cst.Name) and obj.value == "self" and self.f is not None and self.f.cls:
            return [self.f.cls]
        if labels is None:
            labels = flat(self.ev(obj)) if isinstance(obj, cst.Name) else EMPTY
        return sorted(x[4:] for x in flat(labels) if x.startswith("cls:"))

    def is_fresh(self, node) -> bool:
        """A tensor created here with requires_grad=True (a per-window delta, a bias to optimize)."""
        if isinstance(node, cst.Call):
            for a in node.args:
                if a.keyword is not None and a.keyword.value == "requires_grad" and isinstance(a.value, cst.Name) \
                        and a.value.value == "True":
                    return True
            if isinstance(node.func, cst.Attribute) and node.func.attr.value in ("requires_grad_", "Parameter"):
                return True
            return any(self.is_fresh(a.value) for a in node.args) if isinstance(node.func, cst.Attribute) \
                and node.func.attr.value == "Parameter" else False
        return False

    def root_name(self, node) -> str | None:
        while isinstance(node, (cst.Subscript, cst.Attribute)):
            if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self":
                return dotted(node)
            node = node.value
        return node.value if isinstance(node, cst.Name) else None

    def write(self, target: cst.Subscript, v, node) -> None:
        """``t[k] = v``: a history-table write when the key comes from data, else a buffer fill."""
        key = EMPTY
        keyed = False
        for el in target.slice:
            lab = self.index_labels(el)
            key = key | lab
            if isinstance(el.slice, cst.Index) and _data_key(lab):
                keyed = True
        self.ev(target.value)
        self.table_write(target.value, key, flat(v), node, keyed)

    def table_write(self, table_node, key: frozenset, v: frozenset, node, keyed: bool | None = None) -> None:
        name = self.root_name(table_node)
        if name is None:
            return
        if keyed is None:
            keyed = _data_key(key)
        if keyed:  # indexed by token data: a history table
            new = history(v | key)
            if self.loop_depth == 0 and self.f is not None and not self.disabled:
                new = new | {self.future(node)}
        else:
            new = v | key
        self.env[name] = join(self.env.get(name), new)

    # --- expressions --------------------------------------------------------------------------

    def lookup(self, name: str):
        if name in self.env:
            return self.env[name]
        if name in self.m.globals:
            return self.m.globals[name]
        return EMPTY

    def index_labels(self, el) -> frozenset:
        s = el.slice
        if isinstance(s, cst.Index):
            return flat(self.ev(s.value))
        out = EMPTY
        for part in (s.lower, s.upper, s.step):
            if part is not None:
                out = out | flat(self.ev(part))
        return out

    @staticmethod
    def shifted(node) -> bool:
        """``1``, ``i + 1``, ``a + 1``: a bound one past the input position."""
        if isinstance(node, cst.Integer):
            return literal_value(node) >= 1
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
            return any(isinstance(x, cst.Integer) and literal_value(x) >= 1 for x in (node.left, node.right))
        return False

    def subscript(self, node: cst.Subscript):
        base = self.ev(node.value)
        base_l = flat(base)
        idx = EMPTY
        keyl = EMPTY
        inputs = False
        target = False
        sliced = False
        for el in node.slice:
            s = el.slice
            lab = self.index_labels(el)
            idx = idx | lab
            if isinstance(s, cst.Index):
                keyl = keyl | lab
            if isinstance(s, cst.Slice):
                sliced = True
                if s.lower is not None and (self.shifted(s.lower) or "shift" in flat(self.ev(s.lower))):
                    target = True
                if s.lower is None and s.upper is not None and self.const(s.upper) == -1:
                    inputs = True
            elif "shift" in lab:
                target = True
        if isinstance(base, (Tup, It)) and len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
            s = node.slice[0].slice.value
            if isinstance(base, Tup) and isinstance(s, cst.Integer) and literal_value(s) < len(base.items):
                return base.items[literal_value(s)]
            if isinstance(base, It):
                return base.elem
        data = frozenset(x for x in idx if not x.startswith(STRUCTURAL_PREFIXES) and x not in ("shift", "mask"))
        out = base_l | data
        if not sliced and ("val" in base_l or has_placeholder(base_l)):
            out = out | {"tok"}  # an element of a token array: a token id, usable as a table key
        out = out - {"shift"} if not sliced else out
        if inputs:
            out = out | {"inp"}  # the inputs of a split stream; shifting them again is not the target
        if target and "inp" not in base_l:
            if "val" in base_l:
                out = out | {"tgt"}
            else:
                out = out | {f"tgt?{x}" for x in base_l if x.startswith("p:")}
        if "val" in base_l and not sliced and "rand" in idx:
            self.event(Event("pev", self.gid(node), (Need(base_l, "val"),), data={"how": "random"}))
        if sliced and "val" in base_l:
            for el in node.slice:
                s = el.slice
                if isinstance(s, cst.Slice) and s.upper is not None and (s.lower is None or self.const(s.lower) == 0):
                    up = flat(self.ev(s.upper))
                    if "env" in up and "valsize" not in up:
                        self.event(Event("pev", self.gid(node), (Need(base_l, "val"),), data={"how": "limit"}))
        return self.read(node, base_l, keyl - {"mask"}, out, self.root_name(node.value))

    def read(self, node, table: frozenset, key: frozenset, out: frozenset, root: str | None = None) -> frozenset:
        """A read ``table[key]``: the model's distribution at the target is the score; any other table
        read with a key that depends on the target is a target-keyed read (``tread``)."""
        if "tgt" in key or has_placeholder(key):
            mixed = "mix" in key or "mixp" in key
            if "dist" in table and not mixed:
                return (out | {"tgtprob"}) - {"tgt"}
            if "dist" not in table:
                g = self.gid(node)
                self.event(Event("tread", g, (Need(key, "tgt"), Need(table, "!dist"))))
                if root:
                    self.p.read_roots[g] = root
                return out | {f"tread@{g}"}
        return out

    def ev(self, node):  # noqa: C901 - one dispatch over expression kinds
        t = type(node)
        if t is cst.Name:
            return self.lookup(node.value)
        if t is cst.Attribute:
            if node.attr.value in SIZE_ATTRS:
                base = flat(self.ev(node.value))
                return frozenset({"valsize"}) if "val" in base else EMPTY
            key = dotted(node)
            base = self.ev(node.value)
            fields = [self.p.attrs[(c, node.attr.value)] for c in self.classes_of(node.value, base)
                      if (c, node.attr.value) in self.p.attrs]
            # a field of a known class (field-sensitive); of an unknown object, every field of that name
            out = flat(base) | (EMPTY.union(*fields) if fields else self.p.attrs.get(node.attr.value, EMPTY))
            fieldcls = {x for x in (EMPTY.union(*fields) if fields else EMPTY) if x.startswith("cls:")}
            if key and key in self.env:
                out = out | flat(self.env[key])
            return frozenset(x for x in out if not x.startswith("cls:") or x in fieldcls)
        if t is cst.Call:
            return self.call(node)
        if t is cst.Subscript:
            return self.subscript(node)
        if t is cst.BinaryOperation:
            return self.binop(node)
        if t is cst.Comparison:
            if all(isinstance(c.operator, (cst.Is, cst.IsNot)) for c in node.comparisons):
                self.ev(node.left)
                return frozenset({"mask"})  # "x is None" asks whether a value exists, not what it is
            out = flat(self.ev(node.left))
            eq = False
            prev, prev_node = out, node.left
            for c in node.comparisons:
                right = flat(self.ev(c.comparator))
                if self.loop_depth and isinstance(c.operator, ORDER_OPS) and ("clock" in prev) != ("clock" in right):
                    self.cap_compared(c.comparator if "clock" in prev else prev_node)
                prev, prev_node = right, c.comparator
                if isinstance(c.operator, (cst.Is, cst.IsNot)):
                    continue  # "x is None" asks whether a value exists, not what it is
                out = out | right
                if isinstance(c.operator, (cst.Equal, cst.NotEqual, cst.In, cst.NotIn)):
                    eq = True
            if eq and not any(x.startswith("tread@") for x in out):
                # equality with the target (not with a class looked up from it) evaluates an indicator feature at the target, not a gate
                out = frozenset("tgteq" if x == "tgt" else f"eq?{x}" if x.startswith("p:") else x
                                for x in out if x not in ("mix", "mixp") and not x.startswith("tgt?"))
            return out | {"mask"}
        if t is cst.UnaryOperation:
            return self.ev(node.expression)
        if t is cst.BooleanOperation:
            return flat(self.ev(node.left)) | flat(self.ev(node.right))
        if t is cst.IfExp:
            test = flat(self.ev(node.test))
            out = join(self.ev(node.body), self.ev(node.orelse))
            return self.gate(node, test, flat(out))
        if t in (cst.Tuple, cst.List):
            items = tuple(self.ev(e.value) for e in node.elements)
            if t is cst.Tuple and not any(isinstance(e, cst.StarredElement) for e in node.elements):
                return Tup(items)
            out = EMPTY
            for x in items:
                out = out | flat(x)
            return out
        if t in (cst.Set, cst.Dict):
            out = EMPTY
            for e in node.elements:
                if isinstance(e, cst.DictElement):
                    out = out | flat(self.ev(e.key)) | flat(self.ev(e.value))
                elif hasattr(e, "value"):
                    out = out | flat(self.ev(e.value))
            return out
        if t in (cst.ListComp, cst.GeneratorExp, cst.SetComp, cst.DictComp):
            return self.comprehension(node)
        if t in (cst.SimpleString, cst.ConcatenatedString):
            return self.string(node)
        if t is cst.FormattedString:
            out = EMPTY
            for part in node.parts:
                if isinstance(part, cst.FormattedStringExpression):
                    out = out | flat(self.ev(part.expression))
                elif isinstance(part, cst.FormattedStringText):
                    out = out | self.path_labels(part.value)
            return out
        if t in (cst.Yield,):
            self.summary.generator = True
            if node.value is not None and not isinstance(node.value, cst.From):
                self.summary.ret = join(self.summary.ret, self.ev(node.value))
            return EMPTY
        if t is cst.Await:
            return self.ev(node.expression)
        if t is cst.NamedExpr:
            v = self.ev(node.value)
            self.assign(node.target, v)
            return v
        if t is cst.StarredElement:
            return flat(self.ev(node.value))
        if t is cst.Lambda:
            return EMPTY
        return EMPTY

    def string(self, node) -> frozenset:
        try:
            s = literal_value(node)
        except Exception:  # noqa: BLE001 - odd literals carry no labels
            return EMPTY
        if isinstance(s, bytes):
            return EMPTY
        return self.path_labels(s or "")

    @staticmethod
    def path_labels(s: str) -> frozenset:
        if not _PATHISH.search(s) or len(s) > 300:
            return EMPTY
        if _VAL_PATH.search(s):
            return frozenset({"val"})
        if _TRAIN_PATH.search(s):
            return frozenset({"train"})
        return EMPTY

    def comprehension(self, node):
        saved = dict(self.env)
        self.loop_depth += 1
        try:
            f = node.for_in
            while f is not None:
                it = self.ev(f.iter)
                self.assign(f.target, elem(it))
                for cond in f.ifs:
                    self.ev(cond.test)
                f = f.inner_for_in
            if isinstance(node, cst.DictComp):
                out = flat(self.ev(node.key)) | flat(self.ev(node.value))
            else:
                out = self.ev(node.elt)
        finally:
            self.loop_depth -= 1
            self.env = {**saved, **{k: v for k, v in self.env.items() if k in saved}}
        return It(out) if isinstance(node, cst.GeneratorExp) else flat(out)

    def binop(self, node: cst.BinaryOperation) -> frozenset:
        left, right = flat(self.ev(node.left)), flat(self.ev(node.right))
        op = node.operator
        out = frozenset(x for x in left | right if not x.startswith("cls:"))
        if isinstance(op, cst.Add) and (isinstance(node.right, cst.Integer) and literal_value(node.right) >= 1
                                        or isinstance(node.left, cst.Integer) and literal_value(node.left) >= 1):
            out = out | {"shift"}
        if isinstance(op, cst.Subtract):
            out = out - {"shift"}
            for lab in left:
                if lab.startswith("wend:"):
                    out = (out - {lab}) | {"wlen:" + lab[5:]}
                if lab.startswith("wlen:") and code(node.right) == lab[5:]:
                    self.event(Event("dbl", self.gid(node), (), data={"stride": lab[5:]}))
            out = frozenset(x for x in out if not x.startswith(("ws:", "wend:")) or x in left and not x.startswith("ws:"))
        literal = (cst.Integer, cst.Float, cst.SimpleString)
        if left and right and not isinstance(node.left, literal) and not isinstance(node.right, literal) \
                and not isinstance(op, (cst.Subtract, cst.Divide, cst.MatrixMultiply)):
            out = out | {"mixp"}  # two data operands combined: a hash or a pair index when one is the target
        if isinstance(op, cst.Divide):
            for lab in left:
                if lab.startswith("tread@"):
                    root = self.p.read_roots.get(int(lab[6:]))
                    rc = code(node.right)
                    if root and re.search(rf"\b{re.escape(root)}\b", rc) and "sum" in rc:
                        out = out - {lab}  # row[tgt] / row.sum(): normalized over the row
        return out

    def future(self, node) -> str:
        """A statistic of the whole stream, computed outside any loop."""
        g = self.gid(node)
        self.event(Event("fut", g, ()))
        return f"fut@{g}"

    def gate(self, node, test: frozenset, out: frozenset) -> frozenset:
        if "tgt" in test or has_placeholder(test):
            g = self.gid(node)
            self.event(Event("gate", g, (Need(test, "tgt"),)))
            # the gate is the finding; the target-keyed reads inside its condition are part of it
            return out | {x for x in test if not x.startswith("tread@")} | {f"gate@{g}"}
        return out | test

    # --- calls --------------------------------------------------------------------------------

    def qualname(self, func) -> str:
        """Dotted name through the module's imports (``F.cross_entropy`` -> ``torch.nn.functional.cross_entropy``)."""
        d = dotted(func)
        if not d:
            return ""
        head, _, rest = d.partition(".")
        if head in self.env and head not in self.m.aliases:
            return ""
        full = self.m.aliases.get(head)
        if full is None:
            return d if head in ("os", "subprocess", "socket", "urllib", "requests") else ""
        return f"{full}.{rest}" if rest else full

    def call(self, node: cst.Call):  # noqa: C901
        func = node.func
        args = [a for a in node.args]
        pos = [a for a in args if a.keyword is None]
        kw = {a.keyword.value: a for a in args if a.keyword is not None}
        vals = [self.ev(a.value) for a in pos]
        kwvals = {k: self.ev(a.value) for k, a in kw.items()}
        allargs = EMPTY
        for k, v in [*enumerate(vals), *kwvals.items()]:
            if isinstance(k, int) or k in DATA_KEYWORDS:
                allargs = allargs | flat(v)
        name = func.attr.value if type(func) is cst.Attribute else func.value if type(func) is cst.Name else ""
        recv = self.ev(func.value) if type(func) is cst.Attribute else EMPTY
        recv_l = flat(recv)
        q = self.qualname(func)

        self.external(node, q)
        if q in CLOCK_CALLS:
            return frozenset({"clock"})
        # submission functions and classes
        target = self.resolve(func, q, recv_l)
        if target is not None:
            if isinstance(target, tuple):  # class construction; an object built on training files reads them
                return frozenset({f"cls:{target[2]}"}) | ({"trainobj"} if "train" in allargs else EMPTY)
            bound = type(func) is cst.Attribute and target.cls is not None and target.params[:1] == ["self"]
            return self.apply(node, target, ([recv] if bound else []) + vals, kwvals)
        if type(func) is cst.Name and func.value in self.local_funcs:
            f = self.local_funcs[func.value]
            return self.apply(node, f, vals, kwvals)

        # library semantics
        if name in SIZE_CALLS and not q.startswith(("os.", "subprocess")):
            src = recv_l | allargs
            return frozenset({"valsize"}) if "val" in src else EMPTY
        if name in ("register_forward_hook", "register_forward_pre_hook") and type(func) is cst.Attribute:
            self.hooks = True
            return EMPTY
        if name == "backward" and type(func) is cst.Attribute:
            g = self.gid(node)
            self.effects.append((Effect("train", g, recv_l, fresh="fresh" in recv_l), g))
            self.loop_site[g] = self.loop_depth
            return EMPTY
        if q.endswith(("environ.get", "getenv")) or q == "os.environ.get":
            return frozenset({"env"}) | allargs
        if name in LOSS_CALLS:
            return allargs | recv_l | {"loss"} - {"dist"}
        if name in DIST_CALLS:
            out = allargs | recv_l | {"dist"}
            return out | {"loss"} if name == "log_softmax" else out
        if name in LOG_CALLS and (allargs | recv_l):
            return allargs | recv_l | {"loss"}
        if name in AGGREGATE_CALLS:
            src = allargs | recv_l
            out = src - CURRENT
            if ("val" in src or has_placeholder(src)) and self.f is not None and self.loop_depth == 0 and not self.disabled:
                out = out | {self.future(node)}
            return out
        if name in ("where",) and len(vals) == 3:
            return self.gate(node, flat(vals[0]), flat(vals[1]) | flat(vals[2]))
        if name in MIN_CALLS and len(vals) >= 2 and sum("loss" in flat(v) for v in vals) >= 2:
            g = self.gid(node)
            self.event(Event("orc", g, (Need(allargs, "val"),)))
            return allargs | {f"orc@{g}"}
        if name in READ_METHODS and type(func) is cst.Attribute and vals and not q:
            key = flat(vals[-1]) if name != "get" else flat(vals[0])
            return self.read(node, recv_l, key, recv_l | allargs, self.root_name(func.value))
        if name == "gather" and q and len(vals) >= 3:
            return self.read(node, flat(vals[0]), flat(vals[2]), allargs)
        if type(func) is cst.Attribute and (name in TABLE_WRITE_METHODS or (dotted(func.value).rsplit(".", 1)[-1], name) in TABLE_WRITE_FUNCS):
            if name in TABLE_WRITE_METHODS:
                key = flat(vals[1]) if len(vals) >= 2 else EMPTY
                self.table_write(func.value, key, allargs, node)
                return recv_l
            if len(vals) >= 2:
                self.table_write(node.args[0].value, flat(vals[1]), allargs, node)
            return EMPTY
        if name in RANDOM_CALLS:
            return allargs | recv_l | {"rand"}
        if name == "range":
            out = allargs - {"shift"}
            if len(vals) == 3:
                stop = pos[1].value
                if not (isinstance(stop, cst.BinaryOperation) and isinstance(stop.operator, cst.Subtract)):
                    out = out | {f"ws:{code(pos[2].value)}"}
            return It(out)
        if name == "arange":
            return allargs
        if name == "min" and q == "" and vals:
            out = allargs
            for lab in flat(vals[0]):
                if lab.startswith("ws:"):
                    out = out | {"wend:" + lab[3:]}
            return out
        if name == "enumerate" and vals:
            return It(Tup((EMPTY, elem(vals[0]))))
        if name == "zip" and vals:
            return It(Tup(tuple(elem(v) for v in vals)))
        if name in ("iter", "reversed", "sorted", "list", "tuple") and vals and not type(func) is cst.Attribute:
            return vals[0] if name != "tuple" else vals[0]
        if name == "next" and vals:
            return elem(vals[0])
        if name in ("items", "values", "keys") and type(func) is cst.Attribute:
            return It(recv_l)
        # a model (an nn.Module) called on data: its outputs are logits, a distribution over the vocabulary
        out = recv_l | allargs
        callable_value = type(func) is cst.Attribute or (type(func) is cst.Name and func.value in self.env)
        if callable_value and not q and (allargs & {"val", "train"} or has_placeholder(allargs)):
            forwards = self.forwards(func, len(vals), recv_l)
            if "val" not in allargs and (forwards or type(func) is cst.Name or name in ("forward", "forward_logits")):
                # a model's forward, perhaps on training data (the labels tell, once known)
                g = self.gid(node)
                self.effects.append((Effect("tfwd", g, allargs, data=(self.disabled,)), g))
            if self.hooks and ("val" in allargs or has_placeholder(allargs)):
                self.event(Event("vcal", self.gid(node), (Need(allargs, "val"),), data={"how": "hooks"}))
            if forwards:
                res = EMPTY
                for f in forwards:
                    res = res | flat(self.apply(node, f, [recv] + vals if f.params[:1] == ["self"] else vals, kwvals))
                return res | (frozenset({"dist"}) if "loss" not in res else EMPTY)
            if type(func) is cst.Name or name in ("forward", "forward_logits"):
                out = out | {"dist"}
        return frozenset(x for x in out if not x.startswith("cls:"))  # a call's result is not the receiver

    def forwards(self, func, nargs: int, recv_l) -> list[FunctionDef]:
        """Class-hierarchy resolution of ``model(...)`` and ``obj.method(...)`` on values of unknown class:
        every submission method of that name that takes these arguments (of the known classes, if any)."""
        name = func.attr.value if type(func) is cst.Attribute else func.value
        classes = [x[4:] for x in recv_l if x.startswith("cls:")]
        if type(func) is cst.Name or name == "__call__":
            name = "forward"
        cands = self.p.methods.get(name, [])
        if classes:
            cands = [f for f in cands if f.cls in classes]
        return [f for f in cands if self._arity_ok(f, nargs)][:8]

    @staticmethod
    def _arity_ok(f: FunctionDef, nargs: int) -> bool:
        params = f.params[1:] if f.params[:1] == ["self"] else f.params
        required = len([p for p in (f.node.params.params[1:] if f.params[:1] == ["self"] else f.node.params.params) if p.default is None])
        return required <= nargs <= len(params) or (f.star is not None and nargs >= required)

    def resolve(self, func, q: str, recv_l):
        if type(func) is cst.Name:
            n = func.value
            if n in self.local_funcs or (n in self.env and n not in self.m.functions and n not in self.m.classes):
                return None
            if n in self.m.functions:
                return self.m.functions[n]
            if n in self.m.classes:
                return ("class", self.m, n)
            if n in self.m.aliases:
                return self.p.resolve_import(self.m, self.m.aliases[n])
            return None
        if type(func) is cst.Attribute:
            meth = func.attr.value
            if isinstance(func.value, cst.Name) and func.value.value == "self" and self.f is not None and self.f.cls:
                f = self.m.classes.get(self.f.cls, {}).get(meth)
                if f is not None:
                    return f
                for base in self.m.bases.get(self.f.cls, []):
                    f = self.m.classes.get(base, {}).get(meth)
                    if f is not None:
                        return f
                return None
            if q:
                r = self.p.resolve_import(self.m, q)
                if r is not None:
                    return r
            classes = [x[4:] for x in recv_l if x.startswith("cls:")]
            for c in classes:
                for m in self.p.modules:
                    f = m.classes.get(c, {}).get(meth)
                    if f is not None:
                        return f
        return None

    def apply(self, node, f: FunctionDef, vals: list, kwvals: dict):
        if f.summary is None and not f.in_progress:
            # the classes of the first caller's arguments resolve method calls on the parameters
            for i, v in enumerate(vals[:len(f.params)]):
                classes = frozenset(x for x in flat(v) if x.startswith("cls:"))
                if classes:
                    f.param_classes[i] = classes
        s = self.p.summary(f)
        args = list(vals)
        for i, pname in enumerate(f.params):
            if i >= len(args):
                args.append(kwvals.get(pname, EMPTY))
        if f.star is not None:
            extra = EMPTY
            for v in vals[len(f.params):]:
                extra = extra | flat(v)
            args = args[:len(f.params)] + [extra]
        f.called = True
        if self.loop_depth:
            f.called_in_loop = True
        g = self.gid(node)
        for eff in s.effects:
            labels = flat(substitute(eff.labels, args))
            data = (eff.data[0] or self.disabled,) if eff.kind == "tfwd" else eff.data
            self.effects.append((Effect(eff.kind, eff.origin, labels, eff.fresh, data), g))
            self.loop_site[g] = self.loop_depth
        for ev in s.events:
            self.event(ev.instantiate(args, self.disabled))
        for i, labels in s.param_writes.items():
            if i < len(node.args) if i < len(vals) else False:
                name = self.root_name(node.args[i].value) if i < len(node.args) else None
                if name:
                    w = history(flat(substitute(labels, args)))
                    if self.loop_depth:
                        w = frozenset(x for x in w if not x.startswith("fut@"))
                    self.env[name] = join(self.env.get(name), w)
        ret = substitute(s.ret if s.ret is not None else EMPTY, args)
        if self.loop_depth:  # aggregates built per loop iteration are history, not the whole stream
            ret = _drop_fut(ret)
        return It(ret) if s.generator else ret

    def external(self, node, q: str) -> None:
        if not q:
            return
        head = q.split(".")[0]
        parts = tuple(q.split("."))
        kind = None
        if head in NETWORK_MODULES or parts[:2] in NETWORK_CALLS or parts[-1] in ("hf_hub_download", "snapshot_download"):
            kind = "network"
        elif head == "subprocess" or parts[:2] in PROGRAM_CALLS:
            kind = "program"
        elif head == "ctypes" and parts[-1] in ("CDLL", "cdll", "LoadLibrary", "PyDLL"):
            kind = "native"
        if kind:
            self.event(Event("ext", self.gid(node), (), data={"kind": kind, "call": q}))

    # --- constants under the official run -----------------------------------------------------

    def set_num(self, name: str, v) -> None:
        if self.disabled:
            return
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            self.nums[name] = v
        else:
            self.nums.pop(name, None)

    def num(self, node):
        """A number under the official run, following ``x -= reserve`` and ``a if test else b``."""
        t = type(node)
        if t is cst.Name and node.value in self.nums:
            return self.nums[node.value]
        if t is cst.IfExp:
            c = self.const(node.test)
            return UNKNOWN if c is UNKNOWN else self.num(node.body if c else node.orelse)
        if t is cst.BinaryOperation:
            a, b = self.num(node.left), self.num(node.right)
            if a is UNKNOWN or b is UNKNOWN:
                return UNKNOWN
            try:
                return _binop(node.operator, a, b)
            except Exception:  # noqa: BLE001
                return UNKNOWN
        return self.const(node)

    def cap_compared(self, cap_node) -> None:
        """An elapsed wall-clock time compared with a cap: the cap in seconds (a value of 10,000 or more
        is taken as milliseconds)."""
        v = self.num(cap_node)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            self.caps.append(v / 1000.0 if v >= 10_000 else float(v))

    def const(self, node, depth: int = 0):  # noqa: C901
        if depth > 12:
            return UNKNOWN
        t = type(node)
        if t is cst.Integer or t is cst.Float:
            return literal_value(node)
        if t in (cst.SimpleString, cst.ConcatenatedString):
            try:
                return literal_value(node)
            except Exception:  # noqa: BLE001
                return UNKNOWN
        if t is cst.Name:
            if node.value in ("True", "False", "None"):
                return {"True": True, "False": False, "None": None}[node.value]
            if node.value in self.consts:
                return self.consts[node.value]
            return self.m.consts.get(node.value, UNKNOWN)
        if t is cst.Attribute:
            d = dotted(node)
            if d in self.consts:
                return self.consts[d]
            if isinstance(node.value, cst.Name) and node.value.value in ("os", "sys", "torch", "np", "math"):
                return UNKNOWN
            return self.p.attr_consts.get(node.attr.value, UNKNOWN)
        if t is cst.UnaryOperation:
            v = self.const(node.expression, depth + 1)
            if v is UNKNOWN:
                return UNKNOWN
            try:
                if isinstance(node.operator, cst.Not):
                    return not v
                if isinstance(node.operator, cst.Minus):
                    return -v
            except TypeError:
                return UNKNOWN
            return UNKNOWN
        if t is cst.BooleanOperation:
            a = self.const(node.left, depth + 1)
            if isinstance(node.operator, cst.And):
                if a is not UNKNOWN and not a:
                    return a
                b = self.const(node.right, depth + 1)
                return b if a is not UNKNOWN else (b if b is not UNKNOWN and not b else UNKNOWN)
            if a is not UNKNOWN and a:
                return a
            b = self.const(node.right, depth + 1)
            return b if a is not UNKNOWN else (b if b is not UNKNOWN and b else UNKNOWN)
        if t is cst.Comparison:
            left = self.const(node.left, depth + 1)
            result = True
            for c in node.comparisons:
                if isinstance(c.operator, (cst.In, cst.NotIn)) and dotted(c.comparator) in ("os.environ",):
                    right = self.p.env
                else:
                    right = self.const(c.comparator, depth + 1)
                if left is UNKNOWN or right is UNKNOWN:
                    return UNKNOWN
                try:
                    ok = _compare(c.operator, left, right)
                except TypeError:
                    return UNKNOWN
                if ok is UNKNOWN:
                    return UNKNOWN
                result = result and ok
                left = right
            return result
        if t is cst.BinaryOperation:
            a, b = self.const(node.left, depth + 1), self.const(node.right, depth + 1)
            if a is UNKNOWN or b is UNKNOWN:
                return UNKNOWN
            try:
                return _binop(node.operator, a, b)
            except Exception:  # noqa: BLE001 - a value we cannot compute is unknown
                return UNKNOWN
        if t is cst.Call:
            return self.const_call(node, depth)
        if t is cst.Subscript and dotted(node.value) == "os.environ" and len(node.slice) == 1 \
                and isinstance(node.slice[0].slice, cst.Index):
            k = self.const(node.slice[0].slice.value, depth + 1)
            return self.p.env.get(k, UNKNOWN) if isinstance(k, str) else UNKNOWN
        return UNKNOWN

    def const_call(self, node: cst.Call, depth: int):
        d = dotted(node.func)
        vals = [self.const(a.value, depth + 1) for a in node.args if a.keyword is None]
        if d in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
            if not vals or not isinstance(vals[0], str):
                return UNKNOWN
            default = vals[1] if len(vals) > 1 else None
            return self.p.env.get(vals[0], default)
        if d in ("int", "float", "bool", "str") and len(vals) == 1 and vals[0] is not UNKNOWN:
            try:
                if d == "bool" and isinstance(vals[0], str):
                    return UNKNOWN
                return {"int": int, "float": float, "bool": bool, "str": str}[d](vals[0])
            except (TypeError, ValueError):
                return UNKNOWN
        if d in ("max", "min") and vals and UNKNOWN not in vals:
            try:
                return (max if d == "max" else min)(vals)
            except (TypeError, ValueError):
                return UNKNOWN
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in ("lower", "strip") and not vals:
            base = self.const(node.func.value, depth + 1)
            return getattr(base, node.func.attr.value)() if isinstance(base, str) else UNKNOWN
        return UNKNOWN


ORDER_OPS = (cst.LessThan, cst.LessThanEqual, cst.GreaterThan, cst.GreaterThanEqual)


def history(labels: frozenset) -> frozenset:
    """What a table written with these values holds later: past tokens, not the current target."""
    return frozenset(x for x in labels if x not in CURRENT and not x.startswith(("tread@", "gate@", "orc@", "tgt?")))


def _data_key(labels: frozenset) -> bool:
    """An index computed from token data (not a position, a slice or a boolean mask)."""
    return "mask" not in labels and ("tgt" in labels or "tok" in labels)


def _is_gram(node) -> bool:
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.MatrixMultiply):
        return "T" in code(node.left) or "t()" in code(node.left) or "transpose" in code(node.left)
    if isinstance(node, cst.Call) and dotted(node.func).rsplit(".", 1)[-1] in ("matmul", "mm") and node.args:
        first = code(node.args[0].value)
        return ".T" in first or "t()" in first or "transpose" in first
    return False


def _drop_fut(v):
    if isinstance(v, Tup):
        return Tup(tuple(_drop_fut(x) for x in v.items))
    if isinstance(v, It):
        return It(_drop_fut(v.elem))
    return frozenset(x for x in v if not x.startswith("fut@"))


def _compare(op, a, b):
    if isinstance(op, cst.Equal):
        return a == b
    if isinstance(op, cst.NotEqual):
        return a != b
    if isinstance(op, cst.LessThan):
        return a < b
    if isinstance(op, cst.LessThanEqual):
        return a <= b
    if isinstance(op, cst.GreaterThan):
        return a > b
    if isinstance(op, cst.GreaterThanEqual):
        return a >= b
    if isinstance(op, cst.In):
        return a in b
    if isinstance(op, cst.NotIn):
        return a not in b
    if isinstance(op, cst.Is):
        return a is b
    if isinstance(op, cst.IsNot):
        return a is not b
    return UNKNOWN


def _binop(op, a, b):
    if isinstance(op, cst.Add):
        return a + b
    if isinstance(op, cst.Subtract):
        return a - b
    if isinstance(op, cst.Multiply):
        if isinstance(a, str) or isinstance(b, str):
            raise TypeError
        return a * b
    if isinstance(op, cst.FloorDivide):
        return a // b
    if isinstance(op, cst.Divide):
        return a / b
    if isinstance(op, cst.Modulo) and not isinstance(a, str):
        return a % b
    if isinstance(op, cst.Power) and abs(b) < 64:
        return a ** b
    raise TypeError
