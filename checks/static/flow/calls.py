"""Calls: a call resolved to the submission's own function (its summary instantiated with the call site's
arguments), to a constructor or a passed function, or left to the library models (library.py). A mixin of
``Walker`` (interpret.py)."""

from __future__ import annotations

import libcst as cst

from . import aliases
from .callsites import site_values
from .labels import EMPTY, It, _drop_fut, built_on, flat, has_placeholder, history, join, read_from, substitute
from .library import DATA_KEYWORDS, CLOCK_CALLS
from .mixtures import mixture_labels
from .model import Effect, FunctionDef
from .state import argument_nodes
from .tree import code, dotted
from .vocab import CLOCK, LOSS, MAYBE_SCORE, TOTAL, TRAIN, TRAIN_FORWARD, TRAIN_OBJECT, VAL


def _values_of(node):
    """``d.values()`` -> ``d``; any other expression as it is."""
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "values" \
            and not node.args:
        return node.func.value
    return node



class Calls:
    """How the walk evaluates calls (a mixin of ``Walker``)."""

    # --- calls --------------------------------------------------------------------------------

    def qualname(self, func) -> str:
        """Dotted name through the module's imports (``F.cross_entropy`` -> ``torch.nn.functional.cross_entropy``)."""
        d = dotted(func)
        if not d:
            return ""
        head, _, rest = d.partition(".")
        if head in self.env and head not in self.m.aliases and head not in self.fn_aliases:
            return ""
        full = self.fn_aliases.get(head) or self.m.aliases.get(head)
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
        recv = self.ev(func.value) if type(func) is cst.Attribute else EMPTY
        recv_l = flat(recv)
        q = self.qualname(func)
        name = aliases.call_name(func, q)

        self.external(node, q)
        if q in CLOCK_CALLS:
            return frozenset({CLOCK})
        # submission functions and classes
        target = self.resolve(func, q, recv_l)
        if target is not None:
            if isinstance(target, tuple):  # class construction; an object built on training files reads them
                return self.construct(node, target, vals, kwvals) | ({TRAIN_OBJECT} if TRAIN in allargs else EMPTY) \
                    | built_on(allargs)
            bound = type(func) is cst.Attribute and target.cls is not None and target.params[:1] == ["self"]
            site = None if bound else site_values(self.const, target, pos, kw)
            ret = self.apply(node, target, ([recv] if bound else []) + vals, kwvals, site, argument_nodes(node, target, bound))
            if bound:  # a method of an object built on data returns what it read from them
                ret = join(ret, read_from(recv_l))
            return self.passed_functions(node, pos, vals, ret)
        if type(func) is cst.Name and func.value in self.local_funcs:
            f = self.local_funcs[func.value]
            ret = self.apply(node, f, vals, kwvals, site_values(self.const, f, pos, kw), argument_nodes(node, f, False))
            return self.passed_functions(node, pos, vals, ret)

        if q.rsplit(".", 1)[-1] == "field" and q.startswith("dataclasses"):
            built = self.field_factory(node)
            if built is not None:
                return built
        out = self.library_call(node, func, name, q, pos, vals, kwvals, allargs, recv, recv_l)
        out = mixture_labels(self, node, name, q, pos, kw, recv_l, vals, out)
        if name == "sum" and not q:
            summed = func.value if type(func) is cst.Attribute else _values_of(pos[0].value) if pos else None
            root = self.root_name(summed) if summed is not None else None
            if root and root == code(summed).strip():  # a whole table's sum (``T.sum(1)``, ``sum(d.values())``)
                out = flat(out) | {TOTAL + root}
        return out

    def construct(self, node, target: tuple, vals: list, kwvals: dict) -> frozenset:
        """A submission class instantiated: ``__init__`` and a dataclass's ``__post_init__`` set its fields
        before the object is used."""
        obj = frozenset({f"cls:{target[2]}"})
        methods = target[1].classes.get(target[2], {})
        init = methods.get("__init__")
        if init is not None and not init.in_progress:
            self.apply(node, init, [obj] + vals, kwvals)
            obj = obj | self.constructed_filled(node, init, [obj] + vals)
        post = methods.get("__post_init__")  # derived fields (``self.val_glob = join(path, "fineweb_val_*")``)
        if post is not None and not post.in_progress:
            self.apply(node, post, [obj], {})
        return obj

    def field_factory(self, node: cst.Call):
        """``field(default_factory=C)`` in a dataclass builds a C for every instance; None when not a class of ours."""
        factory = next((a.value for a in node.args if a.keyword is not None and a.keyword.value == "default_factory"), None)
        if type(factory) is not cst.Name:
            return None
        target = self.resolve(factory, "", EMPTY)
        return self.construct(node, target, [], {}) if isinstance(target, tuple) else None

    def passed_functions(self, node, pos, vals, ret):
        """A submission function handed to another one with its arguments (``timed_eval(name, eval_val, h,
        model)``, ``run(fn, *args)``) is taken as called there with the arguments that follow it: its
        effects and events happen at this call, and its result joins the call's."""
        for i, a in enumerate(pos):
            f = self.function_named(a.value)
            if f is not None:
                ret = join(ret, self.apply(node, f, vals[i + 1:], {}))
        return ret

    def function_named(self, expr) -> FunctionDef | None:
        """The submission function (a local one first) that ``expr`` names, when it is not being analysed."""
        if type(expr) is not cst.Name:
            return None
        f = self.local_funcs.get(expr.value)
        if f is None:
            target = self.resolve(expr, "", EMPTY)
            f = target if isinstance(target, FunctionDef) else None
        return f if f is not None and not f.in_progress else None

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

    def call_site(self, f: FunctionDef, site: dict | None) -> None:
        """The first call that runs fixes the constants ``f`` is analysed with; every later one checks them
        (a call in code off in the official run passes nothing that runs)."""
        self.p.reach.call(self.f, f, self.disabled)
        if f.assumed is None and f.summary is None and not f.in_progress:
            self.p.calls.assume(f, None if self.disabled else site)
        elif not self.disabled:
            self.p.calls.check(f, site)

    def escapes(self, name: str) -> None:
        """A submission function named other than as the callee of a call: its call sites are unknown."""
        f = self.local_funcs.get(name)
        if f is None and name not in self.env:
            f = self.m.functions.get(name)
            if f is None and name in self.m.aliases:
                r = self.p.resolve_import(self.m, self.m.aliases[name])
                f = r if isinstance(r, FunctionDef) else None
        if f is not None:
            self.p.calls.escape(f)
            if not self.disabled:
                self.p.reach.escape(f)

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
            if isinstance(func.value, cst.Name) and func.value.value in self.m.self_names:
                if meth in self.m.functions:  # ``core = sys.modules[__name__]; core.f(...)``
                    return self.m.functions[meth]
                if meth in self.m.classes:
                    return ("class", self.m, meth)
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

    def apply(self, node, f: FunctionDef, vals: list, kwvals: dict, site: dict | None = None,
              argnodes: dict | None = None):
        """A call of ``f`` with these argument labels; ``site`` holds the constants a direct call passes and
        ``argnodes`` the expression it passes for each parameter."""
        self.call_site(f, site)
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
        if f.kwonly:
            args = args[:len(f.params)] + [args[len(f.params)] if f.star is not None and len(args) > len(f.params) else EMPTY]
            args += [kwvals.get(name, EMPTY) for name in f.kwonly]
        f.called = True
        if self.loop_depth:
            f.called_in_loop = True
        g = self.gid(node)
        for eff in s.effects:
            labels = flat(substitute(eff.labels, args))
            if eff.kind == MAYBE_SCORE:
                if LOSS in labels:  # the caller passed a loss: the helper's sum is a score, here
                    self.score(eff.origin, g, labels)
                    continue
                if not has_placeholder(labels) and VAL not in labels:
                    continue  # a sum of other things; a sum of validation data still orders training (scored_first)
            data = (eff.data[0] or self.disabled,) if eff.kind == TRAIN_FORWARD else eff.data
            self.effects.append((Effect(eff.kind, eff.origin, labels, eff.fresh, data, eff.disabled or self.disabled), g))
            self.at_site(g)
        if s.sunk:  # what the caller passes in reaches the callee's score
            self.sinks(flat(substitute(s.sunk, args)))
        if argnodes is not None:
            self.fills_at_call(node, s.fills, args, argnodes)
        if s.outer_fills:
            self.closure_fills_at_call(node, s.outer_fills, args)
        for ev in s.events:
            self.event(ev.instantiate(args, self.disabled))
        for i, labels in s.param_writes.items():
            if i < len(node.args) if i < len(vals) else False:
                name = self.root_name(node.args[i].value) if i < len(node.args) else None
                if name:
                    if self.loop_depth or i in s.fills:  # per chunk; or marked at this call (state.py)
                        labels = _drop_fut(labels)  # the callee's own aggregates, not those passed in
                    self.env[name] = join(self.env.get(name), history(flat(substitute(labels, args))))
        ret = s.ret if s.ret is not None else EMPTY
        if self.loop_depth:  # aggregates the callee builds per loop iteration are history, not the whole stream
            ret = _drop_fut(ret)  # (the caller's, passed in, stay)
        ret = substitute(ret, args)
        return It(ret) if s.generator else ret
