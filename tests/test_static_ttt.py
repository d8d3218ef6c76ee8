"""Training on validation tokens before they are scored (GA106, GA107): what the analysis must see
through (a model's forward that sums auxiliary losses) and what the launch turns off."""

from __future__ import annotations

import textwrap

from checks.static import engine


def findings(code: str, env: dict | None = None) -> list[tuple[str, str]]:
    launch = dict(engine.OFFICIAL_ENV, **(env or {}))
    out, _ = engine.analyse([engine.Source("train_gpt.py", textwrap.dedent(code), False)], launch)
    return [(f["rule"], f["severity"]) for f in out if f["rule"] in ("GA106", "GA107")]


AUX_LOSS_FORWARD = '''
import torch.nn as nn
import torch.nn.functional as F
class GPT(nn.Module):
    def forward(self, x, y):
        main = F.cross_entropy(self.head(x), y, reduction="mean")
        aux_sum = x.new_zeros(())
        for k, head in enumerate(self.aux_heads):
            aux_sum = aux_sum + F.cross_entropy(head(x[:, k:]), y[:, k:], reduction="mean")
        return main + aux_sum
def adapt(model, opt, tokens, epochs):
    for epoch in range(epochs):
        for c in range(0, len(tokens) - 1025, 1024):
            loss = model(tokens[c:c + 1024], tokens[c + 1:c + 1025])
            loss.backward()
            opt.step()
def evaluate(model, tokens):
    total = 0.0
    for c in range(0, len(tokens) - 1025, 1024):
        total += F.cross_entropy(model.logits(tokens[c:c + 1024]), tokens[c + 1:c + 1025], reduction="sum")
    return total
def main():
    model = GPT()
    val = load("fineweb_val_000000.bin")
    adapt(model, opt, val, 30)
    evaluate(model, val)
main()
'''


def test_sums_inside_the_trained_forward_are_not_a_score_before_the_step():
    # the forward's running sum of auxiliary losses is part of the loss trained, not a score of the chunk
    assert ("GA107", "error") in findings(AUX_LOSS_FORWARD) or ("GA106", "error") in findings(AUX_LOSS_FORWARD)


SWITCHED_PHASE = '''
import os
import torch.nn.functional as F
class Hyperparameters:
    ttt_enabled = bool(int(os.environ.get("TTT_ENABLED", "0")))
def adapt(model, opt, tokens):
    for c in range(0, len(tokens) - 1025, 1024):
        loss = model(tokens[c:c + 1024], tokens[c + 1:c + 1025])
        loss.backward()
        opt.step()
def evaluate(model, tokens):
    total = 0.0
    total += F.cross_entropy(model(tokens[:-1]), tokens[1:], reduction="sum")
    return total
def main(model, opt):
    args = Hyperparameters()
    val = load("fineweb_val_000000.bin")
    if args.ttt_enabled:
        adapt(model, opt, val)
    evaluate(model, val)
main(None, None)
'''


def test_training_phase_behind_a_flag_off_under_the_launch_is_info():
    assert findings(SWITCHED_PHASE) == [("GA107", "info")]


def test_training_phase_behind_a_flag_the_launch_sets_is_an_error():
    assert findings(SWITCHED_PHASE, {"TTT_ENABLED": "1"}) == [("GA107", "error")]


EPOCHS_OF_SCORE_FIRST = '''
import math
import os
import torch
import torch.nn.functional as F
def evaluate_ttt(model, opt, tokens, epochs):
    loss_sum = torch.zeros(())
    for epoch in range(epochs):
        for g in opt.param_groups:
            g["lr"] = 0.01 * max(math.cos(math.pi * epoch / epochs), 0.1)
        for c in range(0, len(tokens) - 1025, 1024):
            nll = F.cross_entropy(model(tokens[c:c + 1024]), tokens[c + 1:c + 1025], reduction="none")
            if epoch == epochs - 1:
                loss_sum += nll.detach().sum()
            nll.mean().backward()
            opt.step()
    return loss_sum
class Hyperparameters:
    ttt_epochs = int(os.environ.get("TTT_EPOCHS", "8"))
def main(model, opt):
    args = Hyperparameters()
    val = load("fineweb_val_000000.bin")
    evaluate_ttt(model, opt, val, args.ttt_epochs)
main(None, None)
'''


def test_epochs_of_a_score_first_loop_score_chunks_already_trained_on():
    # from the second pass on each chunk is scored after a step on it (the score kept from the last pass)
    assert findings(EPOCHS_OF_SCORE_FIRST) == [("GA106", "error")]


def test_a_single_pass_of_a_score_first_loop_is_clean():
    assert findings(EPOCHS_OF_SCORE_FIRST, {"TTT_EPOCHS": "1"}) == []


SCORE_FIRST_WITH_EPOCHS_PER_CHUNK = '''
import torch
import torch.nn.functional as F
def evaluate_ttt(model, opt, tokens, epochs):
    loss_sum = torch.zeros(())
    for c in range(0, len(tokens) - 1025, 1024):
        x, y = tokens[c:c + 1024], tokens[c + 1:c + 1025]
        with torch.inference_mode():
            loss_sum += F.cross_entropy(model(x), y, reduction="sum")
        for epoch in range(epochs):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
    return loss_sum
def main(model, opt):
    val = load("fineweb_val_000000.bin")
    evaluate_ttt(model, opt, val, 4)
'''


def test_epochs_on_a_chunk_after_scoring_it_are_clean():
    assert findings(SCORE_FIRST_WITH_EPOCHS_PER_CHUNK) == []


EPOCHS_WITH_A_LOSS_LOG = '''
import torch
import torch.nn.functional as F
def prequant_ttt(model, opt, tokens, epochs):
    for epoch in range(epochs):
        epoch_loss = torch.zeros(())
        for c in range(0, len(tokens) - 1025, 1024):
            loss = F.cross_entropy(model(tokens[c:c + 1024]), tokens[c + 1:c + 1025])
            loss.backward()
            opt.step()
            epoch_loss += loss.detach() * 1024
        print(f"epoch {epoch}: {epoch_loss.item()}")
def evaluate(model, tokens):
    total = 0.0
    for c in range(0, len(tokens) - 1025, 1024):
        total += F.cross_entropy(model(tokens[c:c + 1024]), tokens[c + 1:c + 1025], reduction="sum")
    return total
def main(model, opt):
    val = load("fineweb_val_000000.bin")
    prequant_ttt(model, opt, val, 6)
    evaluate(model, val)
main(None, None)
'''


def test_a_log_of_the_trained_loss_is_not_a_score_after_the_step():
    # the running sum of the loss each step was taken on was computed before the step: the pass over the
    # validation stream is a training phase before the evaluation, not a chunk trained then scored
    assert findings(EPOCHS_WITH_A_LOSS_LOG) == [("GA107", "error")]


SCORE_FIRST_WITH_A_SUMMING_FORWARD = '''
import torch
import torch.nn as nn
import torch.nn.functional as F
class GPT(nn.Module):
    def forward_logits(self, x):
        h = self.embed(x)
        for k, block in enumerate(self.blocks):
            h = h + F.log_softmax(block(h), -1)
        return self.head(h)
def evaluate_ttt(model, opt, tokens, epochs):
    loss_sum = torch.zeros(())
    for c in range(0, len(tokens) - 1025, 1024):
        x, y = tokens[c:c + 1024], tokens[c + 1:c + 1025]
        with torch.inference_mode():
            loss_sum += F.cross_entropy(model.forward_logits(x), y, reduction="sum")
        for epoch in range(epochs):
            logits = model.forward_logits(x)
            nll = F.cross_entropy(logits, y, reduction="none")
            loss = nll.mean()
            loss.backward()
            opt.step()
    return loss_sum
def main():
    model = GPT()
    val = load("fineweb_val_000000.bin")
    evaluate_ttt(model, opt, val, 4)
main()
'''


def test_sums_inside_a_forward_the_trained_loss_is_computed_from():
    # the forward's running sum, reached through the names the loss is computed from (logits -> nll -> loss),
    # is part of the loss trained in each epoch, not a score of the chunk made after the step
    assert findings(SCORE_FIRST_WITH_A_SUMMING_FORWARD) == []


# An evaluation first, then epochs of training over the validation stream written inline in ``main``, then the
# evaluation that counts: the earlier evaluation does not make the epochs score-first (they hold no score).
EVAL_THEN_INLINE_PASS = '''
import torch.nn.functional as F
def evaluate(model, tokens):
    total = 0.0
    for c in range(0, len(tokens) - 1025, 1024):
        total += F.cross_entropy(model(tokens[c:c + 1024]), tokens[c + 1:c + 1025], reduction="sum")
    return total
def main(model, opt):
    val = load("fineweb_val_000000.bin")
    print(evaluate(model, val))
    for epoch in range(30):
        for c in range(0, len(val) - 1025, 1024):
            {body}
    print(evaluate(model, val))
main(None, None)
'''
TRAIN_CHUNK = '''loss = F.cross_entropy(model(val[c:c + 1024]), val[c + 1:c + 1025])
            loss.backward()
            opt.step()'''
SCORE_THEN_TRAIN_CHUNK = '''total = 0.0
            total += F.cross_entropy(model(val[c:c + 1024]), val[c + 1:c + 1025], reduction="sum")
            loss = F.cross_entropy(model(val[c:c + 1024]), val[c + 1:c + 1025])
            loss.backward()
            opt.step()'''


def test_a_training_pass_after_an_earlier_evaluation_is_a_training_phase():
    assert findings(EVAL_THEN_INLINE_PASS.format(body=TRAIN_CHUNK)) == [("GA107", "error")]


def test_a_score_first_pass_after_an_earlier_evaluation_stays_clean():
    code = EVAL_THEN_INLINE_PASS.replace("for epoch in range(30):", "for epoch in range(1):")
    assert findings(code.format(body=SCORE_THEN_TRAIN_CHUNK)) == []


def test_a_pass_whose_loop_picks_its_data_after_an_earlier_evaluation_is_not_epochs():
    # a compile warm-up over a few shapes (its loop variable sizes the data): not a repeated training phase
    code = EVAL_THEN_INLINE_PASS.replace("for epoch in range(30):", "for width in (512, 1024):")
    code = code.format(body=TRAIN_CHUNK.replace("val[c:c + 1024]", "val[c:c + width]"))
    assert findings(code) == []
