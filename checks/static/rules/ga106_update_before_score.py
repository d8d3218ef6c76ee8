from checks.static.engine import Rule
from checks.static.flow.vocab import UPDATE_BEFORE_SCORE


def in_loop(ev) -> bool:
    f = ev.data.get("func")
    return bool(ev.data.get("loop")) or bool(f is not None and f.called_in_loop)


def training_phase(ev) -> bool:
    """Training on validation data as a phase of its own: outside any loop that also scores, or in epochs
    (a loop repeating the same work) with an evaluation between them; not a chunk adapted then scored."""
    return not in_loop(ev) or bool(ev.data.get("epochs"))


class UpdateBeforeScore(Rule):
    """A model is trained on validation tokens before those tokens are scored, chunk by chunk.

    Why:
    State that adapts during evaluation may include x_t only after x_t has been scored (C3). Taking an
    optimizer step on a chunk and then scoring the same chunk with the adapted weights scores tokens
    the model has just been trained on (#462, #771).

    Example:
        for chunk in chunks:
            train_on(model, chunk)      # loss.backward(); opt.step()
            score(model, chunk)

    Fix:
    Score first: score each chunk under ``torch.inference_mode()``, then train on it, and never train on
    the last chunk (legal score-first TTT, #549, #1413).
    """

    ID = "GA106"
    NAME = "update-before-score"
    family = "update-before-score"
    severity = "error"
    KINDS = (UPDATE_BEFORE_SCORE,)
    VALID = [
        """
import torch, torch.nn.functional as F
def evaluate(model, opt):
    val = load("fineweb_val_000000.bin")
    total = 0.0
    for c in range(0, len(val) - 1025, 1024):
        x, y = val[c:c + 1024], val[c + 1:c + 1025]
        with torch.inference_mode():
            total += F.cross_entropy(model(x), y, reduction="sum")
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
""",
    ]
    INVALID = [
        """
import torch, torch.nn.functional as F
def adapt(model, opt, x, y):
    loss = F.cross_entropy(model(x), y)
    loss.backward()  # <- fires
    opt.step()
def evaluate(model, opt):
    val = load("fineweb_val_000000.bin")
    total = 0.0
    for c in range(0, len(val) - 1025, 1024):
        x, y = val[c:c + 1024], val[c + 1:c + 1025]
        adapt(model, opt, x, y)
        with torch.inference_mode():
            total += F.cross_entropy(model(x), y, reduction="sum")
""",
    ]

    def accepts(self, ev, ctx) -> bool:
        return not training_phase(ev)

    def message(self, ev, ctx) -> str:
        return (f"`{ctx.code(ev.node)}` trains on validation tokens that are scored only afterwards in the same step: "
                f"the score of x_t includes an update on x_t (C3)")
