"""Benchmark: the counterfactual sweep batched in one sandboxed run vs V separate runs.

    python benchmarks/bench_sweep.py [SUBMISSION] [--vocab 1024] [--length 512] [--sample 3]

The normalization probe needs NLL_t(v) for every v of the vocabulary. Batched: the V streams
(prefix cut right after the probed token) go to one sandboxed child, which imports the
submission and builds its model once and serves the shared prefix's model forwards from a
cache (the weights are unchanged and the inputs identical; x_t is only a target). Separate: each
v is its own sandboxed run of the whole stream, as a driver without batching would do; it is
timed on ``--sample`` values and scaled to V. Prints both and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checks.probes.streams import make_stream  # noqa: E402
from harness.submission import load_submission  # noqa: E402
from harness.remote_pipeline import SandboxedSubmissionScorer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("submission", nargs="?", default="submissions/legal_sliding")
    ap.add_argument("--vocab", type=int, default=1024, help="V: vocabulary swept (the model is built with it)")
    ap.add_argument("--length", type=int, default=512, help="stream length of a full run")
    ap.add_argument("--sample", type=int, default=3, help="separate runs actually timed")
    a = ap.parse_args()

    sub = load_submission(a.submission)
    scorer = SandboxedSubmissionScorer(sub, env={"VOCAB_SIZE": str(a.vocab)})
    stream = make_stream(0, a.length, a.vocab)
    t = a.length // 2

    t0 = time.perf_counter()
    swept = scorer.score_many([np.concatenate([stream[: t + 1], [v]]) for v in range(a.vocab)])
    batched = time.perf_counter() - t0
    total_p = float(np.exp(-np.array([r.nll[t] for r in swept])).sum())
    inside = scorer.last

    times = []
    for v in range(a.sample):
        s = stream.copy()
        s[t + 1] = v
        t1 = time.perf_counter()
        scorer.score(s)
        times.append(time.perf_counter() - t1)
    separate = float(np.mean(times)) * a.vocab

    print(f"submission: {a.submission} (entry {inside.get('entry')}), V={a.vocab}, probed position {t} of {a.length}")
    print(f"batched: {batched:.1f} s for {a.vocab} streams in one sandboxed run "
          f"(setup {inside.get('setup_s', 0):.1f} s, scoring {inside.get('score_s', 0):.1f} s, "
          f"{inside.get('forwards')} model forwards); sum_v p = {total_p:.6f}")
    print(f"separate: {np.mean(times):.2f} s per run x {a.vocab} = {separate:.0f} s (timed on {a.sample} runs)")
    print(f"speedup: {separate / batched:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
