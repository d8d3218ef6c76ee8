"""torchrun inside one sandbox: the sandboxed child becomes the N processes of a world.

``torchrun --nproc_per_node N`` starts N processes that see ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``, and the script calls
``torch.distributed.init_process_group``. Here the sandboxed child (harness/sandbox_child.py)
forks itself into N ranks before torch is imported and before any guard is installed; each rank
sets that environment, imports torch, starts CUDA on its own device, joins the process group
(NCCL when every rank has a GPU of its own, gloo otherwise; the rendezvous is a ``FileStore`` in
the sandbox's private directory, gloo's connections go over the sandbox's loopback) and runs the
same driver with its own guards. Every rank keeps its own state (caches, adapted weights), as in
the real run.

Rank 0 answers for the world: it collects the other ranks' outcomes over one pipe each and sends
one result, which fails when any rank failed (a rank that ends without reporting, killed or
crashed, fails it too). Its value is rank 0's.
"""

from __future__ import annotations

import json
import os
import select
import time
from dataclasses import dataclass, field
from datetime import timedelta

MASTER_ADDR = "127.0.0.1"
MASTER_PORT = "29500"  # informational: the rendezvous is a file, gloo picks its own ports
STORE_FILE = "torchrun-store"  # in the sandbox's private working directory
# After rank 0 failed, how long the other ranks get to report (they usually fail at once, their
# peer gone; one stuck elsewhere would otherwise hold the run until the sandbox's wall limit).
FAILED_WAIT_SECONDS = 10.0
MAX_RANK_MESSAGE = 1 << 20


@dataclass
class World:
    """This process's place in the world, and (rank 0) the other ranks: (rank, pid, read fd)."""

    rank: int
    size: int
    children: list[tuple[int, int, int]] = field(default_factory=list)
    report_fd: int | None = None  # ranks > 0: the pipe to rank 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def start(size: int, result_fd: int) -> World:
    """Fork into ``size`` ranks (call before torch is imported); returns this process's World.

    Only rank 0 keeps ``result_fd``, the sandbox's result pipe.
    """
    if size < 1:
        raise ValueError(f"a world of {size} processes")
    children: list[tuple[int, int, int]] = []
    world = World(0, size, children)
    for r in range(1, size):
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rd)
            os.close(result_fd)
            for _, _, fd in children:
                os.close(fd)
            world = World(r, size, [], wr)
            break
        os.close(wr)
        children.append((r, pid, rd))
    if size > 1:
        os.environ.update(RANK=str(world.rank), LOCAL_RANK=str(world.rank), WORLD_SIZE=str(size),
                          LOCAL_WORLD_SIZE=str(size), GROUP_RANK="0", MASTER_ADDR=MASTER_ADDR,
                          MASTER_PORT=MASTER_PORT)
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    return world


def init_process_group(world: World, device: str, timeout_s: float) -> str | None:
    """Join the world's process group; returns the backend (None for a single process)."""
    if not world.distributed:
        return None
    import torch
    import torch.distributed as dist

    cuda = device == "cuda" and torch.cuda.is_available()
    backend = "nccl" if cuda and torch.cuda.device_count() >= world.size else "gloo"
    store = dist.FileStore(os.path.abspath(STORE_FILE), world.size)
    dist.init_process_group(backend, store=store, rank=world.rank, world_size=world.size,
                            timeout=timedelta(seconds=max(60.0, timeout_s)))
    return backend


def report(world: World, msg: dict) -> None:
    """Ranks > 0: send this rank's outcome (not its value) to rank 0 and end the process."""
    data = json.dumps({k: msg.get(k) for k in ("ok", "error", "error_kind", "blocked")}).encode()
    try:
        with os.fdopen(world.report_fd, "wb") as f:
            f.write(data[:MAX_RANK_MESSAGE])
    finally:
        os._exit(0)


def gather(world: World, msg: dict) -> dict:
    """Rank 0: its own message merged with every other rank's outcome."""
    if not world.distributed:
        return msg
    if not msg.get("ok"):
        _abandon_group()
    deadline = None if msg.get("ok") else time.monotonic() + FAILED_WAIT_SECONDS
    outcomes = _read_children(world.children, deadline)
    errors, kinds, blocked = [], [], list(msg.get("blocked") or [])
    if not msg.get("ok"):
        errors.append(f"rank 0 of {world.size}: {msg.get('error')}")
        kinds.append(msg.get("error_kind"))
    for r, out in outcomes:
        if not isinstance(out, dict):
            errors.append(f"rank {r} of {world.size}: {out}")
            continue
        blocked += [b for b in out.get("blocked") or [] if b not in blocked]
        if not out.get("ok"):
            errors.append(f"rank {r} of {world.size}: {out.get('error')}")
            kinds.append(out.get("error_kind"))
    if not errors:
        return {**msg, "blocked": blocked}
    # The first failure is usually the cause; the others are its peers losing their connections.
    first = sorted(errors, key=lambda e: "Connection closed" in e or "connection" in e.lower())[0]
    merged = {"ok": False, "error": first + (f" (and {len(errors) - 1} more rank(s) failed)" if len(errors) > 1 else ""),
              "blocked": blocked}
    kind = next((k for k in kinds if k), None)
    if kind:
        merged["error_kind"] = kind
    return merged


def _abandon_group() -> None:
    """Close rank 0's connections so that ranks waiting on it in a collective fail at once."""
    try:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    except Exception:
        pass


def _read_children(children, deadline: float | None) -> list[tuple[int, "dict | str"]]:
    """Each child's message (or why there is none), waiting until ``deadline`` (None: no limit)."""
    buf = {fd: b"" for _, _, fd in children}
    open_fds = set(buf)
    while open_fds:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select(list(open_fds), [], [], wait)
        if not ready:
            break
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            if chunk and len(buf[fd]) < MAX_RANK_MESSAGE:
                buf[fd] += chunk
            elif not chunk:
                open_fds.discard(fd)
    out = []
    for r, pid, fd in children:
        os.close(fd)
        if fd in open_fds:
            out.append((r, "did not report in time after rank 0 failed"))
            continue
        status = _exit_status(pid)
        try:
            out.append((r, json.loads(buf[fd])))
        except ValueError:
            out.append((r, f"ended without a result ({status})"))
    return out


def _exit_status(pid: int) -> str:
    try:
        _, st = os.waitpid(pid, 0)
    except ChildProcessError:
        return "exit status unknown"
    if os.WIFSIGNALED(st):
        return f"killed by signal {os.WTERMSIG(st)}"
    return f"exit status {os.WEXITSTATUS(st)}"
