"""The label lattice: the labels a value carries, and how they combine.

A value's labels are a frozenset of strings (see ``vocab.py`` for what each label means); a tuple of
values is a ``Tup`` (unpacked element-wise), an iterable of values an ``It`` (its element is what a
``for`` loop binds). ``join`` is the lattice's union, ``flat`` forgets the structure. A function's
parameters stand as placeholders ``p:<i>`` while it is analysed once; ``substitute`` replaces them by
the labels of a call site's arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

Labels = frozenset
EMPTY: frozenset = frozenset()
# Labels that describe the current position's target; history tables never hold them.
CURRENT = frozenset({"tgt", "tgteq", "mix", "mixp", "tgtprob", "loss", "dist"})
STRUCTURAL_PREFIXES = ("ws:", "wend:", "wlen:", "cls:")
TRAIN_READ = frozenset({"train", "trainobj"})  # training files, or an object built on them (a loader)


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
        elif x.startswith(TARGET_AT):  # tokens read at positions argument j passes
            out |= _target_at_site(x, args)
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



MOVED = "moved"  # a sum or difference with a caller's value: a parameter's positions moved (``pos - k``)
TARGET_AT = "tgt?at:"  # ``tgt?at:p:<j>:<base>``: tokens of <base> read at the positions argument j passes


def target_at(base: frozenset, positions: set[str]) -> frozenset:
    """``tokens[pos]`` with ``pos`` a parameter: the target when the caller passes positions one past the
    inputs (``arange(s + 1, e + 1)``) and ``tokens`` is (or turns out to be) validation data."""
    bases = (["val"] if "val" in base else []) + sorted(x for x in base if x.startswith("p:"))
    return frozenset(f"{TARGET_AT}{j}:{b}" for j in positions for b in bases)


def _target_at_site(label: str, args: list) -> set[str]:
    """What ``tgt?at:p:<j>:<base>`` becomes with a call site's arguments."""
    _, j, base = label[len(TARGET_AT):].split(":", 2)
    i = int(j)
    where = flat(args[i]) if i < len(args) else EMPTY
    if base == "val":
        tokens = frozenset({"val"})
    else:
        k = int(base[2:])
        tokens = flat(args[k]) if k < len(args) else EMPTY
    if "inp" in tokens or "tok" in where:
        return set()
    if "shift" in where:  # positions one past the inputs: the tokens read there are the target
        return {"tgt"} if "val" in tokens else {f"tgt?{y}" for y in tokens if y.startswith("p:")}
    if MOVED in where:
        return set()
    return set(target_at(tokens, {y for y in where if y.startswith("p:")}))  # still a caller's positions


def history(labels: frozenset) -> frozenset:
    """What a table written with these values holds later: past tokens, not the current target."""
    return frozenset(x for x in labels if x not in CURRENT and not x.startswith(("tread@", "gate@", "orc@", "tgt?")))


def _data_key(labels: frozenset) -> bool:
    """An index computed from token data (not a position, a slice or a boolean mask)."""
    return "mask" not in labels and ("tgt" in labels or "tok" in labels)



def _drop_fut(v):
    if isinstance(v, Tup):
        return Tup(tuple(_drop_fut(x) for x in v.items))
    if isinstance(v, It):
        return It(_drop_fut(v.elem))
    return frozenset(x for x in v if not x.startswith("fut@"))

