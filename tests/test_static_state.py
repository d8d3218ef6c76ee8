"""State filled with the validation stream (``checks/static/flow/state.py``): an object built from the whole
stream by its constructor is marked at its construction, and a recursive filler (analysed while in
progress) is analysed without failing."""

from __future__ import annotations

import textwrap

from checks.static import engine


def ga105_lines(code: str) -> list[int]:
    found, notes = engine.analyse([engine.Source("train_gpt.py", textwrap.dedent(code))], dict(engine.OFFICIAL_ENV))
    assert not notes, notes
    return [f["line"] for f in found if f["rule"] == "GA105" and f["severity"] == "error"]


CACHE = """
import numpy as np
class Cache:
    def __init__(self, toks):
        self.counts = np.zeros(4096)
        self.counts += np.bincount(toks % 4096, minlength=4096)
    def probs(self, toks):
        return (self.counts[toks % 4096] + 1) / (self.counts.sum() + 4096)
def evaluate(model, pattern):
    val = np.fromfile(pattern, dtype=np.uint16)
    model_p = model(val)
    cache = Cache(val)
    loss = 0.0
    loss += -np.log(0.9 * model_p + 0.1 * cache.probs(val)).sum()
    return loss
evaluate(None, "fineweb_val_000000.bin")
"""


def test_an_object_whose_constructor_counts_the_whole_stream_is_marked_where_it_is_built():
    assert ga105_lines(CACHE) == [12]
    assert ga105_lines(CACHE.replace("fineweb_val_", "fineweb_train_")) == []


def test_a_recursive_filler_is_analysed():
    code = """
import numpy as np
def fill(table, toks, depth):
    table += np.bincount(toks % 4096, minlength=4096)
    if depth:
        fill(table, toks[1:], depth - 1)
def evaluate(model):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
    table = np.zeros(4096)
    fill(table, val, 2)
    loss = 0.0
    loss += -np.log(0.9 * model(val) + 0.1 * table[val % 4096] / table.sum()).sum()
    return loss
evaluate(None)
"""
    assert ga105_lines(code) == [10]


CLOSURE = """
import numpy as np
class Cache:
    def __init__(self):
        self.counts = np.zeros(4096)
    def add(self, toks):
        self.counts += np.bincount(toks % 4096, minlength=4096)
    def probs(self, toks):
        return (self.counts[toks % 4096] + 1) / (self.counts.sum() + 4096)
def evaluate(model, val):
    cache = Cache()
    chunks = [val[i:i + 4096] for i in range(0, len(val), 4096)]
    def score_chunks(update):
        out = []
        for x in chunks:
            out.append(-np.log(0.9 * model(x) + 0.1 * cache.probs(x)).sum())
            if update:
                cache.add(x)
        return out
    first = score_chunks(True)
    total = sum(first)
    for i, x in enumerate(chunks[:{rescored}]):
        new = -np.log(0.9 * model(x) + 0.1 * cache.probs(x)).sum()
        total = total - first[i] + new
    return total
evaluate(None, np.fromfile("fineweb_val_000000.bin", dtype=np.uint16))
"""


def test_a_closure_that_fills_its_functions_cache_then_a_rescore_that_replaces_scores():
    # #959: a score-first pass in a local function updates the enclosing function's cache; its early chunks
    # are then scored again against the complete cache, each new score replacing the old one in the total
    assert ga105_lines(CLOSURE.replace("{rescored}", "4")) == [20]


def test_an_aggregate_in_a_helper_called_once_per_chunk_is_not_of_the_whole_stream():
    code = """
import numpy as np
def chunk_loss(model, x):
    counts = np.bincount(x % 4096, minlength=4096)
    acc = 0.0
    acc += -np.log(0.9 * model(x) + 0.1 * counts[x % 4096]).sum()
    return acc
def evaluate(model):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
    return [chunk_loss(model, val[i:i + 4096]) for i in range(0, len(val), 4096)]
evaluate(None)
"""
    assert ga105_lines(code) == []
