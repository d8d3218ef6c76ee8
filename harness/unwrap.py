"""Unpack self-extracting submission scripts: ``exec(lzma.decompress(base64.b85decode("...")))``.

Several records ship ``train_gpt.py`` as a two-line wrapper around compressed source (it counts
fewer code bytes). Checks and imports need the real source. The wrapper is never executed: its
call chain is read with ``ast`` and replayed here with a fixed set of decoders, and decompression
is capped (a wrapper is untrusted input, so it could be a decompression bomb).
"""

from __future__ import annotations

import ast
import base64
import bz2
import lzma
import os
import re
import zlib
from pathlib import Path

from harness import AuditError

MAX_SOURCE_BYTES = 20_000_000  # unpacked source; far above any real train_gpt.py
MAX_DEPTH = 4  # wrappers around wrappers
_EXEC_CALL = re.compile(r"\bexec\s*\(")

_DECODERS = {
    ("base64", "b85decode"): base64.b85decode,
    ("base64", "b64decode"): base64.b64decode,
    ("base64", "a85decode"): base64.a85decode,
    ("base64", "b32decode"): base64.b32decode,
}
_DECOMPRESSORS = ("lzma", "zlib", "bz2", "gzip")


class WrapperError(AuditError):
    """A wrapper that looks self-extracting but cannot be unpacked."""


def _capped_decompress(module: str, data: bytes, kwargs: dict) -> bytes:
    if module == "lzma":
        fmt = kwargs.get("format", lzma.FORMAT_AUTO)
        d = lzma.LZMADecompressor(format=fmt, filters=kwargs.get("filters"))
        out = d.decompress(data, max_length=MAX_SOURCE_BYTES + 1)
    elif module in ("zlib", "gzip"):
        d = zlib.decompressobj(zlib.MAX_WBITS | (16 if module == "gzip" else 0))
        out = d.decompress(data, MAX_SOURCE_BYTES + 1)
    else:
        out = bz2.BZ2Decompressor().decompress(data, max_length=MAX_SOURCE_BYTES + 1)
    if len(out) > MAX_SOURCE_BYTES:
        raise WrapperError(f"self-extracting wrapper unpacks to more than {MAX_SOURCE_BYTES} bytes")
    return out


class _Replayer:
    """Evaluates the wrapper's argument expression with only the decoders above."""

    def __init__(self, tree: ast.Module, path: Path | None = None):
        self.path = path
        self.aliases: dict[str, str] = {}
        self.constants: dict[str, str | bytes] = {}  # ``_b = b"..."``: a payload bound to a name first
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, (str, bytes))):
                self.constants[node.targets[0].id] = node.value.value
            if isinstance(node, ast.Import):
                for a in node.names:
                    self.aliases[a.asname or a.name] = a.name
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    self.aliases[a.asname or a.name] = f"{node.module}.{a.name}"

    def qualname(self, node: ast.expr) -> tuple[str, str] | None:
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return self.aliases.get(node.value.id, node.value.id), node.attr
        if isinstance(node, ast.Name) and "." in self.aliases.get(node.id, ""):
            mod, _, name = self.aliases[node.id].rpartition(".")
            return mod, name
        return None

    def sibling_file(self, node: ast.Call) -> str | None:
        """``open(__file__.replace("train_gpt.py", "other.py")).read()``: the source of a file beside it."""
        f = node.func
        if not (isinstance(f, ast.Attribute) and f.attr == "read" and isinstance(f.value, ast.Call)):
            return None
        opened = f.value
        if not (isinstance(opened.func, ast.Name) and opened.func.id == "open" and opened.args):
            return None
        arg = opened.args[0]
        if not (isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute) and arg.func.attr == "replace"
                and isinstance(arg.func.value, ast.Name) and arg.func.value.id == "__file__" and len(arg.args) == 2):
            return None
        old, new = (self.value(a) for a in arg.args)
        if self.path is None or not isinstance(old, str) or not isinstance(new, str):
            raise WrapperError("wrapper reads a file beside itself; its path is unknown")
        target = (self.path.parent / Path(str(self.path).replace(old, new)).name).resolve()
        if target.parent != self.path.parent.resolve() or not target.is_file():
            raise WrapperError(f"wrapper reads {Path(new).name}, which is not beside it")
        if target.stat().st_size > MAX_SOURCE_BYTES:
            raise WrapperError(f"{target.name}: larger than {MAX_SOURCE_BYTES} bytes")
        return target.read_text(encoding="utf-8", errors="replace")

    def replace(self, node: ast.Call):
        """``payload.replace(b"\\n", b"")`` on a string or bytes payload (line breaks stripped before decoding)."""
        data, old, new = (self.value(x) for x in (node.func.value, *node.args))
        if not (type(data) is type(old) is type(new) and isinstance(data, (str, bytes))):
            raise WrapperError("unsupported replace() in self-extracting wrapper")
        return data.replace(old, new)

    def value(self, node: ast.expr):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes, int)):
            return node.value
        if isinstance(node, ast.Name) and node.id in self.constants:
            return self.constants[node.id]
        if isinstance(node, ast.List):
            return [self.value(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            return {self.value(k): self.value(v) for k, v in zip(node.keys, node.values)}
        q = self.qualname(node)
        if q is not None and q[0] == "lzma" and q[1].isupper():
            return getattr(lzma, q[1])  # FORMAT_RAW, FILTER_LZMA2, ...
        if isinstance(node, ast.Call):
            return self.call(node)
        raise WrapperError(f"unsupported expression in self-extracting wrapper: {ast.dump(node)[:80]}")

    def call(self, node: ast.Call):
        sibling = self.sibling_file(node)
        if sibling is not None:
            return sibling
        # bytes.decode() on the decoded payload
        if isinstance(node.func, ast.Attribute) and node.func.attr == "decode" and self.qualname(node.func) is None:
            data = self.value(node.func.value)
            return data.decode(*(self.value(a) for a in node.args)) if isinstance(data, bytes) else data
        if isinstance(node.func, ast.Attribute) and node.func.attr == "replace" and len(node.args) == 2:
            return self.replace(node)
        q = self.qualname(node.func)
        if q is None or not node.args:
            raise WrapperError("unsupported call in self-extracting wrapper")
        data = self.value(node.args[0])
        if isinstance(data, str):
            data = data.encode("ascii")
        kwargs = {k.arg: self.value(k.value) for k in node.keywords if k.arg}
        if q in _DECODERS:
            return _DECODERS[q](data)
        if q[0] in _DECOMPRESSORS and q[1] == "decompress":
            return _capped_decompress(q[0], data, kwargs)
        raise WrapperError(f"unsupported call {q[0]}.{q[1]} in self-extracting wrapper")


def _exec_payload(tree: ast.Module) -> ast.Call | None:
    """The argument of a top-level ``exec(...)`` when the module is only imports, constants and that call.

    Also the two-step form ``_src = lzma.decompress(...)`` then ``exec(compile(_src, "train_gpt.py",
    "exec"))``, with stores into subscripts beside it (``linecache.cache[...] = ...``, which only keeps
    tracebacks readable).
    """
    found, bound = None, {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            continue  # e.g. ``__wrapper_size__ = 21392``
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Subscript) for t in node.targets):
            continue
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call)):
            bound[node.targets[0].id] = node.value
            continue
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
                and node.value.func.id == "exec" and len(node.value.args) >= 1 and found is None):
            arg = _compiled_source(node.value.args[0])
            arg = bound.get(arg.id, arg) if isinstance(arg, ast.Name) else arg
            if isinstance(arg, ast.Call):
                found = arg
                continue
        return None
    return found


def _compiled_source(node: ast.expr) -> ast.expr:
    """``compile(src, name, "exec")`` -> ``src``; any other expression as it is."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "compile"
            and node.args):
        return node.args[0]
    return node


def is_wrapper(source: str) -> bool:
    try:
        return _exec_payload(ast.parse(source)) is not None
    except SyntaxError:
        return False


def unwrap_source(source: str, path: str | os.PathLike | None = None) -> tuple[str, int]:
    """(real source, number of wrapper layers removed); source that is not a wrapper is returned as is.

    ``path`` is the file the source came from (wrappers may read a file beside themselves).
    """
    layers = 0
    while layers < MAX_DEPTH:
        if not _EXEC_CALL.search(source):  # no exec call, no wrapper: skip parsing the (often large) source
            return source, layers
        try:
            tree = ast.parse(source)
        except SyntaxError:
            return source, layers
        call = _exec_payload(tree)
        if call is None:
            return source, layers
        try:
            out = _Replayer(tree, Path(path) if path else None).value(call)
        except (ValueError, lzma.LZMAError, zlib.error, OSError, UnicodeDecodeError) as e:
            raise WrapperError(f"self-extracting wrapper does not unpack: {type(e).__name__}: {str(e)[:80]}") from None
        source = out.decode("utf-8") if isinstance(out, bytes) else str(out)
        layers += 1
    return source, layers
