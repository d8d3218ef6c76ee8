"""Fuzzing the static checker on mutated real-looking sources (the templates of the bundled
examples, damaged byte by byte): every input gives findings or a one-line note, never an exception.
Also token-level mutations that keep the code parsable, so the analysis itself is exercised.
The ``ci`` profile costs a few seconds."""

from __future__ import annotations

import textwrap

from hypothesis import given
from hypothesis import strategies as st

from checks.static import engine
from tests.conftest import ROOT
from tests.fuzz.strategies import damaged

TEMPLATES = ROOT / "harness" / "examples" / "templates"
SEEDS = [(TEMPLATES / n).read_text() for n in ("ngram_target_in_key.py", "tilt_common.py", "two_pass.py", "ttt_common.py")]
ENV = dict(engine.OFFICIAL_ENV)


def _check(text: str) -> None:
    found, notes = engine.analyse([engine.Source("train_gpt.py", text)], ENV)
    for f in found:
        assert f["line"] >= 1 and f["column"] >= 1 and f["severity"] in ("error", "warning", "info")
    for n in notes:
        assert "\n" not in n


@given(st.sampled_from(range(len(SEEDS))).flatmap(lambda i: damaged(SEEDS[i].encode())))
def test_damaged_sources_never_crash_the_checker(data):
    _check(data.decode("utf-8", errors="replace"))


SWAPS = ["+", "-", "*", "^", "&", "//", "%"]


@given(st.sampled_from(range(len(SEEDS))), st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(SWAPS)), max_size=6),
       st.lists(st.sampled_from(["[1:]", "[:-1]", "[t + 1]", "(x)", ".sum()", "[0]"]), max_size=3))
def test_parsable_mutations_never_crash_the_checker(i, swaps, suffixes):
    text = SEEDS[i]
    ops = [k for k, ch in enumerate(text) if ch in "+-*^&" and text[k - 1] == " " and text[k + 1] == " "]
    chars = list(text)
    for at, op in swaps:
        if ops:
            chars[ops[at % len(ops)]] = op
    text = "".join(chars)
    names = [ln for ln in text.splitlines() if ln.strip().startswith(("p = ", "key = ", "nll = ", "loss = "))]
    for k, suf in enumerate(suffixes):
        if names:
            line = names[k % len(names)]
            text = text.replace(line, line + suf, 1)
    _check(textwrap.dedent(text))
