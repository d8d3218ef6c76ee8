"""A function every call of which is in code the launch switches off does not run: what is found inside it
is reported as off (info); called where it runs, it is an error."""

from __future__ import annotations

import textwrap

from checks.static import engine

CODE = """
import os
import torch
import torch.nn.functional as F
ADAPT = bool(int(os.environ.get("ADAPT_ON", "0")))
def adapted_eval(model):
    tokens = load("fineweb_val_*.bin")
    total = 0.0
    for s in range(0, tokens.numel() - 1024, 1024):
        x = tokens[s:s + 1024]
        y = tokens[s + 1:s + 1025]
        h = model.hidden(x)
        delta = torch.zeros(1, h.shape[-1], requires_grad=True)
        opt = torch.optim.AdamW([delta], lr=0.01)
        F.cross_entropy(model.head(h + delta), y).backward()
        opt.step()
        total += F.cross_entropy(model.head(h + delta), y).item()
    return total
def timed(fn, *args):
    return fn(*args)
def main(model):
    if ADAPT:
        print(timed(adapted_eval, model))
"""


def severities(env: dict | None = None) -> set[str]:
    run_env = dict(engine.OFFICIAL_ENV, **(env or {}))
    found, _ = engine.analyse([engine.Source("train_gpt.py", textwrap.dedent(CODE))], run_env)
    return {f["severity"] for f in found if f["family"] in ("update-before-score", "eval-time-optimization")}


def test_function_called_only_where_the_launch_switches_it_off_is_info():
    assert severities() == {"info"}
    assert "error" in severities({"ADAPT_ON": "1"})


def test_a_call_that_runs_keeps_it_on():
    code = CODE.replace("    if ADAPT:\n        print(timed(adapted_eval, model))",
                        "    if ADAPT:\n        print(timed(adapted_eval, model))\n    print(adapted_eval(model))")
    found, _ = engine.analyse([engine.Source("train_gpt.py", textwrap.dedent(code))], dict(engine.OFFICIAL_ENV))
    assert "error" in {f["severity"] for f in found if f["family"] == "eval-time-optimization"}


BRANCHES = """
import numpy as np
def helper(model, toks):
    return model(toks), 0.5
def evaluate(model, table, use_aux):
    toks = np.fromfile("fineweb_val_000001.bin", dtype=np.uint16)
    total = 0.0
    for i in range(1, len(toks) - 1):
        nxt = toks[i + 1]
        if use_aux:
            p, weight = helper(model, toks[: i + 1])
        else:
            p = model(toks[: i + 1])
            weight = None
        if weight is not None:
            p = 0.5 * p[nxt] + weight * table[(toks[i] * 131 + nxt * 7) & 4095]
        else:
            p = p[nxt]
        total += -np.log(p)
    return total
evaluate(None, np.zeros(4096), {use_aux})
"""


def _read_severities(use_aux: str) -> set[str]:
    found, _ = engine.analyse([engine.Source("train_gpt.py", BRANCHES.format(use_aux=use_aux))], dict(engine.OFFICIAL_ENV))
    return {f["severity"] for f in found if f["rule"] == "GA101"}


def test_a_constant_one_branch_sets_is_no_constant_after_an_if_that_may_take_the_other():
    # ``weight = None`` holds only where ``use_aux`` is false: the unpacked pair of the other branch (a tuple
    # target) is no constant, and neither is ``weight`` after the ``if``
    assert _read_severities("True") == {"error"}
    assert _read_severities("flag()") == {"error"}


def test_the_branch_the_launch_takes_sets_the_constant():
    assert _read_severities("False") == {"info"}
