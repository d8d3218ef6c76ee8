"""Loading GPU-era submission code on CPU: shims, self-extracting wrappers, model construction."""

from __future__ import annotations

import base64
import lzma
import textwrap

import pytest
import torch
import torch.nn.functional as F

from harness import model_build, shims
from harness.sandbox import Limits, run_sandboxed
from harness.unwrap import WrapperError, is_wrapper, unwrap_source

# A baseline-style submission that needs what a CPU box lacks: FA3, triton, torch.compile,
# and a forward that returns only the loss. Built through a helper, as several records do.
GPU_SUBMISSION = textwrap.dedent('''
    import os
    import torch
    import torch.nn.functional as F
    import triton
    import triton.language as tl
    from flash_attn_interface import flash_attn_func as flash_attn_3_func
    from torch import nn


    class Hyperparameters:
        vocab_size = int(os.environ.get("VOCAB_SIZE", 64))
        num_layers = int(os.environ.get("NUM_LAYERS", 3))
        model_dim = int(os.environ.get("MODEL_DIM", 32))
        num_heads = int(os.environ.get("NUM_HEADS", 4))
        softcap = float(os.environ.get("LOGIT_SOFTCAP", 30.0))


    @triton.jit
    def fused_kernel(x_ptr, n: tl.constexpr):
        pass


    class Attn(nn.Module):
        def __init__(self, dim, heads):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(dim, 3 * dim, bias=False)

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).unbind(2)
            return flash_attn_3_func(q, k, v, causal=True).reshape(b, t, d)


    class GPT(nn.Module):
        def __init__(self, vocab_size, num_layers, model_dim, num_heads, logit_softcap):
            super().__init__()
            self.softcap = logit_softcap
            self.emb = nn.Embedding(vocab_size, model_dim)
            self.blocks = nn.ModuleList([Attn(model_dim, num_heads) for _ in range(num_layers)])

        def forward(self, input_ids, target_ids):
            x = self.emb(input_ids)
            for b in self.blocks:
                x = x + b(x)
            logits = F.linear(x, self.emb.weight).reshape(-1, self.emb.weight.size(0))
            logits = self.softcap * torch.tanh(logits / self.softcap)
            return F.cross_entropy(logits.float(), target_ids.reshape(-1))


    def build(h, device):
        model = GPT(h.vocab_size, h.num_layers, model_dim=h.model_dim, num_heads=h.num_heads,
                    logit_softcap=h.softcap).to(device)
        return model


    def main():
        args = Hyperparameters()
        rank = int(os.environ["RANK"])  # a launch-only variable: must not be evaluated
        device = torch.device("cuda", rank)
        base_model = build(args, device)
        compiled = torch.compile(base_model, dynamic=False)
        ema = GPT(1, 1, 1, 1, 1.0)
        raise SystemExit("training is not run by the loader")
''')


def wrap(source: str) -> str:
    blob = base64.b85encode(lzma.compress(source.encode(), format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}]))
    return ("import lzma as L,base64 as B\n__wrapper_size__=1\n"
            f'exec(L.decompress(B.b85decode("{blob.decode()}"),format=L.FORMAT_RAW,filters=[{{"id":L.FILTER_LZMA2}}]))\n')


def test_unwrap_lzma_base85_and_plain_source():
    wrapped = wrap(GPU_SUBMISSION)
    assert is_wrapper(wrapped) and not is_wrapper(GPU_SUBMISSION)
    assert unwrap_source(wrapped) == (GPU_SUBMISSION, 1)
    assert unwrap_source(GPU_SUBMISSION) == (GPU_SUBMISSION, 0)


def test_unwrap_refuses_bombs_and_unknown_calls(tmp_path):
    bomb = base64.b85encode(lzma.compress(b"#" * 30_000_000)).decode()
    with pytest.raises(WrapperError, match="more than"):
        unwrap_source(f'import lzma, base64\nexec(lzma.decompress(base64.b85decode("{bomb}")))\n')
    with pytest.raises(WrapperError, match="unsupported"):
        unwrap_source('import os\nexec(os.popen("echo").read())\n')


def test_unwrap_sibling_file(tmp_path):
    (tmp_path / "train_gpt_decode.py").write_text("x = 1\n")
    entry = tmp_path / "train_gpt.py"
    entry.write_text('exec(open(__file__.replace("train_gpt.py","train_gpt_decode.py")).read())\n')
    assert unwrap_source(entry.read_text(), entry) == ("x = 1\n", 1)


def test_find_construction_follows_helpers_and_prefers_the_model():
    c = model_build.find_construction(GPU_SUBMISSION)
    assert c.callee == "GPT" and c.target == "model"
    assert c.args == ["h.vocab_size", "h.num_layers"] and c.kwargs["logit_softcap"] == "h.softcap"
    assert [s.name for s in c.scopes] == ["main", "build"]
    assert c.scopes[1].bindings == {"h": "args", "device": "device"}


def test_find_construction_without_main_is_one_line_error():
    with pytest.raises(model_build.BuildError, match="no main"):
        model_build.find_construction("import torch\nx = 1\n")


@pytest.mark.parametrize("causal,window,kv_heads", [(True, (-1, -1), 4), (True, (3, 0), 2), (False, (-1, -1), 1)])
def test_flash_attention_shim_matches_explicit_attention(causal, window, kv_heads):
    g = torch.Generator().manual_seed(0)
    b, t, h, d = 2, 9, 4, 8
    q = torch.randn(b, t, h, d, generator=g)
    k = torch.randn(b, t, kv_heads, d, generator=g)
    v = torch.randn(b, t, kv_heads, d, generator=g)
    out = shims.flash_attn_func(q, k, v, causal=causal, window_size=window)
    kk = k.repeat_interleave(h // kv_heads, dim=2)
    vv = v.repeat_interleave(h // kv_heads, dim=2)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, kk) / d ** 0.5
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    allowed = torch.ones(t, t, dtype=torch.bool)
    if causal:
        allowed &= j <= i
    if window[0] >= 0:
        allowed &= j >= i - window[0]
    ref = torch.einsum("bhqk,bkhd->bqhd", scores.masked_fill(~allowed, float("-inf")).softmax(-1), vv)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_flash_varlen_shim_keeps_documents_apart():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(7, 2, 4, generator=g) for _ in range(3))
    cu = torch.tensor([0, 3, 7])
    out = shims.flash_attn_varlen_func(q, k, v, cu, cu, 4, 4, causal=True)
    second = shims.flash_attn_func(q[None, 3:], k[None, 3:], v[None, 3:], causal=True)[0]
    torch.testing.assert_close(out[3:], second)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpu_sub")
    (folder / "train_gpt.py").write_text(wrap(GPU_SUBMISSION))
    r = run_sandboxed("harness.drivers:forward_check", {"entry": "$SUBMISSION/train_gpt.py", "seq_len": 16},
                      copy_dir=folder, limits=Limits(wall_seconds=120))
    assert r.ok, r.error
    return r.value


def test_gpu_submission_runs_a_cpu_forward_in_the_sandbox(loaded):
    assert loaded["model_class"] == "GPT" and loaded["wrapper_layers"] == 1
    assert loaded["logits_from"] == "forward (loss input)"
    assert loaded["logits_shape"] == [2, 16, 64] and loaded["finite"]
    assert {"flash_attn_interface", "triton"} <= set(loaded["shims"])


def test_logits_taken_at_the_loss_equal_the_models_own_loss():
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(11, 5)
            self.head = torch.nn.Linear(5, 11)

        def forward(self, x, y):
            return F.cross_entropy(self.head(self.emb(x)).reshape(-1, 11), y.reshape(-1))

    torch.manual_seed(0)
    m = Tiny()
    x = torch.randint(0, 11, (3, 6))
    y = torch.randint(0, 11, (3, 6))
    logits = model_build.logits_fn(m)(x)
    assert logits.shape == (3, 6, 11)
    torch.testing.assert_close(F.cross_entropy(logits.reshape(-1, 11), y.reshape(-1)), m(x, y))


def test_triton_kernel_launch_says_needs_gpu():
    kernel = shims._jit(lambda x: x)
    with pytest.raises(shims.NeedsGPU, match="needs a GPU"):
        kernel[(1,)](1)
