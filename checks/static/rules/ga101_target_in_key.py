from checks.static.engine import Rule
from checks.static.flow.vocab import PAIRED, TARGET_KEYED_READ


def mixed_key(ev) -> bool:
    """The key combines the target with other data (a hash, ``ctx * A + tgt * B``, a (ctx, tgt) pair)."""
    key = ev.needs[0].labels if ev.needs else frozenset()
    return PAIRED in key


class TargetInKey(Rule):
    """A table is read with a key built from the scored target, and the value read reaches the score.

    Why:
    The probability for position t must be fixed before x_t is looked at (C1). Hashing x_t into the
    lookup key (XOR of target * prime into the context hash, ctx * A + target * B) reads a count that
    exists only because x_t is the realised token; the distribution behind it sums to far more than 1
    (PR #779 and its family).

    Example:
        key = (ctx_hash ^ (tgt * PRIME)) & mask
        p_ng = full_table[key] / ctx_table[ctx_key]
        loss += -np.log((1 - a) * p_model + a * p_ng)

    Fix:
    Key on the context only, read one context row, re-weight the whole vocabulary from it and
    renormalize; add x_t to the tables only after x_t is scored.
    """

    ID = "GA101"
    NAME = "target-in-key"
    family = "target-in-key"
    severity = "error"
    KINDS = (TARGET_KEYED_READ,)
    NEEDS_SINK = True
    VALID = [
        """
import numpy as np
def evaluate(model, table, counts):
    val = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
    loss = 0.0
    for t in range(1, len(val) - 1):
        p_model = model(val[: t + 1])
        key = (val[t] * 1000003 ^ val[t - 1]) % 4096
        row = table[key]
        p = 0.5 * p_model + 0.5 * row / row.sum()
        loss += -np.log(p[val[t + 1]])
        np.add.at(table, (key, val[t + 1]), 1)
""",
        # the word "target" alone means nothing: a context-only key named after it
        """
import numpy as np
def evaluate(model, table):
    val = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
    loss = 0.0
    for t in range(1, len(val) - 1):
        target_key = (val[t] * 31 + val[t - 1]) % 4096
        q = table[target_key]
        loss += -np.log(model(val[: t + 1], q)[val[t + 1]])
""",
        # the model's own distribution read at the target is the score itself
        """
import torch.nn.functional as F
def evaluate(model, val_tokens):
    x, y = val_tokens[:-1], val_tokens[1:]
    logp = F.log_softmax(model(x), dim=-1)
    return -logp.gather(-1, y[:, None]).sum()
val_tokens = load("fineweb_val_*.bin")
evaluate(None, val_tokens)
""",
        # bits per byte: a score divided by the bytes of the target (read from the byte table) is the metric
        """
import numpy as np
def evaluate(model, base_bytes):
    val = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
    bpb = 0.0
    for t in range(1, len(val) - 1):
        nll = -np.log(model(val[: t + 1])[val[t + 1]])
        bpb += nll / np.log(2) / base_bytes[val[t + 1]]
""",
    ]
    INVALID = [
        """
import numpy as np
def evaluate(model, table):
    val = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
    loss = 0.0
    for t in range(1, len(val) - 1):
        p_model = model(val[: t + 1])
        key = (val[t] * 1000003 ^ val[t + 1]) % 4096
        p = 0.5 * p_model[val[t + 1]] + 0.5 * table[key] / 100  # <- fires
        loss += -np.log(p)
""",
        # renamed, and split across helpers: the key is built in one function and read in another
        """
import numpy as np
def mix_key(h, nxt):
    return (h * 131 + nxt * 7) & 4095
def lookup(tab, k):
    return tab[k]  # <- fires
def evaluate(model, tab):
    toks = np.fromfile("fineweb_val_000001.bin", dtype=np.uint16)
    total = 0.0
    for i in range(1, len(toks) - 1):
        nxt = toks[i + 1]
        c = lookup(tab, mix_key(toks[i], nxt))
        total += -np.log(0.9 * model(toks[: i + 1])[nxt] + 0.1 * c)
""",
        # the mixing weight comes from the model's entropy (a product of it and a probability is no score
        # scaled by a count)
        """
import numpy as np
import torch.nn.functional as F
def evaluate(model, table):
    val = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
    loss = 0.0
    for t in range(1, len(val) - 1):
        logp = F.log_softmax(model(val[: t + 1]), dim=-1)
        alpha = 1.0 / (1.0 + np.exp((logp.exp() * logp).sum()))
        p_cache = table[(val[t] * 31 + val[t + 1]) % 4096]  # <- fires
        loss += -np.log((1.0 - alpha) * logp.exp()[val[t + 1]] + alpha * p_cache)
""",
        # evaluated at the last training step: the step counter changes in the loop, so the test is no
        # constant of the first iteration
        """
import os
import numpy as np
ITERATIONS = int(os.environ.get("ITERATIONS", "20000"))
def evaluate(model, table):
    val = np.fromfile("data/fineweb_val_000000.bin", dtype=np.uint16)
    loss = 0.0
    for t in range(1, len(val) - 1):
        key = (val[t] * 1000003 ^ val[t + 1]) % 4096
        loss += -np.log(0.5 * model(val[: t + 1])[val[t + 1]] + 0.5 * table[key] / 100)  # <- fires
    return loss
def main(model, table):
    step = 0
    while True:
        last_step = step == ITERATIONS
        if last_step:
            evaluate(model, table)
            break
        step += 1
""",
    ]

    def accepts(self, ev, ctx) -> bool:
        return mixed_key(ev)

    def message(self, ev, ctx) -> str:
        return (f"`{ctx.code(ev.node)}` reads a table with a key built from the scored target, and the value "
                f"read reaches the loss: the probability for x_t depends on x_t (C1)")
