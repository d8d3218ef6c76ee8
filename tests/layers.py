"""Which of golf-audit's own imports point from a lower layer to a higher one (report only).

    python -m tests.layers

Layers, lowest first (docs/architecture.md): the report model, the harness, the audit parts, the
renderers, the command line. Every import of a project module, at the top of a file or inside a
function, is one edge; an edge to a higher layer is printed with its file and line. The script
exits 0 whatever it finds: it measures the layering while it is being fixed, and becomes a test
once no edge points up.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# module prefix -> layer (longest prefix wins)
LAYERS = {
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


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file."""
    name = module_of(path)
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
                is_module = (ROOT.joinpath(*sub.split(".")).with_suffix(".py").is_file()
                             or (ROOT.joinpath(*sub.split(".")) / "__init__.py").is_file())
                out.append((node.lineno, sub if is_module else mod))
    return sorted(set(out))


def upward_edges() -> list[str]:
    files = [ROOT / "cli.py"] + [p for pkg in ("harness", "checks", "reports") for p in (ROOT / pkg).rglob("*.py")
                                  if "templates" not in p.parts]
    found = []
    for path in sorted(files):
        here = layer_of(module_of(path))
        for line, mod in imports(path):
            there = layer_of(mod)
            if here is not None and there is not None and there > here:
                found.append(f"{path.relative_to(ROOT)}:{line}: layer {here} imports {mod} (layer {there})")
    return found


if __name__ == "__main__":
    edges = upward_edges()
    print("\n".join(edges) if edges else "no import points from a lower layer to a higher one")
    print(f"{len(edges)} upward import(s)")
