"""The program model: the submission's modules, functions and classes, the summaries of analysed
functions, and the events (facts for the rules) with the conditions that still depend on a caller."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from .bounds import field_sites
from .callsites import MAX_ROUNDS, CallSiteFacts
from .labels import EMPTY, flat, has_placeholder, substitute
from .reach import Reach
from .runlogs import RunLogs
from .totals import table_totals
from .tree import assigned_names, dotted


def _this_module(node) -> bool:
    """``sys.modules[__name__]``: the module that runs the expression."""
    return isinstance(node, cst.Subscript) and dotted(node.value) == "sys.modules" and len(node.slice) == 1 \
        and isinstance(node.slice[0].slice, cst.Index) and isinstance(node.slice[0].slice.value, cst.Name) \
        and node.slice[0].slice.value.value == "__name__"


@dataclass
class Need:
    labels: frozenset
    want: str  # a label that must be present, e.g. TARGET or VAL

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
    disabled: bool | str = False  # off: True under the launch, or why the claimed runs' logs show it off
    data: dict = field(default_factory=dict)

    def state(self) -> str:
        states = [n.state() for n in self.needs]
        if "no" in states:
            return "no"
        return "maybe" if "maybe" in states else "yes"

    def instantiate(self, args: list, disabled: bool | str) -> "Event":
        needs = tuple(Need(flat(substitute(n.labels, args)), n.want) for n in self.needs)
        return Event(self.kind, self.node, needs, self.disabled or disabled, self.data)


@dataclass
class Effect:
    kind: str  # "train" or "score"
    origin: int  # node id where it happens in the deepest function
    labels: frozenset
    fresh: bool = False  # training of tensors created in the eval itself (eval-time optimization)
    data: tuple = ()  # "cap": (cap in seconds,); "tfwd": (disabled,)
    disabled: bool | str = False  # in code that is off under the official launch (here or at a call site
    # above): True, or why the claimed runs' logs show it off (runlogs.py)


@dataclass
class Summary:
    ret: object = None
    effects: list = field(default_factory=list)
    events: list = field(default_factory=list)
    param_writes: dict = field(default_factory=dict)  # param index -> labels written into it
    fills: dict = field(default_factory=dict)  # param index -> token data written into its state (state.py)
    outer_fills: dict = field(default_factory=dict)  # enclosing function's variable -> token data written into it
    sunk: frozenset = EMPTY  # parameters whose values reach a score here
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
        self.assumed: dict | None = None  # parameter -> the value its first call passes (callsites.py)
        self._locals: set[str] | None = None

    def locals(self) -> set[str]:
        """Names the function binds itself (its parameters, its assignments): not its closure's."""
        if self._locals is None:
            self._locals = assigned_names(self.node.body) | set(self.params) | set(self.kwonly)
        return self._locals


@dataclass
class ModuleInfo:
    path: str  # relative path used in findings
    name: str  # dotted module name for imports between submission files
    tree: cst.Module
    source: str
    aliases: dict = field(default_factory=dict)  # local name -> dotted import path
    self_names: set = field(default_factory=set)  # names bound to the module itself (``sys.modules[__name__]``)
    functions: dict = field(default_factory=dict)  # module-level name -> FunctionDef
    classes: dict = field(default_factory=dict)  # class name -> {method name: FunctionDef}
    bases: dict = field(default_factory=dict)
    globals: dict = field(default_factory=dict)  # module-level name -> value labels
    consts: dict = field(default_factory=dict)  # module-level name -> constant under the official run


class Program:
    """All Python modules of one submission, analysed together."""

    def __init__(self, official_env: dict[str, str], logs: list[str] = ()):
        self.env = official_env
        self.logs = RunLogs(list(logs))  # the claimed runs' logs: which branches they show taken (runlogs.py)
        self.calls = CallSiteFacts()
        self.sources: list[tuple[str, str, cst.Module, str]] = []  # what add_module was given, for a new round
        self._clear()

    def _clear(self) -> None:
        """Everything one round of the analysis builds (the call-site facts and the sources stay)."""
        self.modules: list[ModuleInfo] = []
        self.by_name: dict[str, ModuleInfo] = {}
        self.reach = Reach()  # which functions run (reach.py)
        self.nodes: list[tuple[ModuleInfo, cst.CSTNode, str]] = []  # gid -> (module, node, function)
        self.node_ids: dict[int, int] = {}
        self.attrs: dict[str, frozenset] = {}  # attribute name -> labels (object-insensitive)
        self.attr_consts: dict[str, object] = {}  # attribute name -> constant (class-level settings)
        self.methods: dict[str, list[FunctionDef]] = {}  # method name -> defs in every class
        self.facts: dict[tuple, Event] = {}  # resolved events by (kind, node)
        self.read_roots: dict[int, str] = {}  # target-keyed read -> the table variable it reads
        self.defs: list[FunctionDef] = []  # every function met, for release()
        self.class_settings: set[tuple] = set()  # (class, name) of class-level settings (not set by methods)
        self.table_totals: dict[str, set[str]] = {}  # counter -> tables whose totals it holds (totals.py)
        self.field_sites: dict[tuple, int] = {}  # (class, field) -> assignments of self.<field> in its methods
        self.mapping_cache: dict[tuple, set] = {}  # a class or function -> its names bound to a new mapping (mappings.py)
        self.field_least: dict[tuple, object] = {}  # (class, field) -> least value __init__ gave it (bounds.py)

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
        self.sources.append((path, name, tree, source))
        self._add(path, name, tree, source)

    def _add(self, path: str, name: str, tree: cst.Module, source: str) -> None:
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
            self._totals(stmt)
        elif isinstance(stmt, cst.ClassDef):
            methods = {}
            for item in stmt.body.body:
                if isinstance(item, cst.FunctionDef):
                    f = FunctionDef(item, m, f"{stmt.name.value}.{item.name.value}", stmt.name.value)
                    methods[item.name.value] = f
                    self.defs.append(f)
                    self.methods.setdefault(item.name.value, []).append(f)
                    self._totals(item)
            m.classes[stmt.name.value] = methods
            for name, n in field_sites(stmt).items():
                key = (stmt.name.value, name)
                self.field_sites[key] = self.field_sites.get(key, 0) + n
            m.bases[stmt.name.value] = [dotted(a.value) for a in stmt.bases]
        elif isinstance(stmt, cst.SimpleStatementLine):
            for s in stmt.body:
                if isinstance(s, cst.Assign) and _this_module(s.value):
                    m.self_names.update(t.target.value for t in s.targets if isinstance(t.target, cst.Name))
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

    def _totals(self, func: cst.FunctionDef) -> None:
        for counter, tables in table_totals(func).items():
            self.table_totals.setdefault(counter, set()).update(tables)

    # --- the whole program --------------------------------------------------------------------

    def analyse(self) -> None:
        """Analyse the program; again, without them, while a round refutes constants it assumed at call sites."""
        self.logs.bind([tree for _, _, tree, _ in self.sources])
        for round_no in range(1, MAX_ROUNDS + 1):
            self.calls.changed = False
            self.calls.final = round_no == MAX_ROUNDS
            if round_no > 1:
                self.release()
                self._clear()
                for src in self.sources:
                    self._add(*src)
            self._analyse_round()
            if not self.calls.changed:
                self.reach.switch_off(self.facts)
                return

    def _analyse_round(self) -> None:
        from .interpret import Walker  # the walk builds on this model

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
        from .interpret import Walker

        f.in_progress = True
        w = Walker(self, f.module, f)
        f.summary = w.run_function()
        f.in_progress = False
        return f.summary

    @staticmethod
    def fact_key(ev: Event) -> tuple:
        # a training step reported once, where training and the later score first meet
        return (ev.kind, ev.data["origin"]) if "origin" in ev.data else (ev.kind, ev.node)

    def record(self, ev: Event) -> None:
        key = self.fact_key(ev)
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

