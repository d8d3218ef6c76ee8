"""The static part on the bundled examples and on crafted submissions: families found, legal code
clean, inline suppressions, wrappers, Python 3.12 syntax, helper files, settings of the official
run, the content-hash cache and the rules/explain commands. About 15 s."""

from __future__ import annotations

import base64
import json
import lzma
import textwrap

import pytest

from checks.static import engine
from tests.cli_run import run_cli
from tests.conftest import SUBMISSIONS

EXPECTED = {
    "ngram_target_in_key": "target-in-key",
    "tilt_target_gated": "target-gated-mixing",
    "ttt_update_before_score": "update-before-score",
    "two_pass": "multi-pass",
    "double_score_tail": "double-scoring",
    "boundary_leak": "boundary-leak",
}
LEGAL = ["legal_sliding", "ngram_context_only", "ttt_score_first"]


def check(folder) -> list[dict]:
    found, _ = engine.check_folder(str(folder), use_cache=False)
    return found


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_violating_examples_are_flagged_with_their_family(name):
    found = [f for f in check(SUBMISSIONS / name) if f["severity"] in ("error", "warning")]
    assert {f["family"] for f in found} == {EXPECTED[name]}, [(f["rule"], f["message"]) for f in found]


@pytest.mark.parametrize("name", LEGAL)
def test_legal_examples_are_clean(name):
    found = [f for f in check(SUBMISSIONS / name) if f["severity"] in ("error", "warning")]
    assert not found, [(f["rule"], f["line"], f["message"]) for f in found]


def write(tmp_path, files: dict[str, str]):
    for name, text in files.items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return tmp_path


NGRAM = """
import numpy as np
def evaluate(model, table):
    stream = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
    acc = 0.0
    for t in range(1, len(stream) - 1):
        k = (stream[t] * 1000003 ^ stream[t + 1]) % 4096{allow}
        acc += -np.log(0.5 * model(stream[: t + 1])[stream[t + 1]] + 0.5 * table[k] / 100)
    return acc
"""


def test_inline_allow_with_reason_suppresses_and_without_reason_warns(tmp_path):
    src = NGRAM.replace("table[k] / 100)", "table[k] / 100)  # golf-audit: allow[GA101] synthetic fixture")
    found = check(write(tmp_path / "a", {"train_gpt.py": src.format(allow="")}))
    (f,) = [f for f in found if f["rule"] == "GA101"]
    assert f["suppressed"] == "synthetic fixture"
    bare = NGRAM.replace("table[k] / 100)", "table[k] / 100)  # golf-audit: allow[GA101]")
    found = check(write(tmp_path / "b", {"train_gpt.py": bare.format(allow="")}))
    assert [f["rule"] for f in found if f["severity"] == "warning"] == ["GA100"]


def test_self_extracting_wrapper_is_checked_inside(tmp_path):
    blob = base64.b85encode(lzma.compress(NGRAM.format(allow="").encode())).decode()
    wrapper = f'import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("{blob}")))\n'
    (tmp_path / "train_gpt.py").write_text(wrapper)
    (f,) = [f for f in check(tmp_path) if f["rule"] == "GA101"]
    assert "unpacked" in f["message"] and f["severity"] == "error"


def test_python_312_syntax_parses():
    src = "type Vec = list[float]\ndef first[T](xs: list[T]) -> T:\n    return xs[0]\nname = f\"{'a' + \"b\"}\"\n"
    found, notes = engine.analyse([engine.Source("x.py", src)], dict(engine.OFFICIAL_ENV))
    assert notes == [] and found == []


def test_violation_in_an_imported_helper_file_is_found(tmp_path):
    write(tmp_path, {
        "train_gpt.py": """
            import numpy as np
            from ngram.cache import key_of
            def evaluate(model, table):
                stream = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
                acc = 0.0
                for t in range(1, len(stream) - 1):
                    acc += -np.log(0.5 * model(stream[: t + 1])[stream[t + 1]] + 0.5 * table[key_of(stream[t], stream[t + 1])])
                return acc
        """,
        "ngram/cache.py": """
            def key_of(ctx, nxt):
                return (ctx * 31 + nxt * 7) & 4095
        """})
    assert "target-in-key" in {f["family"] for f in check(tmp_path) if f["severity"] == "error"}


GATED = """
import os
import numpy as np
WORLD_SIZE = int(os.environ.get("WORLD_SIZE", "1"))
CACHE_ORDER = int(os.environ.get("CACHE_ORDER", "0"))
def evaluate(model, table):
    stream = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
    acc = 0.0
    for t in range(1, len(stream) - 1):
        p = model(stream[: t + 1])[stream[t + 1]]
        if {cond}:
            p = 0.5 * p + 0.5 * table[(stream[t] * 31 + stream[t + 1]) % 4096] / 100
        acc += -np.log(p)
    return acc
"""


@pytest.mark.parametrize("cond,readme,severity", [
    ("CACHE_ORDER > 0", None, "info"),  # off under the defaults (#1458, #1232)
    ("CACHE_ORDER > 0", "```\nCACHE_ORDER=7 torchrun --nproc_per_node=8 train_gpt.py\n```\n", "error"),
    # a run command continued over several lines
    ("CACHE_ORDER > 0", "```\nCACHE_ORDER=7 SEED=1 \\\n  torchrun --nproc_per_node=8 train_gpt.py\n```\n", "error"),
    ("WORLD_SIZE > 1", None, "error"),  # on in the official 8-rank run (#715)
    ("WORLD_SIZE == 1", None, "info"),
])
def test_code_disabled_in_the_official_run_is_info(tmp_path, cond, readme, severity):
    files = {"train_gpt.py": GATED.format(cond=cond)}
    if readme:
        files["README.md"] = readme
    found = [f for f in check(write(tmp_path, files)) if f["rule"] == "GA101"]
    assert [f["severity"] for f in found] == [severity]


def test_renaming_does_not_hide_and_the_word_target_does_not_reveal(tmp_path):
    renamed = NGRAM.format(allow="").replace("stream", "banana").replace("table", "pear")
    assert any(f["rule"] == "GA101" for f in check(write(tmp_path / "a", {"train_gpt.py": renamed})))
    legal = NGRAM.format(allow="").replace("stream[t] * 1000003 ^ stream[t + 1]", "stream[t] * 1000003 ^ stream[t - 1]")
    legal = legal.replace("k =", "target_key =").replace("table[k]", "table[target_key]")
    assert not [f for f in check(write(tmp_path / "b", {"train_gpt.py": legal})) if f["severity"] != "info"]


def test_cache_gives_the_same_findings_and_is_keyed_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("GOLF_AUDIT_CACHE", str(tmp_path / "cache"))
    sub = write(tmp_path / "s", {"train_gpt.py": NGRAM.format(allow="")})
    cold, _ = engine.check_folder(str(sub))
    files = list((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 1
    warm, _ = engine.check_folder(str(sub))
    assert warm == cold
    (sub / "train_gpt.py").write_text(NGRAM.format(allow="").replace("stream[t + 1]) % 4096", "stream[t - 1]) % 4096"))
    changed, _ = engine.check_folder(str(sub))
    assert changed != cold and len(list((tmp_path / "cache").rglob("*.json"))) == 2


def test_check_many_in_two_processes_matches_one(tmp_path):
    folders = [str(SUBMISSIONS / n) for n in ("two_pass", "legal_sliding", "tilt_target_gated")]
    assert engine.check_many(folders, jobs=2, use_cache=False) == engine.check_many(folders, jobs=1, use_cache=False)


def test_unparsable_file_is_a_note_not_a_crash(tmp_path):
    (tmp_path / "train_gpt.py").write_text("def broken(:\n")
    found, notes = engine.check_folder(str(tmp_path), use_cache=False)
    assert found == [] and notes and "not parsed" in notes[0]


def test_rules_and_explain_commands():
    """The static part's IDs in `rules` are the rule files' (named gaNNN_*.py) and the engine's two notes."""
    from tests.conftest import ROOT

    proc = run_cli("rules", "--format", "json")
    assert proc.returncode == 0
    docs = json.loads(proc.stdout)
    files = {p.name[:5].upper() for p in (ROOT / "checks" / "static" / "rules").glob("ga[0-9][0-9][0-9]_*.py")}
    assert [d["id"] for d in docs if d["part"] == "static"] == sorted(files | {"GA001", "GA100"})
    proc = run_cli("explain", "ga101")
    assert proc.returncode == 0 and "Why is this bad?" in proc.stdout and "Use instead" in proc.stdout
    proc = run_cli("explain", "GA999")
    assert proc.returncode == 2 and "no rule" in proc.stderr


def test_check_command_reports_location_and_frame():
    proc = run_cli("check", "submissions/ngram_target_in_key", "--format", "json", env={"GOLF_AUDIT_CACHE": ""})
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    (f,) = [f for f in doc["findings"] if f["rule"] == "GA101"]
    source = (SUBMISSIONS / "ngram_target_in_key" / "train_gpt.py").read_text().splitlines()
    (read,) = [i for i, line in enumerate(source, 1) if "full_table[full_key]" in line]  # the target-keyed read
    assert f["path"] == "submissions/ngram_target_in_key/train_gpt.py" and f["line"] == read
    assert f["column"] == source[read - 1].index("full_table[full_key]") + 1
    assert "full_table[full_key]" in f["code_frame"]


def project_copy(dest):
    """A copy of golf-audit's own packages, to edit without touching the checkout."""
    import shutil

    from tests.conftest import ROOT

    for pkg in ("checks", "harness", "reports"):
        shutil.copytree(ROOT / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_cache_key_covers_the_modules_the_static_check_imports(tmp_path):
    """Editing harness/unwrap.py (which decides what code is checked) misses the cache; editing a
    module the static check never imports (the evaluator) does not."""
    import subprocess
    import sys

    code = tmp_path / "code"
    project_copy(code)
    sub = write(tmp_path / "s", {"train_gpt.py": NGRAM.format(allow="")})
    cache = tmp_path / "cache"
    probe = ("import checks.static.engine as e, sys; assert e.__file__.startswith(sys.argv[1]), e.__file__; "
             "e.check_folder(sys.argv[2])")

    def entries_after_check() -> int:
        subprocess.run([sys.executable, "-c", probe, str(code), str(sub)], cwd=code, check=True,
                       env={"PATH": "/usr/bin:/bin", "GOLF_AUDIT_CACHE": str(cache)}, timeout=120)
        return len(list(cache.rglob("*.json")))

    assert entries_after_check() == 1
    assert entries_after_check() == 1  # unchanged code: a hit
    (code / "harness" / "evaluate.py").write_text((code / "harness" / "evaluate.py").read_text() + "\n# edited\n")
    assert entries_after_check() == 1
    (code / "harness" / "unwrap.py").write_text((code / "harness" / "unwrap.py").read_text() + "\n# edited\n")
    assert entries_after_check() == 2


def test_the_cache_keys_project_packages_are_pyprojects():
    import tomllib

    from checks.static import codedeps
    from tests.conftest import ROOT

    found = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(codedeps.PROJECT_PACKAGES) == sorted(p.rstrip("*") for p in found)
