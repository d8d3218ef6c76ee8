"""The analysis reaches code that runs through a lambda (``timed(lambda: eval_ngram(...))``) and the fields a
dataclass sets in ``__post_init__`` for objects built by ``field(default_factory=C)`` (#846's generated
config, whose validation pattern is set there): the #779 read behind them is found at its line."""

from __future__ import annotations

import textwrap

from checks.static import engine

LOOKUP = """
import numpy as np
def evaluate(model, table, pattern):
    val = np.fromfile(pattern, dtype=np.uint16)
    loss = 0.0
    for t in range(1, len(val) - 1):
        key = (val[t] * 1000003 ^ val[t + 1]) % 4096
        loss += -np.log(0.5 * model(val[: t + 1])[val[t + 1]] + 0.5 * table[key] / 100)
    return loss
"""


def ga101_lines(code: str) -> list[int]:
    found, notes = engine.analyse([engine.Source("train_gpt.py", textwrap.dedent(code))], dict(engine.OFFICIAL_ENV))
    assert not notes, notes
    return [f["line"] for f in found if f["rule"] == "GA101" and f["severity"] == "error"]


def test_a_call_inside_a_lambda_handed_to_a_timer_is_followed():
    main = """
def timed(name, fn):
    return fn()
def main(model, table):
    return timed("ngram_eval_ms", lambda: evaluate(model, table, "data/fineweb_val_*.bin"))
main(None, None)
"""
    assert ga101_lines(LOOKUP + main) == [8]
    assert ga101_lines(LOOKUP + main.replace("fineweb_val_", "fineweb_train_")) == []


def test_a_lambdas_parameters_shadow_the_names_around_it():
    main = """
def main(model, table):
    pattern = "data/fineweb_val_*.bin"
    run = lambda pattern: evaluate(model, table, pattern)
    return run("data/other.bin")
main(None, None)
"""
    assert ga101_lines(LOOKUP + main) == []


def test_fields_a_dataclass_sets_after_init_reach_objects_built_by_default_factory():
    main = """
import os
from dataclasses import dataclass, field
@dataclass
class DataConfig:
    data_path: str = os.environ.get("DATA_PATH", "./data/datasets/fineweb10B_sp1024")
    val_glob: str = field(init=False)
    def __post_init__(self) -> None:
        self.val_glob = os.path.join(self.data_path, "fineweb_val_*.bin")
@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
def main(model, table):
    config = Config()
    return evaluate(model, table, config.data.val_glob)
main(None, None)
"""
    assert ga101_lines(LOOKUP + main) == [8]


def test_arithmetic_on_slice_bounds_is_no_hash_of_the_tokens_sliced():
    # #856: windows cut at seq * seq_len; the targets read a unigram table by themselves (no context in the
    # key): an unnormalized read (GA102), not a key built from the target and its context (GA101)
    code = """
import numpy as np
def evaluate(model, counts, seq_len, my_seqs):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
    loss = 0.0
    for seq in my_seqs:
        start = seq * seq_len
        y = val[start + 1: start + seq_len + 1]
        loss += -np.log(0.9 * model(val[start: start + seq_len])[y] + 0.1 * counts[y] / 100).sum()
    return loss
"""
    found, _ = engine.analyse([engine.Source("train_gpt.py", textwrap.dedent(code))], dict(engine.OFFICIAL_ENV))
    assert [(f["rule"], f["line"]) for f in found if f["severity"] == "error"] == [("GA102", 9)]
