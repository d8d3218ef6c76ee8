"""The shared analysis on target-keyed reads, target-gated choices and calibration: library functions
reached through aliases, values carried through lists, closures and helper parameters. Short synthetic
programs; each test names the rule that must (or must not) fire and where."""

from __future__ import annotations

import textwrap

from checks.static import engine


def errors(code: str, rule: str) -> list[int]:
    found, notes = engine.analyse([engine.Source("example.py", textwrap.dedent(code))], dict(engine.OFFICIAL_ENV))
    assert not notes, notes
    return sorted(f["line"] for f in found if f["rule"] == rule and f["severity"] == "error")


TARGET_KEY_SCORE = """
import numpy as np
{head}
def evaluate(model, table):
    {local}
    val = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
    loss = 0.0
    for t in range(1, len(val) - 1):
        key = (val[t] * 1000003 ^ val[t + 1]) % 4096
        p = 0.5 * model(val[: t + 1])[val[t + 1]] + 0.5 * table[key] / 100
        loss += -{log}(p)
    return loss
"""


def _alias_case(head: str, local: str, log: str) -> list[int]:
    return errors(TARGET_KEY_SCORE.format(head=head, local=local, log=log), "GA101")


def test_module_level_alias_of_a_library_log_is_the_log():
    assert _alias_case("_log = np.log", "pass", "_log") == [10]


def test_import_as_alias_of_a_library_log_is_the_log():
    assert _alias_case("from math import log as L", "pass", "L") == [10]


def test_local_alias_of_a_library_log_is_the_log():
    assert _alias_case("", "np_log = np.log", "np_log") == [10]


def test_a_name_rebound_to_a_value_is_no_longer_an_alias():
    # ``f`` names the model's output afterwards, not the log: no score, nothing reaches a loss
    assert _alias_case("", "f = np.log; f = model", "f") == []


def test_a_keyword_only_parameter_carries_the_target_from_its_call_site():
    code = """
import numpy as np
def lookup(tab, *, ctx, nxt):
    return tab[(ctx * 131 + nxt * 7) & 4095]
def evaluate(model, tab):
    toks = np.fromfile("fineweb_val_000001.bin", dtype=np.uint16)
    total = 0.0
    for i in range(1, len(toks) - 1):
        c = lookup(tab, ctx=toks[i], nxt=toks[i + 1])
        total += -np.log(0.9 * model(toks[: i + 1])[toks[i + 1]] + 0.1 * c)
    return total
"""
    assert errors(code, "GA101") == [4]


CLOSURE_OVER_A_PARAMETER = """
import numpy as np
class Counts:
    def __init__(self, size):
        self.pairs = np.zeros(size)
    def probe(self, prev, nxt):
        return self.pairs[(prev * 131 + nxt * 7) % 4096]
def evaluate(model, toks, table):
    total = 0.0
    def run_chunk(lo, hi):
        out = 0.0
        for i in range(lo, hi):
            nxt = {nxt}
            c = table.probe(toks[i], nxt)
            out += -np.log(0.9 * model(toks[: i + 1])[nxt] + 0.1 * c)
        return out
    total += run_chunk(1, 100)
    return total
def main(model):
    toks = np.fromfile("fineweb_val_000001.bin", dtype=np.uint16)
    evaluate(model, toks, Counts(4096))
main(None)
"""


def test_a_closure_reading_the_enclosing_functions_parameter_keeps_it_that_parameter():
    # ``toks`` is the enclosing function's parameter 1, not the closure's own parameter 1 (``hi``): the target
    # the closure takes from it is validation data at the call of ``evaluate``
    assert errors(CLOSURE_OVER_A_PARAMETER.format(nxt="toks[i + 1]"), "GA101") == [7]


def test_a_closure_keyed_by_the_current_input_only_is_no_target_read():
    assert errors(CLOSURE_OVER_A_PARAMETER.format(nxt="toks[i - 1]"), "GA101") == []


SUFFIX_AFTER_THE_CONTEXT = """
import numpy as np
PRIMES = [7919, 104729, 1299709, 15485863]
class Cache:
    def __init__(self, top=5):
        self.top = top
        self.low = {low}
        self.pairs = {{n: np.zeros(4096, dtype=np.int32) for n in range(self.low, top + 1)}}
        self.ctxs = {{n: np.zeros(4096, dtype=np.int32) for n in range(self.low, top + 1)}}
    def ctx_hash(self, seq, width):
        m = len(seq) - width
        h = np.zeros(m, dtype=np.int64)
        for j in range(width):
            h = h ^ (seq[j: j + m].astype(np.int64) * PRIMES[j % 4])
        return h % 4096
    def probs(self, seq):
        out = np.zeros(len(seq))
        for n in {orders}:
            width = n - 1
            h = self.ctx_hash(seq, width)
            nxt = {nxt}
            hits = self.pairs[n][(h * 131 + nxt.astype(np.int64) * 977) % 4096]
            out[: len(hits)] = hits / np.maximum(self.ctxs[n][h], 1)
        return out
def evaluate(model, val):
    cache = Cache()
    loss = 0.0
    for s in range(0, len(val) - 64, 64):
        span = val[s: s + 65]
        p = model(span[:-1])
        loss += -np.log(0.8 * p + 0.2 * cache.probs(span)[: len(p)]).sum()
    return loss
evaluate(None, np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16))
"""


def _suffix_case(low: int = 2, orders: str = "range(self.top, self.low - 1, -1)", nxt: str = "seq[width:]") -> list[int]:
    return errors(SUFFIX_AFTER_THE_CONTEXT.format(low=low, orders=orders, nxt=nxt), "GA101")


def test_a_suffix_starting_at_the_context_length_is_the_targets():
    # orders count down to ``self.low`` = 2, so the context length is at least 1: ``seq[width:]`` are the tokens
    # that follow the contexts hashed from ``seq[j : j + m]``
    assert _suffix_case() == [22]
    assert _suffix_case(orders="range(self.low, self.top + 1)") == [22]


def test_a_suffix_whose_start_may_be_zero_is_the_whole_stream():
    # with unigrams the context is empty: ``seq[0:]`` holds the contexts' own tokens too
    assert _suffix_case(low=1) == []
    assert _suffix_case(orders="range(self.top)") == []


def test_a_context_slice_ending_at_the_position_is_no_target():
    assert _suffix_case(nxt="seq[len(seq) - width - 1 : -1]") == []


HELPER_KEYS = """
import numpy as np
def hash_keys(tokens, pos, order, primes):
    h = np.zeros(pos.size, dtype=np.uint64)
    for k in range(order - 1):
        h ^= tokens[pos - (order - 1 - k)].astype(np.uint64) * primes[k]
    return h % 4096, (h ^ tokens[pos].astype(np.uint64) * primes[order]) % 4096
def evaluate(model, ctx_counts, full_counts, primes):
    val = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
    loss = 0.0
    for s in range(0, len(val) - 65, 64):
        where = np.arange({start}, {stop})
        ck, fk = hash_keys(val, where, 3, primes)
        est = full_counts[fk] / np.maximum(ctx_counts[ck], 1.0)
        loss += -np.log(0.7 * model(val[s:s + 64]) + 0.3 * est).sum()
    return loss
"""


def test_tokens_a_helper_reads_at_the_positions_of_the_targets_are_the_target():
    # the caller passes the targets' positions (one past the inputs); the helper hashes the token there with
    # the tokens before it (#797's ngram_hash_keys): the full key holds the target, the context key does not
    assert errors(HELPER_KEYS.format(start="s + 1", stop="s + 65"), "GA101") == [14]


def test_tokens_a_helper_reads_at_the_inputs_positions_are_context():
    # the same helper given the inputs' positions: both keys are made of the context
    assert errors(HELPER_KEYS.format(start="s", stop="s + 64"), "GA101") == []
