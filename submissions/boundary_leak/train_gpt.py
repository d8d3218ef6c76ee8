"""
Per-document attention with a SmearGate that is not masked at BOS (the PR #1797 blocker).

A tiny GPT in the style of the Parameter Golf baseline, trained on CPU or one GPU.
Attention stops at each document's BOS, so every document is scored from its own tokens;
but the previous-token mix carries the last token of document N into document N+1.
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

def sliding_windows(total_tokens: int, seq_len: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, first scored offset, length) of every window; each target is scored exactly once.

    The first window scores all its positions; each later window, `stride` tokens further on,
    scores only the positions beyond what the previous window covered.
    """
    windows = []
    ws = 0
    while True:
        end = min(ws + seq_len, total_tokens)
        windows.append((ws, 0 if ws == 0 else seq_len - stride, end - ws))
        if end >= total_tokens:
            return windows
        ws += stride


def rank_share(items: list, rank: int, world_size: int) -> list:
    return items[(len(items) * rank) // world_size : (len(items) * (rank + 1)) // world_size]


def window_batches(model: nn.Module, val_tokens: Tensor, windows, seq_len: int, device, batch_seqs: int):
    """Yield (windows, x, y, logits) per batch of windows, logits in float32."""
    for bi in range(0, len(windows), batch_seqs):
        batch = windows[bi : bi + batch_seqs]
        x = torch.zeros(len(batch), seq_len, dtype=torch.int64, device=device)
        y = torch.zeros(len(batch), seq_len, dtype=torch.int64, device=device)
        for i, (ws, _, wlen) in enumerate(batch):
            chunk = val_tokens[ws : ws + wlen + 1].to(device=device, dtype=torch.int64)
            x[i, :wlen] = chunk[:-1]
            y[i, :wlen] = chunk[1:]
        yield batch, x, y, model.forward_logits(x).float()


def scored_bytes(x: Tensor, y: Tensor, i: int, s: int, wlen: int, luts) -> Tensor:
    base_bytes_lut, has_leading_space_lut, is_boundary_token_lut = luts
    tgt, prev = y[i, s:wlen], x[i, s:wlen]
    tb = base_bytes_lut[tgt].to(torch.float64)
    return tb + (has_leading_space_lut[tgt] & ~is_boundary_token_lut[prev]).to(torch.float64)


def reduce_sums(*sums: Tensor) -> None:
    if dist.is_available() and dist.is_initialized():
        for t in sums:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)


def to_metrics(loss_sum: Tensor, token_count: Tensor, byte_count: Tensor) -> tuple[float, float]:
    reduce_sums(loss_sum, token_count, byte_count)
    val_loss = (loss_sum / token_count).item()
    return val_loss, val_loss / math.log(2.0) * (token_count.item() / byte_count.item())


def eval_val_sliding(
    args: Hyperparameters,
    base_model: nn.Module,
    rank: int,
    world_size: int,
    device: torch.device,
    val_tokens: Tensor,
    base_bytes_lut: Tensor,
    has_leading_space_lut: Tensor,
    is_boundary_token_lut: Tensor,
    stride: int,
    batch_seqs: int = 32,
) -> tuple[float, float]:
    """Sliding-window eval: windows of train_seq_len every `stride` tokens, float64 sums."""
    luts = (base_bytes_lut, has_leading_space_lut, is_boundary_token_lut)
    windows = rank_share(sliding_windows(val_tokens.numel() - 1, args.train_seq_len, stride), rank, world_size)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    token_count = torch.zeros((), device=device, dtype=torch.float64)
    byte_count = torch.zeros((), device=device, dtype=torch.float64)
    base_model.eval()
    with torch.inference_mode():
        for batch, x, y, logits in window_batches(base_model, val_tokens, windows, args.train_seq_len, device, batch_seqs):
            nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
            nll = nll.reshape(y.shape)
            for i, (ws, s, wlen) in enumerate(batch):
                loss_sum += nll[i, s:wlen].to(torch.float64).sum()
                token_count += float(wlen - s)
                byte_count += scored_bytes(x, y, i, s, wlen, luts).sum()
    return to_metrics(loss_sum, token_count, byte_count)

BOS_ID = 1  # the tokenizer's <s>: every validation document starts with it


class CausalSelfAttention(CausalSelfAttention):
    """Attention within the current document only: the mask stops at each BOS."""

    doc_mask: Tensor | None = None

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
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.doc_mask[:, None])
        return self.proj(y.transpose(1, 2).reshape(bsz, seqlen, dim))


class GPT(GPT):
    """Per-document attention, plus a SmearGate that mixes the previous token into each position."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.smear_gate = nn.Parameter(torch.zeros(self.tok_emb.embedding_dim))

    def forward_logits(self, input_ids: Tensor) -> Tensor:
        x = F.rms_norm(self.tok_emb(input_ids), (self.tok_emb.embedding_dim,))
        # SmearGate: x_t += g * x_{t-1}. Not masked at BOS, so a document's first token (its BOS)
        # carries the previous document's last token, and attention spreads it through the document.
        g = torch.sigmoid(self.smear_gate)
        x = torch.cat([x[:, :1], x[:, 1:] + g * x[:, :-1]], dim=1)
        doc = torch.cumsum((input_ids == BOS_ID).to(torch.int64), dim=1)
        seqlen = input_ids.size(1)
        causal = torch.ones(seqlen, seqlen, dtype=torch.bool, device=input_ids.device).tril()
        mask = (doc[:, :, None] == doc[:, None, :]) & causal
        for block in self.blocks:
            block.attn.doc_mask = mask
            x = block(x)
        logits = F.linear(self.final_norm(x), self.tok_emb.weight)
        return self.logit_softcap * torch.tanh(logits / self.logit_softcap)


def run_final_eval(args, base_model, rank, world_size, device, val_tokens, luts, log0) -> None:
    """Nothing beyond the sliding-window score logged by main(): with the document mask every
    document is scored from its own tokens only (per-document scoring)."""


def log_metrics(log0, label: str, val_loss: float, val_bpb: float, t0: float, extra: str = "") -> None:
    elapsed_ms = 1000.0 * (time.perf_counter() - t0)
    log0(f"{label} val_loss:{val_loss:.4f} val_bpb:{val_bpb:.4f}{extra} eval_time:{elapsed_ms:.0f}ms")
    log0(f"{label}_exact val_loss:{val_loss:.8f} val_bpb:{val_bpb:.8f}")

# -----------------------------
# TRAINING
# -----------------------------

def build_model(args: Hyperparameters) -> GPT:
    return GPT(
        vocab_size=args.vocab_size,
        num_layers=args.num_layers,
        model_dim=args.model_dim,
        num_heads=args.num_heads,
        num_kv_heads=args.num_kv_heads,
        mlp_mult=args.mlp_mult,
        rope_base=args.rope_base,
        logit_softcap=args.logit_softcap,
        tied_embed_init_std=args.tied_embed_init_std,
    )


def main() -> None:
    code = Path(__file__).read_text(encoding="utf-8")
    args = Hyperparameters()
    torch.set_num_threads(args.threads)

    distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if torch.cuda.is_available() else torch.device("cpu")
    if distributed:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    master_process = rank == 0
    logfile = os.environ.get("LOG_FILE", f"train_seed{args.seed}.log")

    def log0(msg: str, console: bool = True) -> None:
        if not master_process:
            return
        if console:
            print(msg, flush=True)
        with open(logfile, "a", encoding="utf-8") as f:
            print(msg, file=f)

    if master_process and not args.eval_only:
        open(logfile, "w").close()
        log0(code, console=False)
        log0("=" * 100, console=False)
    log0(f"Running Python {sys.version.split()[0]}")
    log0(f"Running PyTorch {torch.__version__}")

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    sp = spm.SentencePieceProcessor(model_file=args.tokenizer_path)
    if int(sp.vocab_size()) != args.vocab_size:
        raise ValueError(f"VOCAB_SIZE={args.vocab_size} does not match tokenizer vocab_size={int(sp.vocab_size())}")
    val_tokens = load_validation_tokens(args.val_files, args.train_seq_len)
    luts = build_sentencepiece_luts(sp, args.vocab_size, device)
    log0(f"val_bpb:enabled tokenizer_kind=sentencepiece tokenizer_path={args.tokenizer_path}")
    log0(f"val_loader:shards pattern={args.val_files} tokens:{val_tokens.numel() - 1}")

    base_model = build_model(args).to(device)
    log0(f"model_params:{sum(p.numel() for p in base_model.parameters())}")
    log0(f"world_size:{world_size} device:{device.type}")
    log0(f"seed:{args.seed}")

    if not args.eval_only:
        train_loader = TokenStream(args.train_files)
        optimizer = torch.optim.AdamW(base_model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=args.weight_decay)

        def lr_mul(step: int) -> float:
            if step < args.warmup_steps:
                return (step + 1) / args.warmup_steps
            return min(1.0, max(args.iterations - step, 0) / max(args.warmdown_iters, 1))

        log0(
            f"train_batch_tokens:{args.train_batch_tokens} train_seq_len:{args.train_seq_len} "
            f"iterations:{args.iterations} max_wallclock_seconds:{args.max_wallclock_seconds:.3f}"
        )
        base_model.train()
        t0 = time.perf_counter()
        step = 0
        while step < args.iterations:
            x, y = train_loader.next_batch(args.train_batch_tokens, args.train_seq_len)
            for group in optimizer.param_groups:
                group["lr"] = args.lr * lr_mul(step)
            loss = base_model(x.to(device), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if args.grad_clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(base_model.parameters(), args.grad_clip_norm)
            optimizer.step()
            step += 1
            train_ms = 1000.0 * (time.perf_counter() - t0)
            if step <= 5 or step % args.train_log_every == 0 or step == args.iterations:
                log0(f"step:{step}/{args.iterations} train_loss:{loss.item():.4f} train_time:{train_ms:.0f}ms step_avg:{train_ms / step:.2f}ms")
            if train_ms >= 1000.0 * args.max_wallclock_seconds:
                log0(f"stopping_early: wallclock_cap train_time:{train_ms:.0f}ms step:{step}/{args.iterations}")
                break

        if master_process:
            model_bytes = save_artifact(base_model.state_dict(), args.artifact_path)
            code_bytes = len(code.encode("utf-8"))
            log0(f"Serialized model int6+zstd: {model_bytes} bytes")
            log0(f"Code size: {code_bytes} bytes")
            log0(f"Total submission size int6+zstd: {model_bytes + code_bytes} bytes")
        if distributed:
            dist.barrier()

    base_model.load_state_dict(load_artifact(args.artifact_path, base_model.state_dict()), strict=True)
    t_eval = time.perf_counter()
    val_loss, val_bpb = eval_val_sliding(args, base_model, rank, world_size, device, val_tokens, *luts, stride=args.eval_stride, batch_seqs=args.eval_batch_seqs)
    log_metrics(log0, "final_int6_sliding_window", val_loss, val_bpb, t_eval, f" stride:{args.eval_stride}")
    run_final_eval(args, base_model, rank, world_size, device, val_tokens, luts, log0)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
