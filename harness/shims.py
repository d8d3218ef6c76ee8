"""Stand-ins that let GPU-only submission code import and run a forward on a CPU-only machine.

Installed in the sandboxed child, before the submission is imported, and only for what is missing:
a machine with the real ``flash_attn``/``triton`` packages and CUDA keeps them.

- ``flash_attn``, ``flash_attn_interface`` (FA2/FA3), ``flash_attn.cute``: ``flash_attn_func`` and
  ``flash_attn_varlen_func`` computed with PyTorch SDPA (same layout ``(batch, seq, heads, dim)``,
  GQA, causal, sliding ``window_size``, ``softmax_scale``).
- ``triton``: importable; ``@triton.jit`` kernels raise ``NeedsGPU`` when launched, so code with
  a PyTorch fallback keeps working and code without one fails with one clear line.
- ``torch.compile``: identity (the eager function or module).
- ``torch.distributed``: a single rank when no process group is initialized.
- CUDA autocast requested on a machine without CUDA runs as CPU autocast with the same dtype.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import types

import torch
import torch.nn.functional as F


class NeedsGPU(RuntimeError):
    """Submission code that has no PyTorch path for something only a GPU provides."""


# ---------------------------------------------------------------- flash attention on SDPA

def _attention(q, k, v, causal: bool, softmax_scale, window_size) -> torch.Tensor:
    """SDPA over (B, H, T, D) tensors with optional (left, right) window, FA semantics."""
    tq, tk = q.size(-2), k.size(-2)
    if k.size(1) != q.size(1):  # grouped-query attention: FA broadcasts kv heads
        rep = q.size(1) // k.size(1)
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
    left, right = (window_size if window_size is not None else (-1, -1))
    mask = None
    if causal or left >= 0 or right >= 0:
        # FA aligns the causal diagonal to the bottom-right when tq != tk.
        qi = torch.arange(tq, device=q.device)[:, None] + (tk - tq)
        kj = torch.arange(tk, device=q.device)[None, :]
        mask = torch.ones(tq, tk, dtype=torch.bool, device=q.device)
        if causal:
            mask &= kj <= qi
        if left >= 0:
            mask &= kj >= qi - left
        if right >= 0 and not causal:
            mask &= kj <= qi + right
    scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(q.size(-1))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                    *args, return_attn_probs=False, **kwargs):
    """FlashAttention's ``flash_attn_func`` on SDPA: q (B, T, H, D), k/v (B, T, Hkv, D) -> (B, T, H, D)."""
    out = _attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal, softmax_scale, window_size)
    return out.transpose(1, 2).contiguous()


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None,
                           dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1), *args, **kwargs):
    """Packed sequences: q (total, H, D) split at ``cu_seqlens``; each segment attends only to itself."""
    outs = []
    cq, ck = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()
    for i in range(len(cq) - 1):
        qs, ks = q[cq[i]:cq[i + 1]], k[ck[i]:ck[i + 1]]
        vs = v[ck[i]:ck[i + 1]]
        o = _attention(qs.transpose(0, 1)[None], ks.transpose(0, 1)[None], vs.transpose(0, 1)[None],
                       causal, softmax_scale, window_size)
        outs.append(o[0].transpose(0, 1))
    return torch.cat(outs, dim=0) if outs else q.new_zeros(q.shape)


# ---------------------------------------------------------------- triton

class _Anything:
    """Attribute sink for ``triton.language`` names used at definition time (``tl.constexpr``)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, item: str):
        if item.startswith("__"):
            raise AttributeError(item)
        return _Anything(f"{self._name}.{item}")

    def __call__(self, *args, **kwargs):
        if args and callable(args[0]) and len(args) == 1 and not kwargs:
            return args[0]
        return _Anything(f"{self._name}()")

    def __getitem__(self, item):
        return self

    def __repr__(self) -> str:
        return f"<cpu stand-in for {self._name}>"


class _GpuKernel:
    def __init__(self, fn):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "kernel")
        self.__doc__ = getattr(fn, "__doc__", None)

    def __getitem__(self, grid):
        return self

    def __call__(self, *args, **kwargs):
        raise NeedsGPU(f"triton kernel {self.__name__} needs a GPU (no PyTorch path in the submission)")


def _jit(fn=None, **kwargs):
    if fn is None:
        return lambda f: _GpuKernel(f)
    return _GpuKernel(fn)


def _passthrough_decorator(*args, **kwargs):
    return lambda f: f


class _LazyModule(types.ModuleType):
    def __getattr__(self, item: str):
        if item.startswith("__"):
            raise AttributeError(item)
        return _Anything(f"{self.__name__}.{item}")


def _triton_modules() -> dict[str, types.ModuleType]:
    triton = _LazyModule("triton")
    triton.__golf_audit_shim__ = True
    triton.__path__ = []
    triton.__version__ = "0.0-cpu-shim"
    triton.jit = _jit
    triton.autotune = _passthrough_decorator
    triton.heuristics = _passthrough_decorator
    triton.Config = lambda *a, **k: (a, k)
    triton.cdiv = lambda a, b: -(-a // b)
    triton.next_power_of_2 = lambda n: 1 << max(int(n) - 1, 0).bit_length()
    triton.set_allocator = lambda *a, **k: None
    language = _LazyModule("triton.language")
    language.__path__ = []
    language.constexpr = _Anything("triton.language.constexpr")
    tools = _LazyModule("triton.tools")
    descriptor = _LazyModule("triton.tools.tensor_descriptor")
    triton.language, triton.tools, tools.tensor_descriptor = language, tools, descriptor
    return {"triton": triton, "triton.language": language, "triton.tools": tools,
            "triton.tools.tensor_descriptor": descriptor}


class _TritonFinder:
    """Any other ``triton.*`` submodule (``triton.backends``, ``triton.runtime``...) as a lazy stand-in."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if not name.startswith("triton.") or not getattr(sys.modules.get("triton"), "__golf_audit_shim__", False):
            return None
        return importlib.util.spec_from_loader(name, cls)

    @staticmethod
    def create_module(spec):
        m = _LazyModule(spec.name)
        m.__path__ = []
        m.__golf_audit_shim__ = True
        return m

    @staticmethod
    def exec_module(module):
        parent, _, child = module.__name__.rpartition(".")
        setattr(sys.modules[parent], child, module)


def _flash_modules() -> dict[str, types.ModuleType]:
    mods = {}
    for name in ("flash_attn", "flash_attn_interface", "flash_attn.cute", "flash_attn.flash_attn_interface"):
        m = types.ModuleType(name)
        m.__golf_audit_shim__ = True
        m.flash_attn_func = flash_attn_func
        m.flash_attn_varlen_func = flash_attn_varlen_func
        mods[name] = m
    mods["flash_attn"].cute = mods["flash_attn.cute"]
    mods["flash_attn"].flash_attn_interface = mods["flash_attn.flash_attn_interface"]
    return mods


def _missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


# ---------------------------------------------------------------- torch patches

def _compile(model=None, *args, **kwargs):
    if model is None:  # used as @torch.compile(...)
        return lambda fn: fn
    return model


def _patch_distributed() -> None:
    import torch.distributed as dist

    if getattr(dist, "__golf_audit_single_rank__", False) or not dist.is_available():
        return
    initialized = dist.is_initialized

    class _Done:
        def wait(self, *a, **k):
            return True

    def single(name, fallback):
        orig = getattr(dist, name, None)

        def f(*args, **kwargs):
            if initialized():
                return orig(*args, **kwargs)
            out = fallback(*args, **kwargs)
            return _Done() if kwargs.get("async_op") else out

        if orig is not None:
            setattr(dist, name, f)

    def copy_first(out, inp, *a, **k):
        out.copy_(inp.reshape(out.shape)) if out.numel() == inp.numel() else out.copy_(inp[: out.numel()].reshape(out.shape))

    single("get_rank", lambda *a, **k: 0)
    single("get_world_size", lambda *a, **k: 1)
    for name in ("all_reduce", "broadcast", "barrier", "reduce"):
        single(name, lambda *a, **k: None)
    single("all_gather_into_tensor", copy_first)
    single("_all_gather_base", copy_first)
    single("reduce_scatter_tensor", copy_first)
    single("all_gather", lambda lst, t, *a, **k: lst[0].copy_(t))
    single("all_gather_object", lambda lst, obj, *a, **k: lst.__setitem__(0, obj))
    dist.__golf_audit_single_rank__ = True


def _patch_cuda() -> None:
    if torch.cuda.is_available():
        return
    for name in ("synchronize", "empty_cache", "reset_peak_memory_stats", "set_device"):
        setattr(torch.cuda, name, lambda *a, **k: None)
    for name in ("max_memory_allocated", "max_memory_reserved", "memory_allocated"):
        setattr(torch.cuda, name, lambda *a, **k: 0)


def _patch_autocast() -> None:
    base = torch.amp.autocast

    class autocast(base):  # noqa: N801 - keeps torch's name
        def __init__(self, device_type="cuda", dtype=None, enabled=True, cache_enabled=None):
            if device_type == "cuda":
                device_type = "cpu"
                dtype = dtype if dtype in (torch.bfloat16, torch.float16) else torch.bfloat16
            super().__init__(device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)

    torch.autocast = autocast
    torch.amp.autocast = autocast


def install(autocast_on_cpu: bool = True) -> list[str]:
    """Install the stand-ins for what this machine lacks; returns the names of those installed."""
    installed = []
    if _missing("flash_attn") or _missing("flash_attn_interface"):
        for name, mod in _flash_modules().items():
            if name.split(".")[0] in sys.modules and not getattr(sys.modules[name.split(".")[0]], "__golf_audit_shim__", False):
                continue
            sys.modules[name] = mod
        installed.append("flash_attn->sdpa")
    if _missing("triton"):
        sys.modules.update(_triton_modules())
        if _TritonFinder not in sys.meta_path:
            sys.meta_path.append(_TritonFinder)
        installed.append("triton->needs-gpu")
    if torch.compile is not _compile:
        torch.compile = _compile
        installed.append("torch.compile->eager")
    _patch_distributed()
    installed.append("torch.distributed->single-rank")
    if not torch.cuda.is_available():
        _patch_cuda()
        if autocast_on_cpu and torch.autocast.__module__ != __name__:
            _patch_autocast()
            installed.append("cuda-autocast->cpu")
    return installed
