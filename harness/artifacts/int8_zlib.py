"""The baseline's int8 artifact: ``quantize_state_dict_int8`` output, zlib-compressed.

Layout: ``quantized[name]`` int8 tensors, ``scales[name]`` (a per-row vector or a scalar),
``dtypes[name]`` the original dtype's name, ``passthrough[name]`` small tensors kept as they were
(fp16 storage, with ``passthrough_orig_dtypes`` naming the original dtype).
"""

from __future__ import annotations

NAME = "int8 per-row (baseline)"


def matches(obj) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("quantized"), dict) and isinstance(obj.get("scales"), dict)


def _dtype(name: str):
    import torch

    dt = getattr(torch, str(name), None)
    if not isinstance(dt, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return dt


def dequantize(obj: dict, template: dict | None = None) -> dict:
    import torch

    out = {}
    dtypes = obj.get("dtypes", {})
    for name, q in obj["quantized"].items():
        s = obj["scales"][name]
        dt = _dtype(dtypes.get(name, "float32"))
        if s.ndim > 0:
            out[name] = (q.float() * s.float().view(q.shape[0], *([1] * (q.ndim - 1)))).to(dt)
        else:
            out[name] = (q.float() * float(s.item())).to(dt)
    orig = obj.get("passthrough_orig_dtypes", {})
    for name, t in obj.get("passthrough", {}).items():
        out[name] = t.to(_dtype(orig[name])) if isinstance(orig.get(name), str) else t
    if template is not None:
        out = {k: v.to(template[k].dtype) if k in template else v for k, v in out.items()}
    return {k: v.contiguous() if isinstance(v, torch.Tensor) else v for k, v in out.items()}
