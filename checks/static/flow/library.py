"""Library call models: what a call to a known library function does to the labels of its arguments
(API semantics by the function's last name, not submission names), and outside access."""

from __future__ import annotations

import re

import libcst as cst

from .hooks import calibrates, is_gram as _is_gram
from .labels import CURRENT, EMPTY, READ_AT, It, Tup, elem, flat, has_placeholder, join, size_of
from .lists import GROW_METHODS, holds_current
from .limits import CAPPED, SAMPLED, SAMPLING_CALLS, capped_min
from .model import Effect, Event, Need
from .tree import code, dotted, literal_value, walk
from .vocab import (AGGREGATE, DIST, EQUAL_TO, EXTERNAL, FRESH, LOSS, NATIVE, ORACLE, PAIRED, PARAM, RANDOM, SETTING,
                     SHIFT, TARGET, TARGET_IF, TARGET_PROB, TARGET_TEST, TOKEN, TRAIN, TRAIN_FORWARD, TRAIN_STEP,
                     VAL, VAL_CALIBRATION)

_VAL_PATH = re.compile(r"(?<![a-z])(val|valid|validation)(?![a-z])", re.I)
_TRAIN_PATH = re.compile(r"(?<![a-z])train(?![a-z])", re.I)
_PATHISH = re.compile(r"[*/]|\.bin\b|\.npy\b|\.pt\b")

# Library calls by their last name (API semantics, not submission names).
SIZE_CALLS = {"len", "numel", "size", "dim", "ndimension", "nelement", "__len__"}
SIZE_ATTRS = {"shape", "size", "ndim", "dtype", "device", "is_cuda", "itemsize", "nbytes"}
SHAPE_ATTRS = {"shape", "size"}  # of these, the ones that give the size of the data
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
# A list of a local variable takes in what is added (lists.py), but not which position is the scored target
# unless it holds the current iteration's values only, nor what a caller passes (the parameters'
# placeholders): only what is known where the list is filled. The events the values passed through stay with
# them (``counts.append(table[key_with_target])`` read back and mixed into the score is that read reaching it).
TARGET_LABELS = frozenset({TARGET, TARGET_TEST, TARGET_PROB, PAIRED})
TARGET_PREFIXES = (TARGET_IF, EQUAL_TO, PARAM, READ_AT)
RANDOM_CALLS = {"randint", "randperm", "choice", "sample", "permutation", "shuffle", "multinomial"}
NETWORK_MODULES = ("socket", "urllib", "requests", "http", "httpx", "aiohttp", "huggingface_hub", "ftplib", "smtplib",
                   "paramiko", "websocket", "boto3", "gdown", "wget")
NETWORK_CALLS = {("torch", "hub"), ("datasets", "load_dataset"), ("transformers", "from_pretrained")}
HUB_DOWNLOADS = ("hf_hub_download", "snapshot_download")
CLOCK_CALLS = {"time.perf_counter", "time.time", "time.monotonic", "time.perf_counter_ns", "time.monotonic_ns"}
# An optimizer's ``step(closure)`` calls the closure, which computes the loss and its gradients (L-BFGS calls it
# again during its line search): the closure's training and scores happen at the step.
CLOSURE_CALLERS = {"step"}
PROGRAM_CALLS = {("os", "system"), ("os", "popen"), ("os", "execv"), ("os", "execvp"), ("os", "spawnv")}
NATIVE_LOADERS = ("CDLL", "cdll", "LoadLibrary", "PyDLL")


def _closure_argument(call: cst.Call):
    """The closure handed to an optimizer's step: its first positional argument or ``closure=``."""
    for a in call.args:
        if a.keyword is None or a.keyword.value == "closure":
            return a.value
    return None


def _keyword_literal(call: cst.Call, name: str):
    """The literal value of a call's keyword argument, or None."""
    for a in call.args:
        if a.keyword is not None and a.keyword.value == name and isinstance(a.value, cst.SimpleString):
            return literal_value(a.value)
    return None


# Calls that turn values into text (a log message, a JSON line).
TEXT_CALLS = frozenset({"str", "repr", "format", "dumps"})


def _is_text(node) -> bool:
    """A string: a literal, a formatted string, ``json.dumps(x)``, ``str(x)``."""
    if isinstance(node, (cst.SimpleString, cst.FormattedString, cst.ConcatenatedString)):
        return True
    if isinstance(node, cst.Call):
        f = node.func
        name = f.attr.value if isinstance(f, cst.Attribute) else f.value if isinstance(f, cst.Name) else ""
        return name in TEXT_CALLS
    return False


def native_loader(q: str) -> bool:
    """``ctypes.CDLL(path)`` and its kin: a native library loaded."""
    return q.split(".")[0] == "ctypes" and q.rsplit(".", 1)[-1] in NATIVE_LOADERS


def _text_only(node) -> bool:
    """A call given only text (``log0(f"stats:{json.dumps(stats)}")``): a message written somewhere, not data a
    model runs on, whatever values were formatted into it."""
    return bool(node.args) and all(_is_text(a.value) for a in node.args if a.keyword is None) \
        and any(a.keyword is None for a in node.args)


class LibraryCalls:
    """Calls that resolve to no submission function (a mixin of ``Walker``)."""

    def library_call(self, node, func, name: str, q: str, pos, vals, kwvals, allargs, recv, recv_l):  # noqa: C901
        if native_loader(q):
            return frozenset({NATIVE})
        if type(func) is cst.Attribute and NATIVE in recv_l:
            return self.native_call(node, func, allargs)
        if name in SIZE_CALLS and not q.startswith(("os.", "subprocess")):
            return size_of(recv_l | allargs)
        if name in ("register_forward_hook", "register_forward_pre_hook") and type(func) is cst.Attribute:
            self.hooks = self.hooks or self.calibration_hook(node)
            return EMPTY
        if name == "backward" and type(func) is cst.Attribute:
            g = self.gid(node)
            self.drop_training_sums(func.value)
            self.effects.append((Effect(TRAIN_STEP, g, recv_l, fresh=FRESH in recv_l, disabled=self.disabled), g))
            self.at_site(g)
            return EMPTY
        if name in CLOSURE_CALLERS and type(func) is cst.Attribute and not q:
            closure = self.function_named(_closure_argument(node))
            if closure is not None:  # ``opt.step(closure)``: the closure runs here, its loss is the result
                return flat(self.apply(node, closure, [], {}))
        if q.endswith(("environ.get", "getenv")) or q == "os.environ.get":
            return frozenset({SETTING}) | allargs
        if name in LOSS_CALLS:
            return allargs | recv_l | {LOSS} - {DIST}
        if name in DIST_CALLS:
            out = allargs | recv_l | {DIST}
            return out | {LOSS} if name == "log_softmax" else out
        if name in LOG_CALLS and (allargs | recv_l):
            return allargs | recv_l | {LOSS}
        if name in AGGREGATE_CALLS:
            src = allargs | recv_l
            out = src - CURRENT
            if src & {VAL, TOKEN} or has_placeholder(src):
                out = out | {AGGREGATE}
            if (VAL in src or has_placeholder(src)) and self.f is not None and self.loop_depth == 0 and not self.disabled:
                out = out | {self.future(node)}
            return out
        if name in ("where",) and len(vals) == 3:
            return self.gate(node, flat(vals[0]), flat(vals[1]) | flat(vals[2]))
        if name in MIN_CALLS and len(vals) >= 2 and sum(LOSS in flat(v) for v in vals) >= 2:
            g = self.gid(node)
            self.event(Event(ORACLE, g, (Need(allargs, VAL),)))
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
        if name in GROW_METHODS and type(func) is cst.Attribute and type(func.value) is cst.Name and not q and vals \
                and not isinstance(vals[-1], Tup):  # a record of several parts is read back by unpacking: left as it was
            held = func.value.value
            current = holds_current(held, self.list_home.get(held), tuple(self.loops), lambda g: self.p.nodes[g][1])
            added = frozenset(x for x in flat(vals[-1]) if not x.startswith(PARAM) and (
                current or x not in TARGET_LABELS and not x.startswith(TARGET_PREFIXES)))
            self.env[held] = join(self.env.get(held, EMPTY), added)
            return EMPTY
        if name in RANDOM_CALLS:
            return allargs | recv_l | {RANDOM} | ({SAMPLED} if name in SAMPLING_CALLS else EMPTY)
        if name == "range":
            out = allargs - {SHIFT}  # loop counters over positions, not the positions themselves
            if len(vals) == 3:
                stop = pos[1].value
                if not (isinstance(stop, cst.BinaryOperation) and isinstance(stop.operator, cst.Subtract)):
                    out = out | {f"ws:{code(pos[2].value)}"}
            return It(out)
        if name == "arange":  # positions one past the inputs when the first position is (``arange(a + 1, b + 1)``)
            start = flat(vals[0]) if len(vals) >= 2 else EMPTY
            return (allargs - {SHIFT}) | (start & {SHIFT})
        if name == "min" and q == "" and vals:
            out = allargs | ({CAPPED} if capped_min(self, pos, vals) else EMPTY)
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
        if callable_value and not q and (allargs & {VAL, TRAIN} or has_placeholder(allargs)) \
                and not _text_only(node):
            forwards = self.forwards(func, len(vals), recv_l)
            if VAL not in allargs and (forwards or type(func) is cst.Name or name in ("forward", "forward_logits")):
                # a model's forward, perhaps on training data (the labels tell, once known)
                g = self.gid(node)
                self.effects.append((Effect(TRAIN_FORWARD, g, allargs, data=(self.disabled,)), g))
            if self.hooks and (VAL in allargs or has_placeholder(allargs)):
                self.event(Event(VAL_CALIBRATION, self.gid(node), (Need(allargs, VAL),), data={"how": "hooks"}))
            if forwards:
                res = EMPTY
                for f in forwards:
                    res = res | flat(self.apply(node, f, [recv] + vals if f.params[:1] == ["self"] else vals, kwvals))
                return res | (frozenset({DIST}) if LOSS not in res else EMPTY)
            if type(func) is cst.Name or name in ("forward", "forward_logits"):
                out = out | {DIST}
        return frozenset(x for x in out if not x.startswith("cls:"))  # a call's result is not the receiver

    def calibration_hook(self, node) -> bool:
        """The hook registered collects calibration data (hooks.py); a hook the walk cannot find is taken to."""
        def resolve(name):
            f = self.local_funcs.get(name) or self.m.functions.get(name)
            return f.node if f is not None else None

        defs = [f for f in (resolve(n.value) for n in walk(node) if isinstance(n, cst.Name)) if f is not None]
        return not defs or any(calibrates(f, resolve) for f in defs)

    def native_call(self, node, func, allargs: frozenset) -> frozenset:
        """``lib.score(tokens_ptr, ...)`` on a loaded native library: the analysis does not read native code, so
        validation data handed to it is processed where no rule looks (an event; the static check is then
        incomplete: ``checks/static/__init__.py``)."""
        if VAL in allargs or has_placeholder(allargs):
            self.event(Event(EXTERNAL, self.gid(node), (Need(allargs, VAL),),
                             data={"kind": "native-data", "call": code(func)}))
        return allargs - {NATIVE}

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


    def external(self, node, q: str) -> None:
        if not q:
            return
        head = q.split(".")[0]
        parts = tuple(q.split("."))
        kind = None
        if parts[-1] in HUB_DOWNLOADS and _keyword_literal(node, "repo_type") == "dataset":
            kind = "dataset"
        elif head in NETWORK_MODULES or parts[:2] in NETWORK_CALLS or parts[-1] in HUB_DOWNLOADS:
            kind = "network"
        elif head == "subprocess" or parts[:2] in PROGRAM_CALLS:
            kind = "program"
        elif native_loader(q):
            kind = "native"
        if kind:
            self.event(Event(EXTERNAL, self.gid(node), (), data={"kind": kind, "call": q}))
