from checks.static.engine import Rule
from checks.static.flow.vocab import EVAL_TIME_OPTIMIZATION


class EvalTimeOptimization(Rule):
    """Parameters created during evaluation are optimized on a loss over the positions then scored.

    Why:
    A per-window delta, bias or adapter fitted to the window's own targets and then used to score those
    targets makes each score depend on the token it scores (C1, C3; SLOT and #1229).

    Example:
        delta = torch.zeros(1, 1, dim, requires_grad=True)
        loss = F.cross_entropy(model(x) + delta, y); loss.backward(); opt.step()
        nll = F.cross_entropy(model(x) + delta, y)

    Fix:
    Fit such parameters only on tokens that were already scored, then use them for later positions.
    """

    ID = "GA108"
    NAME = "eval-time-optimization"
    family = "eval-time-optimization"
    severity = "error"
    KINDS = (EVAL_TIME_OPTIMIZATION,)
    VALID = [
        """
import torch, torch.nn.functional as F
def evaluate(model):
    val = load("fineweb_val_000000.bin")
    delta = torch.zeros(1024, requires_grad=True)
    opt = torch.optim.Adam([delta])
    total = 0.0
    for c in range(0, len(val) - 65, 64):
        x, y = val[c:c + 64], val[c + 1:c + 65]
        with torch.no_grad():
            total += F.cross_entropy(model(x) + delta, y, reduction="sum")
        loss = F.cross_entropy(model(x) + delta, y)
        loss.backward()
        opt.step()
""",
    ]
    INVALID = [
        """
import torch, torch.nn.functional as F
def evaluate(model):
    val = load("fineweb_val_000000.bin")
    total = 0.0
    for c in range(0, len(val) - 65, 64):
        x, y = val[c:c + 64], val[c + 1:c + 65]
        delta = torch.zeros(1024, requires_grad=True)
        opt = torch.optim.Adam([delta])
        for _ in range(4):
            loss = F.cross_entropy(model(x) + delta, y)
            loss.backward()  # <- fires
            opt.step()
        with torch.no_grad():
            total += F.cross_entropy(model(x) + delta, y, reduction="sum")
""",
    ]

    def message(self, ev, ctx) -> str:
        return (f"`{ctx.code(ev.node)}` optimizes parameters created during evaluation on a loss over positions that "
                f"are scored afterwards with them: each score depends on its own target (C1)")
