"""Reading submission sources never crashes the check: what CPython rejects for its nesting is a note
(checked in a child process, so that a crash would be seen as a signal, not take the test run down),
what CPython compiles is parsed and analysed (deep expressions, keywords written without a space)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from checks.static import engine
from harness.downlevel import space_keywords


def analyse_in_child(src: str) -> subprocess.CompletedProcess:
    """engine.analyse of one entry file, in a process of its own: a segfault shows as returncode < 0."""
    code = textwrap.dedent("""
        import json, sys
        from checks.static import engine
        found, notes = engine.analyse([engine.Source("train_gpt.py", sys.stdin.read())], dict(engine.OFFICIAL_ENV))
        print(json.dumps({"rules": [(f["rule"], f["line"]) for f in found], "notes": notes}))
    """)
    return subprocess.run([sys.executable, "-c", code], input=src, capture_output=True, text=True, timeout=300)


NESTED_TOO_DEEP = {
    "1500 nested parentheses": "x = " + "(" * 1500 + "1" + ")" * 1500 + "\n",
    "a 20,000-term sum": "x = " + " + ".join(["a"] * 20_000) + "\n",
    "5,000 unary minuses": "x = " + "-" * 5000 + "1\n",
}


@pytest.mark.parametrize("name", sorted(NESTED_TOO_DEEP))
def test_sources_cpython_rejects_for_nesting_are_a_note(name):
    proc = analyse_in_child(NESTED_TOO_DEEP[name])
    assert proc.returncode == 0, proc.stderr[-500:]
    out = __import__("json").loads(proc.stdout)
    assert out["rules"] == [] and len(out["notes"]) == 1
    assert out["notes"][0].startswith("train_gpt.py: not parsed as Python (")


def test_deep_expressions_cpython_compiles_are_analysed():
    """1,000 and 2,000 terms (CPython compiles both), 190 nested parentheses: analysed, and a violation
    after them is still found on its own line."""
    terms = " + ".join(["a"] * 2000)
    src = textwrap.dedent("""\
        import numpy as np
        def evaluate(model, table, a):
            x = {terms}
            y = {parens}
            z = {short}
            val = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
            loss = 0.0
            for t in range(1, len(val) - 1):
                key = (val[t] * 1000003 ^ val[t + 1]) % 4096
                loss += -np.log(0.5 * model(val[: t + 1])[val[t + 1]] + 0.5 * table[key] / 100)
            return loss
    """).format(terms=terms, parens="(" * 190 + "a" + ")" * 190, short=" + ".join(["a"] * 1000))
    proc = analyse_in_child(src)
    assert proc.returncode == 0, proc.stderr[-500:]
    out = __import__("json").loads(proc.stdout)
    assert out["notes"] == [] and ["GA101", 10] in out["rules"]


def test_keyword_without_a_space_parses_and_findings_keep_their_lines():
    src = textwrap.dedent("""\
        import numpy as np
        from pathlib import Path
        def evaluate(model, table, paths):
            files = [Path(p)for p in sorted(paths)]
            n = sum(len(str(f))for f in files)
            val = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
            loss = 0.0
            for t in range(1, len(val) - 1):
                key = (val[t] * 1000003 ^ val[t + 1]) % 4096
                loss += -np.log(0.5 * model(val[: t + 1])[val[t + 1]] + 0.5 * table[key] / 100)
            return loss, n
    """)
    found, notes = engine.analyse([engine.Source("train_gpt.py", src)], dict(engine.OFFICIAL_ENV))
    assert notes == []
    (f,) = [f for f in found if f["rule"] == "GA101"]
    assert f["line"] == 10 and "table[key]" in f["code_frame"].splitlines()[2]


def test_spacing_keywords_keeps_lines_and_meaning():
    src = "x = sum(int(p)for p in ps)\ny = [1if a else(2)for a in b]\nif(x):\n    f(None)\n"
    out = space_keywords(src)
    assert out.count("\n") == src.count("\n")
    assert "int(p) for p" in out and "1 if a else (2) for a" in out
    import ast
    assert ast.dump(ast.parse(out)) == ast.dump(ast.parse(src))


def test_check_command_on_a_too_deep_entry_exits_2_with_one_line(tmp_path):
    from tests.hostile import cli, one_error_line

    (tmp_path / "train_gpt.py").write_text(NESTED_TOO_DEEP["1500 nested parentheses"])
    rc, out, err = cli("check", tmp_path, "--format", "json")
    assert rc == 2 and one_error_line(err).startswith("static: train_gpt.py: not parsed as Python"), err
