"""Entry point of a sandboxed child process (see harness/sandbox.py). Runs as a script.

Reads the payload (JSON) on stdin, installs the guards, calls the driver, writes one JSON
message to the result pipe. Guard events are recorded so the parent can report them (for
example a socket opened by the submission becomes an ``external-access`` finding).
"""

import json
import os
import sys

SECRET_PARTS = ("/.ssh", "/.aws", "/.config/gh", "/.netrc", "/.docker", "/.kube", "/.gnupg", "/etc/shadow")
BLOCKED_EVENTS = {
    "socket.connect": "network",
    "socket.bind": "network",
    "socket.getaddrinfo": "network",
    "socket.gethostbyname": "network",
    "subprocess.Popen": "process",
    "os.system": "process",
    "os.exec": "process",
    "os.posix_spawn": "process",
    "os.fork": "process",
    "pty.spawn": "process",
}


def install_guards(workdir: str, readable: list, blocked: list) -> None:
    workdir = os.path.realpath(workdir)
    readable = [os.path.realpath(r) for r in readable]

    def deny(event: str, detail: str) -> None:
        blocked.append({"event": event, "detail": detail[:300]})
        raise PermissionError(f"golf-audit sandbox: {event} denied ({detail[:120]})")

    def hook(event: str, args) -> None:
        kind = BLOCKED_EVENTS.get(event)
        if kind is not None:
            deny(event, repr(args[:2]) if isinstance(args, tuple) else repr(args))
        if event == "open" and args:
            path, mode = args[0], args[1] if len(args) > 1 else "r"
            if not isinstance(path, (str, bytes)):
                return
            p = os.path.realpath(os.fsdecode(path))
            if any(part in p for part in SECRET_PARTS) and not any(p.startswith(r) for r in readable):
                deny("open", p)
            writing = isinstance(mode, str) and any(c in mode for c in "wax+")
            if writing and not (p.startswith(workdir) or p.startswith("/dev/")):
                deny("open-for-write", p)

    sys.addaudithook(hook)


def main() -> None:
    fd = int(sys.argv[1])
    payload = json.loads(sys.stdin.read())
    sys.path.insert(0, payload["root"])
    from harness.sandbox import encode  # our code, imported before any submission code

    blocked: list = []
    try:
        import torch

        torch.set_num_threads(int(payload.get("threads", 2)))
    except ImportError:
        pass
    module, func = payload["target"].split(":")
    import importlib

    driver = getattr(importlib.import_module(module), func)
    install_guards(payload["workdir"], payload["readable"], blocked)
    try:
        value = driver(payload["args"])
        msg = {"ok": True, "value": encode(value), "blocked": blocked}
    except BaseException as e:  # report, do not crash: the parent turns this into one line
        text = str(e).splitlines()[0][:300] if str(e) else ""
        msg = {"ok": False, "error": f"{type(e).__name__}: {text}", "blocked": blocked}
    data = json.dumps(msg, allow_nan=True).encode()
    with os.fdopen(fd, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
