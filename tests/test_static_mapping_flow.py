"""A mapping written with a key computed from values holds history: the hint an online word model gives a
position is read from its tables before it counts the realised token, and that count (read with the target
in its key) reaches later positions only. The size of an array of targets is a count, not the targets."""

from __future__ import annotations

import textwrap

from checks.static import engine

_WORD_MODEL = """
import numpy as np
import torch

class WordCounts:
    def __init__(self):
        self.prev = []
        self.pairs = {}
        self.best_count = {}
        self.best_token = {}
        self.totals = {}

    def hints(self, stream, starts):
        hint = np.zeros(stream.size, dtype=np.int64)
        prob = np.zeros(stream.size, dtype=np.float32)
        for i, t in enumerate(stream):
            tok = int(t)
            ctx = tuple(self.prev[-2:])
            total = self.totals.get(ctx, 0)
            if total > 0:
                hint[i] = self.best_token[ctx]
                prob[i] = self.best_count[ctx] / total
            pair = self.pairs.get((ctx, tok), 0) + 1
            self.pairs[(ctx, tok)] = pair
            self.totals[ctx] = total + 1
            if pair > self.best_count.get(ctx, 0):
                self.best_count[ctx] = pair
                self.best_token[ctx] = tok
            if starts[tok]:
                self.prev.append(tok)
        return hint, prob
{extra}
def evaluate(model, starts, beta):
    val = torch.from_numpy(np.fromfile("fineweb_val_000000.bin", dtype=np.uint16).astype(np.int64))
    targets = val.numpy()[1:]
    hint, prob = {hints}
    hint, prob = torch.from_numpy(hint), torch.from_numpy(prob)
    x, y = val[:-1], val[1:]
    lp = torch.log_softmax(model(x), dim=-1)
    nll = -lp.gather(-1, y[:, None]).squeeze(-1)
    q = lp.gather(-1, hint[:, None]).squeeze(-1).exp()
    tilted = nll - beta * (y == hint).float() + torch.log1p(q * (np.exp(beta) - 1.0))
    {score}
    return loss_sum

evaluate(None, None, 2.0)
"""


def _errors(code: str, rule: str) -> list[int]:
    found, notes = engine.analyse([engine.Source("example.py", textwrap.dedent(code))], dict(engine.OFFICIAL_ENV))
    assert not notes, notes
    return sorted(f["line"] for f in found if f["rule"] == rule and f["severity"] == "error")


def test_counts_of_the_target_written_into_mappings_are_history():
    code = _WORD_MODEL.replace("{extra}", "").replace("{hints}", "WordCounts().hints(targets, starts)") \
        .replace("{score}", "loss_sum = torch.where(prob > 0.5, tilted, nll).sum()")
    assert _errors(code, "GA102") == []


def test_the_target_count_itself_mixed_into_the_score_is_still_found():
    # the same model returning the count of the realised token, read with the target in its key, as its
    # probability: no distribution behind it
    extra = """
def target_counts(model, stream):
    out = np.zeros(stream.size, dtype=np.float32)
    hint = np.zeros(stream.size, dtype=np.int64)
    for i, t in enumerate(stream):
        ctx = tuple(model.prev[-2:])
        out[i] = model.pairs.get((ctx, int(t)), 0) / max(model.totals.get(ctx, 0), 1)
    return hint, out
"""
    code = _WORD_MODEL.replace("{extra}", extra).replace("{hints}", "target_counts(WordCounts(), targets)") \
        .replace("{score}", "loss_sum = (-torch.log(0.9 * (-nll).exp() + 0.1 * prob)).sum()")
    assert _errors(code, "GA102") != []


def test_a_choice_among_experts_over_the_positions_of_the_targets_is_no_target_read():
    code = """
import numpy as np
import torch

def choose(targets, gains, hints):
    total = int(targets.size)
    best = np.argmax(gains, axis=1)
    rows = np.arange(total)
    return hints[rows, best]

def evaluate(model, gains, hints, beta):
    val = torch.from_numpy(np.fromfile("fineweb_val_000000.bin", dtype=np.uint16).astype(np.int64))
    hint = torch.from_numpy(choose(val.numpy()[1:], gains, hints))
    x, y = val[:-1], val[1:]
    lp = torch.log_softmax(model(x), dim=-1)
    nll = -lp.gather(-1, y[:, None]).squeeze(-1)
    q = lp.gather(-1, hint[:, None]).squeeze(-1).exp()
    loss_sum = (nll - beta * (y == hint).float() + torch.log1p(q * (np.exp(beta) - 1.0))).sum()
    return loss_sum

evaluate(None, None, None, 2.0)
"""
    assert _errors(code, "GA102") == []
    # the same selection read at the targets themselves is a read for the realised target
    read_at_target = code.replace("return hints[rows, best]", "return hints[targets, best]")
    assert _errors(read_at_target, "GA102") != []
