"""The submission's eval pipeline across the sandbox wall: observations there, decisions here.

In the sandboxed child, ``serve`` builds the submission's pipeline (harness/submission_scorer.py)
and answers requests from golf-audit's process (harness/sandbox_session.py): score this stream,
watching these positions; size the hashed tables so; build the pipeline at the official sequence
length. Each answer holds raw observations only: per-position NLL and counts, the losses the eval
returned, the logits rows seen at watched positions. In golf-audit's process, ``RemotePipeline``
offers what the probes read from a pipeline (``score``, ``info``, ``vocab_size``, ``resized``...),
so the probe search, every comparison and every verdict run there, out of the submission's reach.
It also keeps a log of what it asked and what it was told, for the cross-run check
(checks/probes/engine.py): the same streams scored again in a separate sandboxed run.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from harness.scorer import ScoreResult

EVAL = "eval"  # the pipeline the probes run on
OFFICIAL = "official"  # the same eval at its official sequence length and stride (effect sizes)


# ------------------------------------------------------------------------------ in the child

class PipelineServer:
    """Child side: the pipelines by name and the requests on them."""

    def __init__(self, args: dict) -> None:
        from harness.submission_scorer import SubmissionPipeline

        self.args = args
        self.pipes = {EVAL: SubmissionPipeline(
            args["entry"], env=args.get("env"), entry_name=args.get("entry_name"),
            world_size=int(args.get("world_size", 1)), seed=int(args.get("seed", 0)),
            launch_env=args.get("launch_env"))}
        self.resizing: dict[str, contextlib.AbstractContextManager] = {}

    def describe(self, name: str = EVAL) -> dict:
        pipe = self.pipes[name]
        info = pipe.info
        return {"entry": info.entry, "entries": info.entries, "vocab_size": pipe.vocab_size,
                "world_size": pipe.world_size, "launch_world_size": pipe.launch_world_size, "bos_id": pipe.bos_id,
                "seq_len": info.seq_len, "stride": info.stride, "stateful": info.stateful,
                "hashed_tables": info.hashed_tables, "build": info.build, "forwards": pipe.forwards}

    def __call__(self, request: dict):
        op = request.get("op")
        if op == "score":
            return self.score(request)
        if op == "resize":
            return self.resize(request.get("pipe", EVAL), request.get("sizes"))
        if op == "official":
            return self.official()
        raise ValueError(f"unknown request {op!r}")

    def score(self, request: dict) -> dict:
        from harness.scorer import ScorerError

        pipe = self.pipes[request.get("pipe", EVAL)]
        tokens = np.asarray(request["tokens"], dtype=np.int64)
        try:
            ranks = request.get("ranks")
            r = pipe.score(tokens, tuple(int(t) for t in request.get("watch", ())),
                           None if ranks is None else [int(k) for k in ranks])
        except ScorerError as e:  # not this stream (too short for a window...): the probe tries another
            return {"unscorable": str(e)[:300]}
        rows = np.zeros((len(r.watched), pipe.vocab_size), np.float32)
        for i, (_, row) in enumerate(r.watched):
            rows[i] = row.view(np.ndarray)  # a plain array (logits seen under the tagging mode may be tagged)
        return {"nll": r.nll, "count": r.count, "total_nll": r.total_nll, "returned": r.returned,
                "watched_positions": np.array([p for p, _ in r.watched], dtype=np.int64),
                "watched_rows": rows,
                "stateful": pipe.info.stateful, "forwards": pipe.forwards, "ranks": r.ranks}

    def resize(self, name: str, sizes: dict | None) -> None:
        from harness.tables import sized_tables

        held = self.resizing.pop(name, None)
        if held is not None:
            held.__exit__(None, None, None)
        if sizes is not None:
            cm = sized_tables(self.pipes[name], {k: int(v) for k, v in sizes.items()})
            cm.__enter__()
            self.resizing[name] = cm

    def official(self) -> dict:
        if OFFICIAL not in self.pipes:
            self.pipes[OFFICIAL] = official_pipeline(self.args)
        return self.describe(OFFICIAL)


def serve(args: dict) -> PipelineServer:
    """Session driver (harness/sandbox_session.py): the submission imported and its pipeline built."""
    return PipelineServer(args)


def official_pipeline(args: dict):
    """The same eval at its official sequence length and stride (small model dims)."""
    import os

    from harness.loader import import_submission
    from harness.submission_scorer import PROBE_ENV, SubmissionPipeline

    keys = ("TRAIN_SEQ_LEN", "EVAL_SEQ_LEN", "EVAL_STRIDE", "EVAL_BATCH_SEQS")
    for k in keys:
        os.environ.pop(k, None)
    # The official values are the Hyperparameters' defaults under the official env.
    hp = import_submission(args["entry"], launch_env=args.get("launch_env")).Hyperparameters()
    env = {"VOCAB_SIZE": PROBE_ENV["VOCAB_SIZE"]}
    env.update({k: str(getattr(hp, k.lower())) for k in keys[:3] if isinstance(getattr(hp, k.lower(), None), int)})
    return SubmissionPipeline(args["entry"], env=env, seq_env=False, entry_name=args.get("entry_name"),
                              world_size=int(args.get("world_size", 1)), seed=int(args.get("seed", 0)),
                              launch_env=args.get("launch_env"))


# --------------------------------------------------------------------------- in golf-audit

class Malformed(Exception):
    """An answer that does not have the shape its request asks for (tampered with?)."""


@dataclass
class RemoteInfo:
    entry: str
    entries: list[str]
    seq_len: int | None
    stride: int | None
    stateful: bool
    hashed_tables: dict[str, int] = field(default_factory=dict)
    build: dict = field(default_factory=dict)


@dataclass
class Asked:
    """One scoring the pipeline was asked for, and what it answered (for the cross-run check)."""
    tokens: np.ndarray
    watch: tuple[int, ...]
    ranks: list[int] | None  # the ranks the child ran: which ranks run depends on what it scored before
    sizes: dict | None
    nll: np.ndarray
    count: np.ndarray


class RemotePipeline:
    """Parent side: what the probes read from a pipeline, each score a request to the session."""

    def __init__(self, session, described: dict, *, name: str = EVAL, seed: int = 0) -> None:
        from harness.submission_scorer import lut_arrays

        self.session, self.name = session, name
        self.vocab_size = _int(described, "vocab_size", 2)
        self.world_size = _int(described, "world_size", 1)
        self.launch_world_size = _int(described, "launch_world_size", 1)
        self.bos_id = described.get("bos_id") if isinstance(described.get("bos_id"), int) else None
        self.forwards = int(described.get("forwards") or 0)
        self.info = RemoteInfo(entry=str(described.get("entry")), entries=[str(e) for e in described.get("entries") or []],
                               seq_len=_opt_int(described.get("seq_len")), stride=_opt_int(described.get("stride")),
                               stateful=bool(described.get("stateful")),
                               hashed_tables={str(k): int(v) for k, v in (described.get("hashed_tables") or {}).items()},
                               build=dict(described.get("build") or {}))
        self.luts = lut_arrays(self.vocab_size, seed)  # the byte LUTs the child binds: ours, made here too
        self.sizes: dict | None = None
        self.log: list[Asked] = []

    def score(self, tokens: np.ndarray, watch: tuple[int, ...] = (), ranks: list[int] | None = None) -> ScoreResult:
        """Scores of ``tokens``; ``ranks``: the ranks to run (a replay), else the child's plan."""
        from harness.scorer import ScorerError

        tokens = np.asarray(tokens, dtype=np.int64)
        answer = self.session.call({"op": "score", "pipe": self.name, "tokens": tokens.tolist(),
                                    "watch": [int(t) for t in watch], "ranks": ranks})
        if isinstance(answer, dict) and "unscorable" in answer:
            raise ScorerError(str(answer["unscorable"]))
        r = _score_result(answer, tokens.shape[0] - 1, self.vocab_size)
        self.info.stateful = self.info.stateful or bool(answer.get("stateful"))
        self.forwards = int(answer.get("forwards") or self.forwards)
        ran = answer.get("ranks")
        ran = [int(k) for k in ran] if isinstance(ran, list) and all(isinstance(k, int) for k in ran) else None
        self.log.append(Asked(tokens, tuple(int(t) for t in watch), ran, self.sizes, r.nll, r.count))
        return r

    def score_many(self, streams: list[np.ndarray], watch: tuple[int, ...] = ()) -> list[ScoreResult]:
        return [self.score(s, watch) for s in streams]

    @contextlib.contextmanager
    def resized(self, sizes: dict[str, int]):
        """Hashed tables at ``sizes`` for the duration, in the child."""
        saved = self.sizes
        self.session.call({"op": "resize", "pipe": self.name, "sizes": dict(sizes)})
        self.sizes = dict(sizes)
        try:
            yield
        finally:
            self.session.call({"op": "resize", "pipe": self.name, "sizes": saved})
            self.sizes = saved

    def official(self) -> "RemotePipeline":
        """The same eval at its official sequence length and stride, built in the child."""
        return RemotePipeline(self.session, self.session.call({"op": "official"}), name=OFFICIAL)


def _score_result(answer, n: int, vocab: int) -> ScoreResult:
    """The answer as a ScoreResult, refused unless every part has the shape the request implies."""
    if not isinstance(answer, dict):
        raise Malformed("a score answer is not an object")
    nll, count = answer.get("nll"), answer.get("count")
    positions, rows = answer.get("watched_positions"), answer.get("watched_rows")
    ok = (isinstance(nll, np.ndarray) and nll.shape == (n,) and nll.dtype.kind == "f"
          and isinstance(count, np.ndarray) and count.shape == (n,) and count.dtype.kind in "iu"
          and isinstance(positions, np.ndarray) and positions.ndim == 1 and positions.dtype.kind in "iu"
          and isinstance(rows, np.ndarray) and rows.shape == (positions.shape[0], vocab)
          and isinstance(answer.get("total_nll"), (int, float)))
    if not ok:
        raise Malformed(f"a score answer does not hold {n} per-position scores and counts (tampered with?)")
    r = ScoreResult(nll=nll.astype(np.float64), count=count.astype(np.int64), total_nll=float(answer["total_nll"]))
    r.returned = list(answer.get("returned") or [])  # type: ignore[attr-defined]
    r.watched = [(int(p), row) for p, row in zip(positions, rows)]  # type: ignore[attr-defined]
    return r


def _int(d: dict, key: str, least: int) -> int:
    v = d.get(key)
    if not isinstance(v, int) or v < least:
        raise Malformed(f"the pipeline's description has no valid {key}")
    return v


def _opt_int(v) -> int | None:
    return v if isinstance(v, int) else None


class SandboxedSubmissionScorer:
    """A Scorer (harness/scorer.py) over the submission's own eval: each ``score_many`` batch is one
    sandboxed run (one import, one model build), each stream scored from a fresh pipeline state."""

    def __init__(self, sub, *, python: str | None = None, env: dict | None = None, world_size: int = 1,
                 entry_name: str | None = None, seed: int = 0, limits=None, launch=None) -> None:
        from harness.scorer import ScorerError

        if sub.entry is None:
            raise ScorerError("the submission has no train_gpt.py to evaluate")
        self.sub, self.python, self.limits = sub, python, limits
        self.served = {"entry": f"$SUBMISSION/{sub.rel(sub.entry)}", "env": env, "world_size": world_size,
                       "entry_name": entry_name, "seed": seed,
                       "launch_env": dict(launch.env) if launch is not None else None}  # harness.launch.Launch
        self.vocab_size = int((env or {}).get("VOCAB_SIZE", 128))
        self.bos_id = None
        self.last: dict = {}  # of the last batch: entry, model forwards, seconds to set up and to score

    def score(self, tokens: np.ndarray) -> ScoreResult:
        return self.score_many([tokens])[0]

    def score_many(self, streams: list[np.ndarray]) -> list[ScoreResult]:
        import time

        from harness.sandbox import Limits
        from harness.sandbox_session import RemoteError, SandboxSession, SessionLost
        from harness.scorer import ScorerError

        t0 = time.perf_counter()
        try:
            with SandboxSession("harness.remote_pipeline:serve", self.served, copy_dir=self.sub.root,
                                python=self.python, limits=self.limits or Limits(threads=1)) as session:
                pipe = RemotePipeline(session, session.description)
                t1 = time.perf_counter()
                out = [pipe.score(s) for s in streams]
        except (SessionLost, RemoteError, Malformed) as e:
            raise ScorerError(f"scoring in the sandbox failed: {e}") from None
        self.vocab_size = pipe.vocab_size
        self.last = {"entry": pipe.info.entry, "forwards": pipe.forwards, "setup_s": t1 - t0,
                     "score_s": time.perf_counter() - t1}
        return out
