"""Loading code this interpreter cannot run as is: Python 3.12 f-strings down-levelled for 3.11,
layer-index hyperparameters that reject the small depth, diffusion models, GPU-only kernel packages.

Cost: ~2 s in-process (hypothesis ci profile) plus two sandboxed imports (~5-10 s).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from harness import downlevel, model_build
from harness.loader import compile_source
from harness.sandbox import Limits, run_sandboxed

from tests.test_repro_loader import wrap

NEEDS_311 = pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12 compiles these f-strings itself")

VALUES = {"x": 7, "y": 2.5, "s": "a'b\"c", "xs": ["p", "q"], "d": {"k": 1.5, "o": "z"}, "w": 9, "p": 3}

# Field expressions; Q is the quote a 3.12 f-string may reuse inside its own fields.
QUOTED = ["{Q}, {Q}.join(xs)", "d[{Q}k{Q}]", "d[{Q}o{Q}]", "len({Q}abc{Q}) + x", "{Q}{Q}.join(sorted(s))",
          "f{Q}<{x}>{Q}", "{Q}-{Q} * p", "[{Q}u{Q}, y]"]
PLAIN = ["x", "y", "s", "xs[0]", "x + 1", "w * y", "d", "s[1:]"]
SPECS = [None, "", ">10", "^{w}", "{w}.{p}", ".2", "*<{w}", ">{w!r}", "{w}"]
TEXT = st.lists(st.sampled_from(["a", " ", "Ω", "{{", "}}", "\\n", "\\t", "\\\\", ":", "=", "!"]), max_size=4).map("".join)


@st.composite
def fstrings(draw):
    """(3.12-style source, 3.11-style source of the same value) of one f-string, maybe concatenated."""
    quote = draw(st.sampled_from(['"', "'", '"""']))
    other = "'" if quote[0] == '"' else '"'
    prefix = draw(st.sampled_from(["f", "F", "rf", "fR"]))
    new, old = [], []
    for _ in range(draw(st.integers(1, 3))):
        text = draw(TEXT)
        new.append(text)
        old.append(text)
        if draw(st.booleans()):  # {e=} formats repr(e) unless a conversion or a spec is given
            e_new = e_old = draw(st.sampled_from(["s", "xs[0]", "s[1:]", "x"]))
            tail = "=" + draw(st.sampled_from(["", "", "!s", "!a"]))
            spec = draw(st.sampled_from([None, None, ">10", "^{w}"]))
        else:
            expr = draw(st.sampled_from(PLAIN + QUOTED))
            e_new, e_old = expr.replace("{Q}", quote[0]), expr.replace("{Q}", other)
            if draw(st.booleans()):  # 3.12: a newline inside a replacement field
                e_new = f"(\n  {e_new}\n)"
                e_old = f"({e_old})"
            tail = draw(st.sampled_from(["", "", "!r", "!s", "!a"]))
            spec = draw(st.sampled_from([None, None, None, *SPECS]))
        tail += "" if spec is None else ":" + spec
        new.append("{" + e_new + tail + "}")
        old.append("{" + e_old + tail + "}")
    new.append(draw(TEXT))
    old.append(new[-1])
    src_new = prefix + quote + "".join(new) + quote
    src_old = prefix + quote + "".join(old) + quote
    if draw(st.booleans()):  # implicit concatenation with plain parts
        before = draw(st.sampled_from(['"a{b}"', "r'\\d{'", '"\\N{GREEK SMALL LETTER ALPHA}"']))
        src_new, src_old = f"{before} {src_new}", f"{before} {src_old}"
    return src_new, src_old


def run(source: str):
    ns = dict(VALUES)
    try:
        exec(compile_source(source, "<test>"), ns)
    except Exception as e:  # noqa: BLE001 - the same exception type is expected from both forms
        return type(e)
    return ns["out"]


@NEEDS_311
@given(fstrings())
def test_down_levelled_fstrings_equal_their_311_spelling(pair):
    new, old = pair
    src_new = f"out = {new}\nline = 3\n"
    src_old = f"out = {old}\nline = 3\n"
    expected = run(src_old)  # valid 3.11: compiled as is
    down, _ = downlevel.down_level(src_new)
    assert down.count("\n") == src_new.count("\n")  # line numbers after the string do not move
    assert run(src_new) == expected


@given(fstrings())
def test_rewriting_a_valid_fstring_keeps_its_value(pair):
    # The builder on its own (no 3.11 parse failure needed): every field form, concatenations.
    _, old = pair
    expr = downlevel.cst.parse_expression(old, config=downlevel.PARSER_CONFIG)
    text, _, _ = downlevel._rewrite(downlevel._flatten(expr))
    assert run(f"out = {text}\n") == run(f"out = {old}\n")


PY312 = next((str(p) for p in sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))),
             None) or shutil.which("python3.12")

CASES_312 = [
    'f"  {cat}: {", ".join(sorted(xs))}"',
    'f"{x = }|{y=:>{w}.{p}}|{s!a:^{w}}|{d["k"]=!s}"',
    'f"{f"{f"{x}"}"}-{"\\n".join(xs)!r}"',
    "f'{d['o']}' 'tail{}' f\"{\n  x # a comment\n  + 1}\"",
    'rf"\\d{x}{{}}\\{y:{w}}"',
]


@NEEDS_311
@pytest.mark.skipif(PY312 is None, reason="no python3.12 to compare with")
def test_down_levelled_fstrings_equal_python_312():
    program = "".join(f"out.append({c})\n" for c in CASES_312)
    prelude = f"cat = 'c'\nout = []\n" + "".join(f"{k} = {v!r}\n" for k, v in VALUES.items())
    ref = subprocess.run([PY312, "-c", prelude + program + "print(repr(out))"], capture_output=True,
                         text=True, timeout=60, env={"PATH": os.environ.get("PATH", "")})
    if ref.returncode != 0:
        pytest.skip(f"python3.12 does not run: {ref.stderr[-200:]}")
    ns: dict = {}
    exec(compile_source(prelude + program, "<test>"), ns)
    assert repr(ns["out"]) == ref.stdout.strip()


@NEEDS_311
def test_line_numbers_and_notes_and_errors():
    src = ('a = f"{", ".join([\n  "u",\n  "v"])}"\ndef g():\n    return 1\n'
           's = "q"\nb = f"{s\n=\n}" f"{"-"}"\ndef h():\n    return 1\n')
    notes: dict = {}
    ns: dict = {}
    exec(compile_source(src, "<t>", notes), ns)
    assert ns["a"] == "u, v" and ns["g"].__code__.co_firstlineno == 4
    assert ns["b"] == "s\n=\n'q'-" and ns["h"].__code__.co_firstlineno == 10
    assert notes == {"fstrings_downlevelled": 2}
    with pytest.raises(SyntaxError, match="invalid syntax|expected"):
        compile_source("def f(:\n  pass\n", "<t>")  # not 3.12 either: the original error
    with pytest.raises(SyntaxError, match="f-string"):
        compile_source('x = f"{a!z}"\n', "<t>")  # invalid in 3.12 too



@NEEDS_311
def test_a_spelling_libcst_refuses_is_down_levelled_too():
    # ``f(p)for p in ps`` (no space before the keyword) compiles in CPython; libcst refuses it.
    src = 'ps = [1, 2]\ntotal = sum(abs(p)for p in ps)\nlabel = f"{", ".join(str(p)for p in ps)}"\n'
    ns: dict = {}
    exec(compile_source(src, "<t>"), ns)
    assert ns["total"] == 3 and ns["label"] == "1, 2"

class Diffusion(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(9, 4)
        self.head = torch.nn.Linear(4, 9)

    def forward_logits(self, xt, sigma):
        return self.head(self.emb(xt) * sigma[:, None, None])


def test_diffusion_forward_needs_its_timestep_and_is_never_scored():
    m = Diffusion()
    with pytest.raises(model_build.BuildError, match=r"\(xt, sigma\).*not an autoregressive"):
        model_build.logits_fn(m)
    fn = model_build.logits_fn(m, conditioned=True)
    x = torch.randint(0, 9, (2, 5))
    assert fn.conditioned_on == ["sigma"]
    torch.testing.assert_close(fn(x), m.forward_logits(x, torch.full((2,), 0.5)))


def test_gpu_only_packages_and_empty_scripts():
    assert "mamba_ssm" in model_build.gpu_only_reason(ModuleNotFoundError("x", name="mamba_ssm.modules.mamba3"))
    assert model_build.gpu_only_reason(ModuleNotFoundError("x", name="einops")) is None
    with pytest.raises(model_build.BuildError, match="empty"):
        model_build.find_construction("\n")


# Wrapped source with 3.12 f-strings whose model rejects the small depth (recurs layers 3,4).
DEEP_312 = textwrap.dedent('''
    import os
    import torch
    from torch import nn


    class Hyperparameters:
        num_layers = int(os.environ.get("NUM_LAYERS", 6))
        recur = [int(v) for v in os.environ.get("RECUR_LAYERS", "3,4").split(",")]
        model_dim = int(os.environ.get("MODEL_DIM", 16))


    class GPT(nn.Module):
        def __init__(self, h):
            super().__init__()
            for r in h.recur:
                if not 0 <= r < h.num_layers:
                    raise ValueError(f"recur layer {r} out of range {", ".join(map(str, [0, h.num_layers]))}")
            self.emb = nn.Embedding(32, h.model_dim)
            self.blocks = nn.ModuleList([nn.Linear(h.model_dim, h.model_dim) for _ in range(h.num_layers)])
            self.note = f"{len(self.blocks)=} {"ok"!r}"

        def forward_logits(self, x):
            y = self.emb(x)
            for b in self.blocks:
                y = y + b(y)
            return y @ self.emb.weight.T


    def main():
        args = Hyperparameters()
        model = GPT(args)
        print(f"{model.note}")
''')

MAMBA = textwrap.dedent('''
    import torch
    from torch import nn
    from mamba_ssm import Mamba2


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = Mamba2(8)


    def main():
        model = Net()
''')


@NEEDS_311
def test_sandboxed_forward_of_312_source_at_its_own_depth_and_gpu_only_error(tmp_path):
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "train_gpt.py").write_text(wrap(DEEP_312))
    r = run_sandboxed("harness.drivers:forward_check", {"entry": "$SUBMISSION/train_gpt.py", "small": True,
                                                        "seq_len": 8, "vocab_size": 32},
                      copy_dir=tmp_path / "deep", limits=Limits(wall_seconds=120))
    assert r.ok, r.error
    v = r.value
    assert v["fstrings_downlevelled"] == 2 and v["wrapper_layers"] == 1
    assert "recur layer 3 out of range 0, 2" in v["own_depth"]
    assert v["logits_shape"] == [2, 8, 32] and v["finite"] and v["params"] == 32 * 64 + 6 * (64 * 64 + 64)  # small width, own depth
    (tmp_path / "mamba").mkdir()
    (tmp_path / "mamba" / "train_gpt.py").write_text(MAMBA)
    r = run_sandboxed("harness.drivers:forward_check", {"entry": "$SUBMISSION/train_gpt.py", "small": True},
                      copy_dir=tmp_path / "mamba", limits=Limits(wall_seconds=120))
    assert not r.ok and "needs GPU" in r.error and "mamba_ssm" in r.error
