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
