"""A sandboxed child that answers requests, so that decisions stay in golf-audit's own process.

``run_sandboxed`` (harness/sandbox.py) calls one driver and takes back one result: fine for work
whose result is an observation, but a verdict computed in the child is the submission's own word
(its code runs in that process and can write any result). A session keeps the child running
under the same sandbox and limits: golf-audit sends requests (score this stream it chose), the
child answers each with raw observations, and everything decided from them is decided here.

The wire: every message is framed (``GASB1 <length>\\n`` then JSON). Requests go to the child's
stdin, answers come back on its result pipe. Answer 0 describes what the driver built; answer k
carries the id of request k, so an answer out of turn (written by the submission) is refused. One
answer is at most ``Limits.result_bytes``; one request is waited for until the session's
wall-clock limit. Any breach ends the child and raises ``SessionLost``: the caller reports the
part as not done, never as a pass.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

from harness.sandbox import (
    ErrorKind, FRAME, Limits, SandboxResult, _exit_reason, _kill_group, _Tail, _Watch, decode, frame,
    prepared_launch, start_child,
)


class SessionLost(Exception):
    """The session cannot go on (the child died, timed out, overflowed or answered out of turn);
    ``cannot_run``: no sandbox could start at all; ``input_error``: golf-audit's own input error."""

    def __init__(self, message: str, *, cannot_run: bool = False, input_error: bool = False) -> None:
        super().__init__(message)
        self.cannot_run, self.input_error = cannot_run, input_error


class RemoteError(Exception):
    """The child's handler raised while answering one request (the session goes on)."""


_END = object()


class _Frames:
    """Reads framed answers from the result pipe into a queue of at most two; a frame that is not
    ours or is larger than ``cap`` ends the child (``problem`` says why)."""

    def __init__(self, fd: int, cap: int, on_breach) -> None:
        self.file = os.fdopen(fd, "rb")
        self.cap, self.on_breach = cap, on_breach
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.problem: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                body = self._one()
                if body is None:
                    break
                self.queue.put(body)
        finally:
            self.file.close()
            self.queue.put(_END)

    def _one(self) -> bytes | None:
        header = self.file.readline(32)
        if not header:
            return None
        m = FRAME.match(header)
        if m is None:
            return self._breach("the result channel held something that is not a golf-audit answer (tampered with?)")
        n = int(m.group(1))
        if n > self.cap:
            return self._breach(f"an answer larger than the {self.cap}-byte limit; child stopped")
        body = self.file.read(n)
        if len(body) < n:
            return self._breach(f"the child died while answering ({len(body)} of {n} bytes arrived)")
        return body

    def _breach(self, why: str) -> None:
        self.problem = why
        self.on_breach()
        return None


class SandboxSession:
    """``with SandboxSession(target, args, ...) as s: s.description; s.call({"op": ...})``.

    ``target`` ("module:function", our code) is called in the child with ``args`` and returns a
    handler: ``handler.describe()`` is answer 0, ``handler(request)`` answers each request. The
    other arguments are those of ``run_sandboxed``. ``result()`` after the block: what was in
    force, the guard events of the whole session, the output tails.
    """

    def __init__(self, target: str, args: dict, *, readable: list[Path] | None = None, limits: Limits = Limits(),
                 python: str | None = None, copy_dir: Path | None = None, env: dict[str, str] | None = None,
                 preload: tuple[str, ...] = ("torch",)) -> None:
        self.target, self.args, self.limits = target, args, limits
        self.options = dict(readable=readable, limits=limits, python=python, copy_dir=copy_dir, env=env,
                            preload=preload)
        self.blocked: list[dict] = []
        self.isolation: list[str] = []
        self.description: Any = None
        self.requests = 0
        self._context = None
        self._started = None
        self.proc = None
        self._lost: str | None = None

    # -- life -----------------------------------------------------------------------------------
    def __enter__(self) -> "SandboxSession":
        self._context = prepared_launch(self.target, self.args, session=True, **self.options)
        prepared = self._context.__enter__()
        if isinstance(prepared, SandboxResult):
            self._context.__exit__(None, None, None)
            raise SessionLost(prepared.error or "the sandbox could not start", cannot_run=True)
        launch, r, w = prepared
        started = start_child(launch, r, w, self.limits)
        if isinstance(started, SandboxResult):
            self._context.__exit__(None, None, None)
            raise SessionLost(started.error or "the sandbox could not start", cannot_run=True)
        self._started, self.isolation, self.proc = started, started.isolation, started.proc
        proc = started.proc
        self.deadline = time.monotonic() + self.limits.wall_seconds
        self.frames = _Frames(r, self.limits.result_bytes + 64, self._end)
        self.out = _Tail(os.dup(proc.stdout.fileno()), self.limits.output_bytes)
        self.err = _Tail(os.dup(proc.stderr.fileno()), self.limits.output_bytes)
        proc.stdout.close()
        proc.stderr.close()
        self.watch = _Watch(proc.pid, self.limits, started.count_tasks, self._end)
        try:
            self._send(launch.payload)
            self.description = self._answer(0)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        started, self._started = self._started, None
        if started is None:
            return
        try:
            try:
                self._send({"op": "end"}, wait=1.0)
                started.proc.wait(timeout=5)
            except Exception:
                pass
        finally:
            self._end()
            started.proc.wait()
            self.watch.stop.set()
            for t in (self.frames.thread, self.out.thread, self.err.thread, self.watch.thread):
                t.join(timeout=10)
            self.returncode = started.proc.returncode
            started.release()
            self._context.__exit__(None, None, None)

    def _end(self) -> None:
        """End the child's whole tree (bwrap's end ends its pid namespace)."""
        if self.proc is not None:
            _kill_group(self.proc)

    # -- requests -------------------------------------------------------------------------------
    def call(self, request: dict) -> Any:
        """Send one request; its answer's value (decoded: arrays come back as numpy arrays).
        RemoteError when the child's handler raised; SessionLost when the session cannot go on."""
        if self._lost is not None:
            raise SessionLost(self._lost)
        self.requests += 1
        self._send({**request, "id": self.requests})
        return self._answer(self.requests)

    def _send(self, message: dict, wait: float | None = None) -> None:
        data = frame(json.dumps(message).encode())
        done = threading.Event()
        failed: list[BaseException] = []
        stdin = self.proc.stdin

        def write() -> None:
            try:
                stdin.write(data)
                stdin.flush()
            except BaseException as e:  # the child is gone or stopped reading
                failed.append(e)
            done.set()

        threading.Thread(target=write, daemon=True).start()
        if not done.wait(self._remaining() if wait is None else wait) or failed:
            self._lose(self._why_gone("the child stopped reading its requests"))

    def _answer(self, expected: int) -> Any:
        try:
            body = self.frames.queue.get(timeout=self._remaining())
        except queue.Empty:
            self._lose(f"timed out after {self.limits.wall_seconds:g} s wall clock")
        if body is _END:
            self._lose(self._why_gone("the child ended before answering"))
        try:
            msg = json.loads(body)
        except (ValueError, RecursionError):
            self._lose("the child's answer is not valid JSON")
        if not isinstance(msg, dict) or msg.get("id") != expected:
            self._lose("the child answered out of turn (tampered with?)")
        self.blocked += [b for b in msg.get("blocked") or [] if isinstance(b, dict)]
        if not msg.get("ok"):
            error = str(msg.get("error") or "the child's handler failed").splitlines()[0][:300]
            if expected == 0:
                self._lose(error, cannot_run=msg.get("error_kind") == ErrorKind.SETUP,
                           input_error=msg.get("error_kind") == ErrorKind.INPUT)
            raise RemoteError(error)
        try:
            return decode(msg.get("value"))
        except ValueError as e:
            self._lose(f"the child's answer could not be decoded: {e}")

    def _remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def _why_gone(self, default: str) -> str:
        if self.watch.reason is not None:
            return self.watch.reason
        if self.frames.problem is not None:
            return self.frames.problem
        try:
            rc = self.proc.wait(timeout=2)
        except Exception:
            return default
        self.err.thread.join(timeout=2)
        return _exit_reason(rc, self.err.text(), self.limits)

    def _lose(self, why: str, **kind) -> None:
        self._lost = why
        self._end()
        raise SessionLost(why, **kind)

    def result(self) -> SandboxResult:
        """After the session: a SandboxResult (ok unless it was lost) with the guard events,
        the isolation in force and the output tails, for findings_from_blocked and the report."""
        res = SandboxResult(ok=self._lost is None, error=self._lost, blocked=list(self.blocked),
                            isolation=list(self.isolation), returncode=getattr(self, "returncode", None))
        if hasattr(self, "out"):
            res.stdout_tail, res.stderr_tail = self.out.text(), self.err.text()
            res.stdout_bytes, res.stderr_bytes = self.out.total, self.err.total
        return res
