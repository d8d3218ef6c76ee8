"""The submission's OWN evaluation code as a pipeline of per-position scores, without editing its source.

Runs inside the sandboxed child only (harness/remote_pipeline.py serves it to golf-audit's process).

How the pipeline is found: ``find_entries`` (harness/entry_points.py) reads the source and names
the final eval entry point. How it is driven: the submission is imported (harness/loader.py, under
the launch's env: ``WORLD_SIZE=8`` and its README's settings), its model built from its own GPT
class (harness/model_build.py; random init, small dims), and the entry point called with
arguments bound by parameter name: the Hyperparameters instance, the model, ``rank``/
``world_size``, the device, the generated stream as ``val_tokens`` (int64), byte LUTs, ``stride``
from the hyperparameters, and what the official call passes. The module sees the launch's env
(flags such as "cache on when world_size > 1" resolve as in the official run); with
``world_size=W`` (the launch's) the eval function is called as ranks 0..W-1 in turn, each from the
same initial state (its own caches and TTT weights) on its own share of the windows, and the
per-position scores of all ranks are merged; collectives are single-rank shims.

How per-position NLL is recovered: the model's forward is wrapped so that its logits are tagged
with the target index of each (row, column) (each input row is located in the stream: column j
of a row starting at ``ws`` predicts target ``ws + j``), and the capture (harness/capture.py)
follows the tags to the sums the eval accumulates. Each rank's captured scores are checked
against the loss it returns (``check_capture``): what cannot be traced is a ScorerError, never a
pass. Limits: values that leave torch/numpy through ``.item()``/``.tolist()`` before being summed,
a loss reduced inside the model's own ``forward(x, y)`` (mean over the batch), and evals that do
not slice their windows from the stream they are given are not captured; the probes then say
"not captured" rather than pass. Hashed tables: harness/tables.py.
"""

from __future__ import annotations

import ast
import copy
import inspect
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.capture import Claimed, check_capture, from_numpy_tagged, position_mode, target_bytes
from harness.entry_points import HPARAM_PARAMS, LOG_PARAMS, MODEL_PARAMS, TOKEN_PARAMS, UNKNOWN, Settings, find_entries
from harness.scorer import ScoreResult, ScorerError
from harness.tables import hashed_tables, install_table_sizes, sized_tables


# Probe configuration: smaller dims and vocabulary than the official run; the pipeline logic is unchanged.
PROBE_ENV = {"VOCAB_SIZE": "128", "TRAIN_SEQ_LEN": "64", "EVAL_SEQ_LEN": "64", "EVAL_STRIDE": "16",
             "EVAL_BATCH_SEQS": "8", "TTT_CHUNK_TOKENS": "64", "TTT_BATCH_SEQS": "4"}
# Ranks the eval function is called as when the caller names none (in-process tools, tests); the
# probes pass the launch's world size (harness/launch.py; WORLD_SIZE=8 by default).
EVAL_WORLD_SIZE = 1




@dataclass
class PipelineInfo:
    entry: str
    entries: list[str]
    vocab_size: int
    world_size: int
    stateful: bool
    seq_len: int | None
    stride: int | None
    bos_id: int | None
    hashed_tables: dict[str, int] = field(default_factory=dict)
    build: dict = field(default_factory=dict)


class SubmissionPipeline:
    """The submission's eval entry point on our streams: implements the Scorer protocol in the child."""

    def __init__(self, entry_file: str, *, env: dict | None = None, entry_name: str | None = None,
                 world_size: int = EVAL_WORLD_SIZE, overrides: dict | None = None, seed: int = 0,
                 seq_env: bool = True, launch_env: dict | None = None) -> None:
        import torch

        from harness.drivers import _prepare
        from harness.loader import parsable_source, read_source

        torch.manual_seed(seed)
        self.module, self.model, self.hparams, build = _prepare(
            {"entry": entry_file, "small": True, "env": {**(PROBE_ENV if seq_env else {}), **(env or {})},
             "launch_env": launch_env})
        source = parsable_source(read_source(entry_file)[0], entry_file)
        self.settings = Settings(self.hparams)
        entries = find_entries(source, self.settings)
        if not entries:
            raise ScorerError("no eval entry point taking a token stream (eval_val*(..., val_tokens, ...)) found")
        chosen = next((e for e in entries if e.name == entry_name), None) if entry_name else entries[0]
        if chosen is None:
            raise ScorerError(f"no eval entry point named {entry_name!r}")
        self.entry = chosen
        self.param_attrs = _param_attrs(source, chosen.name)
        for k, v in (overrides or {}).items():
            setattr(self.hparams, k, v)
        self.randomized = _randomize_zeros(self.model, seed)
        self._attach(getattr(self.module, chosen.name), [e.name for e in entries], world_size=world_size,
                     launch_env=launch_env, seed=seed, source=source, build=build)

    def _attach(self, fn, entries: list[str], *, world_size: int, launch_env: dict | None, seed: int,
                source: str, build: dict) -> None:
        """Wrap ``self.model`` (logits tagged by stream position) for scoring with the eval ``fn``.

        Separate from the build so that a model built elsewhere (by the submission's own main(),
        harness/pipeline_run.py) is captured the same way."""
        self.fn, self.seed = fn, seed
        self.vocab_size = int(getattr(self.hparams, "vocab_size", 0) or 1024)
        self.bos_id = _bos_id(self.module)
        self.world_size = world_size
        # Ranks of the official launch: each holds its own share of the stream in its caches.
        self.launch_world_size = max(1, int(float((launch_env or {}).get("WORLD_SIZE", 8))))
        self.model.eval()
        self.params = list(self.model.parameters())
        self.snapshot = copy.deepcopy(self.model.state_dict())
        self.cache: dict[bytes, Any] = {}
        self.mode = position_mode()
        self.luts = _luts(self.vocab_size, seed)
        self.watch: set[int] = set()
        self.watched: list[tuple[int, np.ndarray]] = []
        self.rank_watched: list[int] = []  # the rank whose call produced each watched row
        self.current_rank = 0
        self.forwards = 0
        self.rank_plan: dict[int, list[int]] = {}  # stream length -> ranks that score something
        self.rank_owner: dict[int, np.ndarray] = {}  # stream length -> the rank scoring each position first
        self.stream: np.ndarray | None = None
        self._wrap_model()
        self.info = PipelineInfo(
            entry=fn.__name__, entries=entries, vocab_size=self.vocab_size, world_size=world_size,
            stateful=False, seq_len=_int_attr(self.hparams, ("eval_seq_len", "train_seq_len")),
            stride=_int_attr(self.hparams, ("eval_stride", "stride")), bos_id=self.bos_id,
            hashed_tables=hashed_tables(self.hparams, source), build=build)
        self.table_descriptors = install_table_sizes(self.module, self.info.hashed_tables)

    # -- model wrapper: locate rows, tag logits, cache pristine forwards, watch positions -------
    def _wrap_model(self) -> None:
        import torch

        model = self.model
        for name in ("forward_logits", "forward"):
            orig = getattr(model, name, None)
            if orig is None or not callable(orig):
                continue
            setattr(model, name, self._wrapped(orig, torch, arg=0))
        # Module-level ``forward_logits(model, input_ids)`` helpers some evals call instead.
        for name, fn in list(vars(self.module).items()):
            if inspect.isfunction(fn) and "logits" in name.lower() and fn.__module__ == self.module.__name__:
                params = list(inspect.signature(fn).parameters)
                if len(params) >= 2 and params[0].lower() in MODEL_PARAMS:
                    setattr(self.module, name, self._wrapped(fn, torch, arg=1))

    def _wrapped(self, orig, torch, arg: int):
        """The model call, with pristine-weight forwards cached and outputs tagged by stream position."""

        def call(*args, **k):
            input_ids = args[arg] if len(args) > arg else None
            extra = args[arg + 1:]
            grad = torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
            self.mode.paused += 1
            try:
                pristine = not grad and not self.model.training and self._pristine()
                if pristine and not extra and not k and isinstance(input_ids, torch.Tensor):
                    key = orig.__name__.encode() + str(tuple(input_ids.shape)).encode() + input_ids.detach().cpu().numpy().tobytes()
                    hit = self.cache.get(key)
                    if hit is not None:
                        out = hit.clone()
                    else:
                        out = orig(*args)
                        self.forwards += 1
                        if len(self.cache) < 4096 and isinstance(out, torch.Tensor):
                            self.cache[key] = out.detach().clone()
                elif not grad and extra and isinstance(input_ids, torch.Tensor) and isinstance(extra[0], torch.Tensor):
                    out = self._loss_forward(orig, args, k, input_ids, torch)
                else:
                    out = orig(*args, **k)
                    self.forwards += 1
                if grad:
                    self.info.stateful = True
            finally:
                self.mode.paused -= 1
            if isinstance(input_ids, torch.Tensor) and _per_position(out, input_ids, extra, grad):
                tags = self._row_tags(input_ids)
                if tags is not None:
                    self.mode.tag(out, tags)
                    if self.watch and out.dim() == 3:  # logits rows (model_probs)
                        hit = np.isin(tags, list(self.watch))
                        for r, c in zip(*np.nonzero(hit)):
                            self.watched.append((int(tags[r, c]), out[r, c].detach().float().cpu().numpy().copy()))
                            self.rank_watched.append(self.current_rank)
            return out

        call.__name__ = getattr(orig, "__name__", "forward")
        return call

    def _loss_forward(self, orig, args, k, input_ids, torch):
        """``model(x, y)`` returning a reduced loss: the mode records the per-position NLL of its cross_entropy."""
        self.mode.loss_tags = self._row_tags(input_ids)
        try:
            out = orig(*args, **k)
        finally:
            self.mode.loss_tags = None
        self.forwards += 1
        return out

    def _pristine(self) -> bool:
        """Whether the model's weights and buffers still hold what they held when it was built.

        Compared by content: a write through ``.data`` (a Polyak swap, a TTT step) leaves the
        version counter alone, and a forward cached under changed weights would make the scores of
        one stream depend on what was scored before it."""
        import torch

        self.mode.paused += 1  # our comparison is not the submission's computation
        try:
            now = self.model.state_dict(keep_vars=True)
            return now.keys() == self.snapshot.keys() and all(
                now[k].shape == v.shape and now[k].dtype == v.dtype and torch.equal(now[k].detach(), v)
                for k, v in self.snapshot.items())
        finally:
            self.mode.paused -= 1

    def _row_tags(self, x) -> np.ndarray | None:
        """Target index predicted at each (row, column) of a model input, -1 where not a stream slice."""
        s = self.stream
        if s is None:
            return None
        xs = x.detach().cpu().numpy()
        if xs.ndim != 2:
            return None
        n = s.shape[0] - 1
        tags = np.full(xs.shape, -1, dtype=np.int64)
        k = min(4, xs.shape[1])
        for r in range(xs.shape[0]):
            ws = self._locate(xs[r], k)
            if ws is None:
                continue
            m = min(xs.shape[1], n - ws)
            eq = xs[r, :m] == s[ws : ws + m]
            bad = np.nonzero(~eq)[0]
            m = int(bad[0]) if bad.size else m
            tags[r, :m] = ws + np.arange(m)
        return tags

    def _locate(self, row: np.ndarray, k: int) -> int | None:
        key = row[:k].tobytes()
        cands = self._index.get(key, [])
        if not cands:
            # A window of the last k-1 targets or fewer, padded after the stream's end.
            n = self.stream.shape[0] - 1
            cands = [ws for ws in range(max(0, n - k + 1), n) if np.array_equal(row[: n - ws], self.stream[ws:n])]
        if len(cands) <= 1:
            return cands[0] if cands else None
        # Several starts share the first k tokens: take the one matching the longest prefix; at equal
        # length, the one whose match runs to the end of the stream (a tail window, padded after it).
        best, best_key, tie = None, (-1, False), False
        inputs = self.stream[:-1]  # model inputs never hold the last token (it is only a target)
        for ws in cands:
            seg = inputs[ws : ws + row.shape[0]]
            eq = seg == row[: seg.shape[0]]
            ln = int(np.argmin(eq)) if not eq.all() else seg.shape[0]
            key = (ln, ln == seg.shape[0] < row.shape[0])
            if key > best_key:
                best, best_key, tie = ws, key, False
            elif key == best_key:
                tie = True
        return None if tie else best

    # -- Scorer protocol ------------------------------------------------------------------------
    def score(self, tokens: np.ndarray, watch: tuple[int, ...] = (), ranks: list[int] | None = None) -> ScoreResult:
        """Per-position scores of ``tokens`` (each rank from the initial state); ``ranks``: run exactly
        these ranks (a replay of an earlier scoring), else the plan for this length and ``watch``."""
        import torch

        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 1 or tokens.shape[0] < 2:
            raise ScorerError("a stream needs at least 2 tokens")
        if tokens.min() < 0 or tokens.max() >= self.vocab_size:
            raise ScorerError(f"stream tokens must lie in [0, {self.vocab_size})")
        self.stream = tokens
        k = 4
        self._index: dict[bytes, list[int]] = {}
        for ws in range(tokens.shape[0] - 1):
            self._index.setdefault(tokens[ws : ws + k].tobytes(), []).append(ws)
        self.watch, self.watched, self.rank_watched = set(watch), [], []
        val = torch.from_numpy(tokens.copy())
        length = tokens.shape[0]
        self.mode.capture.start(length - 1)
        returned, spans, errors = [], [], []
        claimed = self._claimed(tokens)
        try:
            with self.mode, from_numpy_tagged(torch, self.mode):
                plan = list(ranks) if ranks is not None else self._plan(length, watch)
                for rank in plan:
                    self._restore()
                    _seed_process(self.seed, rank)
                    self.current_rank = rank
                    before = len(self.mode.capture.records)
                    try:
                        returned.append(self._call(val, rank))
                    except ScorerError:
                        raise
                    except Exception as e:
                        # A rank with no windows of a short stream may divide by its zero count
                        # (the real run all-reduces first); a rank that scored and then failed is fine too.
                        returned.append(None)
                        errors.append((rank, len(self.mode.capture.records) > before, e))
                    spans.append((rank, before, len(self.mode.capture.records), returned[-1]))
            self._learn_ranks(length, spans)
            if errors and len(errors) == len(plan) and not self.mode.capture.records:
                rank, _, e = errors[0]
                raise ScorerError(f"{self.fn.__name__} raised on every rank: {type(e).__name__}: {str(e)[:160]}")
            for rank, first, end, value in spans:
                check_capture(self.mode.capture, self.mode.capture.records[first:end], value, self.fn.__name__, rank,
                              claimed)
        finally:
            res = self.mode.capture.result()
            self.stream = None
        if not res.count.any():
            raise ScorerError(f"no per-position score of {self.fn.__name__} could be captured (its scores never "
                              "reached an accumulator through a traced operation)")
        res.returned = returned  # type: ignore[attr-defined]
        res.ranks = list(plan)  # type: ignore[attr-defined]
        # Logits at a watched position count from the rank that scores it (another rank may see the
        # position as context after its own updates, as its own process would).
        owner = self.rank_owner.get(length)
        res.watched = [w for w, r in zip(self.watched, self.rank_watched)  # type: ignore[attr-defined]
                       if owner is None or owner[w[0]] in (-1, r)]
        return res

    def _claimed(self, tokens: np.ndarray) -> Claimed | None:
        """What the number the official run claims must be explained by: known where main() unpacks the
        eval's result and prints one element as val_bpb, and the eval counts bytes with the LUTs we
        hand it (else its bytes are its own and only its per-token loss can be checked)."""
        entry = getattr(self, "entry", None)
        if entry is None or entry.claimed is None:
            return None
        if not any("lut" in p.lower() for p in inspect.signature(self.fn).parameters):
            return None
        luts = lut_arrays(self.vocab_size, self.seed)
        return Claimed(entry.claimed, target_bytes(np.asarray(tokens, dtype=np.int64), luts["base_bytes"],
                                                   luts["has_leading_space"], luts["is_boundary"]))

    def _plan(self, length: int, watch) -> list[int]:
        """The ranks to run on a stream of ``length``: every rank with windows, or, when only some
        positions are watched (a sweep), just the ranks that score them."""
        owner = self.rank_owner.get(length)
        if watch and owner is not None:
            ranks = {int(owner[t]) for t in watch if 0 <= t < owner.shape[0]}
            if ranks and -1 not in ranks:
                return sorted(ranks)
        return list(self.rank_plan.get(length, range(self.world_size)))

    def _learn_ranks(self, length: int, spans) -> None:
        # Which rank scores which position depends on the stream length only (the windows are
        # split by index): later streams of this length skip idle ranks, and sweeps run one rank.
        if length in self.rank_plan:
            return
        owner = np.full(length - 1, -1, dtype=np.int64)
        scored = []
        for rank, first, end, _ in spans:
            for rec in self.mode.capture.records[first:end]:
                p = rec.pos[rec.pos < length - 1]
                owner[p] = np.where(owner[p] == -1, rank, owner[p])
            if end > first:
                scored.append(rank)
        if scored:
            self.rank_plan[length] = scored
            self.rank_owner[length] = owner

    def score_many(self, streams: list[np.ndarray], watch: tuple[int, ...] = ()) -> list[ScoreResult]:
        return [self.score(s, watch) for s in streams]

    def resized(self, sizes: dict[str, int]):
        """Hashed tables at ``sizes`` for the duration (a context manager)."""
        return sized_tables(self, sizes)

    def _restore(self) -> None:
        if not self._pristine():
            self.model.load_state_dict(self.snapshot)
        self.model.eval()

    def _call(self, val, rank: int):
        import torch

        self._rank_hparams(rank)
        sig = inspect.signature(self.fn)
        bound = {}
        for name, p in sig.parameters.items():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            value = self._bind(name, p, val, rank, torch)
            if value is _MISSING:
                if p.default is inspect.Parameter.empty:
                    raise ScorerError(f"cannot bind parameter {name!r} of {self.fn.__name__}")
                continue
            bound[name] = value
        out = self.fn(**bound)
        return _plain(out)

    def _bind(self, name: str, p, val, rank: int, torch):
        lname = name.lower()
        if lname in TOKEN_PARAMS and "val_tokens" in getattr(self, "param_attrs", {}).get(name, ()):
            return self._data_view(name, val)  # a validation-data object (val_data.val_tokens, its LUTs)
        if lname in TOKEN_PARAMS:
            return val
        if lname in HPARAM_PARAMS:
            return self.hparams
        if lname in MODEL_PARAMS:
            return self.model
        if lname in ("rank", "local_rank", "global_rank"):
            return rank
        if lname in ("world_size", "num_ranks"):
            return self.world_size
        if lname == "device":
            return torch.device("cpu")
        if lname in LOG_PARAMS:
            return lambda *a, **k: None
        if lname == "grad_accum_steps":
            return 1  # 8 // WORLD_SIZE on the official launch
        if lname == "master_process":
            return rank == 0
        if "lut" in lname:
            for key, lut in self.luts.items():
                if key in lname:
                    return lut
            if lname == "luts":
                return tuple(self.luts.values())
        if lname in ("stride", "eval_stride"):
            return self.info_stride_default(p)
        if lname in ("seq_len", "eval_seq_len", "train_seq_len"):
            v = _int_attr(self.hparams, (lname, "eval_seq_len", "train_seq_len"))
            return v if v is not None else _MISSING
        if lname == "vocab_size":
            return self.vocab_size
        entry = getattr(self, "entry", None)  # none when main() calls the eval itself (pipeline_run)
        if entry is not None and name in entry.call_args:  # what the official run's call passes (ttt_chunk_tokens=ttt_chunk)
            v = self.settings.value(entry.call_args[name], entry.caller)
            if v is not UNKNOWN:
                return v
        if p.default is not inspect.Parameter.empty:
            return _MISSING
        forward = self._model_forward(lname)
        if forward is not None:
            import torch

            return self._wrapped(forward, torch, arg=0)  # captured like any model call
        v = getattr(self.hparams, lname, _MISSING)
        return v

    def _model_forward(self, lname: str):
        """A parameter that takes one of the model's forwards (``forward_ttt_train``: main() hands in its
        compiled ``model.forward_ttt``): the model's own method whose name the parameter's starts with,
        the longest such; None for a parameter that names no forward."""
        if not lname.startswith("forward"):
            return None
        names = [n for n in dir(type(self.model)) if n.startswith("forward") and (lname == n or lname.startswith(n + "_"))
                 and callable(getattr(type(self.model), n, None))]
        return getattr(self.model, max(names, key=len)) if names else None

    def _rank_hparams(self, rank: int) -> None:
        """Hyperparameters that carry the process's place in the launch (``h.rank``, ``h.world_size``,
        ``h.local_rank``, ``h.is_main_process``: set from the environment in records that keep them
        there) say this rank's, as that process's own would."""
        values = {"rank": rank, "local_rank": rank % max(1, self.launch_world_size), "world_size": self.world_size,
                  "is_main_process": rank == 0, "master_process": rank == 0, "distributed": self.world_size > 1}
        for attr, v in values.items():
            if attr in vars(self.hparams) or attr in vars(type(self.hparams)):
                setattr(self.hparams, attr, v)

    def _data_view(self, name: str, val):
        """The object a ``val_data`` parameter stands for: the stream as ``val_tokens`` and each
        ``*_lut`` attribute the eval reads from it as our LUT of that name."""
        from types import SimpleNamespace

        view = SimpleNamespace(val_tokens=val)
        for attr in self.param_attrs.get(name, ()):
            lut = next((v for k, v in self.luts.items() if attr.startswith(k) and "lut" in attr), None)
            if lut is not None:
                setattr(view, attr, lut)
        return view

    def info_stride_default(self, p):
        v = _int_attr(self.hparams, ("eval_stride", "stride"))
        if v is not None:
            return v
        return _MISSING


_MISSING = object()


def _param_attrs(source: str, fn_name: str) -> dict[str, set[str]]:
    """parameter -> the attributes the module-level function ``fn_name`` reads from it."""
    fn = next((n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == fn_name), None)
    if fn is None:
        return {}
    params = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
    out: dict[str, set[str]] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in params:
            out.setdefault(node.value.id, set()).add(node.attr)
    return out


def _randomize_zeros(model, seed: int) -> list[str]:
    """Give zero-initialized parameters (output projections, gates) small random values.

    Many GPTs start their residual projections and gates at zero, which makes a freshly built
    model predict each position from its own token alone: no information would flow along the
    sequence, and a probe of causality would have nothing to see. Returns the names changed.
    """
    import torch

    gen = torch.Generator().manual_seed(seed + 1)
    changed = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.is_floating_point() and p.numel() and not p.any():
                fan_in = p.shape[-1] if p.dim() >= 2 else 1
                std = (0.5 / math.sqrt(fan_in)) if p.dim() >= 2 else 0.5
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32).to(p.dtype) * std)
                changed.append(name)
    return changed


def _plain(out):
    if isinstance(out, (tuple, list)):
        return [_plain(o) for o in out]
    if hasattr(out, "item") and getattr(out, "ndim", 1) == 0:
        return float(out.item())
    if isinstance(out, (int, float)):
        return float(out)
    if isinstance(out, dict):
        return {str(k): _plain(v) for k, v in out.items() if isinstance(v, (int, float)) or hasattr(v, "item")}
    return None


def _seed_process(seed: int, rank: int) -> None:
    """Seed the random generators a rank's eval draws from (a TTT adapter's initial weights, a
    sampled subset of documents) as that rank's process holds them: the same for every scoring, so
    that two scorings of one stream from the initial state are two runs of the same process."""
    import random

    import torch

    random.seed(seed * 1000 + rank)
    np.random.seed(seed * 1000 + rank)
    torch.manual_seed(seed * 1000 + rank)


def _per_position(out, input_ids, extra: tuple, grad: bool) -> bool:
    """Whether a model call's output is one value (row) per input position, to be tagged with them:
    logits (batch, time, vocab) of a forward without gradient, or the per-token losses (batch, time)
    of a forward handed the targets, which an eval may score even while training on them (TTT)."""
    if getattr(out, "dim", None) is None or input_ids.dim() != 2 or tuple(out.shape[:2]) != tuple(input_ids.shape):
        return False
    if out.dim() == 3:
        return not grad
    targets = bool(extra) and getattr(extra[0], "shape", None) == input_ids.shape
    return out.dim() == 2 and targets


def _int_attr(obj, names) -> int | None:
    for n in names:
        v = getattr(obj, n, None)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return int(v)
    return None


def _bos_id(module) -> int | None:
    for name in ("BOS_ID", "bos_id", "BOS_TOKEN_ID", "BOS"):
        v = getattr(module, name, None)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    hp = getattr(module, "Hyperparameters", None)
    v = getattr(hp, "bos_id", None)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def lut_arrays(vocab: int, seed: int) -> dict[str, np.ndarray]:
    """Byte LUTs for the probe vocabulary: ids 0-3 are control pieces, about half the rest start a word."""
    rng = np.random.default_rng(seed + 17)
    base = rng.integers(1, 6, size=vocab).astype(np.int16)
    lead = rng.random(vocab) < 0.5
    boundary = np.zeros(vocab, dtype=np.bool_)
    boundary[: min(4, vocab)] = True
    base[boundary] = 0
    lead[boundary] = False
    return {"base_bytes": base, "has_leading_space": lead, "is_boundary": boundary}


def _luts(vocab: int, seed: int) -> dict[str, Any]:
    """The LUTs of ``lut_arrays`` as the tensors an eval reads."""
    import torch

    return {k: torch.from_numpy(v.copy()) for k, v in lut_arrays(vocab, seed).items()}
