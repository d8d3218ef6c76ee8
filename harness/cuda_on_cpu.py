"""CUDA devices answered by the CPU, for running a record's whole main() on a CPU-only machine.

The challenge's records start main() with ``if not torch.cuda.is_available(): raise`` and put
everything on ``torch.device("cuda", local_rank)``. For the whole-pipeline probe (small dims, a few
steps) the device does not matter, only what the code computes. Inside ``cuda_as_cpu()``:

- ``torch.cuda.is_available()`` is true (one device, capability 9.0, CUDA events timed on the
  host clock); the rest of ``torch.cuda`` is harness/shims.py's no-ops;
- every torch call that names a CUDA device (``device="cuda"``, ``.to(device)``, ``.cuda()``,
  factories) gets the CPU instead, and pinned memory is plain memory (a ``TorchFunctionMode``);
- ``subprocess.run(["nvidia-smi", ...])`` (the records log its output) answers with empty output
  without starting anything; any other command goes to the real ``subprocess.run`` (which the
  sandbox denies and reports);
- ``torch.Generator(device="cuda")`` is a CPU generator;
- ``torch._dynamo.reset()`` does nothing (``torch.compile`` is eager under the shims).

Only for the duration; nothing is left patched. Installed only where CUDA is really missing.
"""

from __future__ import annotations

import contextlib
import subprocess
import time

import torch
from torch.overrides import TorchFunctionMode

from harness import shims

CPU = torch.device("cpu")


def _cpu(value):
    if isinstance(value, torch.device) and value.type == "cuda":
        return CPU
    if isinstance(value, str) and value.split(":")[0] == "cuda":
        return CPU
    return value


class _Devices(TorchFunctionMode):
    """CUDA device arguments of torch calls replaced by the CPU."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in (torch.Tensor.cuda, torch.Tensor.pin_memory):
            return args[0]
        if "device" in kwargs:
            kwargs["device"] = _cpu(kwargs["device"])
        if kwargs.get("pin_memory"):
            kwargs["pin_memory"] = False
        if func is torch.Tensor.to:
            args = tuple(_cpu(a) for a in args)
        return func(*args, **kwargs)


class _Event:
    """``torch.cuda.Event(enable_timing=True)`` on the host clock."""

    def __init__(self, *a, **k) -> None:
        self.t = None

    def record(self, *a, **k) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def wait(self, *a, **k) -> None:
        pass

    def query(self) -> bool:
        return True

    def elapsed_time(self, end: "_Event") -> float:
        return 1000.0 * ((end.t or 0.0) - (self.t or 0.0))


class _Properties:
    name = "cpu (golf-audit)"
    major, minor = 9, 0
    total_memory = 80 << 30
    multi_processor_count = 132


class _Generator(torch.Generator):
    """``torch.Generator(device="cuda")`` as a CPU generator (its constructor is no torch function)."""

    def __new__(cls, device="cpu"):
        return super().__new__(cls, _cpu(device))

    def __init__(self, device="cpu") -> None:
        super().__init__()


PATCHES = {
    "is_available": lambda: True,
    "device_count": lambda: 1,
    "current_device": lambda: 0,
    "get_device_name": lambda *a, **k: _Properties.name,
    "get_device_capability": lambda *a, **k: (_Properties.major, _Properties.minor),
    "get_device_properties": lambda *a, **k: _Properties(),
    "is_bf16_supported": lambda *a, **k: True,
    "manual_seed": lambda *a, **k: None,
    "manual_seed_all": lambda *a, **k: None,
    "Event": _Event,
}


def _run(real):
    def run(args, *a, **k):
        argv = [args] if isinstance(args, str) else list(args) if isinstance(args, (list, tuple)) else []
        if argv and str(argv[0]).split()[0].rsplit("/", 1)[-1] == "nvidia-smi":
            return subprocess.CompletedProcess(args, 0, stdout="" if k.get("text") else b"", stderr="" if k.get("text") else b"")
        return real(args, *a, **k)

    return run


@contextlib.contextmanager
def cuda_as_cpu():
    """CUDA answered by the CPU for the duration (a no-op where CUDA is really there)."""
    if torch.cuda.is_available():
        yield False
        return
    shims.install()  # the no-ops and CPU autocast, installed while CUDA still reads as missing
    saved = {name: getattr(torch.cuda, name, None) for name in PATCHES}
    for name, value in PATCHES.items():
        setattr(torch.cuda, name, value)
    real_run, real_reset, real_generator = subprocess.run, torch._dynamo.reset, torch.Generator
    subprocess.run = _run(real_run)
    torch.Generator = _Generator
    torch._dynamo.reset = lambda: None  # torch.compile is eager under the shims: nothing to reset
    try:
        with _Devices():
            yield True
    finally:
        subprocess.run, torch._dynamo.reset, torch.Generator = real_run, real_reset, real_generator
        for name, value in saved.items():
            if value is None:
                delattr(torch.cuda, name)
            else:
                setattr(torch.cuda, name, value)
