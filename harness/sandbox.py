"""Run untrusted submission code in a separate, limited process; get plain data back.

The parent starts ``harness/sandbox_child.py`` with a scrubbed environment in a private temporary
directory, under CPU-time, memory, file-size and wall-clock limits. The child installs guards
(Python audit hooks: no sockets, no subprocesses, no reads of secrets, no writes outside its
directory), then calls one of *our* driver functions (``module:function``), which may import the
submission. The result comes back as JSON over a dedicated pipe; arrays travel as ``.npy`` bytes
read with ``allow_pickle=False``. Nothing the child sends is unpickled.

This is defence in depth, not a container: code that uses ctypes or a C extension can get past
audit hooks. Run CI audits of untrusted pull requests on an isolated runner as well.
"""

from __future__ import annotations

import base64
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("sandbox_child.py")
RESULT_FD = 3
# Variables a child may see; everything else (tokens, credentials, CI secrets) is dropped.
ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 1800
    memory_bytes: int = 16 << 30  # address space; torch maps a lot of virtual memory
    file_size_bytes: int = 1 << 30
    wall_seconds: float = 900.0
    threads: int = 2


@dataclass
class SandboxResult:
    ok: bool
    value: Any = None
    error: str | None = None  # one line
    timed_out: bool = False
    returncode: int | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    blocked: list[dict] = field(default_factory=list)  # guard events: {"event", "detail"}


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
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return np.load(io.BytesIO(base64.b64decode(obj["__ndarray__"])), allow_pickle=False)
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def _limit(limits: Limits):
    def apply() -> None:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_bytes, limits.file_size_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_sandboxed(
    target: str,
    args: dict,
    *,
    readable: list[Path] | None = None,
    limits: Limits = Limits(),
    python: str | None = None,
    copy_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> SandboxResult:
    """Call ``target`` ("module:function", our code) with ``args`` in a sandboxed child.

    ``copy_dir`` (the submission folder) is copied into the child's private directory as
    ``submission/``; ``args`` may refer to it through the ``"$SUBMISSION"`` prefix. ``readable``
    lists extra files/folders (val shards, tokenizer, artifact) the child may read.
    """
    work = Path(tempfile.mkdtemp(prefix="golf-audit-sandbox-"))
    try:
        sub_dir = work / "submission"
        if copy_dir is not None:
            shutil.copytree(copy_dir, sub_dir, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
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
            "readable": [str(Path(p).resolve()) for p in (readable or [])],
            "threads": limits.threads,
        }
        r, w = os.pipe()
        try:
            proc = subprocess.Popen(
                [python or sys.executable, "-s", "-B", str(CHILD), str(w)],
                cwd=sub_dir,
                env=child_env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(w,),
                preexec_fn=_limit(limits),
            )
        except OSError as e:
            os.close(r)
            os.close(w)
            return SandboxResult(ok=False, error=f"cannot start {python or sys.executable}: {e.strerror}")
        os.close(w)
        result_bytes = bytearray()
        timed_out = False
        try:
            import threading

            def drain() -> None:
                with os.fdopen(r, "rb") as f:
                    result_bytes.extend(f.read())

            t = threading.Thread(target=drain, daemon=True)
            t.start()
            out, err = proc.communicate(json.dumps(payload).encode(), timeout=limits.wall_seconds)
            t.join(timeout=30)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
            out, err = proc.communicate()
        return _result(proc.returncode, bytes(result_bytes), out, err, timed_out, limits)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _substitute(obj: Any, sub_dir: str) -> Any:
    if isinstance(obj, str) and obj.startswith("$SUBMISSION"):
        return sub_dir + obj[len("$SUBMISSION"):]
    if isinstance(obj, dict):
        return {k: _substitute(v, sub_dir) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_substitute(v, sub_dir) for v in obj]
    return obj


def _tail(b: bytes, n: int = 4000) -> str:
    return b[-n:].decode("utf-8", "replace")


def _result(rc: int, raw: bytes, out: bytes, err: bytes, timed_out: bool, limits: Limits) -> SandboxResult:
    res = SandboxResult(ok=False, timed_out=timed_out, returncode=rc, stdout_tail=_tail(out), stderr_tail=_tail(err))
    msg = None
    if raw:
        try:
            msg = json.loads(raw)
        except ValueError:
            msg = None
    if msg is not None:
        res.blocked = msg.get("blocked", [])
        if msg.get("ok"):
            res.ok, res.value = True, decode(msg.get("value"))
            return res
        res.error = msg.get("error") or "submission code failed"
        return res
    if timed_out:
        res.error = f"timed out after {limits.wall_seconds:.0f} s wall clock"
    elif rc is not None and rc < 0:
        sig = signal.Signals(-rc).name
        res.error = {"SIGXCPU": f"CPU-time limit of {limits.cpu_seconds} s exceeded",
                     "SIGKILL": "killed (memory or time limit)"}.get(sig, f"killed by {sig}")
    else:
        last = [line for line in res.stderr_tail.splitlines() if line.strip()]
        res.error = f"child exited with code {rc}" + (f": {last[-1][:200]}" if last else "")
    return res
