"""Artifacts in the records' formats, built here from a small random state dict (not from any
submission's code): the baseline's int8 + zlib and the mixed int6/int5 per-row family with zstd,
lzma (byte-shuffled) and brotli."""

from __future__ import annotations

import io
import lzma
import zlib

import torch
import zstandard

from harness.artifacts.shuffle import shuffle


def state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"tok_emb.weight": torch.randn(64, 32, generator=g), "blocks.0.mlp.fc.weight": torch.randn(48, 32, generator=g),
            "blocks.0.attn_scale": torch.rand(32, generator=g), "final.bias": torch.randn(8, generator=g)}


def per_row(t: torch.Tensor, qmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    scale = (t.abs().amax(dim=1) / qmax).clamp_min(1.0 / qmax).to(torch.float16)
    return torch.clamp(torch.round(t / scale.float()[:, None]), -(qmax + 1), qmax).to(torch.int8), scale


def mixed_object(sd: dict, bits: dict[str, int]) -> dict:
    w, m = {}, {}
    for name, t in sd.items():
        if name in bits:
            w[name + ".q"], w[name + ".scale"] = per_row(t, 2 ** (bits[name] - 1) - 1)
            m[name] = {"type": f"int{bits[name]}"}
        else:
            w[name], m[name] = t.to(torch.float16), "passthrough"
    return {"w": w, "m": m}


def int8_object(sd: dict) -> dict:
    obj = {"__quant_format__": "int8_clean_per_row_v1", "quantized": {}, "scales": {}, "dtypes": {}, "passthrough": {},
           "passthrough_orig_dtypes": {}, "qmeta": {}}
    for name, t in sd.items():
        if t.ndim == 2:
            obj["quantized"][name], obj["scales"][name] = per_row(t, 127)
            obj["dtypes"][name] = "float32"
            obj["qmeta"][name] = {"scheme": "per_row", "axis": 0}
        else:
            obj["passthrough"][name] = t.to(torch.float16)
            obj["passthrough_orig_dtypes"][name] = "float32"
    return obj


def saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def expected(obj_kind: str, sd: dict, bits: dict[str, int] | None = None) -> dict:
    out = {}
    for name, t in sd.items():
        b = (bits or {}).get(name) if obj_kind == "mixed" else (8 if t.ndim == 2 else None)
        if b:
            q, s = per_row(t, 2 ** (b - 1) - 1)
            out[name] = q.float() * s.float()[:, None]
        else:
            out[name] = t.to(torch.float16).float()
    return out


def artifacts() -> dict[str, tuple[bytes, str]]:
    """name -> (file bytes, kind)"""
    import brotli

    sd = state_dict()
    bits = {"tok_emb.weight": 8, "blocks.0.mlp.fc.weight": 5}
    mixed = saved(mixed_object(sd, bits))
    return {
        "int8_zlib": (zlib.compress(saved(int8_object(sd)), 9), "int8"),
        "mixed_zstd": (zstandard.ZstdCompressor(level=3).compress(mixed), "mixed"),
        "mixed_lzma_shuffled": (lzma.compress(shuffle(mixed, 2), preset=1), "mixed"),
        "mixed_brotli": (brotli.compress(mixed, quality=4), "mixed"),
    }


BITS = {"tok_emb.weight": 8, "blocks.0.mlp.fc.weight": 5}
