"""Driver functions run inside the sandboxed child (``run_sandboxed("harness.drivers:NAME", args)``).

They import the submission (harness/loader.py), build its model (harness/model_build.py) and
return plain data: numbers and numpy arrays. Nothing here runs in the auditing process.
"""

from __future__ import annotations

import time

import numpy as np


def _prepare(args: dict):
    """Import the submission and construct its model as main() does; returns (module, model, hparams, info)."""
    from harness import model_build
    from harness.loader import import_submission, read_source

    env = dict(args.get("env") or {})
    if args.get("small"):
        env = {**model_build.SMALL_ENV, **env}
    source, layers = read_source(args["entry"])
    construction = model_build.find_construction(source)
    t0 = time.perf_counter()
    module = import_submission(args["entry"], env=env, autocast_on_cpu=args.get("autocast_on_cpu", True))
    from harness import shims

    device = args.get("device", "cpu")
    model, hparams = model_build.construct(module, construction, device=device)
    info = {
        "autocast_bf16": model_build.uses_bf16_autocast(source),
        "construction": construction.describe(),
        "model_class": construction.callee,
        "wrapper_layers": layers,
        "import_s": time.perf_counter() - t0,
        "logits_from": "forward_logits" if callable(getattr(model, "forward_logits", None)) else "forward (loss input)",
        "shims": sorted(k for k, m in __import__("sys").modules.items() if vars(m).get("__golf_audit_shim__")),
        "params": int(sum(p.numel() for p in model.parameters())),
    }
    del shims
    return module, model, hparams, info


def forward_check(args: dict) -> dict:
    """Import, build (optionally with small dims) and run one forward on random tokens."""
    import torch

    from harness.model_build import logits_fn

    module, model, hparams, info = _prepare(args)
    vocab = int(getattr(hparams, "vocab_size", 0) or args.get("vocab_size") or 1024)
    seq = int(args.get("seq_len", 32))
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (2, seq), generator=gen)
    model.eval()
    with torch.inference_mode():
        logits = logits_fn(model, autocast=info["autocast_bf16"])(x)
    info.update(vocab_size=vocab, logits_shape=list(logits.shape), finite=bool(torch.isfinite(logits).all()))
    return info
