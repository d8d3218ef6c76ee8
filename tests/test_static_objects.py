"""The shared analysis on objects built on data: what a method of a loader or stream returns was read from
the files or tokens its constructor was handed, also when the object is built from a parameter or handed to
another function. Short synthetic programs; each test names the rule that must (or must not) fire and where."""

from __future__ import annotations

import textwrap

from checks.static import engine


def found(code: str, rule: str) -> list[tuple[int, str]]:
    out, notes = engine.analyse([engine.Source("train_gpt.py", textwrap.dedent(code))], dict(engine.OFFICIAL_ENV))
    assert not notes, notes
    return sorted((f["line"], f["severity"]) for f in out if f["rule"] == rule)


# A stream whose tokens come from files of a pattern handed to its constructor, wrapped by a loader.
LOADER_CLASSES = """
import glob, os, time
import numpy as np
import torch
class Stream:
    def __init__(self, pattern):
        self.files = sorted(glob.glob(pattern))
        self.tokens = torch.from_numpy(np.fromfile(self.files[0], dtype=np.uint16))
        self.pos = 0
    def take(self, n):
        parts = []
        parts.append(self.tokens[self.pos:self.pos + n])
        self.pos += n
        return parts[0] if len(parts) == 1 else torch.cat(parts)
class Loader:
    def __init__(self, pattern, rank):
        self.rank = rank
        self.stream = Stream(pattern)
    def next_batch(self, n):
        chunk = self.stream.take(n + 1)
        return chunk[:-1], chunk[1:]
"""

CALIBRATION_ON_A_LOADER = LOADER_CLASSES + """
def collect_hessians(model, loader, batches):
    hessians = {{}}
    def hook(module, inp, out):
        hessians[module] = hessians.get(module, 0) + inp[0].T @ inp[0]
    for m in model.modules():
        m.register_forward_hook(hook)
    for _ in range(batches):
        x, y = loader.next_batch(2048)
        model(x, y)
    return hessians
def main(model):
    train_loader = Loader("data/fineweb_train_*.bin", 0)
    x, y = train_loader.next_batch(2048)
    calib = Loader("data/fineweb_{split}_*.bin", 0)
    return collect_hessians(model, calib, 16)
main(None)
"""


def test_calibration_batches_from_a_loader_built_on_validation_files():
    assert found(CALIBRATION_ON_A_LOADER.format(split="val"), "GA109") == [(31, "error")]


def test_calibration_batches_from_a_loader_built_on_training_files_are_clean():
    assert found(CALIBRATION_ON_A_LOADER.format(split="train"), "GA109") == []


# Calibration after the capped training loop, on a stream the calibration builds from the pattern it is handed.
LATE_CALIBRATION = LOADER_CLASSES + """
def calibrate(model, pattern, n):
    stream = Stream(pattern)
    for _ in range(n):
        tokens = stream.take(2049)
        model.forward_logits(tokens[:-1])
def main(model, opt):
    cap_s = float(os.environ.get("MAX_WALLCLOCK_SECONDS", 600))
    loader = Loader("data/fineweb_train_*.bin", 0)
    t0 = time.perf_counter()
    while True:
        x, y = loader.next_batch(2048)
        model(x, y).backward()
        opt.step()
        if time.perf_counter() - t0 >= cap_s:
            break
    calibrate(model, {pattern}, 64)
main(None, None)
"""


def test_a_stream_built_in_a_helper_on_the_training_files_it_is_handed_reads_them():
    assert found(LATE_CALIBRATION.format(pattern='"data/fineweb_train_*.bin"'), "GA116") == [(27, "warning")]


def test_a_stream_built_on_something_else_reads_no_training_data():
    assert found(LATE_CALIBRATION.format(pattern='"calib/generated_*.bin"'), "GA116") == []



# Training batches from a loader on the training files, then, in the same function, an evaluation loop that
# binds the same names to validation windows: the batches are reads of the training files (for the reads
# after the cap), not token values that reach the evaluation's score.
TRAIN_THEN_EVAL_SAME_NAMES = LOADER_CLASSES + """
import torch.nn.functional as F
def main(model, opt, val):
    loader = Loader("data/fineweb_train_*.bin", 0)
    for step in range(100):
        x, y = loader.next_batch(2048)
        model(x, y).backward()
        opt.step()
    total = 0.0
    for c in range(0, len(val) - 1025, 1024):
        x, y = val[c:c + 1024], val[c + 1:c + 1025]
        total += F.cross_entropy(model.forward_logits(x), y, reduction="sum")
    return total
main(None, None, np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16))
"""


def test_a_training_loaders_batches_do_not_reach_a_later_evaluation_through_its_names():
    assert found(TRAIN_THEN_EVAL_SAME_NAMES, "GA115") == []
