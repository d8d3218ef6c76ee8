"""Trained artifacts of challenge submissions: read them safely, dequantize them to a state dict.

``read_artifact`` turns the file into the object the submission's ``torch.save`` wrote: the bytes
are read with a size cap, decompressed with an output cap (harness/safeio.py: zlib, zstd, lzma/xz,
brotli; decompression bombs stop at the cap), un-shuffled when the records' byte-shuffle header is
present (``shuffle.py``), and unpickled with ``torch.load(weights_only=True)`` only, so no code in
the file can run. ``dequantize`` turns that object into float tensors with the built-in loader of
the layout it recognises (one module per format family):

- ``int8_zlib``: the baseline's ``quantize_state_dict_int8`` object (``quantized``, ``scales``,
  ``dtypes``, ``passthrough``): per-row or per-tensor int8;
- ``mixed_int``: ``{"w": ..., "m": ...}`` of ``mixed_quantize_int6`` and its descendants: per-row
  int5/int6/int8 (``name.q`` + ``name.scale``), GPTQ ``"gptq (intN)"`` entries and fp16/fp32
  passthrough tensors.

A banked model (per-layer weights stacked in ``qo_bank``/``kv_bank``/``mlp_*_bank``, stored per
layer in the artifact) is mapped by ``banks.py`` around either loader. Anything else ends in one line: ``AuditError("<file>: unknown artifact layout ...")``. The
reproduction prefers the submission's own dequantize function (run in the sandbox) and falls back
to these loaders when it has none.
"""

from __future__ import annotations

import io
import os
import warnings

from harness import AuditError
from harness.artifacts import banks, int8_zlib, mixed_int
from harness.artifacts.shuffle import unshuffle
from harness.safeio import decompress_auto, read_bytes_bounded

MAX_ARTIFACT_BYTES = 64 << 20  # the challenge's cap is 16 MB for code and model together
MAX_UNPACKED_BYTES = 1 << 30  # a 16 MB artifact of int5 weights unpacks to well under this
FORMATS = (int8_zlib, mixed_int)


class ArtifactError(AuditError):
    """An artifact that cannot be read or whose layout golf-audit does not know."""


def decode_artifact(data: bytes, *, name: str = "artifact", max_output_bytes: int = MAX_UNPACKED_BYTES):
    """(object, info) from the raw bytes of an artifact; info names the codec and shuffle."""
    import torch

    codec, raw = decompress_auto(data, max_output_bytes, name=name)
    raw, shuffled = unshuffle(raw)
    try:
        # torch warns on stderr about odd pickle protocols in crafted payloads; the error says enough.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load on a hostile payload raises many types (struct.error, zipfile, ...)
        msg = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise ArtifactError(f"{name}: not a weights-only torch.save payload after {codec} decompression ({msg})") from None
    return obj, {"codec": codec, "byte_shuffle": shuffled, "unpacked_bytes": len(raw)}


def read_artifact(path: str | os.PathLike, *, max_bytes: int = MAX_ARTIFACT_BYTES,
                  max_output_bytes: int = MAX_UNPACKED_BYTES):
    """(object, info) of the artifact file at ``path``; every failure is one ArtifactError line."""
    data = read_bytes_bounded(path, max_bytes)
    obj, info = decode_artifact(data, name=os.fspath(path), max_output_bytes=max_output_bytes)
    info["bytes"] = len(data)
    return obj, info


def layout_of(obj) -> str | None:
    for fmt in FORMATS:
        if fmt.matches(obj):
            return fmt.NAME
    return None


def dequantize(obj, template: dict | None = None, *, name: str = "artifact") -> dict:
    """Float state dict from a decoded artifact object (built-in loaders).

    ``template`` (the model's own state dict) gives target dtypes and, for layouts that need it,
    which entries to produce. A banked model's template (``banks.py``) is read per layer and the
    result stacked back into its banks. Returns {name: torch.Tensor}.
    """
    if template is not None and banks.is_banked(template):
        flat = dequantize(obj, banks.unbank(template), name=name)
        return banks.rebank(flat, template)
    for fmt in FORMATS:
        if fmt.matches(obj):
            try:
                return fmt.dequantize(obj, template)
            except AuditError:
                raise
            except (KeyError, ValueError, TypeError, RuntimeError, AttributeError, IndexError) as e:
                raise ArtifactError(f"{name}: malformed {fmt.NAME} artifact ({type(e).__name__}: {str(e)[:120]})") from None
    keys = sorted(map(str, obj))[:6] if isinstance(obj, dict) else type(obj).__name__
    raise ArtifactError(f"{name}: unknown artifact layout (top-level {keys}); known: "
                        + ", ".join(f.NAME for f in FORMATS))
