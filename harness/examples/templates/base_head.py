"""
@@TITLE@@

A tiny GPT in the style of the Parameter Golf baseline, trained on CPU or one GPU.
@@DOC@@
"""

from __future__ import annotations

import glob
import io
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
import torch.distributed as dist
import torch.nn.functional as F
import zstandard
from torch import Tensor, nn

# -----------------------------
# HYPERPARAMETERS
# -----------------------------

class Hyperparameters:
    data_path = os.environ.get("DATA_PATH", "../data/datasets/kjv_sp1024")
    train_files = os.path.join(data_path, "kjv_train_*.bin")
    val_files = os.path.join(data_path, "kjv_val_*.bin")
    tokenizer_path = os.environ.get("TOKENIZER_PATH", "../data/tokenizers/kjv_1024_bpe.model")
    artifact_path = os.environ.get("ARTIFACT_PATH", "final_model.int6.ptz")
    eval_only = bool(int(os.environ.get("EVAL_ONLY", "0")))
    seed = int(os.environ.get("SEED", 1337))
    threads = int(os.environ.get("THREADS", 2))

    # Training length: a fixed step count keeps runs reproducible; the wall-clock cap is a guard.
    iterations = int(os.environ.get("ITERATIONS", 200))
    warmup_steps = int(os.environ.get("WARMUP_STEPS", 20))
    warmdown_iters = int(os.environ.get("WARMDOWN_ITERS", 80))
    train_batch_tokens = int(os.environ.get("TRAIN_BATCH_TOKENS", 4096))
    train_seq_len = int(os.environ.get("TRAIN_SEQ_LEN", 256))
    max_wallclock_seconds = float(os.environ.get("MAX_WALLCLOCK_SECONDS", 600.0))
    train_log_every = int(os.environ.get("TRAIN_LOG_EVERY", 50))

    # Model shape.
    vocab_size = int(os.environ.get("VOCAB_SIZE", 1024))
    num_layers = int(os.environ.get("NUM_LAYERS", 4))
    model_dim = int(os.environ.get("MODEL_DIM", 128))
    num_heads = int(os.environ.get("NUM_HEADS", 4))
    num_kv_heads = int(os.environ.get("NUM_KV_HEADS", 2))
    mlp_mult = int(os.environ.get("MLP_MULT", 2))
    rope_base = float(os.environ.get("ROPE_BASE", 10000.0))
    logit_softcap = float(os.environ.get("LOGIT_SOFTCAP", 30.0))
    tied_embed_init_std = float(os.environ.get("TIED_EMBED_INIT_STD", 0.02))

    # Optimizer.
    lr = float(os.environ.get("LR", 3e-3))
    weight_decay = float(os.environ.get("WEIGHT_DECAY", 0.01))
    grad_clip_norm = float(os.environ.get("GRAD_CLIP_NORM", 1.0))

    # Evaluation.
    eval_stride = int(os.environ.get("EVAL_STRIDE", 64))
    eval_batch_seqs = int(os.environ.get("EVAL_BATCH_SEQS", 32))
@@HPARAMS@@

# -----------------------------
# TOKENIZER-AGNOSTIC EVALUATION SETUP
# -----------------------------

def build_sentencepiece_luts(
    sp: spm.SentencePieceProcessor, vocab_size: int, device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    sp_vocab_size = int(sp.vocab_size())
    table_size = max(sp_vocab_size, vocab_size)
    base_bytes_np = np.zeros((table_size,), dtype=np.int16)
    has_leading_space_np = np.zeros((table_size,), dtype=np.bool_)
    is_boundary_token_np = np.ones((table_size,), dtype=np.bool_)
    for token_id in range(sp_vocab_size):
        if sp.is_control(token_id) or sp.is_unknown(token_id) or sp.is_unused(token_id):
            continue
        is_boundary_token_np[token_id] = False
        if sp.is_byte(token_id):
            base_bytes_np[token_id] = 1
            continue
        piece = sp.id_to_piece(token_id)
        if piece.startswith("\u2581"):
            has_leading_space_np[token_id] = True
            piece = piece[1:]
        base_bytes_np[token_id] = len(piece.encode("utf-8"))
    return (
        torch.tensor(base_bytes_np, dtype=torch.int16, device=device),
        torch.tensor(has_leading_space_np, dtype=torch.bool, device=device),
        torch.tensor(is_boundary_token_np, dtype=torch.bool, device=device),
    )


def load_data_shard(file: Path) -> Tensor:
    header_bytes = 256 * np.dtype("<i4").itemsize
    header = np.fromfile(file, dtype="<i4", count=256)
    if header.size != 256 or int(header[0]) != 20240520 or int(header[1]) != 1:
        raise ValueError(f"Unexpected shard header for {file}")
    num_tokens = int(header[2])
    if file.stat().st_size != header_bytes + 2 * num_tokens:
        raise ValueError(f"Shard size mismatch for {file}")
    tokens_np = np.fromfile(file, dtype="<u2", count=num_tokens, offset=header_bytes)
    return torch.from_numpy(tokens_np.astype(np.int64))


def load_validation_tokens(pattern: str, seq_len: int) -> Tensor:
    files = [Path(p) for p in sorted(glob.glob(pattern))]
    if not files:
        raise FileNotFoundError(f"No files found for pattern: {pattern}")
    tokens = torch.cat([load_data_shard(file) for file in files]).contiguous()
    usable = ((tokens.numel() - 1) // seq_len) * seq_len
    if usable <= 0:
        raise ValueError(f"Validation split is too short for TRAIN_SEQ_LEN={seq_len}")
    return tokens[: usable + 1]


class TokenStream:
    # Reads train shards in order and wraps around: deterministic, no sampling.
    def __init__(self, pattern: str):
        self.files = [Path(p) for p in sorted(glob.glob(pattern))]
        if not self.files:
            raise FileNotFoundError(f"No files found for pattern: {pattern}")
        self.tokens = torch.cat([load_data_shard(f) for f in self.files])
        self.pos = 0

    def next_batch(self, batch_tokens: int, seq_len: int) -> tuple[Tensor, Tensor]:
        n = batch_tokens + 1
        if self.pos + n > self.tokens.numel():
            self.pos = 0
        chunk = self.tokens[self.pos : self.pos + n]
        self.pos += batch_tokens
        return chunk[:-1].reshape(-1, seq_len), chunk[1:].reshape(-1, seq_len)

# -----------------------------
# TRANSFORMER MODULES
# -----------------------------

class RMSNorm(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, (x.size(-1),))


class Rotary(nn.Module):
    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, seq_len: int, device: torch.device) -> tuple[Tensor, Tensor]:
        t = torch.arange(seq_len, device=device, dtype=torch.float32)
        freqs = torch.outer(t, self.inv_freq.to(device))
        return freqs.cos()[None, None], freqs.sin()[None, None]


def apply_rotary_emb(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos + x2 * sin, x1 * (-sin) + x2 * cos), dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_kv_heads: int, rope_base: float):
        super().__init__()
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = dim // num_heads
        kv_dim = num_kv_heads * self.head_dim
        self.c_q = nn.Linear(dim, dim, bias=False)
        self.c_k = nn.Linear(dim, kv_dim, bias=False)
        self.c_v = nn.Linear(dim, kv_dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.rotary = Rotary(self.head_dim, base=rope_base)

    def forward(self, x: Tensor) -> Tensor:
        bsz, seqlen, dim = x.shape
        q = self.c_q(x).reshape(bsz, seqlen, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.c_k(x).reshape(bsz, seqlen, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.c_v(x).reshape(bsz, seqlen, self.num_kv_heads, self.head_dim).transpose(1, 2)
        q = F.rms_norm(q, (q.size(-1),))
        k = F.rms_norm(k, (k.size(-1),))
        cos, sin = self.rotary(seqlen, x.device)
        q = apply_rotary_emb(q, cos, sin)
        k = apply_rotary_emb(k, cos, sin)
        if self.num_kv_heads != self.num_heads:
            rep = self.num_heads // self.num_kv_heads
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(bsz, seqlen, dim))


class MLP(nn.Module):
    def __init__(self, dim: int, mlp_mult: int):
        super().__init__()
        self.fc = nn.Linear(dim, mlp_mult * dim, bias=False)
        self.proj = nn.Linear(mlp_mult * dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(torch.relu(self.fc(x)).square())


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_kv_heads: int, mlp_mult: int, rope_base: float):
        super().__init__()
        self.attn_norm = RMSNorm()
        self.mlp_norm = RMSNorm()
        self.attn = CausalSelfAttention(dim, num_heads, num_kv_heads, rope_base)
        self.mlp = MLP(dim, mlp_mult)
        self.attn_scale = nn.Parameter(torch.ones(dim))
        self.mlp_scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn_scale * self.attn(self.attn_norm(x))
        return x + self.mlp_scale * self.mlp(self.mlp_norm(x))


class GPT(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        num_layers: int,
        model_dim: int,
        num_heads: int,
        num_kv_heads: int,
        mlp_mult: int,
        rope_base: float,
        logit_softcap: float,
        tied_embed_init_std: float,
    ):
        super().__init__()
        self.logit_softcap = logit_softcap
        self.tok_emb = nn.Embedding(vocab_size, model_dim)
        self.blocks = nn.ModuleList(
            [Block(model_dim, num_heads, num_kv_heads, mlp_mult, rope_base) for _ in range(num_layers)]
        )
        self.final_norm = RMSNorm()
        nn.init.normal_(self.tok_emb.weight, mean=0.0, std=tied_embed_init_std)
        for block in self.blocks:
            nn.init.zeros_(block.attn.proj.weight)
            nn.init.zeros_(block.mlp.proj.weight)

    def forward_logits(self, input_ids: Tensor) -> Tensor:
        x = F.rms_norm(self.tok_emb(input_ids), (self.tok_emb.embedding_dim,))
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.final_norm(x), self.tok_emb.weight)
        return self.logit_softcap * torch.tanh(logits / self.logit_softcap)

    def forward(self, input_ids: Tensor, target_ids: Tensor) -> Tensor:
        logits = self.forward_logits(input_ids)
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), target_ids.reshape(-1))

# -----------------------------
# POST-TRAINING QUANTIZATION (int6 per row + zstd)
# -----------------------------

CONTROL_TENSOR_NAME_PATTERNS = ("attn_scale", "mlp_scale")
KEEP_FLOAT_MAX_NUMEL = 4096


def quantize_per_row(t: Tensor, qmax: int) -> tuple[Tensor, Tensor]:
    t32 = t.float()
    row_max = t32.abs().amax(dim=1)
    scale = (row_max / qmax).clamp_min(1.0 / qmax).to(torch.float16)
    q = torch.clamp(torch.round(t32 / scale.float()[:, None]), -(qmax + 1), qmax).to(torch.int8)
    return q, scale


def mixed_quantize_int6(state_dict: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, object]]:
    # Block matrices: int6 per row. Token embedding: int8 per row. Small/control tensors: fp16/fp32.
    result: dict[str, Tensor] = {}
    meta: dict[str, object] = {}
    for name, tensor in state_dict.items():
        t = tensor.detach().cpu().contiguous()
        if any(p in name for p in CONTROL_TENSOR_NAME_PATTERNS):
            result[name] = t.float()
            meta[name] = "passthrough_ctrl"
        elif t.ndim != 2 or t.numel() <= KEEP_FLOAT_MAX_NUMEL:
            result[name] = t.to(torch.float16)
            meta[name] = "passthrough"
        else:
            bits = 8 if name == "tok_emb.weight" else 6
            q, s = quantize_per_row(t, 127 if bits == 8 else 31)
            result[name + ".q"] = q
            result[name + ".scale"] = s
            meta[name] = {"type": f"int{bits}"}
    return result, meta


def dequantize_mixed_int6(
    result: dict[str, Tensor], meta: dict[str, object], template_sd: dict[str, Tensor]
) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for name, orig in template_sd.items():
        info = meta[name]
        if info in ("passthrough", "passthrough_ctrl"):
            out[name] = result[name].to(orig.dtype)
            continue
        q, s = result[name + ".q"], result[name + ".scale"]
        out[name] = (q.float() * s.float()[:, None]).to(orig.dtype)
    return out


def save_artifact(state_dict: dict[str, Tensor], path: str) -> int:
    quant_result, quant_meta = mixed_quantize_int6(state_dict)
    buf = io.BytesIO()
    torch.save({"w": quant_result, "m": quant_meta}, buf)
    blob = zstandard.ZstdCompressor(level=22).compress(buf.getvalue())
    with open(path, "wb") as f:
        f.write(blob)
    return len(blob)


def load_artifact(path: str, template_sd: dict[str, Tensor]) -> dict[str, Tensor]:
    with open(path, "rb") as f:
        raw = zstandard.ZstdDecompressor().decompress(f.read(), max_output_size=1 << 28)
    obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    return dequantize_mixed_int6(obj["w"], obj["m"], template_sd)

# -----------------------------
# EVALUATION
# -----------------------------
