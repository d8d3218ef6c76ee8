"""Hashed tables of a submission (n-gram caches and the like): finding their sizes, and resizing them.

Sizes come from the hyperparameters (attributes named like ``*bucket*``, ``*hash_size*``,
``*table_size*``, ``*hash_bits*``), from the environment read inside the code
(``int(os.environ.get("NGRAM_BUCKETS", ...))``, reported as ``$NGRAM_BUCKETS``) and from class
attributes (``Class.ATTR``, answered by a ``TableSize`` descriptor). ``sized_tables`` resizes them for
a block; ``loaded`` scales them so that a probe stream fills them as the official run fills the
full tables; ``collapsed`` takes them down to one bucket.
"""

from __future__ import annotations

import ast
import contextlib
import math
import re

from harness.entry_points import env_read

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
        var, default = env_read(node)
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
