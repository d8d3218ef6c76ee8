from checks.static.engine import Rule
from checks.static.flow.vocab import TRAIN_DATA_AT_EVAL


class TrainDataAtEval(Rule):
    """Training-split data reaches the score of the validation tokens: the evaluation reads training shards.

    Why:
    Everything the evaluation knows beyond the validation prefix must travel in the 16 MB artifact and be
    built within the 600 s of training (challenge README). Statistics, tables or calibration computed from
    the training shards while the evaluation runs (#593, #606: training data read after the training cap)
    are extra training outside the timer and outside the size limit.

    Example:
        def eval_val(model, val, train_path):
            train = load(train_path)
            for i in range(len(train) - 1):
                table[train[i], train[i + 1]] += 1
            ...
            total += F.cross_entropy(model(x) + table[x].log(), y, reduction="sum")

    Fix:
    Build such statistics during training (within its time) and ship them in the artifact; let the
    evaluation read only the artifact and the validation stream.
    """

    ID = "GA115"
    NAME = "train-data-at-eval"
    family = "train-data-at-eval"
    severity = "error"
    KINDS = (TRAIN_DATA_AT_EVAL,)
    VALID = [
        """
import torch.nn.functional as F
def main(model, opt):
    train = load("fineweb_train_000001.bin")
    for step in range(100):
        loss = F.cross_entropy(model(train[:-1]), train[1:])
        loss.backward()
        opt.step()
    val = load("fineweb_val_000000.bin")
    total = 0.0
    total += F.cross_entropy(model(val[:-1]), val[1:], reduction="sum")
    return total
""",
        # a table built from training data whose result never reaches the score (a log line)
        """
import numpy as np, torch, torch.nn.functional as F
def evaluate(model, val, train):
    table = np.zeros((1024, 1024))
    for i in range(len(train) - 1):
        table[train[i], train[i + 1]] += 1
    print("train bigrams", table.sum())
    total = 0.0
    for s in range(0, len(val) - 65, 64):
        total += F.cross_entropy(model(val[s:s + 64]), val[s + 1:s + 65], reduction="sum")
    return total
def main(model):
    return evaluate(model, load("fineweb_val_000000.bin"), load("fineweb_train_000001.bin"))
""",
    ]
    INVALID = [
        """
import numpy as np, torch, torch.nn.functional as F
def evaluate(model, val, train):
    table = np.ones((1024, 1024))
    for i in range(len(train) - 1):
        table[train[i], train[i + 1]] += 1
    prior = torch.log(torch.tensor(table / table.sum(1, keepdims=True)))
    total = 0.0
    for s in range(0, len(val) - 65, 64):
        x, y = val[s:s + 64], val[s + 1:s + 65]
        logp = F.log_softmax(model(x), -1) + prior[x]
        total += F.cross_entropy(logp, y, reduction="sum")  # <- fires
    return total
def main(model):
    shards = load("data/fineweb_train_*.bin")
    return evaluate(model, load("data/fineweb_val_*.bin"), shards)
""",
    ]

    def message(self, ev, ctx) -> str:
        return (f"`{ctx.code(ev.node)}`: the score of the validation tokens is computed with values derived from "
                f"the training shards, read during the evaluation (README: evaluation uses only the artifact)")
