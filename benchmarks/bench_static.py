"""Cost of the static check against plain parsing, on a tree of submissions (e.g. a checkout of
openai/parameter-golf's ``records/``).

    python benchmarks/bench_static.py TREE [--jobs 2]

Measures, in one run: (1) ``libcst.parse_module`` of every Python source the check reads (the
unpacked code of self-extracting wrappers, as the check parses it), one process; (2) a cold check
of every submission folder (parse, analysis, rules; ``--jobs`` processes, empty cache); (3) a warm
rescan (same folders, cache filled). Prints the times and the ratios cold/parse and warm/parse.

The goal (cold <= 1.0x) is on wall-clock time with ``--jobs`` processes against a one-process parse,
so it assumes ``--jobs`` free cores: on a machine that other work keeps busy, the processes do not run
side by side and the wall ratio says little. The CPU seconds of both (every process of the check
counted) are printed as well; they do not depend on the load.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reports.commands import find_submissions  # noqa: E402
from checks.static import engine  # noqa: E402
from harness.submission import load_submission  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tree", help="folder of submissions, e.g. a checkout of openai/parameter-golf's records/")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    folders = find_submissions([args.tree])
    sources = []
    for f in folders:
        sub = load_submission(f)
        srcs, _ = engine.read_sources(sub.root, sub.sources)
        sources += [s.text for s in srcs]
    nbytes = sum(len(s.encode()) for s in sources)
    print(f"{len(folders)} submission folders, {len(sources)} Python sources, {nbytes / 1e6:.1f} MB parsed")

    t, c = time.perf_counter(), time.process_time()
    for text in sources:
        try:
            engine.parse(text)
        except Exception:  # noqa: BLE001 - a file the check also cannot parse
            pass
    parse_s, parse_cpu = time.perf_counter() - t, time.process_time() - c

    cache = Path(tempfile.mkdtemp(prefix="golf-audit-bench-"))
    os.environ["GOLF_AUDIT_CACHE"] = str(cache)
    try:
        t, c, kids = time.perf_counter(), time.process_time(), _children_cpu()
        cold = engine.check_many(folders, jobs=args.jobs)
        cold_s = time.perf_counter() - t
        cold_cpu = time.process_time() - c + _children_cpu() - kids  # the pool's processes have exited
        t = time.perf_counter()
        warm = engine.check_many(folders, jobs=args.jobs)
        warm_s = time.perf_counter() - t
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    assert warm == cold, "a warm rescan must give the cold results"
    findings = sum(len(v[0]) for v in cold.values())
    print(f"plain libcst.parse_module, 1 process : {parse_s:7.2f} s")
    print(f"cold check, {args.jobs} processes        : {cold_s:7.2f} s  ({findings} findings)")
    print(f"warm rescan, {args.jobs} processes       : {warm_s:7.2f} s")
    print(f"ratio cold/parse: {cold_s / parse_s:.2f}x (goal <= 1.0x)   ratio warm/parse: {warm_s / parse_s:.3f}x (goal <= 0.1x)")
    print(f"CPU seconds: parse {parse_cpu:.2f}, cold check {cold_cpu:.2f} (all processes): {cold_cpu / parse_cpu:.2f}x; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


if __name__ == "__main__":
    sys.exit(main())
