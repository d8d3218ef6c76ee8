"""Banked models: per-layer weights stacked into 3-D parameters (``qo_bank``, ``kv_bank``,
``mlp_up_bank``, ``mlp_down_bank``) for a batched optimizer, stored per layer in the artifact.

The records that bank their weights quantize and save the *unbanked* state dict: bank slot
``p * n + i`` of an ``n``-layer model is the ``p``-th weight of block ``i`` under its usual name
(``qo_bank[i]`` = ``blocks.{i}.attn.c_q.weight``, ``qo_bank[n + i]`` = ``blocks.{i}.attn.proj.weight``,
``kv_bank`` = c_k then c_v, ``mlp_up_bank`` = ``mlp.fc``, ``mlp_down_bank`` = ``mlp.proj``).
``unbank`` turns a banked model's state dict into that per-layer template (what any dequantizer,
built-in or the submission's own, is given); ``rebank`` stacks the dequantized weights back into
the model's banks.
"""

from __future__ import annotations

from harness import AuditError

BANKS = {
    "qo_bank": ("blocks.{i}.attn.c_q.weight", "blocks.{i}.attn.proj.weight"),
    "kv_bank": ("blocks.{i}.attn.c_k.weight", "blocks.{i}.attn.c_v.weight"),
    "mlp_up_bank": ("blocks.{i}.mlp.fc.weight",),
    "mlp_down_bank": ("blocks.{i}.mlp.proj.weight",),
}


class BankError(AuditError):
    """The artifact lacks a per-layer weight that a bank of the model needs."""


def is_banked(template: dict) -> bool:
    """The model's state dict holds 3-D banks in the layout above."""
    return any(name in template and getattr(template[name], "ndim", 0) == 3
               and template[name].shape[0] % len(parts) == 0 for name, parts in BANKS.items())


def _slots(name: str, bank) -> list[tuple[int, str]]:
    parts = BANKS[name]
    n = bank.shape[0] // len(parts)
    return [(p * n + i, part.format(i=i)) for p, part in enumerate(parts) for i in range(n)]


def unbank(template: dict) -> dict:
    """Per-layer state dict of a banked one (slices of the banks, other entries as they are)."""
    out = {}
    for name, t in template.items():
        if name in BANKS and getattr(t, "ndim", 0) == 3 and t.shape[0] % len(BANKS[name]) == 0:
            for slot, flat in _slots(name, t):
                out[flat] = t[slot]
        else:
            out[name] = t
    return out


def rebank(flat: dict, template: dict) -> dict:
    """The banked state dict of ``template``'s model from per-layer tensors (template dtypes)."""
    import torch

    out, used = {}, set()
    for name, t in template.items():
        if name in BANKS and getattr(t, "ndim", 0) == 3 and t.shape[0] % len(BANKS[name]) == 0:
            slices = [None] * t.shape[0]
            for slot, key in _slots(name, t):
                if key not in flat:
                    raise BankError(f"banked model: the artifact has no {key} for {name}[{slot}]")
                slices[slot] = flat[key]
                used.add(key)
            out[name] = torch.stack([s.to(t.dtype) for s in slices])
    for name, t in flat.items():
        if name not in used:
            out[name] = t
    return out
