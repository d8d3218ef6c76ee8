import os

from harness.sandbox import Limits, run_sandboxed

T = "tests.sandbox_drivers:"


def test_result_round_trip_without_pickle(tmp_path):
    (tmp_path / "train_gpt.py").write_text("print('hi')\n")
    r = run_sandboxed(T + "echo", {"k": 2}, copy_dir=tmp_path)
    assert r.ok and r.value["k"] == 2 and r.value["array"].tolist() == [0.0, 2.0, 4.0, 6.0]
    assert r.value["cwd_has_sub"]


def test_socket_is_denied_and_reported():
    r = run_sandboxed(T + "open_socket", {})
    assert not r.ok and "socket.connect denied" in r.error
    assert [b["event"] for b in r.blocked] == ["socket.connect"]


def test_secret_reads_and_outside_writes_are_denied(tmp_path):
    r = run_sandboxed(T + "read_ssh", {"path": "/root/.ssh/id_rsa"})
    assert not r.ok and r.blocked[0]["event"] == "open"
    target = tmp_path / "evil.txt"
    r = run_sandboxed(T + "write_outside", {"path": str(target)})
    assert not r.ok and r.blocked[0]["event"] == "open-for-write" and not target.exists()


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "secret-value")
    r = run_sandboxed(T + "env", {})
    assert r.ok and "GITHUB_TOKEN" not in r.value and r.value["HOME"] != os.environ.get("HOME")


def test_wall_clock_timeout():
    r = run_sandboxed(T + "spin", {}, limits=Limits(wall_seconds=2))
    assert not r.ok and r.timed_out and "timed out" in r.error
