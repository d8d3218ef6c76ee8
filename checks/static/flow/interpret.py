"""The walk: ``Walker`` walks one function (or a module's top level) in statement order, carrying the
labels of every local value, and emits events and effects. What an expression's value carries is in
``expressions.py``, what a call does in ``calls.py`` (both mixins of ``Walker``)."""

from __future__ import annotations

import libcst as cst

from . import aliases
from .callsites import DEFAULT
from .bounds import LeastValues
from .calls import Calls
from .consts import OFFICIAL_CAP_S, UNKNOWN, ConstEval, _binop
from .labels import EMPTY, TRAIN_READ, It, Tup, _data_key, captured, elem, flat, has_placeholder, history, join
from .lists import made_anew
from .mappings import field_mappings, mapping_names
from .epochs import Epochs
from .expressions import Expressions
from .library import AGGREGATE, _is_gram, LibraryCalls
from .reported import OVER, superseded
from .model import Effect, Event, FunctionDef, ModuleInfo, Need, Program, Summary
from .runlogs import Shown
from .state import StateFills
from .trainfwd import TrainingForward
from .tree import assigned_names, code_children, dotted, walk
from .vocab import (BOOL, EVAL_TIME_OPTIMIZATION, FRESH, FUTURE, LOSS, MASK, MAYBE_SCORE, PARAM, SCORE, TARGET,
                    TARGET_GATE, TRAIN, TRAIN_DATA_AT_EVAL, TRAIN_DATA_LATE, TRAIN_FORWARD, TRAIN_STEP,
                    UPDATE_BEFORE_SCORE, VAL, VAL_CALIBRATION, marks_of, param, sink)


def live_branch(test_value, shown: Shown) -> bool | None:
    """Which branch of an ``if`` runs (True: the body), where the launch's constants decide the test and
    the claimed runs' logs do not say otherwise; None where both may run."""
    if test_value is UNKNOWN or shown.ran not in (None, bool(test_value)):
        return None
    return bool(test_value)


def _sums(node) -> bool:
    """The expression sums something (``x.sum()``, ``sum(xs)``, ``torch.sum(x)``)."""
    for n in walk(node):
        if isinstance(n, cst.Call):
            f = n.func
            if (isinstance(f, cst.Attribute) and f.attr.value == "sum") or (isinstance(f, cst.Name) and f.value == "sum"):
                return True
    return False




def _with_labels(v, extra: frozenset):
    """A value (its tuple or iterable structure kept) with labels added to every part."""
    if not extra:
        return v
    if isinstance(v, Tup):
        return Tup(tuple(_with_labels(x, extra) for x in v.items))
    if isinstance(v, It):
        return It(_with_labels(v.elem, extra))
    return flat(v) | extra


def _running_total(value, name: str) -> bool:
    """``name + v``, ``name - old + v``: the running total ``name`` with v added."""
    if not (isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add)):
        return False
    left = value.left
    while isinstance(left, cst.BinaryOperation) and isinstance(left.operator, (cst.Add, cst.Subtract)):
        left = left.left
    return isinstance(left, cst.Name) and left.value == name


def _reads_loop_variable(loop: cst.For) -> bool:
    """The loop's body reads its variable other than in a formatted string (a log message)."""
    names = {n.value for n in walk(loop.target) if isinstance(n, cst.Name)}
    stack = [loop.body]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.FormattedString):
            continue
        if isinstance(n, cst.Name) and n.value in names:
            return True
        stack.extend(code_children(n))
    return False


def _total(node) -> bool:
    """``x.sum()`` (after any conversions): the total of x (a mean is the training-loss idiom, not a score)."""
    return isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "sum" \
        and not node.args


def _provenance(v) -> frozenset:
    """The labels that name where an event happened (``tread@``, ``gate@``, ``orc@``, ``fut@``), not what a value is."""
    return frozenset(x for x in flat(v) if "@" in x) if v is not None else EMPTY


def _conjuncts(test) -> set[str]:
    """The dotted names a test requires to hold: itself, or the terms of an ``and``."""
    if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
        return _conjuncts(test.left) | _conjuncts(test.right)
    d = dotted(test)
    return {d} if d else set()


def _bindings(body, name: str) -> int:
    """How many statements of a function's body bind ``name``."""
    return sum(name in assigned_names(n) for n in walk(body) if isinstance(n, (cst.Assign, cst.AugAssign, cst.AnnAssign)))


class Walker(Expressions, Calls, ConstEval, LeastValues, LibraryCalls, StateFills, TrainingForward, Epochs):
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
        self.forward_of: dict[str, frozenset] = {}  # name -> the calls its value is computed from (trainfwd.py)
        self.trained: set[str] = set()  # names backward() was called on (trainfwd.py)
        self.loop_site: dict[int, int] = {}
        self.loops: list[int] = []  # the enclosing loops (node ids), outermost first
        self.loop_path: dict[int, tuple] = {}  # effect site -> the loops around it
        self.hooks = False
        self.nums: dict[str, object] = {}  # numbers under the official run, updated by augmented assignments
        self.mins: dict[str, object] = {}  # least values of integer names (bounds.py)
        self.caps: list[float] = []  # wall-clock caps compared inside the current outermost loop
        self.return_gates: frozenset = EMPTY  # gates of the ``if`` branches around a ``return`` (returning_branch)
        self.fn_aliases: dict[str, str] = {}  # local names bound to library functions (aliases.py)
        self.following: list[tuple[list, int]] = []  # (block, index): the statements still to run, innermost last
        self.list_home: dict[str, tuple] = {}  # list name -> the loops around where it was made (lists.py)

    # --- entry points -------------------------------------------------------------------------

    def module_prelude(self) -> None:
        """Module-level constants and class-level settings (Hyperparameters), before any function."""
        for stmt in self.m.tree.body:
            if isinstance(stmt, cst.SimpleStatementLine):
                self.stmt(stmt)
            elif isinstance(stmt, cst.ClassDef):
                saved = dict(self.env)
                self.class_settings(stmt.name.value, stmt.body.body)
                self.env = saved
        self.m.globals.update(self.env)
        self.m.consts.update(self.consts)

    def class_settings(self, cls: str, body) -> None:
        """The class attributes a class body assigns (``val_files = ...``), also inside its ``if`` branches: the
        branch the launch's constants choose, or every branch where they do not decide."""
        for item in body:  # statement lines, or the small statements of a one-line body
            if isinstance(item, cst.If):
                c = self.const(item.test)
                if c is UNKNOWN or c:
                    self.class_settings(cls, item.body.body)
                if item.orelse is not None and (c is UNKNOWN or not c):
                    orelse = [item.orelse] if isinstance(item.orelse, cst.If) else item.orelse.body.body
                    self.class_settings(cls, orelse)
                continue
            if not isinstance(item, (cst.SimpleStatementLine, cst.BaseSmallStatement)):
                continue
            for s in item.body if isinstance(item, cst.SimpleStatementLine) else [item]:
                if isinstance(s, (cst.Assign, cst.AnnAssign)) and s.value is not None:
                    targets = [t.target for t in s.targets] if isinstance(s, cst.Assign) else [s.target]
                    self.class_setting(cls, targets, s.value)

    def class_setting(self, cls: str, targets: list, value) -> None:
        v = flat(self.ev(value))
        c = self.const(value)
        for t in targets:
            if isinstance(t, cst.Name):
                self.env[t.value] = v  # later class attributes may use earlier ones
                self.consts[t.value] = c
                self.p.attrs[t.value] = self.p.attrs.get(t.value, EMPTY) | v
                key = (cls, t.value)
                self.p.class_settings.add(key)
                self.p.attrs[key] = self.p.attrs.get(key, EMPTY) | v
                if c is not UNKNOWN:
                    self.p.attr_consts[t.value] = c

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
            self.env[name] = frozenset({param(i)}) | f.param_classes.get(i, EMPTY)
        for j, name in enumerate(f.kwonly):  # keyword-only parameters follow the ``*args`` slot
            self.env[name] = frozenset({f"p:{len(f.params) + 1 + j}"})
        if f.star:
            self.env[f.star] = frozenset({f"p:{len(f.params)}"})
        if f.outer is not None:  # closures read the enclosing function's values
            for k, v in f.outer.env.items():
                self.env.setdefault(k, captured(v))
            self.consts.update(f.outer.consts)
            self.local_funcs.update(f.outer.local_funcs)
            self.fn_aliases.update(f.outer.fn_aliases)
        self.parameter_constants(f)
        self.block(f.node.body)
        for i, name in enumerate(f.params):
            v = flat(self.env.get(name, EMPTY)) - {param(i)} - f.param_classes.get(i, EMPTY)
            if v:
                self.summary.param_writes[i] = v
        self.finish()
        return self.summary

    def parameter_constants(self, f: FunctionDef) -> None:
        """A parameter is a constant when its call sites agree on it (callsites.py); one they do not pass has
        its default, as has every parameter of a function no call reaches."""
        assumed = f.assumed or {}
        for p in [*f.node.params.posonly_params, *f.node.params.params, *f.node.params.kwonly_params]:
            name = p.name.value
            if self.p.calls.is_refuted(f, name) or name in self.consts:
                continue
            v = assumed.get(name, DEFAULT)
            if v is DEFAULT and p.default is not None:
                v = self.const(p.default)
            if v is not DEFAULT and v is not UNKNOWN:
                self.consts[name] = v

    def finish(self) -> None:
        """Order checks over this body's effects; resolve or keep this function's events."""
        for k, (eff, site) in enumerate(self.effects):
            if eff.kind != TRAIN_STEP:
                continue
            if self.scored_first(k, site):
                later = self.rescored_after(site)  # epochs of a score-first loop (epochs.py)
            else:
                later = [(e, s) for e, s in self.effects[k + 1:] if e.kind == SCORE]
            if not later:
                continue
            score_labels = EMPTY.union(*[e.labels for e, _ in later])
            kind = EVAL_TIME_OPTIMIZATION if eff.fresh else UPDATE_BEFORE_SCORE
            # ``loop``: the loops the step shares with the score after it (a chunk adapted then scored in the same
            # pass), none for a training pass that is over before an evaluation starts
            self.event(Event(kind, site, (Need(eff.labels, VAL), Need(score_labels, VAL)), disabled=eff.disabled,
                             data={"origin": eff.origin, "loop": len(self.shared_loops(site, later[0][1])), "func": self.f,
                                   "epochs": self.epochs_between(k, site)}))
        self.late_train_reads()
        self.unreported_scores()
        self.summary.effects = [e for e, _ in self.effects]
        self.summary.env = self.env
        self.summary.events = [e for e in self.summary.events if e.state() == "maybe"]

    def unreported_scores(self) -> None:
        """Values that reach a score a later evaluation of the stream supersedes (reported.py)."""
        scores = [e for e, _ in self.effects if e.kind == SCORE]
        for lab in superseded(scores):
            kind, _, at = lab.partition("@")
            self.p.record(Event(OVER + kind, int(at)))

    def epochs_between(self, k: int, site: int) -> bool:
        """Whether the loop that holds training step ``k`` and the next score after it repeats the same work
        each time (``for epoch in range(n)``, its variable used at most in log messages): epochs of training
        on validation data with an evaluation in between, not a chunk adapted and then scored."""
        later = [s for e, s in self.effects[k + 1:] if e.kind == SCORE]
        if not later:
            return False
        common = self.shared_loops(site, later[0])
        if not common:
            return False
        node = self.p.nodes[common[-1]][1]
        return isinstance(node, cst.For) and not _reads_loop_variable(node)

    def shared_loops(self, a: int, b: int) -> list[int]:
        """The loops around both effect sites ``a`` and ``b`` (node ids, outermost first)."""
        common = []
        for x, y in zip(self.loop_path.get(a, ()), self.loop_path.get(b, ())):
            if x != y:
                break
            common.append(x)
        return common

    def scored_first(self, k: int, site: int) -> bool:
        """Whether the training step ``k`` comes after a score it may follow: inside a loop, an earlier score
        (a score-first loop trains on chunks already scored), but not one outside the epochs that hold the step
        (epochs of training with no score in them are a training phase, whatever was scored before); at the top
        of the body (a call to a whole adaptation phase), a score of the same call (a score-first evaluation
        that trains as it goes) -- a score by an earlier, separate evaluation does not make a later training
        pass legal. A helper's sum of validation-derived values into the caller's totals counts as a score
        here."""
        # the summed values may come from a callable the caller passes (``forward_ttt_train(x, y)``)
        before = [s for e, s in self.effects[:k] if e.kind == SCORE or e.kind == MAYBE_SCORE and VAL in e.labels]
        if self.loop_site.get(site, 0):
            epochs = [g for g in self.loop_path.get(site, ()) if self._repeating(g)]
            return any(not epochs or epochs[0] in self.loop_path.get(s, ()) for s in before)
        return site in before

    def late_train_reads(self) -> None:
        """A forward on training data after a loop that stops at a wall-clock cap: work on the training
        shards after the timed training (GPTQ calibration). A cap below 600 s reserves time for it."""
        cap, seen = None, set()
        for eff, site in self.effects:
            if eff.kind == "cap":
                cap, seen = (eff.data[0] if cap is None else max(cap, eff.data[0])), set()
            elif eff.kind == TRAIN_FORWARD and cap is not None and cap >= OFFICIAL_CAP_S and VAL not in eff.labels:
                # training data: a training-file label, or objects whose classes hold training files (known
                # once every function is analysed); the first forward of each kind after this cap stands
                # for the work (the calls inside a model's forward follow it)
                direct = bool(eff.labels & TRAIN_READ)
                classes = frozenset(x[4:] for x in eff.labels if x.startswith("cls:"))
                key = True if direct else classes
                if (direct or classes) and key not in seen:
                    seen.add(key)
                    self.event(Event(TRAIN_DATA_LATE, eff.origin, (), disabled=eff.data[0],
                                     data={"origin": eff.origin, "cap": cap, "direct": direct, "classes": classes}))

    # --- events -------------------------------------------------------------------------------

    def gid(self, node) -> int:
        return self.p.gid(self.m, node, self.where)

    def event(self, ev: Event) -> None:
        ev.disabled = ev.disabled or self.disabled
        st = ev.state()
        if st == "yes":
            self.p.record(ev)
            self.p.reach.found(self.p.fact_key(ev), self.f, ev.disabled)
        elif st == "maybe":
            self.summary.events.append(ev)

    # --- statements ---------------------------------------------------------------------------

    def block(self, body) -> None:
        stmts = body.body if hasattr(body, "body") else body
        if isinstance(stmts, (list, tuple)):
            for i, s in enumerate(stmts):
                self.following.append((stmts, i + 1))
                try:
                    self.stmt(s)
                finally:
                    self.following.pop()
                if self.leaves_here(s) and i + 1 < len(stmts):
                    # ``if <true in the official run>: return ...``: what follows runs only in other setups
                    self.with_disabled(lambda: [self.stmt(x) for x in stmts[i + 1:]])
                    break
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
            lb = self.range_least(s.iter)
            bound = (lambda: self.set_least(s.target.value, lb)) if isinstance(s.target, cst.Name) else (lambda: None)
            self.loop(s, lambda: (self.assign(s.target, elem(it)), bound(), self.block(s.body)))
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

    def leaves_here(self, s) -> bool:
        """An ``if`` whose test holds in the official run and whose body ends in ``return`` or ``raise``."""
        if not isinstance(s, cst.If) or self.disabled:
            return False
        body = s.body.body
        last = body[-1] if body else None
        if isinstance(last, cst.SimpleStatementLine):
            last = last.body[-1] if last.body else None
        if not isinstance(last, (cst.Return, cst.Raise)):
            return False
        c = self.const(s.test)
        return c is not UNKNOWN and bool(c)

    def with_disabled(self, fn, why: bool | str = True) -> None:
        """Walk code that does not run in the official run: its events are kept (marked disabled), and the
        values it assigns and returns do not reach the code that runs (a random sample of documents taken
        only when a fraction setting is below 1 leaves the documents as they were). Only the provenance of
        its events travels on, so that a disabled lookup still meets its score and is reported as present
        but off in the submitted run. ``why``: True (off under the launch) or why it is off (the logs)."""
        old = self.disabled
        env, ret = dict(self.env), self.summary.ret
        self.disabled = True if old is True else why  # off under the launch stays so
        try:
            fn()
        finally:
            self.disabled = old
            if not old:
                for name, v in self.env.items():
                    if v is not env.get(name):
                        env[name] = join(env.get(name), _provenance(v))
                self.env, self.summary.ret = env, ret if self.summary.ret is ret else join(ret, _provenance(self.summary.ret))

    def if_stmt(self, s: cst.If) -> None:
        test = flat(self.ev(s.test))
        c = self.const(s.test)
        shown = self.shown(s.body)
        if shown.ran is not True and c is not UNKNOWN and not c:
            shown = self.flag_shown(s.test) or shown
        self.branches(lambda: self.if_body(s, c, test, shown), lambda: self.if_else(s, c, shown), live_branch(c, shown))

    def if_body(self, s: cst.If, c, test: frozenset, shown: Shown) -> None:
        saved = self.return_gates
        self.return_gates = saved | self.returning_branch(s, test)
        try:
            self.branch(lambda: self.block(s.body), shown, c is not UNKNOWN and not c)
        finally:
            self.return_gates = saved

    def if_else(self, s: cst.If, c, shown: Shown) -> None:
        if s.orelse is not None:
            off = c is not UNKNOWN and c and shown.ran is not False  # the body ran: the test held
            if isinstance(s.orelse, cst.If):
                self.with_disabled(lambda: self.stmt(s.orelse)) if off else self.if_stmt(s.orelse)
            else:
                self.branch(lambda: self.block(s.orelse.body), self.shown(s.orelse.body), off)

    def flag_shown(self, test) -> Shown | None:
        """A flag off under the launch (``if collect_ppm:``, ``if h.ppm_enabled:``) that another branch of the
        same function tests, alone or as a term of an ``and``, where the logs show that branch ran: the flag held
        in the claimed runs, so every branch it guards ran with it. A local flag counts only when bound once."""
        flag = dotted(test)
        body = self.f.node.body if self.f is not None else None
        if not flag or body is None or isinstance(test, cst.Name) and _bindings(body, flag) > 1:
            return None
        for n in walk(body):
            if isinstance(n, cst.If) and n.test is not test and flag in _conjuncts(n.test):
                shown = self.p.logs.ran(n.body)
                if shown.ran:
                    return shown
        return None

    def shown(self, body) -> Shown:
        """What the claimed runs' logs show of a branch (runlogs.py)."""
        return self.p.logs.branch(body, (x for stmts, i in self.following for x in stmts[i:]))

    def branch(self, walk, shown: Shown, launch_off: bool) -> None:
        """Walk a branch: off where the logs show it did not run, or where the launch's constants switch it
        off and the logs do not show it ran."""
        if launch_off and shown.ran is not True:
            self.with_disabled(walk)
        elif shown.ran is False:
            self.with_disabled(walk, shown.reason())
        else:
            walk()

    def returning_branch(self, s: cst.If, test: frozenset) -> frozenset:
        """``if cnt > 0: return log(cnt / total)`` with ``cnt`` read at the target: what the function returns
        is chosen by the target (a gate on the returns of the branch); else nothing."""
        if not (TARGET in test or has_placeholder(test)) or not any(isinstance(n, cst.Return) for n in walk(s.body)):
            return EMPTY
        # only the gate's provenance: the test's truth values would make the returned arrays masks
        return frozenset(x for x in self.gate(s, test, EMPTY) if x.startswith(marks_of(TARGET_GATE)))

    def at_site(self, site: int) -> None:
        """Where an effect happens: the loop depth and the loops around it."""
        self.loop_site[site] = self.loop_depth
        self.loop_path[site] = tuple(self.loops)

    def loop(self, node, body_fn) -> None:
        # a name the loop body assigns has its first value only on the first iteration (``step += 1``,
        # ``last_step = step == iterations``): no constant at the loop's top
        for name in assigned_names(node):
            self.consts.pop(name, None)
            self.nums.pop(name, None)
        self.forget_least(node)
        self.loop_depth += 1
        self.loops.append(self.gid(node))
        outer = self.loop_depth == 1
        try:
            body_fn()
            if self.loop_depth == 1:  # a second walk carries values around the outermost loop
                n = len(self.effects)
                body_fn()
                del self.effects[n:]
        finally:
            self.loop_depth -= 1
            self.loops.pop()
            self.forget_least(node)  # after no iteration, or after the last: no bound from the body holds
        if outer and self.caps:  # the loop stops at a wall-clock cap: what follows runs after it
            g = self.gid(node)
            self.effects.append((Effect("cap", g, EMPTY, data=(max(self.caps),)), g))
            self.caps = []

    def small(self, x) -> None:
        if isinstance(x, cst.Assign):
            v = self.ev(x.value)
            n = self.num(x.value) if len(x.targets) == 1 and isinstance(x.targets[0].target, cst.Name) else UNKNOWN
            lb = self.least(x.value) if len(x.targets) == 1 and isinstance(x.targets[0].target, cst.Name) else UNKNOWN
            for t in x.targets:
                self.assign(t.target, v, value_node=x.value)
                self.note_field(t.target, x.value)
            if len(x.targets) == 1 and isinstance(x.targets[0].target, cst.Name):
                name = x.targets[0].target.value
                self.set_least(name, lb)
                aliases.bind(self, name, x.value)
                self.note_forward(name, x.value)
                self.set_num(name, n)
                c = self.const(x.value)
                if c is not UNKNOWN:
                    self.consts[name] = c
                elif name in self.consts:
                    del self.consts[name]
                # acc = acc + v (or acc - old + v, a score replaced) is an accumulation like acc += v
                if _running_total(x.value, name):
                    self.accumulate(x, self.ev(x.value.right))
                elif _total(x.value) and LOSS in flat(v) and not self.loop_depth:
                    # ``loss_sum = best_nll[valid].sum()`` outside any loop: the total of per-token losses kept
                    # over the whole stream is the score; what reached those losses reaches it
                    self.sinks(flat(v))
        elif isinstance(x, cst.AnnAssign):
            if x.value is not None:
                v = self.ev(x.value)
                self.assign(x.target, v, value_node=x.value)
                self.note_field(x.target, x.value)
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
            root = self.root_name(x.target)
            if root and AGGREGATE in flat(v):  # ``self.tables[n] += bincount(keys)``: counts of tokens added
                self.fill_parameter(root, flat(v))
            if isinstance(x.operator, (cst.AddAssign, cst.SubtractAssign)):
                self.accumulate(x, v)
                if _is_gram(x.value):  # H += X^T X: a Hessian / calibration statistic
                    self.event(Event(VAL_CALIBRATION, self.gid(x), (Need(flat(v), VAL),), data={"how": "gram"}))
        elif isinstance(x, cst.Expr):
            self.ev(x.value)
        elif isinstance(x, cst.Return):
            if x.value is not None:
                v = self.ev(x.value)
                self.summary.ret = join(self.summary.ret, _with_labels(v, self.return_gates))
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
        g = self.gid(node)
        if LOSS not in labels:
            if has_placeholder(labels) and self.into_callers_total(node):
                self.effects.append((Effect(MAYBE_SCORE, g, labels), g))
                self.at_site(g)
            return
        if self.of_trained_loss(node):  # a log of the loss a step was taken on (trainfwd.py)
            return
        self.score(g, g, labels)

    def into_callers_total(self, node) -> bool:
        """``total += (x * mask).sum()`` with ``total`` a parameter: a helper adding a sum of what its caller
        passes into the caller's running total (``_accumulate_bpb(ptl, ..., loss_sum, ...)``)."""
        return isinstance(node, cst.AugAssign) and isinstance(node.target, cst.Name) and self.f is not None \
            and node.target.value in self.f.params and _sums(node.value)

    def score(self, origin: int, site: int, labels: frozenset) -> None:
        """A loss summed into a total: a score when it is of validation data; its provenance reaches the score."""
        if VAL in labels or has_placeholder(labels):
            self.effects.append((Effect(SCORE, origin, labels, disabled=self.disabled), site))
            self.at_site(site)
            # training-split data inside the score of validation data: the eval reads training shards
            self.event(Event(TRAIN_DATA_AT_EVAL, origin, (Need(labels, TRAIN), Need(labels, VAL))))
        self.sinks(labels)

    def sinks(self, labels: frozenset) -> None:
        """Losses of validation data reach the score: so do the events their values passed through (those of
        the callers, through the parameters, at each call site)."""
        if has_placeholder(labels):
            self.summary.sunk = self.summary.sunk | frozenset(x for x in labels if PARAM in x or x == VAL)
        for lab in labels:
            if "@" in lab:
                kind, _, at = lab.partition("@")
                self.event(Event(sink(kind), int(at), (Need(labels, VAL),)))

    def assign(self, target, v, value_node=None) -> None:
        if isinstance(target, cst.Name):
            self.mins.pop(target.value, None)
            self.consts.pop(target.value, None)  # set again by `small` where the value is one constant
            if value_node is not None and made_anew(value_node):
                self.list_home[target.value] = tuple(self.loops)
            else:
                self.list_home.pop(target.value, None)
            if not self.disabled:  # code off in the official run leaves the numbers as they were
                self.nums.pop(target.value, None)
            if value_node is not None and self.is_fresh(value_node):
                v = flat(v) | {FRESH}
            self.env[target.value] = join(self.env.get(target.value), v) if self.loop_depth else v
        elif isinstance(target, (cst.Tuple, cst.List)):
            elts = [e.value for e in target.elements]
            if isinstance(v, Tup) and len(v.items) == len(elts) and not any(isinstance(e, cst.StarredElement) for e in target.elements):
                parts = [e.value for e in value_node.elements] if isinstance(value_node, (cst.Tuple, cst.List)) \
                    and len(value_node.elements) == len(elts) else [None] * len(elts)
                for t, x, part in zip(elts, v.items, parts):
                    self.assign(t, x, value_node=part)
            else:
                for t in elts:
                    self.assign(t, flat(v) if not isinstance(v, It) else elem(v))
        elif isinstance(target, cst.Attribute):
            key = dotted(target)
            if key:
                self.env[key] = join(self.env.get(key), v)
            # an object's fields hold no whole-stream mark of their own: the call that fills the object at
            # the top of a function marks the object (state.py), a helper called once per chunk marks nothing
            labels = frozenset(x for x in flat(v) if PARAM not in x and not x.startswith(marks_of(FUTURE)))
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
        if keyed or self.value_keyed_mapping(name, key):  # indexed by token data, or a mapping: a history table
            new = history(v | key)
            self.fill_parameter(name, new)
            if self.loop_depth == 0 and self.f is not None and not self.disabled:
                new = new | {self.future(node)}
        else:
            new = v | key
        self.env[name] = join(self.env.get(name), new)

    def value_keyed_mapping(self, name: str, key: frozenset) -> bool:
        """A write into a mapping (mappings.py) with a key computed from values, not a constant."""
        if not any("@" not in x and x not in (MASK, BOOL) for x in key):
            return False
        if name.startswith("self."):
            methods = self.m.classes.get(self.f.cls, {}) if self.f is not None and self.f.cls else {}
            return name in self.mappings_of(("cls", self.m.path, self.f.cls) if methods else None, lambda: field_mappings(methods.values()))
        return self.f is not None and name in self.mappings_of(("fn", id(self.f.node)), lambda: mapping_names(self.f.node))

    def mappings_of(self, key, find) -> set[str]:
        if key is None:
            return set()
        if key not in self.p.mapping_cache:
            self.p.mapping_cache[key] = find()
        return self.p.mapping_cache[key]
