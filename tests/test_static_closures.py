"""The shared analysis on local functions: a closure handed to an optimizer's ``step`` runs there, and the
enclosing function's parameters that a closure reads stay the enclosing function's. Short synthetic
programs; each test names the rule that must (or must not) fire and where."""

from __future__ import annotations

import textwrap

from checks.static import engine


def errors(code: str, rule: str) -> list[int]:
    found, notes = engine.analyse([engine.Source("example.py", textwrap.dedent(code))], dict(engine.OFFICIAL_ENV))
    assert not notes, notes
    return sorted(f["line"] for f in found if f["rule"] == rule and f["severity"] == "error")


# A per-window delta fitted by L-BFGS through a closure over the window's targets, then used to score them.
CLOSURE_FIT = """
import torch, torch.nn.functional as F
def evaluate(model, {val}steps):
    {load}total = 0.0
    for c in range(0, len(val) - 65, 64):
        x, y = val[c:c + 64], val[c + 1:c + 65]
        with torch.no_grad():
            h = model.hidden(x)
        delta = torch.zeros(1, 1024, requires_grad=True)
        opt = torch.optim.LBFGS([delta], max_iter=5)
        def refit():
            opt.zero_grad()
            loss = F.cross_entropy(h + delta, y)
            loss.backward()
            return loss
        for _ in range(steps):
            opt.{step}
        with torch.no_grad():
            total += F.cross_entropy(h + delta.detach(), y, reduction="sum")
    return total
def main():
    val = load("fineweb_val_000000.bin")
    print(evaluate(None, {arg}4))
main()
"""


def _closure_fit(step: str, *, passed: bool) -> list[int]:
    load = "" if passed else 'val = load("fineweb_val_000000.bin")\n    '
    return errors(CLOSURE_FIT.format(val="val, " if passed else "", load=load, arg="val, " if passed else "",
                                     step=step), "GA108")


def test_a_closure_handed_to_an_optimizer_step_trains_there():
    assert _closure_fit("step(refit)", passed=False) == [15]


def test_a_closure_handed_by_keyword_trains_there():
    assert _closure_fit("step(closure=refit)", passed=False) == [15]


def test_a_closure_reading_an_enclosing_parameter_sees_the_callers_data():
    # ``y`` comes from the enclosing function's parameter ``val``: validation data at the call in main
    assert _closure_fit("step(refit)", passed=True) == [14]


def test_a_step_without_the_closure_trains_nothing_here():
    assert _closure_fit("step()", passed=False) == []


def test_a_closure_fitted_on_chunks_already_scored_is_legal():
    code = """
    import torch, torch.nn.functional as F
    def evaluate(model):
        val = load("fineweb_val_000000.bin")
        delta = torch.zeros(1024, requires_grad=True)
        opt = torch.optim.LBFGS([delta])
        total = 0.0
        for c in range(0, len(val) - 65, 64):
            x, y = val[c:c + 64], val[c + 1:c + 65]
            with torch.no_grad():
                total += F.cross_entropy(model(x) + delta, y, reduction="sum")
            def refit():
                opt.zero_grad()
                loss = F.cross_entropy(model(x) + delta, y)
                loss.backward()
                return loss
            opt.step(refit)
        return total
    """
    assert errors(code, "GA108") == []


def test_a_closure_keyed_by_the_enclosing_parameters_target_reads_the_target():
    code = """
    import numpy as np
    def evaluate(model, val, table):
        def prob(t):
            key = (val[t] * 1000003 ^ val[t + 1]) % 4096
            return table[key] / 100
        loss = 0.0
        for t in range(1, len(val) - 1):
            loss += -np.log(0.5 * model(val[: t + 1])[val[t + 1]] + 0.5 * prob(t))
        return loss
    def main():
        val = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
        print(evaluate(None, val, np.zeros(4096)))
    main()
    """
    assert errors(code, "GA101") == [6]


# A helper hashes the tokens at the positions it is handed into a context key and a full key; the caller hands
# it the targets' positions (one past the inputs).
KEYS_AT_HANDED_POSITIONS = """
import numpy as np
def hash_keys(tokens, pos, order, mask):
    h = np.zeros(pos.size, dtype=np.uint64)
    for k in range(order - 1):
        h ^= tokens[pos - (order - 1 - k)].astype(np.uint64) * 1000003
    ctx = (h & mask).astype(np.int64)
    full = ((h ^ (tokens[pos].astype(np.uint64) * 999983)) & mask).astype(np.int64)
    return ctx, full
def evaluate(model, ctx_tab, full_tab):
    val = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
    loss = 0.0
    for ws in range(0, len(val) - 1025, 64):
        nll = model(val[ws:ws + 1024])
        gj = np.arange({start}, ws + 1025, dtype=np.int64)
        ck, fk = hash_keys(val, gj, 5, 4095)
        p = {read} / (ctx_tab[ck] + 1.0)
        loss += -np.log(0.5 * np.exp(-nll) + 0.5 * p).sum()
    return loss
"""


def test_a_key_hashed_from_the_tokens_at_the_targets_positions_a_caller_hands_in():
    code = KEYS_AT_HANDED_POSITIONS.format(start="ws + 1", read="np.minimum(full_tab[fk], ctx_tab[ck])")
    assert errors(code, "GA101") == [17]


def test_a_key_hashed_from_the_tokens_before_the_handed_positions_is_the_context():
    code = KEYS_AT_HANDED_POSITIONS.format(start="ws + 1", read="ctx_tab[ck]")
    assert errors(code, "GA101") == []


def test_a_key_hashed_at_handed_input_positions_is_no_target():
    code = KEYS_AT_HANDED_POSITIONS.format(start="ws", read="np.minimum(full_tab[fk], ctx_tab[ck])")
    assert errors(code, "GA101") == []
