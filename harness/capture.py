"""The capture: per-position NLL recovered from a submission's eval without editing its source.

While the eval runs, a ``TorchFunctionMode`` (``position_mode``) tags tensors with the stream
position they belong to:

- the model's logits (tagged by the pipeline, harness/submission_scorer.py) carry the target
  index of each (row, column);
- tags follow the values through torch ops whose output keeps the leading (batch, time) shape
  (log_softmax, gather, cross_entropy with ``reduction='none'``, arithmetic, reshape, slicing,
  ``torch.where``) and through ``.numpy()`` into numpy (``TaggedArray``, an ndarray subclass,
  carries them through ufuncs, slicing and ``np.where``);
- a full sum of a per-position tensor/array is a *scoring record* (positions, values) in the
  mode's ``Capture``; a record counts as scored when its value is added into an accumulator
  (``loss_sum += ...``, a tensor in-place add or an add whose operand equals the record's value).
  If no add is seen (pure-Python accumulation), every record counts.

``Capture.result()`` gives ``nll[i]`` (the first scored value of target i), ``count[i]`` (how many
times it was scored) and ``total_nll``; ``check_capture`` fails closed when what was captured is
not what the eval returned.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.scorer import ScoreResult, ScorerError

DEBUG = False  # raise bookkeeping errors instead of ignoring them (never changes what the eval computes)


class TaggedArray(np.ndarray):
    """A numpy array whose leading dims carry stream positions (``pos``) through ufuncs and slicing;
    its full sums are scoring records of ``capture``, the Capture of the eval it came from."""

    def __array_finalize__(self, obj):
        self.pos = getattr(obj, "pos", None) if obj is not None and getattr(obj, "shape", None) == self.shape else None
        self.capture = getattr(obj, "capture", None)

    def __getitem__(self, idx):
        out = super().__getitem__(idx)
        if isinstance(out, TaggedArray):
            out.pos = _index_tags(self.pos, idx, out.shape)
        return out

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [i.view(np.ndarray) if isinstance(i, TaggedArray) else i for i in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, TaggedArray) else o for o in kwargs["out"])
        out = getattr(ufunc, method)(*plain, **kwargs)
        src = next((i for i in inputs if isinstance(i, TaggedArray) and i.pos is not None), None)
        if src is None:
            return out
        if method == "reduce" and ufunc is np.add and np.ndim(out) == 0 and inputs[0].pos is not None \
                and inputs[0].shape == inputs[0].pos.shape and kwargs.get("axis") in (None, 0) and inputs[0].ndim <= 1:
            src.capture.record(inputs[0].pos, np.asarray(plain[0], dtype=np.float64), float(out))
            return out
        if method == "__call__" and isinstance(out, np.ndarray) and out.shape[: src.pos.ndim] == src.pos.shape:
            return _tag_np(out, src.pos, src.capture)
        return out

    def __array_function__(self, func, types, args, kwargs):
        plain_args = [_untagged(a) for a in args]
        out = func(*plain_args, **kwargs)
        if func is np.concatenate and isinstance(args[0], (list, tuple)) and kwargs.get("axis", 0) == 0:
            return _concatenated(args[0], out)
        src = next((a for a in args if isinstance(a, TaggedArray) and a.pos is not None), None)
        if func is np.sum and src is not None and np.ndim(out) == 0:
            a = args[0]
            if isinstance(a, TaggedArray) and a.pos is not None and a.shape == a.pos.shape:
                a.capture.record(a.pos, np.asarray(plain_args[0], dtype=np.float64), float(out))
            return out
        if src is not None and isinstance(out, np.ndarray) and out.shape[: src.pos.ndim] == src.pos.shape:
            return _tag_np(out, src.pos, src.capture)
        return out

    def sum(self, *a, **k):
        return np.add.reduce(self, *a, **k) if not a and not k else super().sum(*a, **k)


def _untagged(a):
    """A TaggedArray as a plain array, inside a list or tuple too (``np.concatenate([a, b])``):
    one left tagged would dispatch back here without end."""
    if isinstance(a, TaggedArray):
        return a.view(np.ndarray)
    return type(a)(_untagged(x) for x in a) if isinstance(a, (list, tuple)) else a


def _concatenated(parts, out: np.ndarray):
    """Arrays of positions joined along their first axis carry their positions joined."""
    if parts and all(isinstance(p, TaggedArray) and p.pos is not None and p.pos.ndim == 1 for p in parts):
        return _tag_np(out, np.concatenate([p.pos for p in parts]), parts[0].capture)
    return out


def _tag_np(arr: np.ndarray, tags: np.ndarray, capture: "Capture") -> TaggedArray:
    t = arr.view(TaggedArray)
    t.pos, t.capture = tags, capture
    return t


def _index_tags(tags, idx, out_shape):
    """Apply a tensor/array index to the tags (leading dims only); None when it does not map."""
    if tags is None:
        return None
    try:
        if not isinstance(idx, tuple):
            idx = (idx,)
        if any(i is Ellipsis or i is None for i in idx):
            return None
        idx = tuple(np.asarray(i.detach().cpu()) if hasattr(i, "detach") else i for i in idx)
        t = tags[idx[: tags.ndim]]
    except (IndexError, TypeError, ValueError):
        return None
    t = np.asarray(t)
    return t if tuple(out_shape[: t.ndim]) == t.shape else None


@dataclass
class Record:
    pos: np.ndarray
    values: np.ndarray
    total: float
    used: bool = False


class Capture:
    """Collects scoring records while one eval runs (one global instance: the child is single-threaded)."""

    def __init__(self) -> None:
        self.active = False
        self.records: list[Record] = []
        self.adds: list[float] = []
        self.n = 0

    def start(self, n: int) -> None:
        self.active, self.records, self.adds, self.n = True, [], [], n

    def record(self, pos: np.ndarray, values: np.ndarray, total: float) -> None:
        if not self.active:
            return
        pos, values = np.asarray(pos).reshape(-1), np.asarray(values, dtype=np.float64).reshape(-1)
        keep = pos >= 0
        if keep.any():
            self.records.append(Record(pos[keep], values[keep], float(total)))

    def result(self) -> ScoreResult:
        self.active = False
        used = self.scoring(self.records)
        nll = np.full(self.n, np.nan)
        count = np.zeros(self.n, dtype=np.int64)
        for r in used:
            p = r.pos[r.pos < self.n]
            v = r.values[r.pos < self.n]
            first = count[p] == 0
            nll[p[first]] = v[first]
            np.add.at(count, p, 1)
        return ScoreResult(nll=nll, count=count, total_nll=float(sum(r.total for r in used)))

    def scoring(self, records: list[Record]) -> list[Record]:
        """The records that reached the eval's accumulator: added as tensors (``used``), else by value."""
        return [r for r in records if r.used] or self._matched(records)

    def _matched(self, records: list[Record]) -> list[Record]:
        # Records whose value was added to an accumulator by value (float()/python numbers). The
        # eval may have reduced in float32 (a model's mean loss times the count) where the record
        # summed in float64: equal to float32 precision is the same value.
        adds = np.array(sorted(set(self.adds)), dtype=np.float64)
        hit = []
        for r in records:
            if _added(adds, r.total):
                hit.append(r)
            elif r.total != 0 and _added(adds, -r.total):
                # ``loss_sum += float(-np.log(p).sum())``: the sum of log-probabilities, negated after.
                hit.append(Record(r.pos, -r.values, -r.total, True))
        return hit or records


def _added(adds: np.ndarray, total: float) -> bool:
    """Whether ``total`` is one of the values added by value, to float32 precision."""
    return bool(adds.size) and bool(np.any(np.abs(adds - total) <= 1e-6 * max(abs(total), 1.0)))



def position_mode():
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    Tensor = torch.Tensor
    shape_ops = {Tensor.reshape, Tensor.view, torch.reshape, Tensor.flatten, torch.flatten, Tensor.squeeze,
                 torch.squeeze, Tensor.unsqueeze, torch.unsqueeze, Tensor.contiguous, Tensor.view_as, Tensor.reshape_as}
    sums = {Tensor.sum, torch.sum}
    adds = {Tensor.__iadd__, Tensor.add_, Tensor.__add__, Tensor.__radd__, torch.add, Tensor.add}
    from_array = {torch.as_tensor, torch.tensor, torch.asarray}
    # Ops that zero some positions by a mask (``loss * mask``, ``torch.where(mask, loss, 0)``): a
    # position whose value they set to zero is not scored by what follows (a window's context columns).
    zeroing = {Tensor.__mul__, Tensor.__rmul__, Tensor.mul, torch.mul, torch.where, Tensor.masked_fill, torch.masked_fill}

    class Mode(TorchFunctionMode):
        """Propagates position tags (``Mode.tags``: id(tensor) -> (weakref, tags))."""

        def __init__(self) -> None:
            super().__init__()
            self.tags: dict[int, tuple[Any, np.ndarray]] = {}
            self.loss_tags: np.ndarray | None = None  # set while model(x, y) computes its own loss
            self.paused = 0  # depth of model calls in progress: their internals are not tracked
            self.sum_ids: dict[int, Record] = {}
            self.capture = Capture()  # the scoring records of the eval running under this mode

        def tag(self, t, tags: np.ndarray) -> None:
            import weakref

            try:
                ref = weakref.ref(t)
            except TypeError:
                return
            self.tags[id(t)] = (ref, tags)
            if len(self.tags) > 50_000:  # drop entries of dead tensors
                self.tags = {k: v for k, v in self.tags.items() if v[0]() is not None}

        def get(self, t):
            e = self.tags.get(id(t))
            return e[1] if e is not None and e[0]() is t else None

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if self.loss_tags is not None and func is F.cross_entropy and self.capture.active:
                self._record_loss(func, args, kwargs)
            if self.paused or not self.capture.active:
                return out
            try:
                return self._after(func, args, kwargs, out)
            except Exception:  # never let bookkeeping change what the submission computes
                if DEBUG:
                    raise
            return out

        def _record_loss(self, func, args, kwargs) -> None:
            tags = self.loss_tags.reshape(-1)
            inp, target = args[0], args[1]
            if inp.dim() != 2 or inp.shape[0] != tags.size:
                return
            kw = {key: v for key, v in kwargs.items() if key != "reduction"}
            vals = func(inp.float(), target, *args[2:], reduction="none", **kw).detach().double().cpu().numpy()
            self.capture.record(tags, vals, float(vals[tags >= 0].sum()))

        def _after(self, func, args, kwargs, out):
            """Tag what ``func`` gave and record scorings; returns what the call hands back (``out``)."""
            if func in from_array and args and isinstance(args[0], TaggedArray) and args[0].pos is not None \
                    and isinstance(out, Tensor) and tuple(out.shape[: args[0].pos.ndim]) == args[0].pos.shape:
                self.tag(out, args[0].pos)
                return out
            if func in adds:
                for a in args[1:2]:
                    rec = self.sum_ids.get(id(a)) if isinstance(a, Tensor) else None
                    if rec is not None:
                        rec.used = True
                    elif isinstance(a, (float, int)) or (isinstance(a, Tensor) and a.dim() == 0):
                        self.capture.adds.append(float(a))
            tensors = [a for a in _flat(args, kwargs) if isinstance(a, Tensor)]
            tags = next((g for g in (self.get(a) for a in tensors) if g is not None), None)
            if tags is None:
                return out
            src = next(a for a in tensors if self.get(a) is tags)
            if func in (F.cross_entropy, F.nll_loss) and isinstance(out, Tensor) and out.dim() == 0 \
                    and args and src is args[0] and src.dim() == 2 and tags.shape == (src.shape[0],):
                # A reduced loss over tagged rows (``reduction="sum"``): its per-position terms.
                kw = {key: v for key, v in kwargs.items() if key != "reduction"}
                vals = func(src.float(), args[1], *args[2:], reduction="none", **kw).detach().double().cpu().numpy()
                keep = tags >= 0
                if keep.any():
                    rec = Record(tags[keep], vals[keep], float(vals.sum()))
                    self.capture.records.append(rec)
                    if kwargs.get("reduction", "mean") == "sum":
                        self.sum_ids[id(out)] = rec
                        self.tag_scalar(out, rec)
                return out
            if func in sums and isinstance(out, Tensor) and out.dim() == 0 and src.shape == tags.shape and len(args) == 1 and not kwargs:
                vals = src.detach().to("cpu", copy=True).double().numpy()
                rec = Record(tags.reshape(-1), vals.reshape(-1), float(out))
                keep = rec.pos >= 0
                if keep.any():
                    rec = Record(rec.pos[keep], rec.values[keep], rec.total)
                    self.capture.records.append(rec)
                    self.sum_ids[id(out)] = rec
                    self.tag_scalar(out, rec)
                return out
            if func is Tensor.numpy and isinstance(out, np.ndarray):
                if out.shape[: tags.ndim] == tags.shape:
                    return _tag_np(out, tags, self.capture)  # ``.numpy()`` of a tagged tensor: the tagged ndarray
                return out
            if func in zeroing and isinstance(out, Tensor):
                tags = _unzeroed_tags(tags, src, out)
            outs = out if isinstance(out, (tuple, list)) else (out,)
            for o in outs:
                if not isinstance(o, Tensor):
                    continue
                if func is Tensor.__getitem__:
                    t = _index_tags(tags, args[1], tuple(o.shape))
                elif func in shape_ops:
                    t = _reshape_tags(tags, tuple(o.shape))
                elif tuple(o.shape[: tags.ndim]) == tags.shape:
                    t = tags
                else:
                    t = None
                if t is not None:
                    self.tag(o, t)
            return out

        def tag_scalar(self, out, rec) -> None:
            import weakref

            try:
                weakref.finalize(out, self.sum_ids.pop, id(out), None)
            except TypeError:
                pass

    return Mode()


@contextlib.contextmanager
def from_numpy_tagged(torch, mode):
    """``torch.from_numpy`` of a tagged array gives a tagged tensor while an eval runs (the function
    does not dispatch through torch function modes, so the module attribute is swapped for the call)."""
    orig = torch.from_numpy

    def from_numpy(arr):
        out = orig(arr)
        if isinstance(arr, TaggedArray) and arr.pos is not None and tuple(out.shape[: arr.pos.ndim]) == arr.pos.shape:
            mode.tag(out, arr.pos)
        return out

    torch.from_numpy = from_numpy
    try:
        yield
    finally:
        torch.from_numpy = orig


def returned_losses(value) -> list[float]:
    """The finite numbers an eval returned (``(val_loss, val_bpb)``, a dict of metrics, one float)."""
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, (list, tuple)):
        value = [value]
    return [float(v) for v in value if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


@dataclass
class Claimed:
    """The returned number the official run prints as its val_bpb (``Entry.claimed``), and the bytes
    of each stream position's target under every byte convention an eval may count them by (the
    probes hand the eval their own byte LUTs): what the captured scores must explain."""

    index: int
    target_bytes: list[np.ndarray]

    def value(self, returned) -> float | None:
        if isinstance(returned, (list, tuple)) and len(returned) > self.index:
            v = returned[self.index]
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                return float(v)
        return None

    def twin(self, returned) -> int | None:
        """Another element of what was returned that equals the claimed one (to float rounding): a
        mixture's score that is its model's own score on this stream."""
        value = self.value(returned)
        if value is None:
            return None
        return next((i for i, v in enumerate(returned) if i != self.index and isinstance(v, (int, float))
                     and not isinstance(v, bool) and math.isclose(v, value, rel_tol=1e-6)), None)


def target_bytes(tokens: np.ndarray, base: np.ndarray, lead: np.ndarray, boundary: np.ndarray) -> list[np.ndarray]:
    """Bytes of the target of each position (``tokens[1:]``, after ``tokens[:-1]``): the challenge's
    count (a leading space unless after a boundary token), a leading space always, and none."""
    prev, tgt = tokens[:-1], tokens[1:]
    b = base[tgt].astype(np.int64)
    return [b + (lead[tgt] & ~boundary[prev]), b + lead[tgt], b]


def check_capture(capture: "Capture", records: list, returned, fn_name: str, rank: int,
                  claimed: Claimed | None = None) -> None:
    """Fail closed when the per-position scores captured from one rank's call are not the scores it used.

    A captured mean NLL that is none of the numbers the call returned (its mean loss in nats or bits
    per token; the same total is also accepted) over all the scorings, over each position's first score
    or over each position's last one (a second pass that rescores every position and returns only its
    own mean), means the probes would judge something other than
    what the submission scores: a ScorerError, never a pass. A call that returns no finite number
    (a rank without windows, an eval that returns nothing) cannot be checked this way.
    """
    numbers = returned_losses(returned)
    if not numbers:
        return
    used = capture.scoring(records)
    scored = sum(int(r.pos.shape[0]) for r in used)
    if scored == 0:
        raise ScorerError(f"{fn_name} returned {numbers[0]:.6g} as rank {rank} but none of its per-position "
                          "scores could be captured")
    total = sum(r.total for r in used)
    mean = total / scored
    candidates = [mean, mean / math.log(2), total]
    views = _views(used)
    for _, values in views[1:]:  # each position's first score, its last
        view_total = float(values.sum())
        candidates += [view_total / len(values), view_total / len(values) / math.log(2), view_total]
    if any(_close(n, c) for n in numbers for c in candidates):
        _check_claimed(claimed, returned, views, candidates, fn_name, rank)
        return
    raise ScorerError(
        f"the per-position scores captured from {fn_name} as rank {rank} (mean NLL {mean:.6g} nats over "
        f"{scored} scorings) match none of the numbers it returned ({', '.join(f'{n:.6g}' for n in numbers[:4])}): "
        "part of its scoring could not be traced")


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=2e-3, abs_tol=1e-6)


def _check_claimed(claimed: Claimed | None, returned, views: list, candidates: list[float], fn_name: str,
                   rank: int) -> None:
    """Fail closed when the number the run claims is not one the captured scores explain: an eval that
    returns its model's loss and, beside it, the score of a mixture computed where no tag follows
    (#972: ``val_loss, bpb, ng_bpb``, ``val_bpb:{ng_bpb}`` printed) must not be judged by the former."""
    value = claimed.value(returned) if claimed is not None else None
    if value is None:
        return
    twin = claimed.twin(returned)
    if twin is not None:
        raise ScorerError(
            f"{fn_name} returns the same number as rank {rank} in the place its run prints as val_bpb (element "
            f"{claimed.index}) and in element {twin}: the part of the eval that sets them apart never acted on "
            "the probes' streams (a chunk or warm-up longer than the stream), so what the claim rests on was not tested")
    bpb = []
    for pos, vals in views:
        for nbytes in claimed.target_bytes:
            n = float(nbytes[pos].sum()) if pos.size and pos.max() < nbytes.shape[0] else 0.0
            if n > 0:
                bpb.append(vals.sum() / n / math.log(2))
    if any(_close(value, c) for c in candidates + bpb):
        return
    raise ScorerError(
        f"{fn_name} returns {value:.6g} as rank {rank} in the place its run prints as val_bpb (element "
        f"{claimed.index} of what it returns), which its captured per-position scores do not explain: "
        "the claimed score is computed where the probes could not follow it")


def _views(records: list) -> list[tuple[np.ndarray, np.ndarray]]:
    """(positions, values) of every scoring, of each position's first score, and of its last."""
    out = [(np.concatenate([r.pos for r in records]).astype(np.int64), np.concatenate([r.values for r in records]))]
    for view in (first_scores(records), last_scores(records)):
        out.append((np.fromiter(view.keys(), dtype=np.int64), np.fromiter(view.values(), dtype=np.float64)))
    return out


def first_scores(records: list) -> dict[int, float]:
    """Position -> its first score, in the order of the records."""
    first: dict[int, float] = {}
    for r in records:
        for p, v in zip(r.pos.tolist(), r.values.tolist()):
            first.setdefault(p, v)
    return first


def last_scores(records: list) -> dict[int, float]:
    """Position -> its last score: what a second pass that rescores the same positions reports (a
    two-pass eval that logs its first pass and returns the second)."""
    last: dict[int, float] = {}
    for r in records:
        last.update(zip(r.pos.tolist(), r.values.tolist()))
    return last


def _flat(args, kwargs):
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, (list, tuple)):
            yield from a
        else:
            yield a


def _unzeroed_tags(tags: np.ndarray, src, out) -> np.ndarray:
    """``tags`` less the positions a masking op set to zero: all of a position's values are 0 in
    ``out`` and were not all 0 in ``src``, the tagged operand (a zero score stays a score)."""
    if tuple(out.shape[: tags.ndim]) != tags.shape or tuple(src.shape[: tags.ndim]) != tags.shape:
        return tags
    lead = tags.ndim
    o = out.detach().reshape(*tags.shape, -1) if out.dim() > lead else out.detach().reshape(*tags.shape, 1)
    s = src.detach().reshape(*tags.shape, -1) if src.dim() > lead else src.detach().reshape(*tags.shape, 1)
    if o.shape[-1] != s.shape[-1]:
        return tags
    zeroed = ((o == 0).all(dim=-1) & (s != 0).any(dim=-1)).cpu().numpy()
    return np.where(zeroed, -1, tags) if zeroed.any() else tags


def _reshape_tags(tags: np.ndarray, shape: tuple) -> np.ndarray | None:
    """Tags for a reshaped tensor: the leading dims of ``shape`` whose product is the tag count."""
    prod = 1
    for k, d in enumerate(shape, start=1):
        prod *= d
        if prod == tags.size:
            return tags.reshape(shape[:k])
        if prod > tags.size:
            break
    return None
