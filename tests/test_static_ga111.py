"""GA111 (partial evaluation): a setting that cuts the validation stream, or the per-position record of
what was scored on it, is judged by its value under the launch. About 1 s."""

from __future__ import annotations

import textwrap

from checks.static import engine

# the validation stream capped by min(setting, its own size), as a quick-experiment switch, then scored
CAPPED_STREAM = """
import os
import torch
LIMIT = int(os.environ.get("EVAL_CAP", "0"))
SEQ = 1024
def load_val():
    tokens = load("fineweb_val_*.bin")
    if LIMIT > 0:
        n = max((LIMIT // SEQ) * SEQ, SEQ)
        n = min(n, tokens.numel() - 1)
        tokens = tokens[: n + 1]
    return tokens
def evaluate(model):
    tokens = load_val()
    total = 0.0
    for s in range(0, tokens.numel() - 1024, 1024):
        total += torch.nn.functional.cross_entropy(model(tokens[s:s + 1024]), tokens[s + 1:s + 1025])
    return total
"""

# per-position losses kept for a second scorer, which reads only a prefix of them
RECORD_PREFIX = """
import os
import torch
class H:
    keep = int(os.environ.get("SECOND_KEEP", 3_000_000))
def evaluate(model, h):
    tokens = load("fineweb_val_*.bin")
    total = tokens.numel() - 1
    nll = torch.zeros((total,))
    for s in range(0, total, 1024):
        x = tokens[s:s + 1024]
        y = tokens[s + 1:s + 1025]
        nll[s:s + 1024] = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
    k = min(int(h.keep), total)
    return second_scorer(nll[:k])
"""

# per-position log-probabilities of the whole stream, cut to a setting when it is below their count
SCORES_PREFIX = """
import os
import torch
def evaluate(model):
    tokens = load("fineweb_val_*.bin")
    x = tokens[:-1]
    y = tokens[1:]
    lp = -torch.nn.functional.cross_entropy(model(x), y, reduction="none")
    k = int(os.environ.get("SUB_TOKENS", 2_000_000))
    if k > 0 and k < len(lp):
        lp = lp[:k]
    return mix_score(lp)
"""


def ga111(code: str, env: dict | None = None) -> list[dict]:
    run_env = dict(engine.OFFICIAL_ENV, **(env or {}))
    found, notes = engine.analyse([engine.Source("train_gpt.py", textwrap.dedent(code))], run_env)
    assert not notes, notes
    return [f for f in found if f["rule"] == "GA111"]


def errors(code: str, env: dict | None = None) -> list[dict]:
    return [f for f in ga111(code, env) if f["severity"] == "error"]


def test_stream_capped_by_min_of_setting_and_size():
    assert errors(CAPPED_STREAM) == []  # off under the defaults
    assert len(errors(CAPPED_STREAM, {"EVAL_CAP": "1048576"})) == 1
    # a limit larger than any validation stream cuts nothing
    assert errors(CAPPED_STREAM, {"EVAL_CAP": "100000000"}) == []


def test_record_of_scored_positions_cut_to_a_setting():
    assert len(errors(RECORD_PREFIX)) == 1
    assert errors(RECORD_PREFIX, {"SECOND_KEEP": "0"}) == []
    # the same record read whole is the full evaluation
    assert errors(RECORD_PREFIX.replace("nll[:k]", "nll")) == []


def test_scores_cut_to_a_setting_outside_loops():
    assert len(errors(SCORES_PREFIX)) == 1
    assert errors(SCORES_PREFIX, {"SUB_TOKENS": "0"}) == []


def test_names_do_not_decide():
    renamed = RECORD_PREFIX.replace("keep", "zq").replace("nll", "arr").replace("second_scorer", "f")
    assert len(errors(renamed)) == 1


def test_settings_of_a_one_line_class_body():
    one_line = """
import os
import torch
class H: keep = int(os.environ.get("SECOND_KEEP", 3_000_000)); other = 1
def evaluate(model, h):
    tokens = load("fineweb_val_*.bin")
    total = tokens.numel() - 1
    nll = torch.zeros((total,))
    for s in range(0, total, 1024):
        nll[s:s + 1024] = torch.nn.functional.cross_entropy(model(tokens[s:s + 1024]), tokens[s + 1:s + 1025], reduction="none")
    return second_scorer(nll[:min(int(h.keep), total)])
"""
    assert len(errors(one_line)) == 1
    assert errors(one_line, {"SECOND_KEEP": "0"}) == []


def test_rank_cut_inside_a_loop_is_not_partial_eval():
    code = """
import os
import torch
RANK = int(os.environ.get("LOW_RANK", 4))
def compress(weights):
    val = load("fineweb_val_*.bin")
    out = []
    for w in weights:
        U, S, V = torch.linalg.svd(w * val.numel())
        r = min(RANK, S.numel())
        out.append(S[:r])
    return out
"""
    assert errors(code) == []


def test_scores_gathered_in_a_list_then_cut():
    code = """
import os
import torch
def evaluate(model):
    tokens = load("fineweb_val_*.bin")
    lps = []
    for s in range(0, tokens.numel() - 1024, 1024):
        x = tokens[s:s + 1024]
        y = tokens[s + 1:s + 1025]
        lps.append(-torch.nn.functional.cross_entropy(model(x), y, reduction="none"))
    lp = torch.cat(lps)
    k = int(os.environ.get("SUB_TOKENS", 2_000_000))
    if k > 0 and k < len(lp):
        lp = lp[:k]
    return mix_score(lp)
"""
    assert len(errors(code)) == 1
    assert errors(code, {"SUB_TOKENS": "0"}) == []


RANDOM_WINDOWS = """
import torch
def evaluate(model):
    tokens = load("fineweb_val_*.bin")
    starts = torch.randint(0, tokens.numel() - 1025, (64,))
    total = 0.0
    for i in starts:
        total += torch.nn.functional.cross_entropy(model(tokens[i:i + 1024]), tokens[i + 1:i + 1025])
    return total / 64
"""


def test_windows_at_random_offsets_are_a_sample():
    found = errors(RANDOM_WINDOWS)
    assert found and "random sample" in found[0]["message"]
    # every window, in a shuffled order, is the whole stream
    every = RANDOM_WINDOWS.replace("torch.randint(0, tokens.numel() - 1025, (64,))",
                                   "torch.randperm(tokens.numel() // 1024 - 1) * 1024")
    assert errors(every) == []


# the first windows scored to choose among candidate weights, then the whole stream scored with the choice
CANDIDATES_ON_FIRST_WINDOWS = """
import os
import torch
SEQ = int(os.environ.get("EVAL_SEQ_LEN", 1024))
def score(model, tokens):
    total = 0.0
    for s in range(0, tokens.numel() - SEQ, SEQ):
        total += torch.nn.functional.cross_entropy(model(tokens[s:s + SEQ]), tokens[s + 1:s + SEQ + 1])
    return total
def main(model, candidates):
    tokens = load("fineweb_val_*.bin")
    small = tokens[: min(64 * SEQ + 1, tokens.numel())]
    best, best_state = float("inf"), None
    for state in candidates:
        model.load_state_dict(state)
        r = score(model, small)
        print(f"candidate {r}")
        if r < best:
            best, best_state = r, state
    model.load_state_dict(best_state)
    print(f"final val_bpb {score(model, tokens)}")
"""


def test_a_cut_whose_score_a_later_full_evaluation_supersedes():
    assert errors(CANDIDATES_ON_FIRST_WINDOWS) == []
    # without the final evaluation of the whole stream, the first windows' score is the one reported
    only_cut = CANDIDATES_ON_FIRST_WINDOWS.replace('print(f"final val_bpb {score(model, tokens)}")', "return best")
    assert len(errors(only_cut)) == 1


def test_a_diagnostic_forward_on_the_first_window_is_no_evaluation():
    code = """
import json, os
import torch
SEQ = int(os.environ.get("EVAL_SEQ_LEN", 1024))
def main(model):
    tokens = load("fineweb_val_*.bin")
    sample = tokens[: SEQ + 1]
    logits = model(sample[:-1])
    stats = {"entropy": float(-(logits.softmax(-1) * logits.log_softmax(-1)).sum(-1).mean())}
    json.dump(stats, open("diagnostics.json", "w"))
"""
    assert errors(code) == []


# the stream handed in by the caller: the record is sized by the argument, the cut is judged where it is called
ARGUMENT_STREAM = """
import os
import torch
class H:
    keep = int(os.environ.get("SECOND_KEEP", 3_000_000))
def evaluate(model, h, tokens):
    total = tokens.numel() - 1
    nll = torch.full((total,), float("nan"))
    for s in range(0, total, 1024):
        nll[s:s + 1024] = torch.nn.functional.cross_entropy(model(tokens[s:s + 1024]), tokens[s + 1:s + 1025], reduction="none")
    k = min(int(h.keep), total)
    return second_scorer(nll[:k])
evaluate(None, H(), load("fineweb_STREAM_*.bin"))
"""


def test_record_sized_by_the_stream_an_argument_holds():
    assert len(errors(ARGUMENT_STREAM.replace("STREAM", "val"))) == 1
    # the same cut of a record of the training stream is no evaluation
    assert errors(ARGUMENT_STREAM.replace("STREAM", "train")) == []


def test_settings_assigned_in_a_class_body_branch():
    branchy = """
import os
import torch
class H:
    kind = os.environ.get("TOKENIZER_KIND", "sp")
    keep = int(os.environ.get("SECOND_KEEP", 3_000_000))
    if kind == "other":
        val_files = os.path.join("data", "other", "fineweb_val_*.bin")
    else:
        val_files = os.path.join("data", "sp", "fineweb_val_*.bin")
class Stream:
    def __init__(self, h):
        self.tokens = load(h.val_files)
def evaluate(model, h, stream):
    total = stream.tokens.numel() - 1
    nll = torch.zeros((total,))
    for s in range(0, total, 1024):
        x, y = stream.tokens[s:s + 1024], stream.tokens[s + 1:s + 1025]
        nll[s:s + 1024] = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
    return second_scorer(nll[:min(int(h.keep), total)])
h = H()
evaluate(None, h, Stream(h))
"""
    assert len(errors(branchy)) == 1
    assert errors(branchy, {"SECOND_KEEP": "0"}) == []
