"""The project's own source files a set of modules depends on, found by reading their imports.

The static result cache is keyed on the analyser's code: every file of ``checks/static/`` and every
module of this project they import, directly or through each other (``harness/unwrap.py`` decides
what code is checked, ``reports/model.py`` gives families their conditions). Imports are read with
``ast`` from the files themselves, those inside functions included, so a module that starts being
imported joins the key without anyone listing it.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

# This project's top-level packages (pyproject.toml's ``packages.find``; a test keeps the two equal):
# imports of anything else are libraries, whose versions do not change our findings' logic.
PROJECT_PACKAGES = ("checks", "harness", "reports")


def _module_file(root: Path, dotted: str) -> Path | None:
    """``a.b`` -> root/a/b.py or root/a/b/__init__.py, when that file is part of this project."""
    if dotted.split(".")[0] not in PROJECT_PACKAGES:
        return None
    base = root.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(root: Path, path: Path) -> tuple[str, bool]:
    """(dotted name, whether the file is a package's __init__) of a file under root."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def _imported_names(path: Path, root: Path) -> set[str]:
    """Every module name the file imports (absolute, relative resolved), with each parent package
    and, for ``from m import x``, ``m.x`` in case x is a submodule."""
    name, is_package = _module_name(root, path)
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)] if package else []
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base:
                out.add(base)
            out.update(f"{base}.{a.name}" if base else a.name for a in node.names)
    with_parents = set()
    for dotted in out:
        parts = dotted.split(".")
        with_parents.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return with_parents


def own_dependencies(start: list[Path], root: Path) -> list[Path]:
    """The files in ``start`` and every file under ``root`` they import, transitively, sorted."""
    seen: set[Path] = set()
    todo = [p.resolve() for p in start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for dotted in _imported_names(path, root):
            found = _module_file(root, dotted)
            if found is not None and found.resolve() not in seen:
                todo.append(found.resolve())
    return sorted(seen)


def digest(files: list[Path], root: Path) -> str:
    """SHA-256 over the files' paths (relative to root) and contents."""
    h = hashlib.sha256()
    for p in sorted(files):
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()
