"""Records table: for each submission folder of a Parameter Golf checkout, does its code import
through our loader (CPU shims, unwrapped self-extracting wrappers), does main()'s model construct
with small dims, and does a forward give finite logits? Prints a Markdown table.

    python benchmarks/records_forward.py PATH/TO/parameter-golf/records [--timeout 300] [--python EXE]

Nothing is copied from the checkout; each folder runs in the sandbox (harness.drivers:forward_check).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.sandbox import Limits, run_sandboxed  # noqa: E402


def entry_of(folder: Path) -> Path | None:
    for name in ("train_gpt.py", *sorted(p.name for p in folder.glob("train_gpt*.py"))):
        if (folder / name).is_file():
            return folder / name
    others = sorted(p for p in folder.glob("train*.py") if p.is_file())  # train_mdlm.py, ...
    return others[0] if len(others) == 1 else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("records")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--python")
    ap.add_argument("--only", nargs="*", help="folder names (or parts of them) to run")
    a = ap.parse_args()
    folders = sorted(p for p in Path(a.records).glob("*/*") if p.is_dir())
    if a.only:
        folders = [p for p in folders if any(o in p.name for o in a.only)]
    print("| record | import + build + forward | model | eval functions | shims | note |")
    print("|---|---|---|---|---|---|")
    ok = no_code = gpu_only = 0
    for folder in folders:
        entry = entry_of(folder)
        name = f"{folder.parent.name}/{folder.name}"
        if entry is None:
            files = ", ".join(sorted(p.name for p in folder.iterdir()))[:120]
            print(f"| {name} | no | | | | no training script (folder has: {files}) |")
            no_code += 1
            continue
        t0 = time.perf_counter()
        r = run_sandboxed("harness.drivers:forward_check",
                          {"entry": f"$SUBMISSION/{entry.name}", "small": True, "seq_len": 32},
                          copy_dir=folder, python=a.python, limits=Limits(wall_seconds=a.timeout))
        dt = time.perf_counter() - t0
        if r.ok and r.value.get("finite"):
            ok += 1
            v = r.value
            note = f"{v['params']} params, logits {v['logits_shape']} via {v['logits_from']}, {dt:.0f} s" + (
                f", {v['wrapper_layers']} wrapper layer(s)" if v.get("wrapper_layers") else "") + (
                f", {v['fstrings_downlevelled']} Python 3.12 f-string(s) down-levelled"
                if v.get("fstrings_downlevelled") else "") + (
                f", own depth (2 layers rejected: {v['own_depth']})" if v.get("own_depth") else "") + (
                f"; non-autoregressive: {v['non_autoregressive']}" if v.get("non_autoregressive") else "")
            print(f"| {name} | yes | {v['model_class']} | {', '.join(v.get('eval_functions', [])) or '-'} | "
                  f"{', '.join(sorted({s.split('.')[0] for s in v['shims']})) or '-'} | {note} |")
        else:
            err = (r.error or "non-finite logits").replace("|", "/")[:200]
            if "the script is empty" in err:
                no_code += 1
            gpu_only += "needs GPU" in err
            print(f"| {name} | no | | | | {err} |")
        sys.stdout.flush()
    print(f"\n{ok} of {len(folders)} folders import, build and run a forward on CPU; "
          f"{no_code} have no code, {gpu_only} need GPU-only kernels (no PyTorch path); "
          f"{len(folders) - no_code - gpu_only - ok} other failures")


if __name__ == "__main__":
    main()
