from checks.static.engine import Rule
from checks.static.flow.vocab import ORACLE


class OracleSelection(Rule):
    """The better (lower) of several scorings of the same tokens is kept.

    Why:
    Taking the minimum over passes, models or settings after seeing the losses chooses with knowledge of
    x_t; the kept "distribution" is not one fixed before the token was seen (C1, C4; #659, #685).

    Example:
        nll = torch.minimum(nll_pass1, nll_pass2)
        loss_sum += nll.sum()

    Fix:
    Fix the scoring method before evaluation (or mix the distributions with weights from the prefix)
    and keep the first and only score of every token.
    """

    ID = "GA104"
    NAME = "oracle-selection"
    family = "oracle-selection"
    severity = "error"
    KINDS = (ORACLE,)
    NEEDS_SINK = True
    VALID = [
        """
import torch, torch.nn.functional as F
def evaluate(model_a, model_b):
    val = load("fineweb_val_000000.bin")
    x, y = val[:-1], val[1:]
    p = 0.5 * F.softmax(model_a(x), -1) + 0.5 * F.softmax(model_b(x), -1)
    total = 0.0
    total += -torch.log(p.gather(-1, y[:, None])).sum()
""",
    ]
    INVALID = [
        """
import torch, torch.nn.functional as F
def evaluate(model_a, model_b):
    val = load("fineweb_val_000000.bin")
    x, y = val[:-1], val[1:]
    a = F.cross_entropy(model_a(x), y, reduction="none")
    b = F.cross_entropy(model_b(x), y, reduction="none")
    total = 0.0
    total += torch.minimum(a, b).sum()  # <- fires
""",
        # the best of several passes kept per token, summed once at the end
        """
import torch
import torch.nn.functional as F
def evaluate(models):
    val = load("fineweb_val_000000.bin")
    x, y = val[:-1], val[1:]
    best = torch.full((len(y),), float("inf"))
    for model in models:
        nll = F.cross_entropy(model(x), y, reduction="none")
        best = torch.minimum(best, nll)  # <- fires
    loss_sum = best.sum()
    return loss_sum
""",
    ]

    def message(self, ev, ctx) -> str:
        return f"`{ctx.code(ev.node)}` keeps the lower of several losses of the same targets (C4)"
