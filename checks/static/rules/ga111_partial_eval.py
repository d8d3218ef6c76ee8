from checks.static.engine import Rule
from checks.static.flow.vocab import PARTIAL_EVAL


class PartialEval(Rule):
    """Only part of the validation set is scored: a limit from the settings, or a random sample.

    Why:
    The score is BPB over the whole validation split; scoring a prefix cut by a setting
    (``VAL_TOKEN_LIMIT``) or a random sample of positions reports a different number (#1785, #2009,
    #823). Truncating to a whole number of sequences of the validation set's own length is the
    reference loader and is fine. The same holds for a second scorer (a PPM mixture) that reads only a
    prefix of the per-position losses the first pass kept, cut at ``min(PPM_SUBSET_TOKENS, n)`` (#1858,
    #1854: the mixture BPB over the first 8M tokens). A limit that is off under the launch (0) or larger
    than any validation stream cuts nothing.

    Example:
        val_tokens = val_tokens[: args.val_token_limit]

    Fix:
    Score every validation token; keep limits for quick experiments out of the submitted configuration.
    """

    ID = "GA111"
    NAME = "partial-eval"
    family = "partial-eval"
    severity = "error"
    KINDS = (PARTIAL_EVAL,)
    NEEDS_REPORTED = True
    VALID = [
        """
import os
SEQ = int(os.environ.get("TRAIN_SEQ_LEN", 1024))
def load_val():
    tokens = load("fineweb_val_*.bin")
    usable = ((tokens.numel() - 1) // SEQ) * SEQ
    return tokens[: usable + 1]
""",
        # present but off under the official configuration: reported as info, not an error
        """
import os
LIMIT = int(os.environ.get("VAL_TOKEN_LIMIT", "0"))
def load_val():
    tokens = load("fineweb_val_*.bin")
    if LIMIT > 0:
        tokens = tokens[:LIMIT]
    return tokens
""",
        # the limit is read only when it is set; under the defaults the function returns before it
        """
import os
LIMIT = int(os.environ.get("VAL_TOKEN_LIMIT", "0"))
def load_val():
    tokens = load("fineweb_val_*.bin")
    if LIMIT <= 0:
        return tokens
    return tokens[:LIMIT]
""",
        # a random sample of documents only when a fraction setting is below 1 (it is 1): the documents
        # the evaluation gathers from are all of them
        """
import os, random
import torch
FRACTION = float(os.environ.get("VAL_DOC_FRACTION", "1.0"))
def select_docs(docs):
    if FRACTION < 1.0:
        return sorted(random.Random(0).sample(range(len(docs)), int(len(docs) * FRACTION)))
    return list(range(len(docs)))
def evaluate(model, starts):
    tokens = load("fineweb_val_*.bin")
    total = 0.0
    for d in select_docs(starts):
        idx = starts[d] + torch.arange(1025)
        total += model(tokens[idx][:-1], tokens[idx][1:])
    return total
""",
        # windows gathered from the stream, cut to a context length from the settings
        """
import os
import torch
CHUNK = int(os.environ.get("TTT_CHUNK_SIZE", "2048"))
def evaluate(model, starts):
    tokens = load("fineweb_val_*.bin")
    total = 0.0
    for s in starts:
        rows = tokens[s + torch.arange(CHUNK + 1)[None, :]]
        total += model(rows[:, :CHUNK], rows[:, 1:CHUNK + 1])
    return total
""",
    ]
    INVALID = [
        """
import os
import torch.nn.functional as F
LIMIT = int(os.environ.get("VAL_TOKEN_LIMIT", "1000000"))
def load_val():
    tokens = load("fineweb_val_*.bin")
    return tokens[:LIMIT]  # <- fires
def evaluate(model):
    tokens = load_val()
    total = 0.0
    total += F.cross_entropy(model(tokens[:-1]), tokens[1:], reduction="sum")
    return total
""",
        """
import torch
import torch.nn.functional as F
def evaluate(model):
    tokens = load("fineweb_val_*.bin")
    idx = torch.randint(0, len(tokens) - 1, (4096,))
    x = tokens[idx]  # <- fires
    y = tokens[idx + 1]  # <- fires
    total = 0.0
    total += F.cross_entropy(model(x), y, reduction="sum")
    return total
""",
    ]

    def message(self, ev, ctx) -> str:
        if ev.data.get("how") == "random":
            return f"`{ctx.code(ev.node)}` scores a random sample of validation positions, not the whole split"
        return (f"`{ctx.code(ev.node)}` cuts the validation tokens (or the record of their scores) to a limit "
                f"taken from the settings")
