"""``golf-audit scan``: finds submission folders, audits them in parallel, survives crashes."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.cli_run import check_output, run_cli
from tests.conftest import ROOT, SUBMISSIONS

FORMATS = ["text", "json", "sarif", "markdown", "junit"]
EXAMPLES = sorted(p.name for p in SUBMISSIONS.iterdir() if p.is_dir() and p.name != "data")

# Makes the audit process of any folder named crash_me die the way a hard crash does (SIGABRT),
# and the one of hang_me stop answering; the scan must report both and go on.
SITECUSTOMIZE = """
import os, sys, time
if any(a.rstrip("/").endswith("crash_me") for a in sys.argv):
    os.abort()
if any(a.rstrip("/").endswith("hang_me") for a in sys.argv):
    time.sleep(60)
"""


def copy_submission(name: str, dest):
    dest.mkdir(parents=True)
    for f in (SUBMISSIONS / name).iterdir():
        if f.is_file() and f.stat().st_size < 1_000_000:
            shutil.copy(f, dest / f.name)
    return dest


@pytest.fixture()
def tree(tmp_path):
    """records/ with two submissions, one nested helper folder, notes that are no submission, a crash."""
    rec = tmp_path / "records"
    copy_submission("ngram_target_in_key", rec / "track_10min_16mb" / "2026-01-01_Cache")
    legal = copy_submission("legal_sliding", rec / "track_10min_16mb" / "2026-01-02_Legal")
    (legal / "helpers").mkdir()
    (legal / "helpers" / "kernels.py").write_text("X = 1\n")  # part of Legal, not a submission of its own
    (rec / "notes").mkdir()
    (rec / "notes" / "ideas.md").write_text("nothing to audit\n")
    (rec / "track_non_record_16mb" / "crash_me").mkdir(parents=True)
    (rec / "track_non_record_16mb" / "crash_me" / "submission.json").write_text('{"val_bpb": 1.2}\n')
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return rec, {"PYTHONPATH": str(site)}


def test_scan_examples_table():
    proc = run_cli("scan", "submissions")
    assert proc.returncode in (0, 1)
    check_output("text", proc.stdout, many=True)
    for name in EXAMPLES:
        assert name in proc.stdout
    assert "data" not in [line.split("│")[1].strip() for line in proc.stdout.splitlines() if line.startswith("│")]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("mode", ["check", "claims", "audit"])
def test_scan_every_mode_and_format(tree, mode, fmt):
    rec, env = tree
    extra = ["--no-exec"] if mode == "audit" else []
    proc = run_cli("scan", str(rec), "--mode", mode, "--format", fmt, *extra, env=env)
    assert proc.returncode == 2  # the crashed folder is the worst
    out = check_output(fmt, proc.stdout, many=True)
    if fmt == "json":
        assert [d["submission"] for d in out] == [
            f"{rec.as_posix()}/track_10min_16mb/2026-01-01_Cache",
            f"{rec.as_posix()}/track_10min_16mb/2026-01-02_Legal",
            f"{rec.as_posix()}/track_non_record_16mb/crash_me",
        ]
        crashed = out[2]
        assert crashed["verdict"] == "error" and "signal" in crashed["error"] and "\n" not in crashed["error"]
        assert all(d["verdict"] in ("pass", "fail") for d in out[:2])
    if fmt == "text":
        assert "track_10min_16mb/2026-01-01_Cache" in out and "crash_me" in out and "error" in out
        assert "notes" not in out and "helpers" not in out
    if fmt == "junit":
        assert len(out.findall("testsuite")) == 3


def test_exit_code_is_the_worst_folder(tree):
    rec, env = tree
    shutil.rmtree(rec / "track_non_record_16mb")
    proc = run_cli("scan", str(rec), "--format", "json", env=env)
    verdicts = [d["verdict"] for d in json.loads(proc.stdout)]
    assert proc.returncode == max({"pass": 0, "fail": 1, "error": 2}[v] for v in verdicts)


def test_each_folder_gets_the_same_report_as_its_own_audit(tree):
    rec, env = tree
    scan = json.loads(run_cli("scan", str(rec), "--mode", "claims", "--format", "json", env=env).stdout)
    folder = rec / "track_10min_16mb" / "2026-01-01_Cache"
    alone = json.loads(run_cli("claims", folder.as_posix(), "--format", "json").stdout)
    assert scan[0] == alone


def test_scan_output_does_not_depend_on_jobs(tree):
    rec, env = tree
    one = run_cli("scan", str(rec), "--format", "json", "--jobs", "1", env=env)
    three = run_cli("scan", str(rec), "--format", "json", "--jobs", "3", env=env)
    assert one.stdout == three.stdout and one.returncode == three.returncode


def test_a_hanging_folder_times_out_and_the_scan_goes_on(tree):
    rec, env = tree
    copy_submission("legal_sliding", rec / "hang_me")
    proc = run_cli("scan", str(rec), "--format", "json", "--timeout", "5", env=env, timeout=120)
    by_name = {d["submission"].rsplit("/", 1)[1]: d for d in json.loads(proc.stdout)}
    assert by_name["hang_me"]["verdict"] == "error" and "timed out after 5 s" in by_name["hang_me"]["error"]
    assert by_name["2026-01-02_Legal"]["verdict"] in ("pass", "fail")


def test_files_stand_for_their_folder(tree):
    """The pre-commit hook passes changed files; each means the submission folder that holds it."""
    rec, env = tree
    cache = rec / "track_10min_16mb" / "2026-01-01_Cache"
    legal = rec / "track_10min_16mb" / "2026-01-02_Legal"
    proc = run_cli("scan", str(cache / "train_gpt.py"), str(cache), str(legal / "helpers" / "kernels.py"),
                   "--format", "json", env=env)
    assert [d["submission"].rsplit("/", 1)[1] for d in json.loads(proc.stdout)] == ["2026-01-01_Cache", "2026-01-02_Legal"]


def test_nothing_to_scan_is_a_one_line_error(tmp_path):
    proc = run_cli("scan", str(tmp_path))
    assert proc.returncode == 2 and "no submission folder" in proc.stderr


def test_scan_relative_tree_from_another_directory(tree):
    rec, env = tree
    proc = run_cli("scan", "records", "--format", "json", env=env, cwd=rec.parent)
    assert [d["submission"] for d in json.loads(proc.stdout)][0] == "records/track_10min_16mb/2026-01-01_Cache"


def test_scan_baseline(tree, tmp_path):
    rec, env = tree
    shutil.rmtree(rec / "track_non_record_16mb")
    base = tmp_path / "baseline.json"
    first = run_cli("scan", str(rec), "--mode", "audit", "--no-exec", "--write-baseline", str(base), env=env)
    assert first.returncode == 0
    again = run_cli("scan", str(rec), "--mode", "audit", "--no-exec", "--baseline", str(base), "--format", "json", env=env)
    assert again.returncode == 0
    assert ROOT.exists()


def test_progress_bar_only_on_a_terminal(tree):
    """A scan step over a second shows a bar on a terminal stderr; stdout and piped stderr stay clean."""
    import os
    import pty
    import subprocess
    import sys
    import threading

    rec, env = tree
    shutil.rmtree(rec / "track_non_record_16mb")
    site = env["PYTHONPATH"]
    with open(os.path.join(site, "sitecustomize.py"), "a") as f:
        f.write("\nif any(a.rstrip('/').endswith('_Legal') for a in sys.argv):\n    time.sleep(2.5)\n")
    piped = run_cli("scan", str(rec), "--format", "json", env=env)
    assert piped.stderr == ""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "cli.py", "scan", str(rec), "--format", "json"], cwd=ROOT,
                            env={**os.environ, **env, "TERM": "xterm", "COLUMNS": "100"},
                            stdout=subprocess.PIPE, stderr=follower, text=True)
    os.close(follower)
    chunks: list[bytes] = []

    def drain():  # read while it runs: a full terminal buffer would block the bar
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(leader)
    err = b"".join(chunks).decode(errors="replace")
    assert "scan (check)" in err and "/2" in err
    assert out == piped.stdout  # the report never carries progress
