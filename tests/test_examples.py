"""The bundled examples: their code matches the generator, and our data layer reproduces the
BPB each example's own train_gpt.py printed, from its printed val_loss and our byte count."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from harness.examples import EXAMPLES
from harness.examples.build import compose, final_metrics
from harness.shards import load_tokens
from harness.tokenbytes import ByteLUT, bits_per_byte
from tests.conftest import SUBMISSIONS, TOKENIZER, VAL_GLOB

SEQ_LEN, STRIDE = 256, 64  # the examples' TRAIN_SEQ_LEN and EVAL_STRIDE defaults


@pytest.fixture(scope="module")
def stream():
    tokens = load_tokens(VAL_GLOB)
    usable = ((tokens.size - 1) // SEQ_LEN) * SEQ_LEN  # the challenge's load_validation_tokens
    return tokens[: usable + 1], ByteLUT.from_file(TOKENIZER)


def scored_positions(total: int, exactly_once: bool) -> np.ndarray:
    """Target indices the sliding windows score, written out independently of the templates."""
    out = []
    if exactly_once:
        ws = 0
        while True:
            end = min(ws + SEQ_LEN, total)
            out.extend(range(ws if ws == 0 else ws + SEQ_LEN - STRIDE, end))
            if end >= total:
                break
            ws += STRIDE
    else:  # windows every stride up to the end, partial ones scoring their last stride
        for ws in range(0, total, STRIDE):
            end = min(ws + SEQ_LEN, total)
            out.extend(range(ws if ws == 0 else max(end - STRIDE, ws), end))
    return np.asarray(out)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_committed_code_is_what_the_generator_writes(name):
    assert (SUBMISSIONS / name / "train_gpt.py").read_text() == compose(EXAMPLES[name])


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_our_bytes_reproduce_the_printed_bpb(name, stream):
    tokens, lut = stream
    example = EXAMPLES[name]
    positions = scored_positions(tokens.size - 1, exactly_once=example.family != "double-scoring")
    n_bytes = int(lut.target_bytes(tokens[positions], tokens[positions + 1]).sum())
    for seed in example.seeds:
        log = (SUBMISSIONS / name / f"train_seed{seed}.log").read_text()
        for label in sorted({"final_int6_sliding_window", example.final_label}):
            val_loss, val_bpb = final_metrics(log, label)
            _, ours = bits_per_byte(val_loss * positions.size, positions.size, n_bytes)
            assert ours == pytest.approx(val_bpb, abs=1e-6), (label, seed)


def test_double_scoring_shows_in_the_denominators(stream):
    tokens, lut = stream
    total = tokens.size - 1
    once = scored_positions(total, exactly_once=True)
    tail = scored_positions(total, exactly_once=False)
    assert np.array_equal(np.unique(tail), np.arange(total)) and np.array_equal(once, np.arange(total))
    assert tail.size - once.size == (SEQ_LEN // STRIDE - 1) * STRIDE  # 192 extra scorings
    val_loss, val_bpb = final_metrics((SUBMISSIONS / "double_score_tail" / "train_seed1337.log").read_text(), "final_int6_sliding_window")
    n_bytes_once = int(lut.stream_bytes(tokens).sum())
    _, if_once = bits_per_byte(val_loss * total, total, n_bytes_once)
    assert abs(if_once - val_bpb) > 1e-6


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_submission_json_matches_logs(name):
    example = EXAMPLES[name]
    sub = json.loads((SUBMISSIONS / name / "submission.json").read_text())
    bpbs = [final_metrics((SUBMISSIONS / name / f"train_seed{s}.log").read_text(), example.final_label)[1] for s in example.seeds]
    assert sub["val_bpb"] == pytest.approx(float(np.mean(bpbs)), abs=1e-8)
    code = (SUBMISSIONS / name / "train_gpt.py").read_bytes()
    assert sub["bytes_code"] == len(code)
    assert sub["bytes_model_int6_zstd"] == (SUBMISSIONS / name / "final_model.int6.ptz").stat().st_size
    assert sub["bytes_total"] <= 16_000_000


def test_violations_inflate_the_score():
    """The non-compliant pipelines print a better BPB than the same model scored legally."""
    for name in ("ngram_target_in_key", "tilt_target_gated", "two_pass"):
        log = (SUBMISSIONS / name / "train_seed1337.log").read_text()
        legal = final_metrics(log, "final_int6_sliding_window")[1]
        claimed = final_metrics(log, EXAMPLES[name].final_label)[1]
        assert claimed < legal, name
    assert math.isfinite(legal)


def test_examples_are_small():
    for name in EXAMPLES:
        size = sum(f.stat().st_size for f in (SUBMISSIONS / name).iterdir() if f.is_file())
        assert size < 2_000_000, name
