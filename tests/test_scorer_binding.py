"""How the probes choose and call a submission's eval as its official run does (harness/submission_scorer.py).

Shapes seen in real records: an eval that only runs when a setting turns it on (``if
args.ngram_eval_order >= 2:``), keyword arguments computed in ``main`` from the environment
(``ttt_chunk_tokens=ttt_chunk``), a cache object sizing its tables in ``__init__``
(``self.BUCKETS = 4_194_304``), and a loss accumulated by value in float32.
"""

from __future__ import annotations

import ast
from types import SimpleNamespace

import numpy as np

from harness.capture import Capture, Record
from harness.entry_points import UNKNOWN, Settings, find_entries
from harness.tables import TableSize, class_tables, install_table_sizes, sized_tables

SOURCE = '''
import os
import torch.nn.functional as F

class Mixer:
    def __init__(self, vocab):
        self.BUCKETS = 1 << 22
        self.table_size_hint = 4 * 1024
        self.other = 7

def eval_val_sliding(args, model, val_tokens, stride):
    return F.cross_entropy(model(val_tokens), val_tokens)

def eval_val_ngram(args, model, val_tokens, order, chunk_tokens=32768):
    return F.cross_entropy(model(val_tokens), val_tokens)

def main():
    args = Hyperparameters()
    chunk = int(os.environ.get("CHUNK_TOKENS", "32768"))
    eval_val_sliding(args, model, val_tokens, stride=64)
    if args.ngram_eval_order >= 2:
        eval_val_ngram(args, model, val_tokens, order=args.ngram_eval_order, chunk_tokens=chunk)
'''


def final(source: str, hparams) -> object:
    return next(e for e in find_entries(source, Settings(hparams)) if e.final)


def test_an_eval_the_official_settings_turn_off_is_not_the_final_one():
    assert final(SOURCE, SimpleNamespace(ngram_eval_order=0)).name == "eval_val_sliding"
    on = final(SOURCE, SimpleNamespace(ngram_eval_order=7))
    assert on.name == "eval_val_ngram"
    # Without settings the static choice stands: the last call on the main path.
    assert next(e for e in find_entries(SOURCE) if e.final).name == "eval_val_ngram"


def test_call_site_values_come_from_the_callers_assignments_and_the_environment(monkeypatch):
    hp = SimpleNamespace(ngram_eval_order=7)
    entry = final(SOURCE, hp)
    settings = Settings(hp)
    monkeypatch.setenv("CHUNK_TOKENS", "64")
    assert settings.value(entry.call_args["chunk_tokens"], entry.caller) == 64
    assert settings.value(entry.call_args["order"], entry.caller) == 7
    monkeypatch.delenv("CHUNK_TOKENS")
    assert settings.value(entry.call_args["chunk_tokens"], entry.caller) == 32768
    assert settings.value(ast.parse("f(x)", mode="eval").body, entry.caller) is UNKNOWN


def test_tables_sized_in_a_class_init_are_found_and_resized():
    assert class_tables(SOURCE) == {"Mixer.BUCKETS": 1 << 22, "Mixer.table_size_hint": 4096}
    ns: dict = {}
    exec(compile(ast.parse(SOURCE.split("def eval_val_sliding")[0]), "<mixer>", "exec"), ns)
    module = SimpleNamespace(Mixer=ns["Mixer"])
    descriptors = install_table_sizes(module, {"Mixer.BUCKETS": 1 << 22, "Gone.BUCKETS": 8})
    assert list(descriptors) == ["Mixer.BUCKETS"] and isinstance(descriptors["Mixer.BUCKETS"], TableSize)
    pipe = SimpleNamespace(hparams=SimpleNamespace(), table_descriptors=descriptors)
    assert module.Mixer(8).BUCKETS == 1 << 22
    with sized_tables(pipe, {"Mixer.BUCKETS": 16}):
        assert module.Mixer(8).BUCKETS == 16  # a table built now has 16 buckets
    assert module.Mixer(8).BUCKETS == 1 << 22


def test_a_loss_added_by_value_in_float32_is_the_captured_record():
    """``val_loss_sum += batch_loss.to(float64) * count`` where the model reduced in float32: the
    record summed in float64 differs in the 8th digit and is still the value that was added."""
    cap = Capture()
    cap.start(8)
    values = np.full(4, 4.8592815, dtype=np.float64) + np.arange(4) * 1e-7
    total = float(values.sum())
    cap.record(np.arange(4), values, total)
    cap.record(np.arange(4, 8), values, total + 5.0)  # not added anywhere
    cap.adds.append(float(np.float32(total / 4)) * 4)
    res = cap.result()
    assert list(res.count) == [1, 1, 1, 1, 0, 0, 0, 0]
    assert isinstance(cap.records[0], Record)


def test_the_attributes_an_eval_reads_from_its_parameters():
    """Newer records pass a validation-data object and keep the rank in the hyperparameters
    (``eval_val(h, device, val_data, model)`` reads ``val_data.val_tokens`` and ``h.rank``): the
    probes bind such a parameter to a view of the stream and set the rank on ``h`` per call."""
    from harness.submission_scorer import _param_attrs

    src = ("def eval_val(h, device, val_data, model):\n"
           "    n = val_data.val_tokens.numel() // h.world_size\n"
           "    lut = val_data.base_bytes_lut\n"
           "    return n * h.rank\n")
    assert _param_attrs(src, "eval_val") == {"h": {"world_size", "rank"}, "val_data": {"val_tokens", "base_bytes_lut"}}
    assert _param_attrs(src, "missing") == {}


def test_a_parameter_that_takes_a_forward_gets_the_models_own():
    import torch

    from harness.submission_scorer import SubmissionPipeline

    class Net(torch.nn.Module):
        def forward(self, x):
            return x

        def forward_ttt(self, x, y, lora=None):
            return x + y

    holder = SimpleNamespace(model=Net())
    fwd = SubmissionPipeline._model_forward(holder, "forward_ttt_train")  # main() hands in model.forward_ttt compiled
    assert fwd is not None and fwd.__name__ == "forward_ttt" and fwd.__self__ is holder.model
    assert SubmissionPipeline._model_forward(holder, "forwarded_count") is None
    assert SubmissionPipeline._model_forward(holder, "stride") is None


def test_per_position_outputs_are_eval_logits_or_losses_given_targets():
    import torch

    from harness.submission_scorer import _per_position

    x = torch.zeros(2, 5, dtype=torch.long)
    assert _per_position(torch.zeros(2, 5, 7), x, (), grad=False)  # logits of an eval forward
    assert not _per_position(torch.zeros(2, 5, 7), x, (), grad=True)  # a training forward's logits
    assert _per_position(torch.zeros(2, 5), x, (x,), grad=True)  # TTT: per-token losses, scored then trained on
    assert not _per_position(torch.zeros(2, 5), x, (), grad=False)  # no targets: not a loss per position
    assert not _per_position(torch.zeros(()), x, (x,), grad=False)  # a reduced loss: its terms come from the capture
    assert not _per_position(torch.zeros(2, 4, 7), x, (), grad=False)


def test_every_scoring_of_a_rank_draws_the_same_random_numbers():
    import torch

    from harness.submission_scorer import _seed_process

    _seed_process(3, 1)
    a = torch.rand(4)
    torch.rand(9)
    _seed_process(3, 1)
    assert torch.equal(torch.rand(4), a)
    _seed_process(3, 2)
    assert not torch.equal(torch.rand(4), a)
