"""Guards on parameters are evaluated with the constants the call sites pass (``checks/static/flow/callsites.py``):
the #1232 pattern (a cache on only when ``world_size > 1``, the launch running one rank) is off, and it
is on again as soon as one call site passes another value or the function is used other than by a call."""

from __future__ import annotations

import textwrap

import pytest

from checks.static import engine

ONE_RANK = {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}

EVAL = """
import os
import numpy as np
def evaluate(model, table, world_size, use_cache=False):
    default = "1" if world_size > 1 else "0"
    on = bool(int(os.environ.get("CACHE", default))) or use_cache
    stream = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
    acc = 0.0
    for t in range(1, len(stream) - 1):
        p = model(stream[: t + 1])[stream[t + 1]]
        if on:
            p = 0.5 * p + 0.5 * table[(stream[t] * 31 + stream[t + 1]) % 4096] / 100
        acc += -np.log(p)
    return acc
def main(model, table):
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
{calls}
"""


def lookup_severities(calls: str, env: dict[str, str]) -> list[str]:
    code = textwrap.dedent(EVAL).replace("{calls}", textwrap.indent(textwrap.dedent(calls), "    "))
    code += 'if __name__ == "__main__":\n    main(None, None)\n'
    found, notes = engine.analyse([engine.Source("train_gpt.py", code)], dict(env))
    assert not notes, notes
    return [f["severity"] for f in found if f["rule"] == "GA101"]


@pytest.mark.parametrize("calls,env,severity", [
    # the launch runs one rank, and the only caller passes its world size: the cache is off (#1232)
    ("evaluate(model, table, world_size)", ONE_RANK, "info"),
    ("evaluate(model, table, world_size=world_size)", ONE_RANK, "info"),
    # the official eight ranks turn it on (#715)
    ("evaluate(model, table, world_size)", dict(engine.OFFICIAL_ENV), "error"),
    # two callers that agree
    ("evaluate(model, table, world_size)\nevaluate(model, table, 1)", ONE_RANK, "info"),
    # two callers that do not: the guard is not a constant
    ("evaluate(model, table, world_size)\nevaluate(model, table, 8)", ONE_RANK, "error"),
    ("evaluate(model, table, world_size)\nevaluate(model, table, len(table))", ONE_RANK, "error"),
    # handed to another function or stored: its call sites are not known
    ("evaluate(model, table, world_size)\nrun = evaluate\nrun(model, table, 8)", ONE_RANK, "error"),
    # a default turned over by the call site (#856: use_hedge=True over a default False)
    ("evaluate(model, table, world_size, use_cache=True)", ONE_RANK, "error"),
    ("evaluate(model, table, world_size, use_cache=False)", ONE_RANK, "info"),
    # a call in code that does not run under the launch passes nothing that runs
    ("evaluate(model, table, world_size)\nif world_size > 1:\n    evaluate(model, table, 8)", ONE_RANK, "info"),
])
def test_guards_take_the_constants_the_call_sites_pass(calls, env, severity):
    assert lookup_severities(calls, env) == [severity]
