"""Our sliding-window evaluator vs a bundled example's own eval_val_sliding, same model, same
tokens, same process (sandboxed) and threads; prints both BPBs and the speed ratio.

    python benchmarks/bench_eval.py [--example legal_sliding] [--max-tokens N] [--repeats 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.sandbox import Limits, run_sandboxed  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--example", default="legal_sliding")
    ap.add_argument("--max-tokens", type=int)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    data = ROOT / "submissions" / "data"
    args = {"entry": "$SUBMISSION/train_gpt.py", "artifact": "$SUBMISSION/final_model.int6.ptz",
            "val": str(data / "datasets" / "kjv_sp1024" / "kjv_val_*.bin"),
            "tokenizer": str(data / "tokenizers" / "kjv_1024_bpe.model"), "max_tokens": a.max_tokens, "repeats": a.repeats}
    r = run_sandboxed("harness.drivers:bench_eval", args, copy_dir=ROOT / "submissions" / a.example, readable=[data],
                      limits=Limits(threads=a.threads, wall_seconds=3600))
    if not r.ok:
        sys.exit(f"benchmark failed: {r.error}")
    v = r.value
    own, ours = min(v["own_s"]), min(v["ours_s"])
    own_cpu, ours_cpu = min(v["own_cpu_s"]), min(v["ours_cpu_s"])
    print(f"example {a.example}: {v['tokens']} tokens, {v['threads']} threads, best of {a.repeats} (wall, CPU seconds)")
    print(f"  own eval_val_sliding: {own:8.2f} s {own_cpu:8.2f} s cpu  val_bpb {v['own_bpb']:.8f}")
    print(f"  our evaluator:        {ours:8.2f} s {ours_cpu:8.2f} s cpu  val_bpb {v['ours_bpb']:.8f}")
    print(f"  our logits: {v['head']}")
    print(f"  |difference| {abs(v['own_bpb'] - v['ours_bpb']):.2e} BPB; speed ratio own/ours = {own / ours:.2f}x "
          f"(CPU time {own_cpu / ours_cpu:.2f}x)")


if __name__ == "__main__":
    main()
