"""Our reference evaluator, n-gram caches, hint tilt and TTT against plain, loop-per-token
references written independently here; the evaluator under 2-process gloo equals one process;
the compiled cache kernels equal the numpy path bit for bit.
Cost: about 20 s (tiny random models, streams of a few thousand tokens; one subprocess compiles
the kernels without a cache, 3 to 7 s)."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.bench_ngram import dict_cache  # the same dict-based reference the benchmark times
from harness.caches import HintTilt, NgramCache, context_hash, counts_before, last_before
from harness.evaluate import evaluate_sliding, sliding_windows, window_segments
from harness.ttt import ChunkedTTT

VOCAB = 48


class TinyLM(torch.nn.Module):
    """Causal toy model: embedding, one causal mixing layer, tied head."""

    def __init__(self, vocab=VOCAB, dim=16, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.emb = torch.nn.Embedding(vocab, dim)
        self.mix = torch.nn.Linear(dim, dim)

    def forward_logits(self, x):
        h = self.emb(x)
        h = torch.cumsum(h, dim=1) / torch.arange(1, x.shape[1] + 1)[None, :, None]  # causal mean
        return torch.tanh(self.mix(h)) @ self.emb.weight.T

    def forward(self, x, y):
        logits = self.forward_logits(x)
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))


def stream(n, seed=1, vocab=VOCAB):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, vocab, size=40)
    # Repetitive text so the caches have something to find.
    return np.concatenate([base[rng.integers(0, 30):][:rng.integers(5, 12)] for _ in range(n)])[:n + 1].astype(np.int64)


def naive_sliding(model, tokens, seq_len, stride):
    """Window by window, as the challenge's eval_val_sliding does it."""
    n = tokens.size - 1
    nll, count = np.zeros(n), np.zeros(n, dtype=np.int64)
    for ws, s, wl in sliding_windows(n, seq_len, stride).tolist():
        x = torch.as_tensor(tokens[ws: ws + wl])[None]
        lp = torch.log_softmax(model.forward_logits(x)[0].double(), -1)
        for j in range(s, wl):
            nll[ws + j] += -float(lp[j, tokens[ws + j + 1]])
            count[ws + j] += 1
    return nll, count


@given(st.integers(1, 400), st.integers(1, 64), st.data())
def test_windows_score_every_target_once(total, seq_len, data):
    stride = data.draw(st.integers(1, seq_len))
    w = sliding_windows(total, seq_len, stride)
    scored = np.concatenate([np.arange(ws + s, ws + wl) for ws, s, wl in w.tolist()])
    assert np.array_equal(scored, np.arange(total))
    assert (w[:, 2] <= seq_len).all() and w[0, 1] == 0
    seg = window_segments(w, total)
    assert (np.diff(seg) >= 0).all()


@torch.inference_mode()
def test_evaluator_matches_window_by_window():
    model = TinyLM()
    tokens = stream(700)
    for seq_len, stride in ((64, 16), (50, 50), (1000, 64)):
        r = evaluate_sliding(model.forward_logits, tokens, seq_len, stride, batch_windows=5)
        nll, count = naive_sliding(model, tokens, seq_len, stride)
        assert np.array_equal(r.score.count, count)
        np.testing.assert_allclose(r.score.nll, nll, rtol=0, atol=1e-5)
        assert math.isclose(r.score.total_nll, nll.sum(), rel_tol=1e-7)


def _gloo_worker(rank, world, port, path):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    r = evaluate_sliding(TinyLM().forward_logits, stream(900), 64, 16, batch_windows=7)
    np.save(f"{path}.{rank}.npy", np.stack([r.score.nll, r.score.count.astype(float)]))
    dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_process(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_gloo_worker, args=(2, port, str(tmp_path / "r")), nprocs=2, join=True)
    one = evaluate_sliding(TinyLM().forward_logits, stream(900), 64, 16)
    for rank in range(2):
        got = np.load(tmp_path / f"r.{rank}.npy")
        assert np.array_equal(got[1], one.score.count)
        np.testing.assert_allclose(got[0], one.score.nll, rtol=0, atol=1e-9)


# ---------------------------------------------------------------- caches, against dict-based references

def dict_counts_before(keys, segment):
    table, out, pending = {}, [], []
    for i, (k, s) in enumerate(zip(keys.tolist(), segment.tolist())):
        if i and s != segment[i - 1]:
            for kk in pending:
                table[kk] = table.get(kk, 0) + 1
            pending = []
        out.append(table.get(k, 0))
        pending.append(k)
    return np.array(out)


@given(st.lists(st.integers(0, 6), min_size=1, max_size=80), st.data())
def test_counts_before_matches_a_dict(keys, data):
    segs = np.cumsum(data.draw(st.lists(st.booleans(), min_size=len(keys), max_size=len(keys))))
    keys = np.array(keys, dtype=np.int64)
    assert np.array_equal(counts_before(keys, segs), dict_counts_before(keys, segs))


def test_target_in_key_cache_matches_dict_reference():
    tokens = stream(3000)
    rng = np.random.default_rng(0)
    model_nll = rng.uniform(0.5, 4.0, tokens.size - 1)
    seg = window_segments(sliding_windows(tokens.size - 1, 128, 32), tokens.size - 1)
    for order, buckets in ((3, 1 << 6), (7, 1 << 12)):
        cache = NgramCache(order, buckets, 0.4, 2, "target-in-key")
        ours = cache.mix(tokens, model_nll, seg, compiled=False)
        ref = dict_cache(tokens, model_nll, seg, order, buckets, 0.4, 2)
        # Not bitwise: numpy's SIMD exp/log and math.exp/log can differ in the last bit.
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
        assert (ours < model_nll).any()
        assert np.array_equal(cache.mix(tokens, model_nll, seg, compiled=True), ours)


# ---------------------------------------------------------------- compiled kernels == numpy path

# numba is a dependency: where its import fails, these tests fail (compiled=True raises), they never skip.


def test_the_compiled_kernels_import():
    import harness.caches_jit  # noqa: F401 - an ImportError here names what is broken in the numba install


@st.composite
def cache_cases(draw):
    """A repetitive token stream, non-decreasing segments and model NLLs."""
    vocab = draw(st.integers(1, 12))
    motif = draw(st.lists(st.integers(0, vocab - 1), min_size=1, max_size=12))
    n = draw(st.integers(0, 160))
    noise = draw(st.lists(st.tuples(st.integers(0, n), st.integers(0, vocab - 1)), max_size=20))
    tokens = np.resize(np.array(motif, dtype=np.int64), n + 1)
    for i, v in noise:
        tokens[i] = v
    if draw(st.booleans()):
        seg = np.cumsum(draw(st.lists(st.booleans(), min_size=n, max_size=n))).astype(np.int64)
    else:  # the sliding-window eval's segments
        seq = draw(st.integers(1, 40))
        seg = window_segments(sliding_windows(n, seq, draw(st.integers(1, seq))), n) if n else np.zeros(0, np.int64)
    nll = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).uniform(0.01, 6.0, n)
    return tokens, seg, nll, vocab


@given(cache_cases(), st.integers(2, 7), st.integers(0, 10), st.floats(0.0, 1.0), st.integers(0, 3),
       st.sampled_from(["target-in-key", "renormalized"]), st.integers(0, 3))
def test_compiled_cache_equals_numpy_path_and_dict_bit_for_bit(case, order, log_buckets, alpha, min_count,
                                                               variant, extra_vocab):
    tokens, seg, nll, vocab = case
    cache = NgramCache(order, 1 << log_buckets, alpha, min_count, variant)
    with np.errstate(all="ignore"):  # min_count 0 in the renormalized variant: 0/0 on both paths
        jit = cache.mix(tokens, nll, seg, vocab + extra_vocab, compiled=True)
        ref = cache.mix(tokens, nll, seg, vocab + extra_vocab, compiled=False)
    np.testing.assert_array_equal(jit, ref)  # NaNs in the same places count as equal
    if variant == "target-in-key" and min_count >= 1 and alpha < 1:  # the dict version: raw count, log(0)
        np.testing.assert_allclose(jit, dict_cache(tokens, nll, seg, order, 1 << log_buckets, alpha, min_count),
                                   rtol=0, atol=1e-12)


@given(cache_cases(), st.integers(1, 6), st.integers(0, 9), st.integers(0, 3))
def test_compiled_hints_equal_numpy_path_and_sequential_updates(case, order, log_buckets, min_count):
    tokens, seg, _, _ = case
    tilt = HintTilt(order, 1 << log_buckets, 1.5, min_count)
    hint, beta = tilt.hints(tokens, seg, compiled=True)
    ref_hint, ref_beta = tilt.hints(tokens, seg, compiled=False)
    assert np.array_equal(hint, ref_hint) and np.array_equal(beta, ref_beta)
    seq_hint, seq_run = sequential_hints(tokens, seg, order, 1 << log_buckets)
    assert np.array_equal(hint, seq_hint)
    assert np.array_equal(beta > 0, (seq_hint >= 0) & (seq_run >= min_count) & (min_count >= 0))


def test_compiled_renormalized_sums_the_vocabulary_in_numpys_order():
    """Vocabularies past 8 and 128 entries (numpy's pairwise summation blocks), counts that are not
    powers of two: the order of the additions shows in the last bits."""
    tokens = stream(1500)
    nll = np.random.default_rng(4).uniform(0.5, 4.0, tokens.size - 1)
    seg = window_segments(sliding_windows(tokens.size - 1, 96, 24), tokens.size - 1)
    for vocab, buckets in ((VOCAB, 1 << 6), (300, 1 << 9), (1024, 1 << 12)):
        cache = NgramCache(3, buckets, 0.35, 1, "renormalized")
        jit = cache.mix(tokens, nll, seg, vocab, compiled=True)
        assert np.array_equal(jit, cache.mix(tokens, nll, seg, vocab, compiled=False))
        assert (jit != nll).mean() > 0.5


def test_compiled_kernels_run_and_decreasing_segments_take_the_numpy_path():
    from harness import caches_jit

    tokens = stream(500)
    nll = np.random.default_rng(3).uniform(0.5, 4.0, tokens.size - 1)
    seg = window_segments(sliding_windows(tokens.size - 1, 64, 16), tokens.size - 1)
    cache = NgramCache(4, 1 << 8, 0.4, 2)
    p = np.exp(-nll)
    assert cache._mix_compiled(caches_jit, tokens, nll, p, seg, 2, None)  # the kernel ran
    assert np.array_equal(-np.log(p), cache.mix(tokens, nll, seg, compiled=False))
    shuffled = seg[::-1].copy()  # decreasing: the kernel refuses, changing nothing
    p = np.exp(-nll)
    assert not cache._mix_compiled(caches_jit, tokens, nll, p, shuffled, 2, None)
    assert np.array_equal(p, np.exp(-nll))
    assert np.array_equal(cache.mix(tokens, nll, shuffled, compiled=True), cache.mix(tokens, nll, shuffled, compiled=False))
    late = seg.copy()
    late[-5:] = 0  # decreasing only near the end: the kernel has mixed most targets by then
    p = np.exp(-nll)
    assert not cache._mix_compiled(caches_jit, tokens, nll, p, late, 2, None)
    assert np.array_equal(p, np.exp(-nll))
    assert np.array_equal(cache.mix(tokens, nll, late, compiled=True), cache.mix(tokens, nll, late, compiled=False))


def test_compiled_segment_longer_than_the_key_buffers_runs_again_with_room_for_it():
    """The kernel keeps room for 2**16 keys of one segment; a longer segment makes it stop and run
    again with the exact longest segment; the result is still the numpy path's."""
    from harness import caches_jit

    n = 70_000
    tokens = stream(n)
    nll = np.random.default_rng(6).uniform(0.5, 4.0, n)
    seg = np.r_[np.zeros(66_000, dtype=np.int64), np.arange(n - 66_000, dtype=np.int64) // 16 + 1]
    small = [np.zeros(1 << 10, dtype=np.uint16) for _ in range(2)]
    bufs = [np.empty(1 << 16, dtype=np.uint64) for _ in range(2)]
    assert caches_jit.target_in_key(tokens.view(np.uint64), seg, 1, 3, np.uint64((1 << 10) - 1), 0.4, 2,
                                    np.exp(-nll), *small, 0xFFFF, *bufs) == caches_jit.SHORT_BUFFER
    assert caches_jit.longest_segment(seg, 1) == 66_000 - 1
    cache = NgramCache(3, 1 << 10, 0.4, 2)
    out = cache.mix(tokens, nll, seg, compiled=True)
    assert np.array_equal(out, cache.mix(tokens, nll, seg, compiled=False))
    assert (out[66_000:] < nll[66_000:]).any()  # the tables learned the long segment


def test_compiled_counters_past_uint16_fall_back_to_int32():
    """A context seen more than 65535 times: the uint16 tables overflow and the kernel runs again
    with int32 counters; the result is still the numpy path's."""
    from harness import caches_jit

    n = 70_000
    tokens = np.zeros(n + 1, dtype=np.int64)
    tokens[::1000] = 1
    nll = np.random.default_rng(5).uniform(0.5, 4.0, n)
    seg = np.arange(n, dtype=np.int64) // 4
    small = [np.zeros(64, dtype=np.uint16) for _ in range(2)]
    bufs = [np.empty(8, dtype=np.uint64) for _ in range(2)]
    assert caches_jit.target_in_key(tokens.view(np.uint64), seg, 1, 3, np.uint64(63), 0.4, 2, np.exp(-nll),
                                    *small, 0xFFFF, *bufs) == caches_jit.OVERFLOW
    cache = NgramCache(3, 64, 0.4, 2)
    assert np.array_equal(cache.mix(tokens, nll, seg, compiled=True), cache.mix(tokens, nll, seg, compiled=False))


def test_compiled_kernels_work_without_a_writable_cache(tmp_path):
    """A read-only install: no __pycache__ beside the code and no per-user cache directory."""
    root = Path(__file__).resolve().parents[1]
    code = tmp_path / "install"
    shutil.copytree(root / "harness", code / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    (code / "harness" / "__pycache__").write_text("")  # a file: numba cannot make the folder
    home = tmp_path / "home"
    home.mkdir()
    (home / ".cache").write_text("")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    script = ("import numpy as np; from harness.caches import NgramCache; from harness import caches_jit; "
              "t = np.arange(300) % 5; s = np.arange(299) // 20; nll = np.linspace(0.5, 3, 299); "
              "c = NgramCache(3, 64); a = c.mix(t, nll, s, compiled=True); b = c.mix(t, nll, s, compiled=False); "
              "print(caches_jit.target_in_key.stats.cache_path, np.array_equal(a, b), (a < nll).any())")
    r = subprocess.run([sys.executable, "-c", script], cwd=code, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["None", "True", "True"], r.stdout + r.stderr[-2000:]


def test_renormalized_cache_is_a_distribution():
    """Summed over every candidate target, the legal variant's probabilities add up to 1."""
    vocab, n = 12, 300
    tokens = stream(n, vocab=vocab)
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(vocab), size=n)  # the model's distribution at each position
    seg = window_segments(sliding_windows(n, 40, 10), n)
    cache = NgramCache(3, 1 << 5, 0.5, 1, "renormalized")
    key_cache = NgramCache(3, 1 << 5, 0.5, 1, "target-in-key")
    key_totals = []
    for i in (50, 123, 250):  # every candidate v as the target at position i; the history stays
        legal_total = key_total = 0.0
        for v in range(vocab):
            alt = tokens.copy()
            alt[i + 1] = v
            model_nll = -np.log(probs[np.arange(n), alt[1:]])
            legal_total += np.exp(-cache.mix(alt, model_nll, seg, vocab)[i])
            key_total += np.exp(-key_cache.mix(alt, model_nll, seg)[i])
        assert legal_total == pytest.approx(1.0, abs=1e-9)
        key_totals.append(key_total)
    assert max(key_totals) > 1.0 + 1e-6  # the target-in-key one is not


def sequential_hints(tokens, segment, order, buckets):
    table, count, pending, hint, run = {}, {}, [], [], []
    for i in range(tokens.size - 1):
        if i and segment[i] != segment[i - 1]:
            for k, t in pending:
                if table.get(k) == t:
                    count[k] += 1
                else:
                    table[k], count[k] = t, 1
            pending = []
        pos = i + 1
        if pos >= order - 1:
            k = int(context_hash(tokens, np.array([pos]), order)[0]) & (buckets - 1)
            hint.append(table.get(k, -1))
            run.append(count.get(k, 0))
            pending.append((k, int(tokens[pos])))
        else:
            hint.append(-1)
            run.append(0)
    return np.array(hint), np.array(run)


def test_hint_tilt_hints_match_sequential_updates():
    tokens = stream(2000)
    seg = window_segments(sliding_windows(tokens.size - 1, 64, 16), tokens.size - 1)
    tilt = HintTilt(4, 1 << 8, 1.5, 2)
    hint, beta = tilt.hints(tokens, seg)
    ref_hint, ref_run = sequential_hints(tokens, seg, 4, 1 << 8)
    assert np.array_equal(hint, ref_hint)
    assert np.array_equal(beta > 0, (ref_hint >= 0) & (ref_run >= 2))
    keys = np.array([3, 3, 3, 5, 3])
    h, r = last_before(keys, np.arange(5), np.array([7, 7, 8, 1, 8]))
    assert h.tolist() == [-1, 7, 7, -1, 8] and r.tolist() == [0, 1, 2, 0, 1]


def test_tilt_renormalized_over_the_vocabulary():
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(VOCAB))
    tilt = HintTilt(beta=1.3)
    total = 0.0
    for v in range(VOCAB):
        toks = np.array([0, v])
        total += math.exp(-tilt.mix(toks, np.array([-math.log(p[v])]), np.array([math.log(p[7])]),
                                    np.array([7]), np.array([1.3]))[0])
    assert total == pytest.approx(1.0, abs=1e-12)


def test_score_first_ttt_scores_each_chunk_before_training_on_it():
    tokens = stream(1200)
    seq_len, stride, chunk = 64, 16, 256
    frozen = evaluate_sliding(TinyLM().forward_logits, tokens, seq_len, stride)
    runs = {}
    for first in (True, False):
        model = TinyLM()
        runs[first] = ChunkedTTT(chunk, lr=0.5, batch_seqs=2, score_first=first).run(
            model, model.forward_logits, model, tokens, seq_len, stride).score
    first_chunk = slice(0, chunk - 1)
    # Score-first: chunk 0 is scored by the untrained model; update-before-score trained on it.
    np.testing.assert_allclose(runs[True].nll[first_chunk], frozen.score.nll[first_chunk], atol=1e-6)
    assert np.abs(runs[False].nll[first_chunk] - frozen.score.nll[first_chunk]).max() > 1e-4
    assert (runs[True].count == 1).all()


def test_cached_scorer_is_a_scorer_of_the_whole_pipeline():
    from harness.caches import CachedScorer
    from harness.evaluate import SlidingScorer

    model = TinyLM()
    base = SlidingScorer(model.forward_logits, VOCAB, seq_len=64, stride=16)
    tokens = stream(600)
    r = base.evaluate(tokens)
    cache = NgramCache(4, 1 << 10, 0.4, 1, "target-in-key")
    got = CachedScorer(base, cache).score(tokens)
    np.testing.assert_allclose(got.nll, cache.mix(tokens, r.score.nll, r.segment), atol=1e-12)
    assert (got.count == 1).all() and got.total_nll == pytest.approx(got.nll.sum())
    tilt = HintTilt(3, 1 << 8, 1.0, 1, gate="word-start")
    word_start = np.arange(VOCAB) % 2 == 0
    gated = CachedScorer(base, tilt, word_start).score(tokens)
    tilt.gate = None
    plain = CachedScorer(base, tilt).score(tokens)
    odd = ~word_start[tokens[1:]]
    np.testing.assert_allclose(gated.nll[odd], r.score.nll[odd], atol=1e-6)  # gate off: the model alone
    assert np.abs(plain.nll[odd] - r.score.nll[odd]).max() > 1e-3


def test_caches_replayed_per_rank_start_empty_at_each_ranks_share():
    from harness.caches import replay_per_rank
    from harness.evaluate import rank_share

    tokens = stream(3000)
    n = tokens.size - 1
    windows = sliding_windows(n, 128, 32)
    seg = window_segments(windows, n)
    nll = np.random.default_rng(1).uniform(0.5, 4.0, n)
    a = int(windows[rank_share(len(windows), 1, 2)][0, :2].sum())  # rank 1's first target
    cache, tilt = NgramCache(5, 1 << 10, 0.4, 2, "target-in-key"), HintTilt(4, 1 << 10, 1.5, 1)
    for compiled in (False, True):
        mixed = replay_per_rank(lambda s, e, sg, f: cache.mix(tokens[s:e + 1], nll[s:e], sg, compiled=compiled, first=f),
                                seg, windows, 2, cache.order)
        hint, beta = replay_per_rank(lambda s, e, sg, f: tilt.hints(tokens[s:e + 1], sg, compiled=compiled, first=f),
                                     seg, windows, 2, tilt.order)
        whole_mix, (whole_hint, whole_beta) = cache.mix(tokens, nll, seg, compiled=compiled), tilt.hints(tokens, seg)
        # Rank 0 is the one stream's beginning; rank 1's cache knows nothing of rank 0's targets.
        assert np.array_equal(mixed[:a], whole_mix[:a]) and np.array_equal(hint[:a], whole_hint[:a])
        first_window = seg == seg[a]
        assert (hint[first_window] == -1).all() and (beta[first_window] == 0).all()
        assert (whole_hint[first_window] >= 0).any()
        np.testing.assert_allclose(mixed[first_window], nll[first_window], rtol=0, atol=1e-12)  # not mixed
        assert (np.abs(mixed[a:] - nll[a:]) > 1e-6).any() and (hint[a:] >= 0).any()  # it learns its own targets
        if compiled:
            assert np.array_equal(mixed, ref_mix) and np.array_equal(hint, ref_hint)
        ref_mix, ref_hint = mixed, hint
