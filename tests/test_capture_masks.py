"""Position tags through a mask (harness/capture.py): a sliding-window eval that computes a loss for
every column of a window and zeroes its context columns (``loss * mask``, ``torch.where``,
``masked_fill``) scores only the columns it kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.capture import position_mode

TAGS = np.arange(12).reshape(2, 6)


def _scored(zero) -> list[int]:
    mode = position_mode()
    mode.capture.start(12)
    with mode:
        loss = torch.rand(2, 6) + 0.5
        mode.tag(loss, TAGS)
        keep = torch.zeros(2, 6, dtype=torch.bool)
        keep[:, 4:] = True  # the window's last two columns are new; the rest is context
        zero(loss, keep).sum()
    return sorted(int(p) for r in mode.capture.records for p in r.pos)


@pytest.mark.parametrize("zero", [
    lambda loss, keep: loss * keep.float(),
    lambda loss, keep: keep.float() * loss,
    lambda loss, keep: torch.where(keep, loss, torch.zeros_like(loss)),
    lambda loss, keep: loss.masked_fill(~keep, 0.0),
], ids=["mul", "rmul", "where", "masked_fill"])
def test_masked_out_columns_are_not_scored(zero):
    assert _scored(zero) == [4, 5, 10, 11]


def test_a_scaled_loss_keeps_every_position():
    assert _scored(lambda loss, keep: loss * 2.0) == list(range(12))


def test_a_loss_of_zero_is_still_a_score():
    mode = position_mode()
    mode.capture.start(4)
    with mode:
        loss = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
        mode.tag(loss, np.arange(4).reshape(1, 4))
        (loss * torch.ones(1, 4)).sum()
    assert sorted(int(p) for r in mode.capture.records for p in r.pos) == [0, 1, 2, 3]
