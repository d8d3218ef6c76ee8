"""Run untrusted submission code in a separate, limited process; get plain data back.

The parent starts ``harness/sandbox_child.py`` with a scrubbed environment in a private temporary
directory holding a copy of the submission. What is in force (``SandboxResult.isolation`` lists it):

- ``rlimits``: CPU time, address space, file size, no core dumps; ``nproc`` (processes of the user)
  where the kernel enforces it (not for root);
- ``netns``: a fresh network namespace (``unshare --net``; no interface but a down loopback), when
  the ``unshare`` tool works here (root, or unprivileged user namespaces); otherwise only the hooks
  below stop network access;
- ``audit-hooks``: Python audit hooks in the child deny sockets, subprocesses, signals to other
  processes, reads of credentials, writes outside the work dir, and ctypes loading of libraries
  from outside the submission and the Python installation; every denial is recorded with the
  submission file and line in ``SandboxResult.blocked``;
- a wall-clock timeout that kills the child's whole process group; stdout/stderr are drained
  continuously and only their tails kept (``Limits.output_bytes``), the result message is capped
  (``Limits.result_bytes``);
- the result comes back as one framed JSON message over a dedicated pipe; arrays travel as
  ``.npy`` bytes read with ``allow_pickle=False``. Nothing the child sends is unpickled.

This is defence in depth, not a container: native code (a C extension, ctypes on an allowed
library) can get past the audit hooks, the file system stays readable, and code running in the
child can forge what its own driver returns. Run CI audits of untrusted pull requests on an
isolated, disposable runner as well. ``findings_from_blocked`` turns denials into findings.
"""

from __future__ import annotations

import base64
import functools
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from harness.submission import Submission
    from reports.model import Finding

ROOT = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("sandbox_child.py")
# Variables a child may see; everything else (tokens, credentials, CI secrets) is dropped.
ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")
FRAME = re.compile(rb"^GASB1 (\d{1,12})\n")


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 1800
    memory_bytes: int = 16 << 30  # address space; torch maps a lot of virtual memory
    file_size_bytes: int = 1 << 30
    wall_seconds: float = 900.0
    threads: int = 2
    processes: int = 64  # extra tasks (threads included) the user may start; not enforced for root
    output_bytes: int = 64 << 10  # tail of stdout and of stderr kept, each; the rest is discarded
    result_bytes: int = 1 << 30  # largest result message accepted
    network_namespace: bool = True  # use unshare --net when it works here


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


def _limit(limits: Limits, nproc: int | None):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_bytes, limits.file_size_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

    return apply


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
    lists extra files/folders (val shards, tokenizer, artifact) the child may read even where
    they sit under a path the guards treat as secret. ``preload``: modules of ours imported
    before the guards go up (torch loads its libraries through ctypes at import).
    """
    work = Path(tempfile.mkdtemp(prefix="golf-audit-sandbox-"))
    try:
        sub_dir = work / "submission"
        if copy_dir is not None:
            try:
                shutil.copytree(copy_dir, sub_dir, symlinks=True, ignore=_not_copied)
            except (OSError, shutil.Error) as e:
                return SandboxResult(ok=False, error=f"cannot copy the submission into the sandbox: {_first_line(e)}")
        else:
            sub_dir.mkdir()
        child_env = {k: os.environ[k] for k in ENV_KEEP if k in os.environ}
        child_env.update(
            HOME=str(work), TMPDIR=str(work), PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0",
            OMP_NUM_THREADS=str(limits.threads), MKL_NUM_THREADS=str(limits.threads),
        )
        child_env.update(env or {})
        payload = {
            "target": target,
            "args": _substitute(args, str(sub_dir)),
            "root": str(ROOT),
            "workdir": str(work),
            "sub_dir": str(sub_dir),
            "readable": [str(Path(p).resolve()) for p in (readable or [])],
            "threads": limits.threads,
            "preload": list(preload),
        }
        isolation = ["rlimits", "audit-hooks"]
        prefix = network_namespace_prefix() if limits.network_namespace else None
        if prefix is not None:
            isolation.append("netns")
        nproc = None
        if os.geteuid() != 0:  # root is exempt from RLIMIT_NPROC, so only set it where it binds
            nproc = _user_tasks() + limits.processes
            isolation.append("nproc")
        exe = python or sys.executable
        r, w = os.pipe()
        try:
            proc = subprocess.Popen(
                [*(prefix or ()), exe, "-s", "-B", str(CHILD), str(w)],
                cwd=sub_dir,
                env=child_env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(w,),  # close_fds (the default) closes every other inherited descriptor
                start_new_session=True,
                preexec_fn=_limit(limits, nproc),
            )
        except OSError as e:
            os.close(r)
            os.close(w)
            return SandboxResult(ok=False, error=f"cannot start {exe}: {e.strerror}", isolation=isolation)
        os.close(w)
        result = _Capped(r, limits.result_bytes + 64, lambda: _kill_group(proc))
        out = _Tail(os.dup(proc.stdout.fileno()), limits.output_bytes)
        err = _Tail(os.dup(proc.stderr.fileno()), limits.output_bytes)
        proc.stdout.close()
        proc.stderr.close()
        try:
            proc.stdin.write(json.dumps(payload).encode())
            proc.stdin.close()
        except OSError:  # the child died before reading its payload; its exit status says why
            pass
        timed_out = False
        try:
            proc.wait(timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(proc)  # also whatever the child left running in its session
        proc.wait()
        for t in (result.thread, out.thread, err.thread):
            t.join(timeout=10)
        res = _result(proc.returncode, result, timed_out, limits)
        res.stdout_tail, res.stderr_tail = out.text(), err.text()
        res.stdout_bytes, res.stderr_bytes = out.total, err.total
        res.isolation = isolation
        if res.error is None and not res.ok:
            res.error = _exit_reason(proc.returncode, res.stderr_tail, limits)
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _not_copied(folder: str, names: list[str]) -> set[str]:
    """Names copytree skips: bytecode caches, and FIFOs, sockets and devices (copying a FIFO
    blocks forever). Symlinks are copied as symlinks; what they lead to is the guards' business."""
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
    except ValueError:
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
    if timed_out:
        res.error = f"timed out after {limits.wall_seconds:g} s wall clock"
    elif problem is not None:
        res.error = f"{problem}; {_exit_reason(rc, '', limits)}"
    return res


def _exit_reason(rc: int | None, stderr_tail: str, limits: Limits) -> str:
    """One line saying how the child ended."""
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
