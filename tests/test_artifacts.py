"""Built-in artifact loaders on artifacts in each of the records' formats; hostile files end in
one line. Cost: about 2 s."""

from __future__ import annotations

import io
import zlib

import pytest
import torch
import zstandard

from harness import AuditError
from harness.artifacts import decode_artifact, dequantize, layout_of, read_artifact
from harness.artifacts.shuffle import shuffle, unshuffle
from tests.artifact_fixtures import BITS, artifacts, expected, saved, state_dict


@pytest.mark.parametrize("name", sorted(artifacts()))
def test_each_format_dequantizes_to_the_expected_weights(name, tmp_path):
    data, kind = artifacts()[name]
    path = tmp_path / name
    path.write_bytes(data)
    obj, info = read_artifact(path)
    assert info["bytes"] == len(data) and info["byte_shuffle"] == ("shuffled" in name)
    sd = state_dict()
    got = dequantize(obj, {k: v.float() for k, v in sd.items()})
    want = expected(kind, sd, BITS)
    assert set(got) == set(want) and layout_of(obj) is not None
    for k in want:
        assert torch.equal(got[k].float(), want[k]), k


def test_shuffle_round_trips():
    for stride in (2, 3, 4):
        data = bytes(range(251)) * 3
        assert unshuffle(shuffle(data, stride)) == (data, True)
    assert unshuffle(b"plain") == (b"plain", False)


def test_unknown_layout_is_one_line():
    blob = zstandard.ZstdCompressor().compress(saved({"weights": torch.zeros(3)}))
    obj, _ = decode_artifact(blob, name="x.ptz")
    with pytest.raises(AuditError, match=r"x.ptz: unknown artifact layout") as e:
        dequantize(obj, name="x.ptz")
    assert "\n" not in str(e.value)


def test_pickled_code_is_refused():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buf = io.BytesIO()
    torch.save({"w": Evil()}, buf)
    with pytest.raises(AuditError, match="weights-only"):
        decode_artifact(zlib.compress(buf.getvalue()), name="evil.ptz")


def test_decompression_bomb_stops_at_the_cap():
    bomb = zstandard.ZstdCompressor(level=19).compress(bytes(50 << 20))
    with pytest.raises(AuditError, match="bomb|over|limit|cap|exceed"):
        decode_artifact(bomb, name="bomb.ptz", max_output_bytes=1 << 20)


def test_one_byte_payload_is_one_line():
    with pytest.raises(AuditError, match="weights-only"):
        decode_artifact(zlib.compress(b"G"), name="g.ptz")


class Banked(torch.nn.Module):
    """A model that stacks its per-layer weights into banks (2 layers, dim 8, kv 4, mlp 16)."""

    def __init__(self, n=2, d=8, kv=4, hidden=16):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.qo_bank = torch.nn.Parameter(torch.randn(2 * n, d, d, generator=g))
        self.kv_bank = torch.nn.Parameter(torch.randn(2 * n, kv, d, generator=g))
        self.mlp_up_bank = torch.nn.Parameter(torch.randn(n, hidden, d, generator=g))
        self.mlp_down_bank = torch.nn.Parameter(torch.randn(n, d, hidden, generator=g))
        self.tok_emb = torch.nn.Embedding(32, d)


def test_banked_model_reads_per_layer_artifact_through_either_dequantizer(tmp_path):
    from types import SimpleNamespace

    from harness import drivers
    from harness.artifacts import banks
    from tests.artifact_fixtures import mixed_object

    model = Banked()
    n = 2
    # The artifact holds the per-layer weights under their usual names, written here by hand.
    flat = {"tok_emb.weight": model.tok_emb.weight.detach().clone()}
    for i in range(n):
        flat[f"blocks.{i}.attn.c_q.weight"] = model.qo_bank[i].detach().clone()
        flat[f"blocks.{i}.attn.proj.weight"] = model.qo_bank[n + i].detach().clone()
        flat[f"blocks.{i}.attn.c_k.weight"] = model.kv_bank[i].detach().clone()
        flat[f"blocks.{i}.attn.c_v.weight"] = model.kv_bank[n + i].detach().clone()
        flat[f"blocks.{i}.mlp.fc.weight"] = model.mlp_up_bank[i].detach().clone()
        flat[f"blocks.{i}.mlp.proj.weight"] = model.mlp_down_bank[i].detach().clone()
    bits = {k: 6 for k in flat if k.startswith("blocks.")}
    path = tmp_path / "banked.ptz"
    path.write_bytes(zstandard.ZstdCompressor().compress(saved(mixed_object(flat, bits))))
    want = expected("mixed", flat, bits)
    template = model.state_dict()
    assert banks.is_banked(template) and not banks.is_banked(state_dict())

    obj, _ = read_artifact(path)
    sd = dequantize(obj, template)
    assert torch.equal(sd["qo_bank"][n + 1], want["blocks.1.attn.proj.weight"])  # slot p * n + i
    assert torch.equal(sd["kv_bank"][1], want["blocks.1.attn.c_k.weight"])
    assert torch.equal(sd["mlp_down_bank"][0], want["blocks.0.mlp.proj.weight"])
    Banked().load_state_dict(sd, strict=True)

    def dequantize_mixed_int6(w, m, template_sd):  # a submission's own dequantizer (per-layer names only)
        return dequantize({"w": w, "m": m}, template_sd)

    own_sd, info = drivers._state_dict(SimpleNamespace(dequantize_mixed_int6=dequantize_mixed_int6), model, str(path))
    assert info["dequantizer"] == "submission's dequantize_mixed_int6" and "qo_bank" in info["banked"]
    assert set(own_sd) == set(sd) and all(torch.equal(own_sd[k], sd[k]) for k in sd)

    del flat["blocks.1.attn.c_v.weight"]
    bits.pop("blocks.1.attn.c_v.weight")
    with pytest.raises(AuditError, match=r"no blocks\.1\.attn\.c_v\.weight for kv_bank\[3\]"):
        dequantize(decode_artifact(zstandard.ZstdCompressor().compress(saved(mixed_object(flat, bits))))[0], template)
