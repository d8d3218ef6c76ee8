"""Driver functions the sandbox tests run in the child (stand-ins for hostile submission code)."""

import os
import socket
import sys

import numpy as np


def echo(args):
    return {"array": np.arange(4, dtype=np.float64) * args["k"], "k": args["k"], "cwd_has_sub": os.getcwd().endswith("submission")}


def import_entry(args):
    """Import the submission's entry file the way probes and reproduction do."""
    from harness.loader import import_submission

    mod = import_submission(args["entry"], launch_env=args.get("launch_env"))
    return {"result": getattr(mod, "RESULT", None)}


def open_socket(args):
    s = socket.socket()
    s.connect(("127.0.0.1", 9))
    return {}


def read_ssh(args):
    with open(os.path.expanduser(args["path"])) as f:
        return f.read()


def write_outside(args):
    with open(args["path"], "w") as f:
        f.write("x")
    return {}


def os_level_write(args):
    fd = os.open(args["path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, b"x")
    os.close(fd)
    return {}


def attempts(args):
    """Try each hostile action in turn, catching the denials; report which ones raised."""
    import ctypes

    tries = {
        "remove": lambda: os.remove(args["victim"]),
        "rename": lambda: os.rename(args["victim"], args["victim"] + ".moved"),
        "parent_environ": lambda: open(f"/proc/{os.getppid()}/environ", "rb").read(),
        "listdir_ssh": lambda: os.listdir("/root/.ssh"),
        "libc": lambda: ctypes.CDLL("libc.so.6"),
        "main_program": lambda: ctypes.CDLL(None),
        "kill_parent": lambda: os.kill(os.getppid(), 0),
        "subprocess": lambda: __import__("subprocess").run(["true"]),
        "udp": lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
        "dns": lambda: socket.getaddrinfo("example.com", 443),
    }
    denied = {}
    for name, fn in tries.items():
        try:
            fn()
            denied[name] = False
        except PermissionError:
            denied[name] = True
        except OSError:
            denied[name] = False
    return denied


def net_interfaces(args):
    # /proc/self/net follows the process's network namespace (/sys/class/net follows the mount's).
    with open("/proc/self/net/dev") as f:
        return sorted(line.split(":")[0].strip() for line in f.readlines()[2:])


def flood_stdout(args):
    block = b"y" * (1 << 20)
    for _ in range(args["mib"]):
        os.write(1, block)
    return {"done": True}


def die_mid_write(args):
    os.write(int(sys.argv[1]), b'GASB1 100\n{"ok"')
    os._exit(3)


def forge_result(args):
    os.write(int(sys.argv[1]), b'GASB1 11\n{"ok":true}')
    return {"real": 1}


def exit_hard(args):
    os._exit(7)


def big_result(args):
    return np.zeros(args["n"], dtype=np.float64)


def spin(args):
    while True:
        pass


def allocate(args):
    return len(bytearray(args["bytes"]))


def write_big_file(args):
    with open("big.bin", "wb") as f:
        f.write(b"\0" * args["bytes"])
    return {}


def env(args):
    return dict(os.environ)


def import_torch(args):
    import torch  # under the guards: torch loads its own libraries through ctypes

    return float(torch.ones(3).sum())


def world(args):
    """One all-reduce across the ranks; rank ``args["fail_rank"]`` raises first, if given."""
    import torch
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    if rank == args.get("fail_rank"):
        raise ValueError(f"rank {rank} fails on purpose")
    if rank == args.get("die_rank"):
        os._exit(3)
    t = torch.tensor([float(rank + 1)], dtype=torch.float64)
    dist.all_reduce(t)
    return {"rank": rank, "world_size": dist.get_world_size(), "backend": dist.get_backend(), "sum": float(t),
            "env": {k: os.environ[k] for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR")}}


class Echo:
    """A session handler: answers ``echo`` with its value times k; ``raise`` raises; ``socket``
    tries the network; ``forge`` writes a well-formed answer of its own on the result pipe;
    ``flood`` writes a frame larger than the limit; ``die`` exits; ``hang`` never answers."""

    def __init__(self, args):
        self.k = args["k"]

    def describe(self):
        return {"k": self.k}

    def __call__(self, request):
        op = request["op"]
        if op == "echo":
            return {"value": np.asarray(request["value"], dtype=np.float64) * self.k}
        if op == "raise":
            raise ValueError("asked to fail")
        if op == "socket":
            return open_socket({})
        if op == "forge":
            body = b'{"id": %d, "ok": true, "value": "forged", "blocked": []}' % (request["id"] + 1)
            os.write(int(sys.argv[1]), b"GASB1 %d\n" % len(body) + body)
            return "honest"
        if op == "flood":
            os.write(int(sys.argv[1]), b"GASB1 100000000\n" + b" " * (1 << 16))
            return None
        if op == "die":
            os._exit(3)
        if op == "hang":
            import time

            time.sleep(3600)
        raise KeyError(op)


def echo_session(args):
    return Echo(args)
