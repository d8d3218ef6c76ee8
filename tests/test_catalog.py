"""Every finding ID any part emits has an entry in the catalog (checks/catalog.py), and every reader of
rule documentation (rules, explain, the rule pages in docs/rules/) shows that entry.

The IDs are collected from golf-audit's code by its syntax tree, not from the catalog: every string
literal shaped like an ID (letters then three digits: GA101, CLM010, REPRO002, SBX001, DATA001, and any
new prefix), and ``PRB-<name>`` for each probe declared with ``Probe(name=...)``.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from checks import catalog
from tests.cli_run import run_cli
from tests.conftest import ROOT

ID_SHAPE = re.compile(r"^(?:[A-Z]{2,6}\d{3}|PRB-[a-z][a-z-]*)$")
PRODUCT = ["checks", "harness", "reports"]
WHERE_TO_ADD = ("add an Entry to PART_ENTRIES in checks/catalog.py (what, why, example, fix); a static "
                "rule documents itself in its class docstring (Why:, Example:, Fix:)")


def product_files() -> list[Path]:
    files = [ROOT / "cli.py"]
    for pkg in PRODUCT:
        files += [p for p in (ROOT / pkg).rglob("*.py") if "templates" not in p.parts]
    return [p for p in files if p.resolve() != Path(catalog.__file__).resolve()]


def _kw(call: ast.Call, name: str):
    return next((k.value.value for k in call.keywords if k.arg == name and isinstance(k.value, ast.Constant)), None)


def emitted() -> dict[str, set[str]]:
    """ID -> the files that emit it (string literals of an ID's shape; probe names as PRB-<name>)."""
    out: dict[str, set[str]] = {}
    for path in product_files():
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ID_SHAPE.match(node.value):
                out.setdefault(node.value, set()).add(rel)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Probe" and _kw(node, "name"):
                out.setdefault(f"PRB-{_kw(node, 'name')}", set()).add(rel)
    return out


def emitted_families() -> dict[str, set[str]]:
    """ID -> families written next to it at the places that report it: ``Finding(rule=ID, family=F)``,
    ``_f(ID, F, ...)`` (the claims helper), ``ID = ...; family = F`` in a rule class, ``Probe(family=F)``."""
    out: dict[str, set[str]] = {}
    for path in product_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                args = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
                if _kw(node, "rule") and _kw(node, "family"):
                    out.setdefault(_kw(node, "rule"), set()).add(_kw(node, "family"))
                elif len(args) >= 2 and isinstance(args[0], str) and ID_SHAPE.match(args[0]) and isinstance(args[1], str):
                    out.setdefault(args[0], set()).add(args[1])
                elif getattr(node.func, "id", None) == "Probe" and _kw(node, "family"):
                    out.setdefault(f"PRB-{_kw(node, 'name')}", set()).add(_kw(node, "family"))
            if isinstance(node, ast.ClassDef):
                consts = {t.targets[0].id if isinstance(t.targets[0], ast.Name) else "": t.value.value
                          for t in node.body if isinstance(t, ast.Assign) and isinstance(t.value, ast.Constant)}
                tuples = [t for t in node.body if isinstance(t, ast.Assign) and isinstance(t.targets[0], ast.Tuple)]
                for t in tuples:  # ID, NAME, family, severity = "...", ...
                    names = [getattr(e, "id", "") for e in t.targets[0].elts]
                    values = [getattr(e, "value", None) for e in getattr(t.value, "elts", [])]
                    consts.update(zip(names, values))
                if consts.get("ID") and isinstance(consts["ID"], str) and isinstance(consts.get("family"), str):
                    out.setdefault(consts["ID"], set()).add(consts["family"])
    return out


def test_the_collector_sees_every_part():
    """The collector itself: each part's IDs are found where they are written."""
    ids = emitted()
    for prefix, where in (("GA1", "checks/static/rules/"), ("CLM", "checks/claims/"), ("REPRO", "checks/reproduce.py"),
                          ("SBX", "harness/"), ("DATA", "checks/"), ("PRB-", "checks/probes/")):
        assert any(i.startswith(prefix) and any(f.startswith(where) for f in fs) for i, fs in ids.items()), prefix


def test_every_emitted_id_has_a_catalog_entry():
    known = {e.id for e in catalog.entries()}
    missing = {i: sorted(fs) for i, fs in emitted().items() if i not in known}
    assert not missing, f"IDs emitted without a catalog entry: {missing}; {WHERE_TO_ADD}"


def test_every_entry_is_emitted_somewhere():
    stale = sorted({e.id for e in catalog.entries()} - set(emitted()))
    assert not stale, f"catalog entries no part emits (remove them from checks/catalog.py): {stale}"


def test_entries_are_complete_and_families_agree_with_the_code():
    from reports.model import FAMILIES

    written = emitted_families()
    for e in catalog.entries():
        assert all(x.strip() for x in (e.what, e.why, e.example, e.fix)), f"{e.id}: what, why, example and fix"
        assert all(f in FAMILIES for f in e.families), e.id
        odd = written.get(e.id, set()) - set(e.families)
        assert not odd, f"{e.id} is reported as {sorted(odd)} in the code but catalogued as {e.families}"


def test_rules_lists_every_part_and_explain_works_for_every_id():
    proc = run_cli("rules", "--format", "json")
    assert proc.returncode == 0
    listed = {d["id"]: d for d in json.loads(proc.stdout)}
    assert set(listed) == set(emitted())
    assert {d["part"] for d in listed.values()} == {p.value for p in catalog.Part}
    import cli

    for rid, d in listed.items():
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(["explain", rid.lower()])
        text = out.getvalue()
        assert rc == 0 and text.startswith(rid), (rid, err.getvalue())
        for section, key in (("What it does", "what"), ("Why is this bad?", "why"), ("Use instead", "fix")):
            assert f"{section}\n  {d[key]}" in text, (rid, section)
    proc = run_cli("explain", "CLM999")
    assert proc.returncode == 2 and "no rule" in proc.stderr


def test_rule_pages_are_generated_from_the_catalog():
    """docs/rules/ is what `python -m checks.catalog docs/rules` writes (run it after changing an entry)."""
    folder = ROOT / "docs" / "rules"
    expected = catalog.rule_pages()
    present = {p.name: p.read_text(encoding="utf-8") for p in folder.glob("*.md")}
    assert sorted(present) == sorted(expected), "regenerate: python -m checks.catalog docs/rules"
    stale = [name for name, text in expected.items() if present[name] != text]
    assert not stale, f"regenerate: python -m checks.catalog docs/rules (differs: {stale})"


@pytest.mark.parametrize("rid", ["GA101", "CLM010", "PRB-exactly-once", "SBX001"])
def test_a_rule_page_holds_the_four_sections(rid):
    page = catalog.rule_page(catalog.entry(rid))
    assert [ln for ln in page.splitlines() if ln.startswith("## ")] == [
        "## What it does", "## Why is this bad?", "## Example", "## Use instead"]
