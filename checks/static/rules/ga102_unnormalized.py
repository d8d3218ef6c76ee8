from checks.static.engine import Rule

from .ga101_target_in_key import mixed_key


class Unnormalized(Rule):
    """A count or probability is read for the realised target only and mixed into the score.

    Why:
    The score must be -log p_t(x_t) of a full distribution over the vocabulary, fixed before x_t is
    looked at (C2). An auxiliary estimate read only at the target (``counts[ctx][target]``,
    ``counts.get(target)``) without the whole row behind it gives no distribution; mixing it in can
    make the "probabilities" sum to more than 1 (#972, #1026, the byte-level PPM mixers).

    Example:
        q = counts[ctx][tgt] / 50
        loss += -np.log(0.8 * p_model_at_target + 0.2 * q)

    Fix:
    Read the whole context row, normalize it over the vocabulary (divide by its sum), mix full
    vectors, then take the target's entry.
    """

    ID = "GA102"
    NAME = "unnormalized"
    family = "unnormalized"
    severity = "error"
    KINDS = ("tread",)
    NEEDS_SINK = True
    VALID = [
        """
import numpy as np
def evaluate(model, counts):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
    loss = 0.0
    for t in range(1, len(val) - 1):
        row = counts[val[t]]
        q = row[val[t + 1]] / row.sum()
        loss += -np.log(0.8 * model(val[: t + 1])[val[t + 1]] + 0.2 * q)
""",
        # byte counts per target are read by the target, but they are the denominator, not the score
        """
import numpy as np
def evaluate(model, base_bytes):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
    loss, nbytes = 0.0, 0
    for t in range(1, len(val) - 1):
        loss += -np.log(model(val[: t + 1])[val[t + 1]])
        nbytes += base_bytes[val[t + 1]]
""",
    ]
    INVALID = [
        """
import numpy as np
def evaluate(model, counts):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
    loss = 0.0
    for t in range(1, len(val) - 1):
        q = counts[val[t]][val[t + 1]] / 50  # <- fires
        loss += -np.log(0.8 * model(val[: t + 1])[val[t + 1]] + 0.2 * q)
""",
        """
import math
def evaluate(model, bigrams):
    toks = load_tokens("data/fineweb_val_*.bin")
    s = 0.0
    for i in range(len(toks) - 1):
        c = bigrams.get((toks[i], toks[i + 1]), 0)  # <- fires
        s -= math.log(0.5 * model(toks[: i + 1])[toks[i + 1]] + 0.5 * c / 10)
""",
    ]

    def accepts(self, ev, ctx) -> bool:
        return not mixed_key(ev)

    def message(self, ev, ctx) -> str:
        return (f"`{ctx.code(ev.node)}` reads a value for the realised target only and it is mixed into the score "
                f"without a distribution over the whole vocabulary behind it (C2)")
