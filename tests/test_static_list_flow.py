"""Values appended to a local list flow into it (validation data, losses), but not which position is the
scored target nor what a caller passes: a list of per-position values (a byte history of the targets) is
read back as a whole, and is no key by the current target."""

from __future__ import annotations

import textwrap

from checks.static import engine, flow


def _final_env(code: str, func: str) -> dict:
    from checks.static.reading import parse as read_python

    prog = flow.Program(dict(engine.OFFICIAL_ENV))
    tree, text = read_python(textwrap.dedent(code))
    prog.add_module("train_gpt.py", "train_gpt", tree, text)
    prog.analyse()
    return prog.modules[0].functions[func].summary.env


def test_a_list_takes_in_the_data_but_not_the_target_identity():
    env = _final_env("""
import torch.nn.functional as F
def evaluate(model, carried):
    tokens = load("fineweb_val_*.bin")
    y = tokens[1:]
    kept = []
    for i in range(10):
        kept.append(F.cross_entropy(model(tokens[i:i + 8]), y[i:i + 8], reduction="none"))
        kept.append(carried)
    return kept
""", "evaluate")
    held = flow.flat(env["kept"])
    assert {"val", "loss"} <= held
    assert "tgt" not in held and not any(x.startswith("p:") for x in held)



def test_a_record_of_several_parts_is_not_flattened_into_the_list():
    # Keys per n-gram order kept as tuples and unpacked later under the same names (the #727 layout): a
    # tuple flattened into the list's labels, minus the target, would replace what the unpacked names
    # held (the target-keyed read was lost on four flagged folders). A tuple leaves the list as it was.
    env = _final_env("""
import numpy as np
def evaluate(mask):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
    keys = []
    for jv in range(1, 9):
        keys.append((val[jv - 1] & mask, (val[jv - 1] ^ val[jv]) & mask))
    return keys
""", "evaluate")
    assert flow.flat(env["keys"]) == frozenset()


def _errors(code: str, rule: str) -> list[int]:
    found, notes = engine.analyse([engine.Source("example.py", textwrap.dedent(code))], dict(engine.OFFICIAL_ENV))
    assert not notes, notes
    return sorted(f["line"] for f in found if f["rule"] == rule and f["severity"] == "error")


PER_ORDER_COUNTS = """
import numpy as np
def evaluate(model, ctx_tables, full_tables, primes):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
    loss = 0.0
    for s in range(0, len(val) - 65, 64):
        where = np.arange(s + 1, s + 65)
        nxt = val[where].astype(np.uint64)
        seen_ctx, seen_full = [], []
        for o in range(3):
            h = val[where - 1].astype(np.uint64) * primes[o]
            seen_ctx.append(ctx_tables[o][h % 4096])
            seen_full.append(full_tables[o][{full_key}])
        p = model(val[s:s + 64])
        for o in range(3):
            est = seen_full[o] / np.maximum(seen_ctx[o], 1.0)
            p = 0.7 * p + 0.3 * est
        loss += -np.log(p).sum()
    return loss
"""


def test_a_read_kept_in_a_list_per_order_keeps_its_event():
    # counts read with a key that holds the target, kept per n-gram order in a list, read back by index and
    # mixed into the score: the read reaches the score through the list (#993's layout)
    assert _errors(PER_ORDER_COUNTS.format(full_key="(h ^ nxt * primes[o + 1]) % 4096"), "GA101") == [13]


def test_a_context_read_kept_in_a_list_is_no_finding():
    # the same layout keyed by the context alone: nothing about the target rides along the list
    assert _errors(PER_ORDER_COUNTS.format(full_key="(h ^ primes[o + 1]) % 4096"), "GA101") == []


KEYS_PER_CHUNK = """
import numpy as np
def evaluate(model, table, primes):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16).astype(np.int64)
    loss = 0.0
    for s in range(0, len(val) - 65, 64):
        x, y = val[s:s + 64], val[s + 1:s + 65]
        keys = []
        for o in range(3):
            keys.append((x * primes[o] ^ {second}) % 4096)
        p = model(x)
        for k in keys:
            p = 0.8 * p + 0.2 * table[k] / 100
        loss += -np.log(p).sum()
    return loss
"""


def test_keys_made_per_chunk_and_read_after_their_loop_keep_the_target():
    # a list made anew for each chunk and filled by the loop over orders holds this chunk's keys: reading the
    # table with them reads it with the target (``keys.append(h)``, then ``for k in keys: table[k]``)
    assert _errors(KEYS_PER_CHUNK.format(second="y * primes[o + 1]"), "GA101") == [13]
    assert _errors(KEYS_PER_CHUNK.format(second="primes[o + 1]"), "GA101") == []


def test_a_history_read_back_by_the_loop_that_fills_it_is_no_target():
    # a byte history made per chunk: each step reads the bytes before it, then appends the one it scored
    code = """
import numpy as np
def evaluate(model, counts):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16).astype(np.int64)
    loss = 0.0
    for s in range(0, len(val) - 65, 64):
        hist = [0, 0]
        for t in range(s, s + 64):
            row = counts[(hist[-1] * 1000003 ^ hist[-2]) % 4096]
            loss += -np.log(0.5 * model(val[t])[val[t + 1]] + 0.5 * row[val[t + 1]] / row.sum())
            hist.append(val[t + 1])
    return loss
"""
    assert [_errors(code, rule) for rule in ("GA101", "GA102", "GA103")] == [[], [], []]


def test_a_list_made_before_the_loop_that_fills_it_takes_no_target():
    env = _final_env("""
import numpy as np
def evaluate(primes):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
    kept = []
    for s in range(0, len(val) - 65, 64):
        kept.append(val[s + 1:s + 65] * primes[0])
    return kept
""", "evaluate")
    assert "tgt" not in flow.flat(env["kept"]) and "val" in flow.flat(env["kept"])
