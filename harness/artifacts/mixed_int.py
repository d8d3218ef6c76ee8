"""Mixed-precision artifacts: ``{"w": tensors, "m": meta}`` (int6 per row + zstd and descendants).

Per entry of the model, ``m[name]`` says how it was stored:
- ``{"type": "int5" | "int6" | "int8"}`` or ``"gptq (intN)"``: ``w[name + ".q"]`` integers and
  ``w[name + ".scale"]`` (one per row, or a scalar); value = q * scale;
- ``"passthrough"``, ``"passthrough_ctrl"``, ``"passthrough (float16)"``, ...: ``w[name]`` as is
  (fp16 storage goes back to the template's float dtype).
Used with zstd (int6/int5 records), lzma and brotli (with or without byte shuffling).
"""

from __future__ import annotations

NAME = "mixed int5/int6/int8 per-row"


def matches(obj) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("w"), dict) and isinstance(obj.get("m"), dict)


def _is_passthrough(info) -> bool:
    return isinstance(info, str) and info.startswith("passthrough")


def dequantize(obj: dict, template: dict | None = None) -> dict:
    import torch

    w, meta = obj["w"], obj["m"]
    names = list(template) if template is not None else list(meta)
    out = {}
    for name in names:
        if name not in meta:
            continue  # e.g. buffers the submission does not store
        info = meta[name]
        want = template[name].dtype if template is not None else None
        if _is_passthrough(info):
            t = w[name]
            if want is not None and t.dtype == torch.float16 and want in (torch.float32, torch.bfloat16):
                t = t.to(want)
            out[name] = t
            continue
        q, s = w[name + ".q"], w[name + ".scale"]
        if s.ndim > 0:
            v = q.float() * s.float().view(q.shape[0], *([1] * (q.ndim - 1)))
        else:
            v = q.float() * float(s.item())
        out[name] = v.to(want) if want is not None else v
    return out
