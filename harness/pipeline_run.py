"""The submission's own main() on generated data, its final eval captured (sandboxed child only).

``run_pipeline`` is the driver. It writes train and val shards in the challenge's format
(harness/shards.py) and a sentencepiece tokenizer where the submission's Hyperparameters look for
them, imports the submission under the launch's env with small dims and a few training steps
(``PIPELINE_ENV``), and calls ``main()`` once per val stream: the same seeds each time, one
thread, on the CPU (CUDA answered by it, harness/cuda_on_cpu.py, where there is none). Every eval
entry point (the ones harness/submission_scorer.py finds) is replaced for the duration by a hook
that runs it on the arguments main() gives it, with the model's logits tagged by stream position
(``MainEval``: the scorer's capture, the stream set to the val tokens main() loaded); the final
eval is the last one main() calls. Each run returns the per-position NLL of that final eval and a fingerprint of the
weights it started from, so the caller can tell what moved: the weights before the eval started,
or only the eval's own state.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import inspect
import os
import random
import re
import shutil
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from harness import capture, model_build
from harness.cuda_on_cpu import cuda_as_cpu
from harness.drivers import DEPTH_KEYS
from harness.loader import import_submission, parsable_source, read_source
from harness.shards import mark_documents, write_shard
from harness.entry_points import HPARAM_PARAMS, MODEL_PARAMS, TOKEN_PARAMS, find_entries
from harness.scorer import ScorerError
from harness.submission_scorer import PROBE_ENV, SubmissionPipeline, _plain

# A few training steps on small batches; the wall-clock cap stays far away so that the step count,
# not the clock, ends training, and so that no schedule reads the clock: records start their LR
# warmdown once WARMDOWN_ITERS steps at the measured step time would pass the cap, which a 3000 s
# cap and a slow CPU step reach (two runs must differ only in the val token changed).
PIPELINE_ENV = {
    "ITERATIONS": "2", "WARMUP_STEPS": "0", "VAL_LOSS_EVERY": "0", "TRAIN_LOG_EVERY": "1000",
    "TRAIN_BATCH_TOKENS": "1024", "VAL_BATCH_SIZE": "1024", "MAX_WALLCLOCK_SECONDS": "1000000000", "THREADS": "1",
}
# Wide enough that the MLP matrices (256 x 512) pass the records' 65,536-element line below which a
# tensor is stored as it is: quantization (GPTQ and its calibration data) then touches the weights.
PIPELINE_DIMS = {"MODEL_DIM": "256"}
QUANTIZED_ABOVE = 65536  # elements: the records store a float tensor this small as it is
TRAIN_SHARDS, TRAIN_SHARD_TOKENS = 2, 1 << 15
VAL_ALPHABET = 64
SHARD_GLOB = re.compile(r"[*?\[]")
WIDTH = re.compile(r"[a-z][a-z0-9_]*_dim")


class PipelineError(ScorerError):
    """main() could not be driven on generated data (the message says why, in one line)."""


class FinalNotCaptured(Exception):
    """main() ended on an eval call that this run did not capture: ``call`` (entry point, ordinal)."""

    def __init__(self, call: tuple[str, int]) -> None:
        super().__init__(f"main() ended on call {call[1]} of {call[0]}()")
        self.call = call


def val_stream(seed: int, n: int, vocab: int, bos: int | None = None) -> np.ndarray:
    """The generated validation tokens: ``n`` ids drawn uniformly from ``VAL_ALPHABET`` ordinary ids
    (control ids 0-3 left out), a document of ``DOC_TOKENS`` starting with ``bos`` (when given) as
    the challenge's val shards do. A small alphabet makes contexts recur, as they do in real text,
    so that state keyed on them (counts, caches) is read again at earlier positions."""
    rng = np.random.default_rng(seed + 7)
    alphabet = rng.choice(np.arange(4, vocab), size=min(VAL_ALPHABET, vocab - 4), replace=False)
    s = rng.choice(alphabet, size=n).astype(np.int64)
    return s if bos is None else mark_documents(s, bos)


class MainEval(SubmissionPipeline):
    """The final eval as main() calls it: main()'s own arguments and model, our position capture."""

    def __init__(self, module, fn, entries: list[str], bound: inspect.BoundArguments, model,
                 *, launch_env: dict | None, seed: int, source: str) -> None:
        self.module, self.model, self.bound = module, model, bound
        self.hparams = next((v for k, v in bound.arguments.items() if k.lower() in HPARAM_PARAMS), None)
        self.raw = None
        self._attach(fn, entries, world_size=1, launch_env=launch_env, seed=seed, source=source, build={})

    def _call(self, val, rank: int):
        # main()'s arguments, the stream it loaded as the tokens (rank and world are main()'s own).
        self.raw = self.fn(*self.bound.args, **self.bound.kwargs)
        return _plain(self.raw)


def fingerprints(model) -> dict[str, str]:
    """SHA-256 (first 16 hex digits) of each tensor of the model's state (parameters and buffers), by name."""
    out = {}
    for name, t in sorted(model.state_dict().items()):
        if isinstance(t, torch.Tensor):
            data = t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
            out[name] = hashlib.sha256(data).hexdigest()[:16]
    return out


def float_sizes(model) -> dict[str, int]:
    """Elements of each floating-point tensor of the model's state, by name."""
    return {name: int(t.numel()) for name, t in model.state_dict().items()
            if isinstance(t, torch.Tensor) and t.is_floating_point()}


def config_objects(module) -> list:
    """The submission's configuration, as main() builds it: a ``Hyperparameters()`` instance, and every
    class of the module named ``*Config`` that builds without arguments (``DataConfig`` dataclasses)."""
    out = []
    for name, cls in vars(module).items():
        if not (isinstance(cls, type) and getattr(cls, "__module__", None) == module.__name__):
            continue
        if name == "Hyperparameters" or name.endswith("Config"):
            try:
                out.append(cls())
            except Exception:  # a config that needs arguments is not one main() builds from the env alone
                continue
    return out


def config_value(configs: list, name: str, default=None):
    """The first configuration object's attribute ``name``."""
    return next((getattr(c, name) for c in configs if getattr(c, name, None) is not None), default)


def tied_widths(configs: list, source: str) -> list[str]:
    """Env names of the configuration's widths that equal its model width (``EMBEDDING_DIM`` 512 =
    ``MODEL_DIM`` 512) and are read from the env: the probe's small width goes to them too, so that
    the probe does not build a projection between the two that the official run never has (its
    quantizer has no calibration for it)."""
    model_dim = config_value(configs, "model_dim")
    if not isinstance(model_dim, int):
        return []
    names = {n for c in configs for n in dir(c)
             if n != "model_dim" and WIDTH.fullmatch(n) and getattr(c, n, None) == model_dim}
    return sorted(n.upper() for n in names if _env_name_in(n.upper(), source) and n.upper() not in model_build.SMALL_ENV)


def _env_name_in(name: str, source: str) -> bool:
    """The source names the environment variable as a string literal (either quote)."""
    return re.search(rf"""(["']){re.escape(name)}\1""", source) is not None


def _materialise(configs: list, data_dir: Path, val: np.ndarray, tokenizer: str, seed: int) -> dict:
    """Shards and tokenizer at every path the configuration names: ``*train*``/``*val*`` shard
    globs and ``*.model`` tokenizer paths. Returns what was written where."""
    written = {"train": [], "val": [], "tokenizer": []}
    rng = np.random.default_rng(seed + 3)
    vocab = int(config_value(configs, "vocab_size", 1024))
    for hp, name in ((c, n) for c in configs for n in dir(c)):
        if name.startswith("_"):
            continue
        value = getattr(hp, name, None)
        if not isinstance(value, str):
            continue
        base = os.path.basename(value)
        if value.endswith(".model") and "token" in (name + value).lower():
            dest = Path(value)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                shutil.copyfile(tokenizer, dest)
            written["tokenizer"].append(str(dest))
            continue
        if not (base.endswith(".bin") or SHARD_GLOB.search(base)):
            continue
        kind = "val" if "val" in base.lower() or "val" in name.lower() else "train" if "train" in (base + name).lower() else None
        if kind is None:
            continue
        if SHARD_GLOB.search(base):
            paths = [Path(value.replace(base, SHARD_GLOB.sub("0", base.replace("*", "{:06d}"))).format(i))
                     for i in range(1 if kind == "val" else TRAIN_SHARDS)]
        else:
            paths = [Path(value)]
        for i, p in enumerate(paths):
            p.parent.mkdir(parents=True, exist_ok=True)
            if kind == "val":
                write_shard(p, val)
            else:
                write_shard(p, rng.integers(0, vocab, size=TRAIN_SHARD_TOKENS))
            written[kind].append(str(p))
    for kind in ("train", "val"):
        if not written[kind]:
            raise PipelineError(f"no {kind} shard path found in the configuration (expected a *{kind}*.bin glob)")
    return written


def _env(args: dict, data_dir: Path, tokenizer_path: str, vocab: int) -> dict[str, str]:
    small = {k: v for k, v in {**model_build.SMALL_ENV, **PROBE_ENV}.items() if k != "VOCAB_SIZE"}
    # main() runs as rank 0 only: a TTT chunk split among the launch's ranks must leave it windows.
    world = max(1, int(args.get("world_size", 1)))
    small["TTT_CHUNK_TOKENS"] = str(max(int(PROBE_ENV["TTT_CHUNK_TOKENS"]), 2 * world * int(PROBE_ENV["EVAL_STRIDE"])))
    # The other name records give a TTT chunk that lies within one eval window.
    small["TTT_CHUNK_SIZE"] = PROBE_ENV["EVAL_SEQ_LEN"]
    widths = {k: PIPELINE_DIMS["MODEL_DIM"] for k in args.get("tied_widths") or []}
    return {**small, **PIPELINE_DIMS, **widths, **PIPELINE_ENV, "VOCAB_SIZE": str(vocab), "DATA_PATH": str(data_dir / "datasets" / "probe"),
            "DATA_DIR": str(data_dir) + "/", "TOKENIZER_PATH": tokenizer_path,
            **(args.get("env") or {})}


def run_pipeline(args: dict) -> dict:
    """Driver: ``main()`` once on the val stream ``args['stream']`` (a list of ids), from a fresh
    import with fixed seeds. Returns raw observations only, for the caller to judge: the final
    eval's NLL (nats) and count per target position, the tokens it scored, the weight fingerprint
    at its start and seconds; plus the setup (entry point, env, the own depth it needed)."""
    entry = args["entry"]
    source = driven_source(entry)
    entries = find_entries(source)
    if not entries:
        raise PipelineError("no eval entry point taking a token stream (eval_val*(..., val_tokens, ...)) found")
    if "def main" not in source:
        raise PipelineError("no main() to drive")
    vocab, tokenizer = int(args["vocab_size"]), args["tokenizer"]
    data_dir = Path(tempfile.mkdtemp(prefix="golf-audit-pipeline-"))
    env = _env(args, data_dir, str(data_dir / "tokenizers" / Path(tokenizer).name), vocab)
    stream = np.asarray(args["stream"], dtype=np.int64)
    own_depth = args.get("own_depth")
    names = [e.name for e in entries] + outer_evals(source, [e.name for e in entries])
    guess = next(([e.name, 0] for e in entries if e.final), None)

    def attempt(depth: str | None) -> dict:
        # The capture costs a scoring per rank, so only the final eval's call is captured: the
        # caller names it (the call where an earlier run ended), else the first call of the entry
        # point the source reaches last from main(), else a first run without capture finds it.
        # A run that ends elsewhere is run again, capturing the call where it ended.
        run_env = _depth_env(env, depth)
        final = args.get("final_call") or guess or _one_run(entry, run_env, args, stream, names, None, source,
                                                            data_dir, tokenizer)["final_call"]
        try:
            return _one_run(entry, run_env, args, stream, names, tuple(final), source, data_dir, tokenizer)
        except FinalNotCaptured as e:
            return _one_run(entry, run_env, args, stream, names, e.call, source, data_dir, tokenizer)

    t0 = time.perf_counter()
    try:
        run = attempt(own_depth)
    except ScorerError as e:
        # Layer indices in the hyperparameters (recurrence of layers 3-5) reject the small depth:
        # main() runs again at the submission's own depth, as the eval-function probes' build does.
        if own_depth is not None or any(k in (args.get("env") or {}) for k in DEPTH_KEYS):
            raise
        own_depth = str(e)[:200]
        run = attempt(own_depth)
    return {**run, "seconds": round(time.perf_counter() - t0, 2), "own_depth": own_depth,
            "env": {k: v for k, v in env.items() if k in PIPELINE_ENV or k == "VOCAB_SIZE"}}


def driven_source(entry: str) -> str:
    """The source main() runs (self-extracting layers removed), as this interpreter's ``ast`` reads it
    (3.12-only f-strings rewritten on an older Python, as the import does)."""
    return parsable_source(read_source(entry)[0], entry)


def outer_evals(source: str, entries: list[str]) -> list[str]:
    """Module-level ``*eval*`` functions taking the token stream and a model that hand the stream to
    an entry point: a two-pass eval whose first pass is an entry point and whose second pass
    rescores in its own code. main() ending on one, the whole of it is the final eval."""
    out = []
    for fn in ast.parse(source).body:
        if not isinstance(fn, ast.FunctionDef) or "eval" not in fn.name.lower() or fn.name in entries:
            continue
        params = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
        calls = {c.func.id for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
        if params & set(TOKEN_PARAMS) and params & set(MODEL_PARAMS) and calls & set(entries):
            out.append(fn.name)
    return out


def _depth_env(env: dict, own_depth: str | None) -> dict:
    """The env of one run: at the submission's own depth (no depth keys) once the small one failed."""
    if not own_depth:
        return env
    for k in DEPTH_KEYS:
        os.environ.pop(k, None)  # an earlier import applied it to this process
    return {k: v for k, v in env.items() if k not in DEPTH_KEYS}


def _one_run(entry: str, env: dict, args: dict, stream: np.ndarray, entries: list[str],
             captured: tuple[str, int] | None, source: str, data_dir: Path, tokenizer: str) -> dict:
    for p in data_dir.iterdir():  # nothing of the previous run survives but the code
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    with cuda_as_cpu() as emulated, inference_mode_as_no_grad():
        return {**_import_and_run(entry, env, args, stream, entries, captured, source, data_dir, tokenizer),
                "cuda_on_cpu": emulated}


class _NoGrad:
    """``torch.inference_mode(mode)`` as ``torch.no_grad()``: a context manager and a decorator."""

    def __init__(self, mode: bool = True) -> None:
        self.mode = bool(mode)
        self.inner = []

    def __enter__(self):
        ctx = torch.no_grad() if self.mode else contextlib.nullcontext()
        self.inner.append(ctx)
        return ctx.__enter__()

    def __exit__(self, *exc):
        return self.inner.pop().__exit__(*exc)

    def __call__(self, fn):
        @functools.wraps(fn)
        def run(*a, **k):
            with _NoGrad(self.mode):
                return fn(*a, **k)

        return run


def _inference_mode(mode=True):
    return _NoGrad()(mode) if callable(mode) else _NoGrad(mode)  # bare ``@torch.inference_mode`` too


@contextlib.contextmanager
def inference_mode_as_no_grad():
    """``torch.inference_mode`` answered by ``torch.no_grad`` for the duration. Same numbers; the
    difference is that a tensor made under it may later enter autograd. At the probe's small dims
    the records' sequence lengths coincide, so a rotary cache filled by an inference-mode eval is
    read again by a later TTT forward under autograd, which the real run's lengths never do."""
    real = torch.inference_mode
    torch.inference_mode = _inference_mode
    try:
        yield
    finally:
        torch.inference_mode = real


def _import_and_run(entry: str, env: dict, args: dict, stream: np.ndarray, entries: list[str],
                    captured: tuple[str, int] | None, source: str, data_dir: Path, tokenizer: str) -> dict:
    """main() once; ``captured``: the (entry point, ordinal) call to capture, None for none (the run
    then only says which call main() ended on)."""
    seed = int(args.get("seed", 0))
    module = import_submission(entry, env=env, launch_env=args.get("launch_env"))
    configs = config_objects(module)
    if not configs or not callable(getattr(module, "main", None)):
        raise PipelineError("no configuration (Hyperparameters, *Config) and main() to drive")
    written = _materialise(configs, data_dir, stream, tokenizer, seed)
    calls: list[dict] = []
    inside: list[str] = []  # the eval call main() made that is running: the ones it makes run as they are

    def hook(name: str, fn):
        def call(*a, **k):
            if inside:
                return fn(*a, **k)
            ordinal = sum(c["entry"] == name for c in calls)
            inside.append(name)
            try:
                if (name, ordinal) != captured:
                    calls.append({"entry": name, "call": (name, ordinal), "uncaptured": True})
                    return fn(*a, **k)
                raw, record = _captured_call(module, fn, entries, a, k, args.get("launch_env"), seed, source, torch)
            finally:
                inside.pop()
            calls.append({"entry": name, "call": (name, ordinal), **record})
            return raw

        return call

    # The final eval is the last entry point main() calls (the one its configuration selects: an
    # n-gram mode, TTT on or off).
    for name in entries:
        setattr(module, name, hook(name, getattr(module, name)))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    try:
        module.main()
    except ScorerError:
        raise
    except SystemExit as e:
        if e.code not in (None, 0):
            raise PipelineError(f"main() exited with {e.code!r}") from None
    except BaseException as e:
        reason = model_build.gpu_only_reason(e) or f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        raise PipelineError(f"main() raised {reason}{_where(e, entry)}") from None
    if not calls:
        raise PipelineError(f"main() returned without calling an eval entry point ({', '.join(entries)})")
    last = calls[-1]
    if captured is None:
        return {"final_call": last["call"]}
    if last.get("uncaptured"):
        raise FinalNotCaptured(last["call"])
    if "error" in last:
        raise PipelineError(f"the final eval {last['entry']}() main() calls could not be captured: {last['error']}")
    return {**last, "final_call": list(last.pop("call")), "eval_calls": [c["entry"] for c in calls], "shards": {k: len(v) for k, v in written.items()}}


def _captured_call(module, fn, entries: list[str], a: tuple, k: dict, launch_env, seed: int, source: str, torch):
    """One eval call of main(), run with the capture: (what it returns, its record). The record holds
    the per-position NLL, or ``error`` when the call completed but its scores could not be traced
    (fatal only when it is the final eval)."""
    bound = inspect.signature(fn).bind(*a, **k)
    token_param = next((n for n in bound.arguments if n.lower() in TOKEN_PARAMS), None)
    model = next((v for n, v in bound.arguments.items() if n.lower() in MODEL_PARAMS), None) \
        or next((v for v in bound.arguments.values() if isinstance(v, torch.nn.Module)), None)
    val = _stream_of(bound.arguments[token_param], torch) if token_param else None
    if val is None or model is None:
        return fn(*a, **k), {"error": f"no token stream and model to capture in the call of {fn.__name__}"}
    tokens = val.detach().to("cpu").numpy().astype(np.int64)
    weights, sizes = fingerprints(model), float_sizes(model)
    saved = dict(vars(model)), {n: getattr(module, n) for n in vars(module)}
    pipe = MainEval(module, fn, entries, bound, model, launch_env=launch_env, seed=seed, source=source)
    try:
        res = pipe.score(tokens)
        last = last_scores(pipe.mode.capture.scoring(pipe.mode.capture.records), res.nll.shape[0])
    except ScorerError as e:
        if pipe.raw is None:  # the eval itself failed: so would main()
            raise
        return pipe.raw, {"error": str(e)}
    finally:
        _unwrap(model, module, *saved)
    return pipe.raw, {"nll": res.nll, "nll_last": last, "count": res.count, "weights": weights, "sizes": sizes, "tokens": tokens,
                      "stream_length": int(tokens.shape[0]), "returned": res.returned,
                      "eval_adapts": pipe.info.stateful}


def last_scores(records: list, n: int) -> np.ndarray:
    """Per target position the last score (nats) the eval's accumulator received; NaN where none.
    The capture's NLL is each position's first score: a second pass that rescores positions with
    state built from the whole stream shows in the last one."""
    out = np.full(n, np.nan)
    for p, v in capture.last_scores(records).items():
        if p < n:
            out[p] = v
    return out


def _stream_of(value, torch):
    """The token tensor of an eval's stream argument: the tensor itself, or the ``val_tokens`` (any
    TOKEN_PARAMS name) of an object that bundles it with its LUTs (``ValidationData``)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    return next((getattr(value, n) for n in TOKEN_PARAMS if isinstance(getattr(value, n, None), torch.Tensor)), None)


def _where(e: BaseException, entry: str) -> str:
    """`` at train_gpt.py:LINE``: the submission's innermost frame of the traceback, if any."""
    line = None
    for frame, lineno in traceback.walk_tb(e.__traceback__):
        if os.path.abspath(frame.f_code.co_filename) == os.path.abspath(entry):
            line = lineno
    return f" at {os.path.basename(entry)}:{line}" if line else ""


def _unwrap(model, module, model_dict: dict, module_dict: dict) -> None:
    """Take the capture's wrappers off the model and the module (main() goes on after its eval, and
    may call it again: a wrapper left on would wrap the next one)."""
    for name in set(vars(model)) - set(model_dict):
        delattr(model, name)
    for name, value in model_dict.items():
        if vars(model).get(name) is not value:
            setattr(model, name, value)
    for name, value in module_dict.items():
        if getattr(module, name, None) is not value:
            setattr(module, name, value)
