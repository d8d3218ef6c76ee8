"""Driver functions run inside the sandboxed child (``run_sandboxed("harness.drivers:NAME", args)``).

They import the submission (harness/loader.py), build its model (harness/model_build.py) and
return plain data: numbers and numpy arrays. Nothing here runs in the auditing process.
"""

from __future__ import annotations

import time

import numpy as np


# Small-dims keys that fix the depth: a record whose hyperparameters name layer indices (recurrence
# of layers 4,5, a parallel start layer) rejects a 2-layer model; it is rebuilt at its own depth.
DEPTH_KEYS = ("NUM_LAYERS",)


def _prepare(args: dict):
    """Import the submission and construct its model as main() does; returns (module, model, hparams, info)."""
    import os

    from harness import model_build
    from harness.loader import import_submission, read_source

    env = dict(args.get("env") or {})
    small = bool(args.get("small"))
    if small:
        env = {**model_build.SMALL_ENV, **env}
    source, layers = read_source(args["entry"])
    construction = model_build.find_construction(source)
    t0 = time.perf_counter()
    load_notes: dict = {}
    device = args.get("device", "cpu")
    own_depth = None

    def build():
        module = import_submission(args["entry"], env=env, launch_env=args.get("launch_env"),
                                   autocast_on_cpu=args.get("autocast_on_cpu", True), notes=load_notes)
        return (module, *model_build.construct(module, construction, device=device))

    try:
        module, model, hparams = build()
    except Exception as e:
        reason = model_build.gpu_only_reason(e)
        if reason:
            raise model_build.BuildError(reason) from None
        retry = [k for k in DEPTH_KEYS if k in model_build.SMALL_ENV and k not in (args.get("env") or {})]
        if not small or not retry or isinstance(e, (SyntaxError, ImportError)):
            raise
        own_depth = f"{type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}"
        for k in retry:
            env.pop(k)
            os.environ.pop(k, None)
        module, model, hparams = build()
    from harness import shims

    info = {
        "autocast_bf16": model_build.uses_bf16_autocast(source),
        "construction": construction.describe(),
        "model_class": construction.callee,
        "wrapper_layers": layers,
        "fstrings_downlevelled": load_notes.get("fstrings_downlevelled", 0),
        "own_depth": own_depth,  # why the small depth was rejected (the model was built at its own depth)
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
    fn = logits_fn(model, autocast=info["autocast_bf16"], conditioned=True)
    if getattr(fn, "conditioned_on", None):
        info["logits_from"] = f"forward_logits(x, {', '.join(fn.conditioned_on)}=0.5)"
        info["non_autoregressive"] = (f"forward_logits also takes {', '.join(fn.conditioned_on)} (a diffusion "
                                      "model): no sliding-window eval")
    with torch.inference_mode():
        logits = fn(x)
    info.update(vocab_size=vocab, logits_shape=list(logits.shape), finite=bool(torch.isfinite(logits).all()),
                eval_functions=sorted(k for k, v in vars(module).items() if k.startswith("eval_val") and callable(v)))
    return info


# ------------------------------------------------------------------ reproduction (checks/reproduce.py)

# Names the submission's own dequantizers go by, with how to call them on a decoded artifact.
OWN_DEQUANTIZERS = (
    ("dequantize_mixed_int6", lambda f, obj, tpl: f(obj["w"], obj["m"], tpl)),
    ("dequantize_mixed", lambda f, obj, tpl: f(obj["w"], obj["m"], tpl)),
    ("dequantize_state_dict_int8", lambda f, obj, tpl: f(obj)),
)
# Parameter names of the challenge's eval functions -> what we pass (see _bind_eval).
LUT_NAMES = ("base_bytes_lut", "has_leading_space_lut", "is_boundary_token_lut")


def _state_dict(module, model, artifact: str) -> tuple[dict, dict]:
    """Dequantized weights for ``model``: the submission's own dequantizer when it has one that
    fits the artifact's layout, the built-in loader (harness/artifacts) otherwise."""
    from harness import artifacts

    from harness.artifacts import banks

    obj, info = artifacts.read_artifact(artifact)
    template = model.state_dict()
    layout = artifacts.layout_of(obj)
    info["layout"] = layout
    banked = banks.is_banked(template)
    if banked:
        info["banked"] = sorted(k for k in template if k in banks.BANKS)
    for fname, call in OWN_DEQUANTIZERS:
        f = getattr(module, fname, None)
        fits = (fname == "dequantize_state_dict_int8") == (layout == "int8 per-row (baseline)")
        if callable(f) and fits and layout is not None:
            try:
                if banked:  # the artifact holds per-layer weights: dequantize those, then stack them
                    sd = banks.rebank(call(f, obj, banks.unbank(template)), template)
                else:
                    sd = call(f, obj, template)
                info["dequantizer"] = f"submission's {fname}"
                return sd, info
            except Exception as e:  # the submission's own code failed: fall back to ours
                info["own_dequantizer_error"] = f"{fname}: {type(e).__name__}: {str(e)[:120]}"
    sd = artifacts.dequantize(obj, template, name=artifact)
    info["dequantizer"] = f"built-in ({layout})"
    return sd, info


def _bind_eval(fn, values: dict):
    """Call one of the submission's eval functions with its arguments bound by name."""
    import inspect

    kwargs = {}
    for p in inspect.signature(fn).parameters.values():
        if p.name in values:
            kwargs[p.name] = values[p.name]
        elif p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"{fn.__name__} needs {p.name!r}, which the reproduction cannot supply")
    return fn(**kwargs)


def _world() -> tuple[int, int]:
    """(rank, world size) of this process: torchrun's when the sandbox runs several ranks."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _own_evals(module, model, hparams, sd, tokens_t, luts, device) -> tuple[dict, dict]:
    """Run the submission's own eval code as main() would: ``eval_val_sliding`` and the final
    ``run_final_eval`` (whose log lines are captured), on this rank's share when several ranks
    run. Returns ({label: [val_loss, val_bpb]}, errors)."""
    import re

    import torch

    results, errors = {}, {}
    stride = int(getattr(hparams, "eval_stride", 64) or 64)
    lines: list[str] = []
    rank, world_size = _world()
    values = {"args": hparams, "h": hparams, "hparams": hparams, "base_model": model, "model": model,
              "rank": rank, "world_size": world_size, "device": torch.device(device), "val_tokens": tokens_t,
              "stride": stride, "luts": luts, "log0": lambda msg, console=True: lines.append(str(msg)),
              **dict(zip(LUT_NAMES, luts))}
    for name in ("eval_val_sliding", "run_final_eval"):
        fn = getattr(module, name, None)
        if not callable(fn):
            continue
        model.load_state_dict(sd, strict=True)  # TTT adapts the model in place: start fresh
        model.eval()
        lines.clear()
        try:
            out = _bind_eval(fn, values)
        except Exception as e:
            if world_size > 1:  # the other ranks' collectives would pair with the wrong calls: fail the run
                raise
            errors[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
            continue
        if name == "eval_val_sliding" and isinstance(out, tuple) and len(out) == 2:
            results["eval_val_sliding"] = [float(out[0]), float(out[1])]
        for line in lines:
            m = re.match(r"(\S+?)(?:_exact)? val_loss:(\S+) val_bpb:(\S+)", line)
            if m:
                results[m.group(1)] = [float(m.group(2)), float(m.group(3))]  # the _exact line wins
    return results, errors


def _our_variants(model, hparams, sd, tokens, lut, device, seq_len, stride, autocast) -> dict:
    """Our reference pipelines, configured from the submission's hyperparameters.

    Always the model alone; plus, where the hyperparameters name them, our n-gram cache
    (target-in-key and renormalized), hint tilt (gated on the target's word start and plain) and
    chunked TTT (update-before-score and score-first). Each: val_loss, val_bpb, legal. Under
    several ranks the windows are split between them and the caches kept per rank, as in the
    real run; the chunked TTT is replayed as one stream.
    """
    from harness.caches import HintTilt, NgramCache, replay_per_rank
    from harness.evaluate import evaluate_sliding, score_bpb, sliding_windows, window_segments
    from harness.model_build import logits_fn as make_logits_fn
    from harness.scorer import ScoreResult
    from harness.ttt import ChunkedTTT

    import torch

    def entry(score, legal, what, **cfg):
        loss, bpb = score_bpb(score, tokens, lut)
        return {"val_loss": loss, "val_bpb": bpb, "legal": legal, "what": what, "config": cfg}

    def mixed(base, nll):
        return ScoreResult(nll=nll, count=base.count, total_nll=float(nll.sum()))

    out = {}
    model.load_state_dict(sd, strict=True)
    model.eval()
    fn = make_logits_fn(model, autocast=autocast)
    hp = lambda k, d=None: getattr(hparams, k, d)  # noqa: E731
    world_size = _world()[1]
    n = tokens.size - 1
    windows = sliding_windows(n, seq_len, stride)
    segments = window_segments(windows, n)
    tilt, hint = None, None
    if hp("tilt_order") is not None:
        tilt = HintTilt(int(hp("tilt_order")), int(hp("tilt_buckets", 1 << 18)), float(hp("tilt_beta", 1.5)),
                        int(hp("tilt_min_count", 2)))
        hint, beta = replay_per_rank(lambda s, e, seg, first: tilt.hints(tokens[s: e + 1], seg, first=first),
                                     segments, windows, world_size, tilt.order)
    t0 = time.perf_counter()
    base = evaluate_sliding(fn, tokens, seq_len, stride, device=device, extra_ids=hint)
    out["model"] = entry(base.score, True, "model alone, sliding windows, every target once", seq_len=seq_len, stride=stride)
    out["model"]["eval_s"] = time.perf_counter() - t0
    out["model"]["logits"] = base.head
    if hp("ngram_order") is not None:
        cfg = dict(order=int(hp("ngram_order")), buckets=int(hp("ngram_buckets", 1 << 20)),
                   alpha=float(hp("ngram_alpha", 0.4)), min_count=int(hp("ngram_min_count", 2)))
        for variant, legal in (("target-in-key", False), ("renormalized", True)):
            cache = NgramCache(**cfg, variant=variant)
            nll = replay_per_rank(lambda s, e, seg, first: cache.mix(tokens[s: e + 1], base.score.nll[s:e], seg,
                                                                      lut.base_bytes.size, first=first),
                                  base.segment, windows, world_size, cache.order)
            out[f"ngram_{variant}"] = entry(mixed(base.score, nll), legal, f"order-{cfg['order']} n-gram cache, {variant}", **cfg)
    if tilt is not None:
        word_start = lut.has_leading_space[tokens[1:]]
        cfg = dict(order=tilt.order, buckets=tilt.buckets, beta=tilt.beta, min_count=tilt.min_count)
        for gate, legal in (("word-start", False), (None, True)):
            tilt.gate = gate
            nll = tilt.mix(tokens, base.score.nll, base.extra_logp, hint, beta, word_start)
            key = "tilt_target_gated" if gate else "tilt"
            out[key] = entry(mixed(base.score, nll), legal, "hint tilt" + (" gated on the target's word start" if gate else ", renormalized"), **cfg)
    if hp("ttt_chunk_tokens") is not None:
        cfg = dict(chunk_tokens=int(hp("ttt_chunk_tokens")), lr=float(hp("ttt_lr", 3e-3)),
                   epochs=int(hp("ttt_epochs", 1)), batch_seqs=int(hp("ttt_batch_seqs", 8)))
        for first, legal in ((False, False), (True, True)):
            model.load_state_dict(sd, strict=True)
            ttt = ChunkedTTT(**cfg, score_first=first)
            r = ttt.run(model, fn, lambda x, y: model(x, y), tokens, seq_len, stride, device=device)
            out["ttt_score_first" if first else "ttt_update_before_score"] = entry(
                r.score, legal, "chunked TTT (SGD), " + ("score-first" if first else "update-before-score"), **cfg)
    return out


def reproduce_eval(args: dict) -> dict:
    """Load the artifact into the submission's model; run its own evals and our reference pipelines.

    args: entry, artifact, val (glob), tokenizer, max_tokens, device, own (run the submission's
    own eval functions), ours (run our pipelines).
    """
    import torch

    from harness.shards import load_tokens
    from harness.tokenbytes import ByteLUT

    import os

    from harness.launch import TORCHRUN_VARS

    rank, world_size = _world()
    if world_size > 1:  # the launch's own torchrun variables give way to those of this world's ranks
        args = {**args, "launch_env": {**(args.get("launch_env") or {}),
                                       **{k: os.environ[k] for k in TORCHRUN_VARS if k in os.environ}}}
    module, model, hparams, info = _prepare(args)
    device = args.get("device", "cpu")
    sd, art = _state_dict(module, model, args["artifact"])
    model.load_state_dict(sd, strict=True)
    seq_len = int(getattr(hparams, "train_seq_len", 0) or getattr(hparams, "eval_seq_len", 0) or 1024)
    stride = int(getattr(hparams, "eval_stride", 64) or 64)
    tokens = load_tokens(args["val"]).astype(np.int64)
    usable = ((tokens.size - 1) // seq_len) * seq_len  # the challenge's load_validation_tokens
    tokens = tokens[: usable + 1]
    if args.get("max_tokens"):
        tokens = tokens[: int(args["max_tokens"]) + 1]
    vocab = int(getattr(hparams, "vocab_size", 0) or 0) or None
    lut = ByteLUT.from_file(args["tokenizer"], vocab)
    luts = (torch.as_tensor(lut.base_bytes, device=device), torch.as_tensor(lut.has_leading_space, device=device),
            torch.as_tensor(lut.is_boundary, device=device))
    result = {"info": info, "artifact": art, "seq_len": seq_len, "stride": stride, "tokens": int(tokens.size - 1),
              "world_size": world_size, "device": str(next(model.parameters()).device)}
    if world_size > 1:
        import torch.distributed as dist

        result["backend"] = dist.get_backend()
    if args.get("ours", True):
        t0 = time.perf_counter()
        result["ours"] = _our_variants(model, hparams, sd, tokens, lut, device, seq_len, stride,
                                         bool(info["autocast_bf16"]))
        result["ours_s"] = time.perf_counter() - t0
    if args.get("own", True):
        t0 = time.perf_counter()
        result["own"], result["own_errors"] = _own_evals(module, model, hparams, sd, torch.as_tensor(tokens),
                                                         luts, device)
        result["own_s"] = time.perf_counter() - t0
    return result


def bench_eval(args: dict) -> dict:
    """Time the submission's own ``eval_val_sliding`` and our evaluator on the same model, tokens
    and threads, in this one process (benchmarks/bench_eval.py). Seconds and both BPBs."""
    import torch

    from harness.evaluate import evaluate_sliding, score_bpb
    from harness.model_build import logits_fn
    from harness.shards import load_tokens
    from harness.tokenbytes import ByteLUT

    module, model, hparams, info = _prepare(args)
    sd, _ = _state_dict(module, model, args["artifact"])
    model.load_state_dict(sd, strict=True)
    model.eval()
    seq_len, stride = int(hparams.train_seq_len), int(getattr(hparams, "eval_stride", 64))
    tokens = load_tokens(args["val"]).astype(np.int64)
    tokens = tokens[: ((tokens.size - 1) // seq_len) * seq_len + 1][: int(args.get("max_tokens") or 1 << 62) + 1]
    lut = ByteLUT.from_file(args["tokenizer"], int(hparams.vocab_size))
    luts = tuple(torch.as_tensor(t) for t in (lut.base_bytes, lut.has_leading_space, lut.is_boundary))
    out = {"tokens": int(tokens.size - 1), "threads": torch.get_num_threads()}
    for rep in range(int(args.get("repeats", 1))):
        t0, c0 = time.perf_counter(), time.process_time()
        theirs = module.eval_val_sliding(hparams, model, 0, 1, torch.device("cpu"), torch.as_tensor(tokens), *luts,
                                         stride=stride)
        t1, c1 = time.perf_counter(), time.process_time()
        r = evaluate_sliding(logits_fn(model, autocast=info["autocast_bf16"]), tokens, seq_len, stride)
        t2, c2 = time.perf_counter(), time.process_time()
        out.setdefault("own_s", []).append(t1 - t0)
        out.setdefault("ours_s", []).append(t2 - t1)
        # CPU seconds of the process: less sensitive than wall time to other load on shared cores.
        out.setdefault("own_cpu_s", []).append(c1 - c0)
        out.setdefault("ours_cpu_s", []).append(c2 - c1)
    out["own_bpb"], out["ours_bpb"] = float(theirs[1]), score_bpb(r.score, tokens, lut)[1]
    out["head"] = r.head
    return out
