from checks.static.engine import Rule

from .ga106_update_before_score import training_phase
from checks.static.flow.vocab import UPDATE_BEFORE_SCORE


class ValDataInTraining(Rule):
    """The model is trained on validation tokens before the evaluation that scores them.

    Why:
    No validation data may be used for training; test-time training may only use tokens already scored
    (challenge README, C3). A fine-tuning pass over the validation stream before the final evaluation
    (#1735, #1738, #1972) scores tokens the model has seen.

    Example:
        for epoch in range(3):
            for x, y in batches(val_tokens):
                model(x, y).backward(); opt.step()
        val_loss = eval_val(model, val_tokens)

    Fix:
    Train only on training shards; adapt at evaluation time only in a score-first loop.
    """

    ID = "GA107"
    NAME = "val-data-in-training"
    family = "val-data-in-training"
    severity = "error"
    KINDS = (UPDATE_BEFORE_SCORE,)
    VALID = [
        """
import torch.nn.functional as F
def main(model, opt):
    train = load("fineweb_train_000001.bin")
    val = load("fineweb_val_000000.bin")
    loss = F.cross_entropy(model(train[:-1]), train[1:])
    loss.backward()
    opt.step()
    total = 0.0
    total += F.cross_entropy(model(val[:-1]), val[1:], reduction="sum")
""",
        # score-first TTT after a separate evaluation: each chunk's losses (from a forward the caller passes)
        # are added to the totals by a helper before the chunk is trained on
        """
import torch
import torch.nn.functional as F
def add_sums(nll, mask, loss_sum):
    loss_sum += (nll * mask).sum()
def eval_ttt(model, opt, tokens, forward):
    loss_sum = torch.zeros(())
    for i in range(0, len(tokens) - 1025, 1024):
        nll = forward(tokens[i:i + 1024], tokens[i + 1:i + 1025])
        add_sums(nll.detach(), 1.0, loss_sum)
        nll.mean().backward()
        opt.step()
    return loss_sum
def evaluate(model, tokens):
    total = 0.0
    total += F.cross_entropy(model(tokens[:-1]), tokens[1:], reduction="sum")
    return total
def main(model, ngram, opt):
    val = load("fineweb_val_000000.bin")
    evaluate(model, val)
    def forward(x, y):
        return F.cross_entropy(model(x), y, reduction="none")
    eval_ttt(model, opt, val, forward)
    evaluate(ngram, val)
""",
    ]
    INVALID = [
        """
import torch.nn.functional as F
def finetune(model, opt, tokens):
    for epoch in range(3):
        loss = F.cross_entropy(model(tokens[:-1]), tokens[1:])
        loss.backward()  # <- fires
        opt.step()
def main(model, opt):
    val = load("fineweb_val_000000.bin")
    finetune(model, opt, val)
    total = 0.0
    total += F.cross_entropy(model(val[:-1]), val[1:], reduction="sum")
""",
        # epochs over the validation stream, with a diagnostic evaluation of the whole stream after each
        """
import torch.nn.functional as F
def evaluate(model, tokens):
    total = 0.0
    for c in range(0, len(tokens) - 1025, 1024):
        total += F.cross_entropy(model(tokens[c:c + 1024]), tokens[c + 1:c + 1025], reduction="sum")
    return total
def prequant_ttt(model, opt, tokens, epochs):
    for epoch in range(epochs):
        for c in range(0, len(tokens) - 1025, 1024):
            loss = F.cross_entropy(model(tokens[c:c + 1024]), tokens[c + 1:c + 1025])
            loss.backward()  # <- fires
            opt.step()
        diagnostic = evaluate(model, tokens)
        print(f"epoch {epoch}: {diagnostic}")
def main(model, opt):
    val = load("fineweb_val_000000.bin")
    prequant_ttt(model, opt, val, 3)
""",
    ]

    def accepts(self, ev, ctx) -> bool:
        return training_phase(ev)

    def message(self, ev, ctx) -> str:
        return (f"`{ctx.code(ev.node)}` trains on validation tokens before they are scored by the final evaluation "
                f"(README: no validation data for training; C3)")
