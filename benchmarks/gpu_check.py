"""The GPU check: one line per check, ``NAME ok|FAIL numbers``; exit 1 on any FAIL.

    python benchmarks/gpu_check.py [--device cuda] [--peak-tflops 790]    # on one GPU, < 5 minutes
    python benchmarks/gpu_check.py --device cpu                          # the tiny CI shape

Checks (each through the CLI, sandboxed, as a maintainer would run it, except the speed check):

- ``repro[NAME]``: every bundled example reproduced on the device, against the same rerun on CPU
  (|delta| <= 1e-5 BPB for the score as submitted, our evaluator and every reference pipeline,
  and the same exit code). With ``--device cpu`` the device run is the CPU run.
- ``probe[cuda-sandbox]``: one probe (normalization) replayed on ``tilt_target_gated`` with the
  sandbox started for the device; it must fail, as on CPU. The probes' eval itself runs on CPU
  (harness/submission_scorer.py binds the submission's ``device`` to CPU); the line says so.
- ``torchrun[2v1]``: ``reproduce --nproc 2`` of ``ngram_context_only``: the model alone gives the
  one-process number, our per-rank tilt the submission's own two-rank score (its tables are kept
  per rank, so that score differs from one process's, and REPRO004 says so).
- ``speed[batch=B]``: our evaluator (harness/evaluate.py) against a record-style
  ``eval_val_sliding`` (the records' loop: 32 windows a batch, one Python step per window) on a
  record-shaped model with random weights and a synthetic validation stream: scored tokens per
  second, the ratio, and MFU counted on the full forward of every window (matmuls, causal
  attention, vocabulary head) against ``--peak-tflops``. It fails when the two scores differ; the
  issue's goal (4x, 50% MFU) is printed beside it and fails the line only with ``--require-goal``.

A check that cannot run (no CUDA, a sandbox that does not start, a crash) prints FAIL: nothing
that did not run reads as ok.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.evaluate import evaluate_sliding, sliding_windows  # noqa: E402
from harness.examples import EXAMPLES  # noqa: E402

REPRO_TOLERANCE = 1e-5  # BPB, device against CPU
TORCHRUN_TOLERANCE = 1e-6  # BPB, the same sums split between ranks
H200_BF16_TFLOPS = 790.0  # dense bf16 peak of one H200, about
GOAL_RATIO, GOAL_MFU = 4.0, 0.50  # the goal for our evaluator at the records' shape
# Prefix of the validation set each example is reproduced on: long enough for its recipe to act
# (a TTT chunk and part of a second; windows past the first for the caches and tilts).
PREFIX = {"ttt_update_before_score": 9000, "ttt_score_first": 9000, "double_score_tail": 3000}
DEFAULT_PREFIX = 4096
PROBE_EXAMPLE, PROBE_REPLAY = "tilt_target_gated", "normalization:k=0,n=800,seed=0"
TORCHRUN_EXAMPLE = "ngram_context_only"


@dataclass(frozen=True)
class Shape:
    """A record-style GPT: layers, width, heads, KV heads, MLP multiple, vocabulary, window, stride."""

    layers: int
    width: int
    heads: int
    kv_heads: int
    mlp_mult: int
    vocab: int
    seq_len: int
    stride: int
    targets: int  # length of the synthetic validation stream

    def window_flops(self, length: int) -> float:
        """Forward FLOPs of one window of ``length`` positions (a multiply-add is 2 FLOPs)."""
        d, kv = self.width, self.width // self.heads * self.kv_heads
        per_layer = 2 * length * d * (2 * d + 2 * kv)  # q, out; k, v
        per_layer += 2 * length * d * self.mlp_mult * d * 2  # up, down
        per_layer += 2 * length * length * d  # causal QK^T and AV: half of 2 * (2 T^2 d)
        return self.layers * per_layer + 2 * length * d * self.vocab


RECORD = Shape(layers=11, width=512, heads=8, kv_heads=4, mlp_mult=3, vocab=8192, seq_len=2048, stride=64,
               targets=1 << 18)
TINY = Shape(layers=2, width=64, heads=4, kv_heads=2, mlp_mult=2, vocab=256, seq_len=128, stride=32, targets=4096)


# ---------------------------------------------------------------- the record-shaped model

class Block(nn.Module):
    def __init__(self, s: Shape):
        super().__init__()
        self.s = s
        hd = s.width // s.heads
        self.q = nn.Linear(s.width, s.width, bias=False)
        self.kv = nn.Linear(s.width, 2 * hd * s.kv_heads, bias=False)
        self.out = nn.Linear(s.width, s.width, bias=False)
        self.up = nn.Linear(s.width, s.mlp_mult * s.width, bias=False)
        self.down = nn.Linear(s.mlp_mult * s.width, s.width, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        s, (b, t, d) = self.s, x.shape
        hd = d // s.heads
        h = F.rms_norm(x, (d,))
        q = self.q(h).view(b, t, s.heads, hd).transpose(1, 2)
        k, v = self.kv(h).view(b, t, 2, s.kv_heads, hd).permute(2, 0, 3, 1, 4)
        q, k = rope(F.rms_norm(q, (hd,)), cos, sin), rope(F.rms_norm(k, (hd,)), cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.out(y.transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.relu(self.up(F.rms_norm(x, (d,)))).square())


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat([a * cos + b * sin, b * cos - a * sin], dim=-1)


class RecordGPT(nn.Module):
    """Tied embeddings, RMSNorm, RoPE, grouped-query attention, relu^2 MLP, logit soft-cap 30."""

    def __init__(self, s: Shape):
        super().__init__()
        self.s = s
        self.emb = nn.Embedding(s.vocab, s.width)
        nn.init.normal_(self.emb.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(s) for _ in range(s.layers))
        hd = s.width // s.heads
        freq = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.outer(torch.arange(s.seq_len).float(), freq)
        self.register_buffer("cos", ang.cos()[None, None], persistent=False)
        self.register_buffer("sin", ang.sin()[None, None], persistent=False)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        h = self.emb(x)
        cos, sin = self.cos[:, :, :t].to(h.dtype), self.sin[:, :, :t].to(h.dtype)
        for blk in self.blocks:
            h = blk(h, cos, sin)
        logits = F.linear(F.rms_norm(h, (h.shape[-1],)), self.emb.weight)
        return 30.0 * torch.tanh(logits / 30.0)


def record_eval_val_sliding(model: RecordGPT, tokens: torch.Tensor, seq_len: int, stride: int, device,
                            autocast: bool, batch_seqs: int = 32) -> float:
    """The records' ``eval_val_sliding`` loop (nats per scored token): windows of ``seq_len`` every
    ``stride``, 32 a batch, the scored part of each window summed in float64 one window at a time."""
    n = tokens.numel() - 1
    windows, ws = [], 0
    while True:
        end = min(ws + seq_len, n)
        windows.append((ws, 0 if ws == 0 else seq_len - stride, end - ws))
        if end >= n:
            break
        ws += stride
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    count = 0
    with torch.inference_mode():
        for bi in range(0, len(windows), batch_seqs):
            batch = windows[bi: bi + batch_seqs]
            x = torch.zeros(len(batch), seq_len, dtype=torch.int64, device=device)
            y = torch.zeros(len(batch), seq_len, dtype=torch.int64, device=device)
            for i, (ws, _, wlen) in enumerate(batch):
                chunk = tokens[ws: ws + wlen + 1].to(device)
                x[i, :wlen], y[i, :wlen] = chunk[:-1], chunk[1:]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                logits = model.forward_logits(x)
            nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
            nll = nll.view(len(batch), seq_len)
            for i, (ws, s, wlen) in enumerate(batch):
                loss_sum += nll[i, s:wlen].to(torch.float64).sum()
                count += wlen - s
    return float(loss_sum) / count


# ---------------------------------------------------------------- the checks

class Checks:
    def __init__(self) -> None:
        self.failed = 0

    def line(self, name: str, ok: bool, text: str) -> None:
        self.failed += not ok
        print(f"{name:<24} {'ok' if ok else 'FAIL':<4}  {text}", flush=True)

    def guarded(self, name: str, fn) -> None:
        """Run one check; an exception is that check's FAIL, never a skip."""
        try:
            fn()
        except Exception as e:
            if os.environ.get("GOLF_AUDIT_DEBUG"):
                traceback.print_exc()
            self.line(name, False, f"could not run: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")


def cli(*args: str, timeout: float = 900) -> tuple[dict, int, str]:
    """Run golf-audit with --format json; (report, exit code, stderr's last line)."""
    proc = subprocess.run([sys.executable, "-m", "cli", *args, "--format", "json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    err = (proc.stderr.strip().splitlines() or [""])[-1]
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        report = {}
    return report, proc.returncode, err


def reproduce(name: str, device: str, *extra: str) -> tuple[dict, int, str]:
    return cli("reproduce", f"submissions/{name}", "--device", device,
               "--max-tokens", str(PREFIX.get(name, DEFAULT_PREFIX)), *extra)


def numbers(report: dict) -> dict[str, float]:
    r = report.get("reproduction") or {}
    out = {f"pipeline:{k}": v for k, v in (r.get("pipelines") or {}).items()}
    if r.get("reproduced_bpb") is not None:
        out["as submitted"] = r["reproduced_bpb"]
    return out


def check_repro(checks: Checks, names: list[str], device: str, jobs: int) -> None:
    """Every example on the device and on CPU (CPU runs in parallel with the device runs)."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        ref = {n: pool.submit(reproduce, n, "cpu") for n in names} if device != "cpu" else {}
        on_device = {n: pool.submit(reproduce, n, device) for n in names}
        for n in names:
            name = f"repro[{n}]"
            try:
                rep, rc, err = on_device[n].result()
                cpu_rep, cpu_rc, cpu_err = ref[n].result() if n in ref else (rep, rc, err)
            except Exception as e:
                checks.line(name, False, f"could not run: {type(e).__name__}: {e}")
                continue
            if rc == 2 or cpu_rc == 2 or not numbers(rep) or not numbers(cpu_rep):
                checks.line(name, False, f"{device} exit {rc} ({err}); cpu exit {cpu_rc} ({cpu_err})")
                continue
            ran_on = (rep.get("reproduction") or {}).get("device") or "unknown"
            if not ran_on.startswith(device):  # a run that fell back to another device is not this check
                checks.line(name, False, f"asked for {device}, the model was scored on {ran_on}")
                continue
            a, b = numbers(rep), numbers(cpu_rep)
            common = sorted(set(a) & set(b))
            worst = max(abs(a[k] - b[k]) for k in common)
            same = set(a) == set(b) and rc == cpu_rc and worst <= REPRO_TOLERANCE
            checks.line(name, same, f"{device} {a['as submitted' if 'as submitted' in a else common[0]]:.8f} "
                                    f"cpu {b['as submitted' if 'as submitted' in b else common[0]]:.8f} "
                                    f"max|delta| {worst:.1e} over {len(common)} numbers (<= {REPRO_TOLERANCE:g}) "
                                    f"exit {rc}/{cpu_rc}" + ("" if device != "cpu" else " (cpu: one run)"))


def check_probe(checks: Checks, device: str) -> None:
    rep, rc, err = cli("probe", f"submissions/{PROBE_EXAMPLE}", "--device", device, "--replay", PROBE_REPLAY)
    status = {p["probe"]: p["status"] for p in rep.get("probes") or []}
    ok = rc == 1 and status.get("normalization") == "fail"
    checks.line("probe[normalization]", ok,
                f"{PROBE_EXAMPLE} in the {device} sandbox: normalization {status.get('normalization', '-')} "
                f"(expected fail), exit {rc}{'' if rc != 2 else f' ({err})'}; the probes' eval runs on cpu")


def check_torchrun(checks: Checks, device: str) -> None:
    rep, rc, err = reproduce(TORCHRUN_EXAMPLE, device, "--nproc", "2")
    r = rep.get("reproduction") or {}
    one = r.get("single_process") or {}
    if rc == 2 or not one:
        checks.line("torchrun[2v1]", False, f"exit {rc} ({err})")
        return
    m2, m1 = r["pipelines"]["model"], one["pipelines"]["model"]
    t2, own2 = r["pipelines"].get("tilt", math.nan), r.get("reproduced_bpb", math.nan)
    # The example keeps its tilt's tables per rank: REPRO004 must say its score moves with the ranks.
    repro004 = [f["data"]["nproc"] for f in rep.get("findings") or [] if f["rule"] == "REPRO004"]
    ok = (abs(m2 - m1) <= TORCHRUN_TOLERANCE and abs(t2 - own2) <= TORCHRUN_TOLERANCE
          and r.get("explained_by") == "tilt" and r.get("nproc") == 2 and repro004 == [2] and rc == 0)
    checks.line("torchrun[2v1]", ok, f"{TORCHRUN_EXAMPLE} {r.get('backend')}: model 2 ranks {m2:.8f} 1 rank {m1:.8f}; "
                                     f"per-rank tilt ours {t2:.8f} own {own2:.8f} (<= {TORCHRUN_TOLERANCE:g}); "
                                     f"1-rank tilt {one['pipelines'].get('tilt', math.nan):.8f}, REPRO004 "
                                     f"{'for ' + str(repro004) + ' ranks' if repro004 else 'missing'}, exit {rc}")


def check_speed(checks: Checks, device: str, shape: Shape, batches: list[int], peak_tflops: float,
                require_goal: bool) -> None:
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA is not available")
    bf16 = dev.type == "cuda"
    if not bf16:  # the tiny CPU shape: one thread (OpenMP threads spin against other load on shared cores)
        torch.set_num_threads(1)
    torch.manual_seed(0)
    model = RecordGPT(shape).to(dev).eval()
    if bf16:
        model = model.bfloat16()
    rng = np.random.default_rng(0)
    tokens = torch.as_tensor(rng.integers(0, shape.vocab, shape.targets + 1), dtype=torch.int64)
    windows = sliding_windows(shape.targets, shape.seq_len, shape.stride)
    flops = sum(shape.window_flops(int(length)) for length in windows[:, 2])

    def fn(x):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            return model.forward_logits(x)

    def timed(run):
        run(warm=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = run(warm=False)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return out, time.perf_counter() - t0

    warm_len = min(shape.targets, 8 * shape.seq_len)
    theirs, t_rec = timed(lambda warm: record_eval_val_sliding(
        model, tokens[: warm_len + 1] if warm else tokens, shape.seq_len, shape.stride, dev, bf16))
    peak = peak_tflops * 1e12
    for b in batches:
        res, t_ours = timed(lambda warm: evaluate_sliding(
            fn, tokens[: warm_len + 1] if warm else tokens, shape.seq_len, shape.stride, batch_windows=b, device=dev))
        ours = float(res.score.total_nll) / int(res.score.count.sum())
        tol = 1e-3 if bf16 else 1e-6
        ratio = t_rec / t_ours
        mfu_ours, mfu_rec = flops / t_ours / peak, flops / t_rec / peak
        goal = ratio >= GOAL_RATIO and mfu_ours >= GOAL_MFU
        ok = abs(ours - theirs) <= tol and (goal or not require_goal)
        checks.line(f"speed[batch={b}]", ok,
                    f"{shape.layers}L d{shape.width} V{shape.vocab} T{shape.seq_len} s{shape.stride} "
                    f"{'bf16' if bf16 else 'fp32'} {shape.targets} targets: record {shape.targets / t_rec / 1e6:.3f} "
                    f"M tok/s ({mfu_rec:.1%} MFU), ours {shape.targets / t_ours / 1e6:.3f} M tok/s ({mfu_ours:.1%} MFU), "
                    f"{ratio:.2f}x; nats/token {ours:.6f} vs {theirs:.6f} (<= {tol:g}); head {res.head}; "
                    f"goal {GOAL_RATIO:g}x and {GOAL_MFU:.0%} MFU {'met' if goal else 'not met'} "
                    f"(peak {peak_tflops:g} TFLOP/s)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--examples", nargs="*", help="bundled examples to reproduce (default: all on cuda, "
                                                  "legal_sliding on cpu)")
    ap.add_argument("--peak-tflops", type=float, default=H200_BF16_TFLOPS, help="the GPU's dense bf16 peak, for MFU")
    ap.add_argument("--targets", type=int, help="length of the speed check's synthetic stream")
    ap.add_argument("--batches", type=int, nargs="*", help="our evaluator's windows per batch (default: 32 256 on cuda)")
    ap.add_argument("--jobs", type=int, default=max(1, min(8, (os.cpu_count() or 2) // 2)),
                    help="reproductions run at once")
    ap.add_argument("--require-goal", action="store_true", help="fail the speed lines below the 4x / 50%% MFU goal")
    ap.add_argument("--only", nargs="*", choices=["repro", "probe", "torchrun", "speed"], help="run these checks only")
    a = ap.parse_args(argv)
    cuda = a.device == "cuda"
    shape = RECORD if cuda else TINY
    if a.targets:
        shape = Shape(**{**shape.__dict__, "targets": a.targets})
    names = a.examples if a.examples is not None else (sorted(EXAMPLES) if cuda else ["legal_sliding"])
    only = set(a.only or ["repro", "probe", "torchrun", "speed"])
    checks = Checks()
    t0 = time.perf_counter()
    print(f"golf-audit GPU check: device {a.device}"
          + (f" ({torch.cuda.get_device_name(0)})" if cuda and torch.cuda.is_available() else ""), flush=True)
    if cuda and not torch.cuda.is_available():
        checks.line("cuda", False, "torch.cuda.is_available() is False: no device, driver or CUDA build of torch")
    if "repro" in only:
        checks.guarded("repro", lambda: check_repro(checks, names, a.device, a.jobs))
    if "probe" in only:
        checks.guarded("probe[normalization]", lambda: check_probe(checks, a.device))
    if "torchrun" in only:
        checks.guarded("torchrun[2v1]", lambda: check_torchrun(checks, a.device))
    if "speed" in only:
        checks.guarded("speed", lambda: check_speed(checks, a.device, shape, a.batches or ([32, 256] if cuda else [32]),
                                                    a.peak_tflops, a.require_goal))
    print(f"{'total':<24} {'ok' if not checks.failed else 'FAIL':<4}  {checks.failed} failed, "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
