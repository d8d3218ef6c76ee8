"""The label lattice: the labels a value carries, and how they combine.

A value's labels are a frozenset of strings (see ``vocab.py`` for what each label means); a tuple of
values is a ``Tup`` (unpacked element-wise), an iterable of values an ``It`` (its element is what a
``for`` loop binds). ``join`` is the lattice's union, ``flat`` forgets the structure. A function's
parameters stand as placeholders ``p:<i>`` while it is analysed once; ``substitute`` replaces them by
the labels of a call site's arguments. A local function (a closure) reads the enclosing function's
values, whose placeholders stand for the enclosing function's parameters: inside the closure they are
``captured`` (``p:^<i>``, kept apart from its own parameters), and the closure's call site in the
enclosing function gives them back as its own (``substitute``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .vocab import (BUILT_ON, CAPTURED, DIST, EQUAL_TO, FUTURE, INPUTS, LOSS, MASK, ORACLE, PAIRED, PARAM, READ_AT, SHIFT,
                     SIZE_OF, TARGET, TARGET_GATE, TARGET_IF, TARGET_KEYED_READ, TARGET_PROB, TARGET_TEST, TOKEN,
                     TRAIN, TRAIN_OBJECT, VAL, VAL_SIZE, READ_FROM, marks_of)

Labels = frozenset
EMPTY: frozenset = frozenset()
# Labels that describe the current position's target; history tables never hold them.
CURRENT = frozenset({TARGET, TARGET_TEST, PAIRED, TARGET_PROB, LOSS, DIST})
STRUCTURAL_PREFIXES = ("ws:", "wend:", "wlen:", "cls:")
TRAIN_READ = frozenset({TRAIN, TRAIN_OBJECT})  # training files, or an object built on them (a loader)
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
    """Whether the value may be (or be made of) what a caller passes. The size of an argument's data
    (``size?p:<i>``) is not: it is a count whatever the values are."""
    return any(PARAM in x and not x.startswith(SIZE_OF) for x in labels)


def captured(v):
    """A value of the enclosing function as a closure reads it: its placeholders kept apart from the closure's."""
    if isinstance(v, Tup):
        return Tup(tuple(captured(x) for x in v.items))
    if isinstance(v, It):
        return It(captured(v.elem))
    if not isinstance(v, frozenset) or not has_placeholder(v):
        return v
    return frozenset(x.replace(PARAM, CAPTURED, 1) if PARAM in x else x for x in v)


# An object built on data: ``of:<x>`` with x the data its constructor was handed (validation or training files
# or tokens, a caller's ``p:<i>``); ``of?p:<i>``: the data that argument i's object was built on. What a method of
# such an object returns was read from that data (a loader's batches, a stream's tokens).
DATA_ORIGINS = frozenset({VAL, TRAIN})


def size_of(labels: frozenset) -> frozenset:
    """The labels of the size of data with these labels: the validation stream's, or an argument's."""
    if VAL in labels:
        return frozenset({VAL_SIZE})
    return frozenset(SIZE_OF + x for x in labels if x.startswith(PARAM))


def sized_by(labels: frozenset) -> frozenset:
    """The arguments (``p:<i>``) whose data's size these labels carry."""
    return frozenset(x[len(SIZE_OF):] for x in labels if x.startswith(SIZE_OF + PARAM))


def built_on(labels: frozenset) -> frozenset:
    """The marks of an object built with arguments of these labels."""
    return frozenset(BUILT_ON + x for x in labels if x in DATA_ORIGINS or x.startswith((PARAM, BUILT_ON)))


def read_from(receiver: frozenset) -> frozenset:
    """The data a method of an object with these labels reads: what it was built on. Batches of a loader on
    the training files are reads of those files (``trainobj``: the training-data reads after the cap), not
    token values that the flow, which joins a name's values around a loop, would carry into later windows."""
    return frozenset(_read(x[len(BUILT_ON):]) if x.startswith(BUILT_ON) else READ_FROM + x
                     for x in receiver if x.startswith((BUILT_ON, PARAM)))


def _read(origin: str) -> str:
    return TRAIN_OBJECT if origin == TRAIN else origin


def substitute(v, args: list):
    """Replace ``p:<i>`` by the labels of argument i (and provenance labels keep their identity); the enclosing
    function's placeholders that a closure read (``p:^<i>``) are the caller's own again."""
    if isinstance(v, Tup):
        return Tup(tuple(substitute(x, args) for x in v.items))
    if isinstance(v, It):
        return It(substitute(v.elem, args))
    if not any(PARAM in x for x in v):
        return v
    out, at_targets = set(), False
    for x in v:
        if CAPTURED in x:
            out.add(x.replace(CAPTURED, PARAM, 1))
        elif x.startswith(PARAM):
            i = int(x[2:])
            if i < len(args):
                out |= flat(args[i])
        elif x.startswith(BUILT_ON + PARAM):  # an object built on argument i
            i = int(x[len(BUILT_ON) + 2:])
            out |= built_on(flat(args[i]) if i < len(args) else EMPTY)
        elif x.startswith(READ_FROM + PARAM):  # read from what argument i's object was built on
            i = int(x[len(READ_FROM) + 2:])
            out |= read_from(flat(args[i]) if i < len(args) else EMPTY)
        elif x.startswith("eq?p:"):  # an equality test on argument i
            i = int(x[5:])
            a = flat(args[i]) if i < len(args) else EMPTY
            out.update(TARGET_TEST if y == TARGET else EQUAL_TO + y if y.startswith(PARAM) else y
                       for y in a if y != PAIRED and not y.startswith(TARGET_IF))
        elif x.startswith(SIZE_OF + PARAM):  # the size of argument i's data
            i = int(x[len(SIZE_OF) + 2:])
            out |= size_of(flat(args[i]) if i < len(args) else EMPTY)
        elif x.startswith(READ_AT + PARAM):  # read at the positions argument i holds
            i = int(x[len(READ_AT) + 2:])
            a = flat(args[i]) if i < len(args) else EMPTY
            at_targets = at_targets or (SHIFT in a and TOKEN not in a)
            out.update(READ_AT + y for y in a if y.startswith(PARAM))
        elif x.startswith("tgt?p:"):  # the target, if argument i turns out to be validation data
            i = int(x[6:])
            a = flat(args[i]) if i < len(args) else EMPTY
            if VAL in a and INPUTS not in a:
                out.add(TARGET)
            if INPUTS not in a:
                out.update(TARGET_IF + y for y in a if y.startswith(PARAM))
        else:
            out.add(x)
    if at_targets and INPUTS not in out:  # token data read at the targets' positions: the target
        if VAL in out:
            out.add(TARGET)
        else:
            out.update([TARGET_IF + y for y in out if y.startswith(PARAM)])
    return frozenset(out)



def history(labels: frozenset) -> frozenset:
    """What a table written with these values holds later: past tokens, not the current target."""
    return frozenset(x for x in labels if x not in CURRENT and not x.startswith((marks_of(TARGET_KEYED_READ), marks_of(TARGET_GATE), marks_of(ORACLE), TARGET_IF, READ_AT)))


def _data_key(labels: frozenset) -> bool:
    """An index computed from token data (not a position, a slice or a boolean mask)."""
    return MASK not in labels and (TARGET in labels or TOKEN in labels)



def _drop_fut(v):
    if isinstance(v, Tup):
        return Tup(tuple(_drop_fut(x) for x in v.items))
    if isinstance(v, It):
        return It(_drop_fut(v.elem))
    return frozenset(x for x in v if not x.startswith(marks_of(FUTURE)))

