"""Golf-audit's own imports point one way: from a higher layer to a lower one, never up.

    python -m tests.test_layers     # lists every upward import, if any

Layers, lowest first (docs/architecture.md): the base (version, AuditError) and the report model,
the harness, the audit parts, the renderers and report output, the command line. Every import of a
project module, at the top of a file or inside a function, is one edge; an edge to a higher layer
fails the test with its file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# module prefix -> layer (longest prefix wins)
LAYERS = {
    "reports.base": 0,
    "reports.model": 0,
    "reports.schema": 0,
    "harness": 1,
    "checks": 2,
    "reports.baseline": 2,
    "reports.progress": 2,
    "reports.render": 3,
    "reports": 3,
    "cli": 4,
}


def layer_of(module: str) -> int | None:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    return LAYERS[best] if best is not None else None


def module_of(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file."""
    name = module_of(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:  # `from pkg import module` imports that module
                sub = f"{mod}.{a.name}" if mod else a.name
                is_module = (root.joinpath(*sub.split(".")).with_suffix(".py").is_file()
                             or (root.joinpath(*sub.split(".")) / "__init__.py").is_file())
                out.append((node.lineno, sub if is_module else mod))
    return sorted(set(out))


def upward_edges(root: Path = ROOT) -> list[str]:
    files = [root / "cli.py"] + [p for pkg in ("harness", "checks", "reports") for p in (root / pkg).rglob("*.py")
                                  if "templates" not in p.parts]
    found = []
    for path in sorted(f for f in files if f.is_file()):
        here = layer_of(module_of(path, root))
        for line, mod in imports(path, root):
            there = layer_of(mod)
            if here is not None and there is not None and there > here:
                found.append(f"{path.relative_to(root)}:{line}: layer {here} imports {mod} (layer {there})")
    return found


def test_no_import_points_to_a_higher_layer():
    assert upward_edges() == []


def test_an_upward_import_is_found(tmp_path):
    """The walk sees imports inside functions, relative or absolute (on a planted tree)."""
    for rel in ("harness/__init__.py", "checks/__init__.py", "checks/parts.py", "cli.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    (tmp_path / "harness" / "low.py").write_text("def f():\n    from cli import main\n    from ..checks import parts\n")
    (tmp_path / "checks" / "high.py").write_text("from harness import low\n")
    assert upward_edges(tmp_path) == ["harness/low.py:2: layer 1 imports cli (layer 4)",
                                      "harness/low.py:3: layer 1 imports checks.parts (layer 2)"]


if __name__ == "__main__":
    edges = upward_edges()
    print("\n".join(edges) if edges else "no import points from a lower layer to a higher one")
    print(f"{len(edges)} upward import(s)")
