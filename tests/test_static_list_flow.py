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
