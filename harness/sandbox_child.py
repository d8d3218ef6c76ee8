"""Entry point of a sandboxed child process (see harness/sandbox.py). Runs as a script.

Reads the payload (one framed JSON message) on stdin, installs the guards, calls the driver, writes
one framed JSON message to the result pipe; in a session (harness/sandbox_session.py) the driver
builds a handler that answers each request read from stdin with one framed message. Every denied action is recorded (kind, event, detail, and the
submission file and line that asked for it) so the parent can report it: a socket opened by the
submission becomes an ``external-access`` finding.

The guards are Python audit hooks: they see what Python code does through the standard library
(open, os.*, socket, subprocess, ctypes loading) and cannot see what native code does on its own.
They report what the submission tried; the boundary is the kernel's sandbox the parent starts
this script in (harness/sandbox.py).
"""

import json
import os
import re
import sys

# Substrings of resolved paths that hold credentials on developer machines and CI runners.
SECRET_PARTS = (
    "/.ssh/", "/.aws/", "/.azure/", "/.config/gh/", "/.config/gcloud/", "/.docker/", "/.kube/",
    "/.gnupg/", "/.netrc", "/.git-credentials", "/.pypirc", "/.npmrc", "/.git/config",
    "/etc/shadow", "/etc/gshadow", "/etc/ssh/", "/run/secrets/", "/var/run/secrets/",
)
# Another process's environment or memory (the parent golf-audit holds the unscrubbed env).
PROC_SECRET = re.compile(r"^/proc/(\d+)/(?:task/\d+/)?(environ|mem)$")
# event -> kind; these are always denied.
DENIED_EVENTS = {
    "socket.connect": "network",
    "socket.bind": "network",
    "socket.sendto": "network",
    "socket.sendmsg": "network",
    "socket.getaddrinfo": "network",
    "socket.gethostbyname": "network",
    "socket.gethostbyaddr": "network",
    "socket.getnameinfo": "network",
    "subprocess.Popen": "process",
    "os.system": "process",
    "os.exec": "process",
    "os.posix_spawn": "process",
    "os.spawn": "process",
    "os.fork": "process",
    "os.forkpty": "process",
    "pty.spawn": "process",
    "os.startfile": "process",
}
# Path-taking events that modify the file system: allowed inside the work dir only.
WRITE_EVENTS = {
    "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.symlink": (1,),
    "os.link": (1,), "os.truncate": (0,), "os.chmod": (0,), "os.chown": (0,), "os.utime": (0,),
    "shutil.rmtree": (0,), "os.chflags": (0,), "os.setxattr": (0,), "os.removexattr": (0,),
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
WRITABLE_DEVICES = ("/dev/null", "/dev/stdout", "/dev/stderr")
# Library-loading symbols that would let native code act outside the guards.
DENIED_SYMBOLS = {
    "socket", "connect", "bind", "sendto", "sendmsg", "execve", "execv", "execvp", "execl", "execlp",
    "system", "popen", "fork", "vfork", "clone", "clone3", "syscall", "posix_spawn", "posix_spawnp",
    "dlopen", "ptrace", "kill", "unshare", "setns", "mount",
}


class Guards:
    """The audit hook and the record of what it denied."""

    def __init__(self, workdir: str, sub_dir: str, readable: list, native_ok: list) -> None:
        self.workdir = os.path.realpath(workdir)
        self.sub_dir = os.path.realpath(sub_dir)
        self.readable = [os.path.realpath(r) for r in readable]
        self.native_ok = [os.path.realpath(r) for r in native_ok]
        self.blocked: list = []
        self.pid = os.getpid()

    def inside(self, p: str, roots) -> bool:
        return any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)

    def where(self) -> tuple:
        """The innermost submission frame (relative file, line) that led to this event."""
        f = sys._getframe(1)
        while f is not None:
            fn = f.f_code.co_filename
            if fn.startswith(self.sub_dir + "/"):
                return fn[len(self.sub_dir) + 1:], f.f_lineno
            f = f.f_back
        return None, None

    def deny(self, kind: str, event: str, detail: str) -> None:
        path, line = self.where()
        # Reports must not depend on where the temporary directory was: name it as the child sees it.
        detail = detail.replace(self.sub_dir, "<submission>").replace(self.workdir, "~")
        self.blocked.append({"kind": kind, "event": event, "detail": detail[:300], "path": path, "line": line})
        raise PermissionError(f"golf-audit sandbox: {event} denied ({detail[:120]})")

    def hook(self, event: str, args) -> None:
        kind = DENIED_EVENTS.get(event)
        if kind is not None:
            self.deny(kind, event, _describe(args))
        elif event == "socket.__new__":
            import socket

            if len(args) > 1 and args[1] not in (socket.AF_UNIX, -1):
                try:
                    family = socket.AddressFamily(args[1]).name
                except ValueError:
                    family = f"family {args[1]}"
                self.deny("network", "socket", f"new {family} socket")
        elif event == "open" and args:
            self.on_open(args)
        elif event in ("os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes)):
            p = os.path.realpath(os.fsdecode(args[0]))
            if self.is_secret(p):
                self.deny("secret", event, p)
        elif event in WRITE_EVENTS:
            for i in WRITE_EVENTS[event]:
                if i < len(args) and isinstance(args[i], (str, bytes, os.PathLike)):
                    p = os.path.realpath(os.fsdecode(args[i]))
                    if not self.inside(p, [self.workdir]):
                        self.deny("write", event, p)
        elif event == "ctypes.dlopen":
            self.on_dlopen(args[0] if args else None)
        elif event == "ctypes.dlsym" and len(args) > 1 and isinstance(args[1], str):
            if args[1] in DENIED_SYMBOLS:
                self.deny("native", event, args[1])
        elif event in ("os.kill", "os.killpg") and args and args[0] not in (0, self.pid):
            self.deny("process", event, _describe(args))

    def is_secret(self, p: str) -> bool:
        # The work dir is the child's HOME, so "~/.ssh" lands there: still an attempt worth reporting.
        if self.inside(p, [self.sub_dir]) or self.inside(p, self.readable):
            return False
        if any(part in p + "/" for part in SECRET_PARTS):  # the "/" matches folders named alone
            return True
        m = PROC_SECRET.match(p)
        return bool(m and int(m.group(1)) != self.pid)

    def on_open(self, args) -> None:
        path = args[0]
        if not isinstance(path, (str, bytes, os.PathLike)):
            return  # an fd: already open
        mode = args[1] if len(args) > 1 else None
        flags = args[2] if len(args) > 2 else 0
        p = os.path.realpath(os.fsdecode(path))
        if self.is_secret(p):
            self.deny("secret", "open", p)
        writing = (isinstance(flags, int) and flags & WRITE_FLAGS) or (isinstance(mode, str) and any(c in mode for c in "wax+"))
        if writing and not (self.inside(p, [self.workdir]) or p in WRITABLE_DEVICES):
            self.deny("write", "open-for-write", p)

    def on_dlopen(self, name) -> None:
        # The submission's own compiled helpers (inside the work dir) and the libraries of the
        # interpreter's installation load; libc or the main program (None) would give native
        # access to syscalls the audit hooks never see.
        if name is None:
            self.deny("native", "ctypes.dlopen", "the main program (None)")
        p = os.fsdecode(name)
        if "/" not in p:
            self.deny("native", "ctypes.dlopen", p)
        if not self.inside(os.path.realpath(p), [self.workdir, *self.native_ok]):
            self.deny("native", "ctypes.dlopen", p)


def _describe(args) -> str:
    try:
        return repr(args[:2]) if isinstance(args, tuple) else repr(args)
    except Exception:
        return "?"


def read_frame(f, cap: int = 64 << 20):
    """One framed JSON message from the binary stream ``f`` (the payload, a request), None at its end."""
    m = re.match(rb"^GASB1 (\d{1,12})\n$", f.readline(32))
    if m is None or int(m.group(1)) > cap:
        return None
    body = f.read(int(m.group(1)))
    return json.loads(body) if len(body) == int(m.group(1)) else None


def copy_in(payload: dict) -> None:
    """Before any submission code: copy the submission into the private tmpfs and go there."""
    from harness.sandbox import copy_submission

    if payload.get("src_dir"):
        copy_submission(payload["src_dir"], payload["sub_dir"], int(payload["copy_bytes"]))
    os.makedirs(payload["sub_dir"], exist_ok=True)
    os.chdir(payload["sub_dir"])


def setup(payload: dict, world) -> None:
    """In each rank, before any submission code: import what we preload, start CUDA when asked
    (its device and memory cap), join the process group of a world of several ranks. Raises on failure."""
    import importlib

    from harness import ranks

    for name in payload.get("preload", []):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if "torch" in sys.modules:  # the ranks share the threads the sandbox allows
        sys.modules["torch"].set_num_threads(max(1, int(payload.get("threads", 2)) // world.size))
    if payload.get("device") == "cuda":
        start_cuda(float(payload.get("gpu_memory_fraction", 0.9)), world.rank, world.size)
    ranks.init_process_group(world, payload.get("device", "cpu"), float(payload.get("wall_seconds", 900)))


def start_cuda(fraction: float, rank: int = 0, world_size: int = 1) -> None:
    """Initialise CUDA on this rank's device and cap this process's memory on it at its share of
    ``fraction`` (ranks beyond the number of GPUs share them)."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("CUDA is not available in the sandbox (no device, driver or CUDA build of torch)")
    n = torch.cuda.device_count()
    device = rank % n
    sharing = -(-world_size // n) if world_size > n else 1
    torch.cuda.set_device(device)
    torch.cuda.set_per_process_memory_fraction(fraction / sharing, device)
    torch.zeros(1, device="cuda")


def one_line(e: BaseException, guards: "Guards | None" = None, with_type: bool = True) -> str:
    text = str(e).splitlines()[0][:300] if str(e) else ""
    if guards is not None:  # name the private directory as the child sees it: reports must not carry temp paths
        text = text.replace(guards.sub_dir, "<submission>").replace(guards.workdir, "~")
    return f"{type(e).__name__}: {text}".rstrip(": ") if with_type or not text else text


def main() -> None:
    fd = int(sys.argv[1])
    payload = read_frame(sys.stdin.buffer)
    sys.path.insert(0, payload["root"])
    import importlib

    from harness import ranks  # our code, imported before any submission code
    from harness.sandbox import ErrorKind, encode

    world = None
    try:
        copy_in(payload)
        world = ranks.start(int(payload.get("ranks", 1)), fd)  # torchrun's N processes, when asked
        setup(payload, world)
        module, func = payload["target"].split(":")
        driver = getattr(importlib.import_module(module), func)
    except BaseException as e:
        stage = "CUDA did not start" if payload.get("device") == "cuda" and "torch" in sys.modules else "sandbox setup failed"
        finish(fd, world, {"ok": False, "error": f"{stage}: {one_line(e)}", "error_kind": ErrorKind.SETUP, "blocked": []})
        return
    native_ok = sorted({sys.prefix, sys.base_prefix, sys.exec_prefix, *[p for p in sys.path if "site-packages" in p]})
    guards = Guards(payload["workdir"], payload["sub_dir"], payload["readable"], native_ok)
    sys.addaudithook(guards.hook)
    if payload.get("session"):
        serve(fd, driver, payload["args"], guards)
        return
    try:
        value = driver(payload["args"])
        msg = {"ok": True, "value": encode(value), "blocked": guards.blocked}
    except BaseException as e:  # report, do not crash: the parent turns this into one line
        msg = {**failure(e, guards), "blocked": guards.blocked}
    finish(fd, world, msg)


def failure(e: BaseException, guards: "Guards") -> dict:
    """The message for a driver that raised: golf-audit's own input errors (harness.AuditError and
    its subclasses) say what was wrong with the input in their own words; anything else is named
    by its class."""
    from harness import AuditError
    from harness.sandbox import ErrorKind

    ours = isinstance(e, AuditError)
    msg = {"ok": False, "error": one_line(e, guards, with_type=not ours)}
    if ours:
        msg["error_kind"] = ErrorKind.INPUT
    return msg


def serve(fd: int, driver, args: dict, guards: "Guards") -> None:
    """A session (harness/sandbox_session.py): ``driver(args)`` builds a handler; its description
    is message 0, then each request read from stdin gets one answer carrying the request's id, with
    the guard events recorded since the last answer. Ends at the end of stdin or an ``end`` request."""
    from harness.sandbox import encode, frame

    sent = 0

    def reply(msg: dict) -> None:
        nonlocal sent
        msg["blocked"], sent = guards.blocked[sent:], len(guards.blocked)
        try:
            data = json.dumps(msg, allow_nan=True).encode()
        except (TypeError, ValueError) as e:
            data = json.dumps({"id": msg.get("id"), "ok": False, "error": f"answer is not JSON-serializable: {e}",
                               "blocked": msg["blocked"]}).encode()
        write_all(fd, frame(data))

    try:
        handler = driver(args)
        reply({"id": 0, "ok": True, "value": encode(handler.describe())})
    except BaseException as e:
        reply({"id": 0, **failure(e, guards)})
        return
    while True:
        request = read_frame(sys.stdin.buffer)
        if request is None or request.get("op") == "end":
            return
        try:
            reply({"id": request.get("id"), "ok": True, "value": encode(handler(request))})
        except BaseException as e:
            reply({"id": request.get("id"), **failure(e, guards)})


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def finish(fd: int, world, msg: dict) -> None:
    """Send the result: rank 0 (or the only process) to the parent, for the whole world; other
    ranks to rank 0 (harness/ranks.py), which ends them."""
    from harness import ranks

    if world is not None and world.rank > 0:
        ranks.report(world, msg)
    send(fd, msg if world is None else ranks.gather(world, msg))


def send(fd: int, msg: dict) -> None:
    try:
        data = json.dumps(msg, allow_nan=True).encode()
    except (TypeError, ValueError) as e:
        data = json.dumps({"ok": False, "error": f"driver result is not JSON-serializable: {e}",
                           "blocked": msg.get("blocked", [])}).encode()
    from harness.sandbox import frame

    with os.fdopen(fd, "wb") as f:
        f.write(frame(data))


if __name__ == "__main__":
    main()
