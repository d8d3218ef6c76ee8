"""Every command in every format, run as a user runs it, on the bundled examples.

Every part of a command runs; the only skip is one by design (``--no-exec`` for the parts that run
submission code), and it says so. Exit codes agree with the report's verdict, and every output
validates against its schema.
"""

from __future__ import annotations

import json
import sys
import textwrap
from functools import cache

import pytest

from checks.parts import EXECUTING_PARTS
from cli import COMMAND_PARTS
from tests.cli_run import check_output, run_cli
from tests.conftest import ROOT, SUBMISSIONS

FORMATS = ["text", "json", "sarif", "markdown", "junit"]
EXAMPLES = sorted(p.name for p in SUBMISSIONS.iterdir() if p.is_dir() and p.name != "data")
VIOLATING = "submissions/ngram_target_in_key"
LEGAL = "submissions/legal_sliding"


@cache
def _json_run(*args: str) -> tuple[int, str]:
    proc = run_cli(*args, "--format", "json")
    return proc.returncode, proc.stdout


def audit_json(*args: str) -> tuple[int, dict]:
    """The JSON report of a command (one run per argument list and test process), checked."""
    rc, out = _json_run(*args)
    assert rc in (0, 1, 2)
    doc = check_output("json", out)
    assert rc == {"pass": 0, "fail": 1, "incomplete": 2, "error": 2}[doc["verdict"]]
    errors = [f for f in doc["findings"] if f["severity"] == "error" and not f.get("suppressed")]
    assert (rc == 1) == bool(errors)
    return rc, doc


def test_examples_are_present():
    assert {"legal_sliding", "ngram_target_in_key", "ttt_update_before_score", "two_pass"} <= set(EXAMPLES)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("command", ["audit", "check", "claims", "probe", "reproduce"])
def test_command_in_every_format(command, fmt):
    rc, doc = audit_json(command, VIOLATING, "--no-exec")
    assert set(doc["parts_run"]) == set(COMMAND_PARTS[command]) - EXECUTING_PARTS
    assert {s["part"]: s["reason"] for s in doc["skipped"]} == {
        p: "--no-exec: this part runs submission code" for p in set(COMMAND_PARTS[command]) & EXECUTING_PARTS}
    proc = run_cli(command, VIOLATING, "--no-exec", "--format", fmt)
    assert proc.returncode == rc, proc.stderr
    out = check_output(fmt, proc.stdout)
    if fmt == "sarif":
        run = out["runs"][0]
        assert run["invocations"][0]["exitCode"] == rc
        rules = {r["id"] for r in run["tool"]["driver"]["rules"]}
        assert {f["rule"] for f in doc["findings"]} <= rules
        assert len(run["results"]) == len(doc["findings"]) + sum(p["status"] == "fail" for p in doc["probes"])
    if fmt == "junit":
        failed = {c.get("name").split()[0] for c in out.iter("testcase") if c.find("failure") is not None}
        assert {f["rule"] for f in doc["findings"] if f["severity"] == "error" and not f.get("suppressed")} <= failed
        skipped = {c.get("name") for c in out.iter("testcase") if c.find("skipped") is not None}
        assert {s["part"] for s in doc["skipped"]} <= skipped


@pytest.mark.parametrize("example", EXAMPLES)
def test_check_every_example(example):
    rc, doc = audit_json("check", f"submissions/{example}")
    assert doc["parts_run"] == ["static"] and doc["skipped"] == []
    for f in doc["findings"]:
        assert f["path"] is None or not f["path"].startswith("/"), "reports carry no absolute paths"


def test_legal_example_has_no_violation():
    rc, doc = audit_json("audit", LEGAL, "--no-exec")
    assert rc == 0, [f["message"] for f in doc["findings"] if f["severity"] == "error"]


def test_full_audit_runs_every_part():
    rc, doc = audit_json("audit", LEGAL, "--max-tokens", "2048")
    assert doc["parts_run"] == COMMAND_PARTS["audit"] and doc["skipped"] == []
    assert doc["verdict"] == "pass" and rc == 0


@pytest.mark.parametrize("fmt", ["json", "sarif", "junit", "markdown", "text"])
def test_output_is_byte_identical_across_runs(fmt):
    a = run_cli("audit", VIOLATING, "--no-exec", "--format", fmt)
    b = run_cli("audit", VIOLATING, "--no-exec", "--format", fmt)
    assert a.stdout == b.stdout and a.returncode == b.returncode


@pytest.mark.parametrize("command", ["probe", "reproduce", "audit"])
def test_no_exec_reports_the_executing_parts_as_skipped(command):
    _, doc = audit_json(command, LEGAL, "--no-exec")
    executing = {"probes", "reproduction"} & set(COMMAND_PARTS[command])
    assert executing and not executing & set(doc["parts_run"])
    reasons = {s["part"]: s["reason"] for s in doc["skipped"]}
    for part in executing:
        assert "--no-exec" in reasons[part]


# Runs golf-audit in this process under an audit hook that fails on anything that would run the
# submission: code objects compiled from its files, or a process started on its files or the sandbox.
NO_EXEC_DRIVER = textwrap.dedent("""
    import os, sys
    sub = os.path.realpath(sys.argv[1])
    seen = []

    def hook(event, args):
        if event == "exec":
            fn = getattr(args[0], "co_filename", "") or ""
            if fn and os.path.realpath(fn).startswith(sub + os.sep):
                seen.append(f"exec {fn}")
        elif event in ("subprocess.Popen", "os.exec", "os.posix_spawn", "os.spawn", "os.system"):
            text = repr(args)
            if "sandbox_child" in text or sub in text:
                seen.append(f"{event} {text[:200]}")

    sys.addaudithook(hook)
    if sys.argv[2] == "self-test":
        path = os.path.join(sub, "train_gpt.py")
        exec(compile(open(path).read(), path, "exec"), {"__name__": "not_main"})
        rc = 0
    else:
        import cli
        rc = cli.main(sys.argv[2:])
    print("SEEN", seen, file=sys.stderr)
    sys.exit(3 if seen else rc)
""")


def _no_exec_run(folder, *args):
    import subprocess

    return subprocess.run([sys.executable, "-c", NO_EXEC_DRIVER, str(folder), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_no_exec_runs_no_submission_code(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "train_gpt.py").write_text("X = 1\n\ndef main():\n    return X\n\nif __name__ == '__main__':\n    main()\n")
    # the detector works: executing the file is seen
    assert _no_exec_run(sub, "self-test").returncode == 3
    for command in ("audit", "probe", "reproduce"):
        proc = _no_exec_run(sub, command, str(sub), "--no-exec", "--format", "json")
        assert proc.returncode in (0, 1), proc.stderr
    example = ROOT / VIOLATING
    proc = _no_exec_run(example, "audit", str(example), "--no-exec", "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr


@pytest.mark.parametrize("command", ["audit", "check", "claims", "probe", "reproduce", "scan"])
def test_missing_path_is_a_one_line_error(command):
    proc = run_cli(command, "no/such/folder")
    assert proc.returncode == 2 and "no/such/folder" in proc.stderr and not proc.stdout


@pytest.mark.parametrize("args", [
    ["audit", "README.md"],  # neither a folder nor a .py file
    ["audit", LEGAL, "--format", "yaml"],
    ["audit", LEGAL, "--max-tokens", "0"],
    ["audit", LEGAL, "--baseline", "no-such-baseline.json"],  # refused before the audit runs
    ["audit", LEGAL, "--output", "/no/such/dir/report.json"],
    ["scan", "submissions", "--baseline", "no-such-baseline.json"],
    ["check", LEGAL, "--output", "/no/such/dir/report.json"],
    ["scan", "submissions", "--jobs", "0"],
    ["render", "README.md"],
    ["explain", "NO-SUCH-RULE"],
    ["nonsense-command"],
])
def test_bad_input_exits_2_with_one_line(args):
    # Bad options are refused before any part runs: a full audit of the example would take minutes.
    proc = run_cli(*args, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip()


def test_bad_baseline_file_is_a_one_line_error(tmp_path):
    for text in ("{", "[]", '{"golf_audit_baseline": 1, "accepted": [{"rule": 3}]}'):
        (tmp_path / "b.json").write_text(text)
        proc = run_cli("check", LEGAL, "--baseline", str(tmp_path / "b.json"))
        assert proc.returncode == 2 and "b.json" in proc.stderr


@pytest.mark.parametrize("fmt", FORMATS)
def test_rules_command(fmt):
    proc = run_cli("rules", "--format", fmt)
    if fmt in ("sarif", "junit"):  # rule lists have no SARIF/JUnit form of their own
        assert proc.returncode == 2 and "not available" in proc.stderr
    else:
        assert proc.returncode == 0 and "GA101" in proc.stdout


def test_version_and_help():
    assert run_cli("--version").stdout.startswith("golf-audit ")
    for command in ("audit", "scan", "render"):
        proc = run_cli(command, "--help")
        assert proc.returncode == 0 and "--format" in proc.stdout


def test_output_file(tmp_path):
    out = tmp_path / "r.sarif"
    proc = run_cli("audit", VIOLATING, "--no-exec", "--format", "sarif", "--output", str(out))
    assert proc.stdout == "" and proc.returncode in (0, 1)
    check_output("sarif", out.read_text())


def test_relative_links_and_link_base_in_markdown():
    proc = run_cli("audit", VIOLATING, "--no-exec", "--format", "markdown", "--link-base", "https://example.org/blob/abc/")
    for line in proc.stdout.splitlines():
        if "](" in line:
            assert "](https://example.org/blob/abc/submissions/ngram_target_in_key/" in line


def _saved_report(tmp_path, name="r.json", extra_error=False):
    from tests.test_render_formats import full_report
    from reports.model import Finding

    r = full_report()
    if extra_error:
        r.add(Finding("NEW001", "multi-pass", "error", "a second scoring loop over val", path="train_gpt.py", line=400))
    p = tmp_path / name
    p.write_text(r.to_json())
    return p


@pytest.mark.parametrize("fmt", FORMATS)
def test_render_saved_report(tmp_path, fmt):
    saved = _saved_report(tmp_path)
    proc = run_cli("render", str(saved), "--format", fmt)
    assert proc.returncode == 1
    check_output(fmt, proc.stdout)
    if fmt == "json":
        assert proc.stdout == saved.read_text()


def test_baseline_gates_only_new_findings(tmp_path):
    saved = _saved_report(tmp_path)
    base = tmp_path / "baseline.json"
    proc = run_cli("render", str(saved), "--format", "json", "--write-baseline", str(base))
    assert proc.returncode == 0 and "wrote 2 accepted finding(s)" in proc.stderr
    doc = json.loads(base.read_text())
    assert [e["rule"] for e in doc["accepted"]] == ["CLM010", "TIK001"]
    assert run_cli("render", str(saved), "--baseline", str(base)).returncode == 0
    newer = _saved_report(tmp_path, "newer.json", extra_error=True)
    proc = run_cli("render", str(newer), "--baseline", str(base), "--format", "json")
    assert proc.returncode == 1
    active = [f["rule"] for f in json.loads(proc.stdout)["findings"] if f["severity"] == "error" and not f.get("suppressed")]
    assert active == ["NEW001"]


def test_baseline_round_trip_on_an_audit(tmp_path):
    base = tmp_path / "baseline.json"
    first = run_cli("audit", VIOLATING, "--no-exec", "--write-baseline", str(base))
    assert first.returncode == 0 and base.exists()
    again = run_cli("audit", VIOLATING, "--no-exec", "--baseline", str(base), "--format", "json")
    assert again.returncode == 0
    check_output("json", again.stdout)
