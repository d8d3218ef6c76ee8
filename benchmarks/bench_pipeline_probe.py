"""Benchmark: what the whole-pipeline probe costs per submission (seconds, main() runs) and what it says.

    python benchmarks/bench_pipeline_probe.py [SUBMISSION ...]
    python benchmarks/bench_pipeline_probe.py --corpus PARAMETER_GOLF_GIT [--pr 1735,728 --legal 3]

With no argument it runs on every bundled example (submissions/). Each folder gets the
``whole-pipeline`` probe alone (profile ``default``): a sandboxed call that reads the configuration,
then one sandboxed call per main() run, two of them (three when a score or a weight moved, to
confirm it is not noise). Printed per folder: status, family, the main() runs, the probe's wall
seconds (all sandbox calls, with the imports and the configuration call) in all and per run, and
the reason when main() could not be driven (reports carry no timings). ``--corpus`` runs it on real folders of the labelled corpus
(benchmarks/corpus.tsv, written out as bench_verdicts.py does): the rows of the PRs in ``--pr``
and the first ``--legal`` merged records.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_verdicts import CORPUS, cache_root, materialise, parse_corpus  # noqa: E402
from checks.parts import AuditOptions, run_parts  # noqa: E402
from checks.probes import whole_pipeline  # noqa: E402
from harness.submission import load_submission  # noqa: E402
from reports.model import Report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FLAGGED = "1735,1738,1972,728,846,870"


def measure(path: str, label: str) -> dict:
    report = Report(submission=path)
    opts = AuditOptions(command="probe", profile="default", extra={"probes": [whole_pipeline.NAME]})
    t0 = time.perf_counter()
    run_parts(load_submission(path), opts, ["probes"], report)
    wall = time.perf_counter() - t0
    r = next((p for p in report.probes if p.probe == whole_pipeline.NAME), None)
    if r is None:
        return {"label": label, "status": "error", "wall": wall, "why": report.error or "no result"}
    runs = r.data.get("main_runs", 0)
    why = r.detail if r.status == "could-not-run" else ""
    if r.status == "fail":
        c = r.counterexample
        why = f"t={c['changed_index']} of {c['stream_length']}: {c['tensors_changed']} weight tensors moved"
        if "largest_moved" in c:
            why += (f", position {c['largest_moved']} moved {c['nll_diff']:+.3g} nats "
                    f"({c['positions_moved']} moved)")
    return {"label": label, "status": r.status, "family": r.family if r.status == "fail" else "", "runs": runs,
            "wall": wall, "why": why}


def print_row(m: dict) -> None:
    runs = m.get("runs", 0)
    per_run = f"{m['wall'] / runs:.1f}" if runs else "-"
    print(f"{m['label'][:58]:58s} {m['status']:13s} {m.get('family', ''):21s} {runs:>4d} "
          f"{per_run:>9s} {m['wall']:7.1f}  {m['why'][:160]}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("submissions", nargs="*", help="folders (default: every bundled example)")
    ap.add_argument("--corpus", metavar="PARAMETER_GOLF_GIT", help="clone or bare mirror of openai/parameter-golf")
    ap.add_argument("--pr", default=FLAGGED, help=f"corpus PRs to run (default {FLAGGED})")
    ap.add_argument("--legal", type=int, default=3, help="merged records (status R) to run as well")
    a = ap.parse_args()

    folders: list[tuple[str, str]] = []
    if a.corpus:
        entries = parse_corpus(CORPUS.read_text())
        wanted = set(a.pr.split(",")) if a.pr else set()
        picked = [e for e in entries if e.pr in wanted] + [e for e in entries if e.status == "R"][: a.legal]
        for e in picked:
            m = materialise(a.corpus, e, cache_root())
            label = f"{e.label} [{','.join(sorted(e.expected)) or 'legal'}]"
            if m.path is None:
                print(f"{label}: {m.error}")
                continue
            folders.append((str(m.path), label))
    else:
        paths = a.submissions or sorted(str(p) for p in (ROOT / "submissions").iterdir()
                                        if (p / "train_gpt.py").is_file())
        folders = [(p, Path(p).name) for p in paths]
    print(f"{'submission':58s} {'status':13s} {'family':21s} {'runs':>4s} {'wall/run':>9s} {'wall s':>7s}  detail")
    for path, label in folders:
        print_row(measure(path, label))
    return 0


if __name__ == "__main__":
    sys.exit(main())
