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
