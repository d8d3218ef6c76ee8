from checks.static.engine import Rule
from checks.static.flow.vocab import FUTURE


class MultiPass(Rule):
    """Statistics of the whole validation stream are computed before scoring and used in the score.

    Why:
    Counting over all validation tokens (a bincount, a histogram, a table filled from the whole stream)
    before the scoring loop puts every future token into the state that scores position t: p_t depends on
    x_t and on later tokens (C1), and the stream is effectively passed over twice (C4; #846, #870, #959).
    Tables filled inside the scoring loop, after each chunk is scored, are the legal backward-looking cache;
    but once such a pass is over, its cache holds the whole stream too, and a second pass that scores
    tokens against it rescores them with their future in the state (#846's "Pass 2", #870's full rescore).

    Example:
        counts = torch.bincount(val[:-1] * V + val[1:], minlength=V * V)
        for window in windows:
            p = (1 - a) * p_model + a * counts_row_normalized[x]

    Fix:
    Build the statistics in the single left-to-right pass, adding each token only after it has been scored.
    """

    ID = "GA105"
    NAME = "multi-pass"
    family = "multi-pass"
    severity = "error"
    KINDS = (FUTURE,)
    NEEDS_SINK = True
    VALID = [
        """
import torch, torch.nn.functional as F
def evaluate(model, V):
    val = load("fineweb_val_000000.bin")
    counts = torch.zeros(V, V)
    total = 0.0
    for s in range(0, len(val) - 65, 64):
        x, y = val[s:s + 64], val[s + 1:s + 65]
        p = 0.9 * F.softmax(model(x), -1) + 0.1 * (counts[x] + 1) / (counts[x] + 1).sum(-1, keepdim=True)
        total += -torch.log(p.gather(-1, y[:, None])).sum()
        counts.index_put_((x, y), torch.ones(64), accumulate=True)
""",
        # totals over the stream that only reach the byte denominator are fine
        """
import torch, torch.nn.functional as F
def evaluate(model, lut):
    val = load("fineweb_val_000000.bin")
    total_bytes = torch.bincount(val, minlength=1024) @ lut
    x, y = val[:-1], val[1:]
    loss = 0.0
    loss += F.cross_entropy(model(x), y)
    return loss / total_bytes
""",
        # a score-first pass whose cache object is updated after each chunk, read by nothing afterwards;
        # and a cache warmed on training data before the pass
        """
import numpy as np
class Cache:
    def __init__(self):
        self.counts = np.zeros(4096)
    def add(self, toks):
        self.counts += np.bincount(toks % 4096, minlength=4096)
    def probs(self, toks):
        row = self.counts[toks % 4096] + 1
        return row / (self.counts.sum() + 4096)
def score_pass(model, cache, val):
    loss = 0.0
    for s in range(0, len(val) - 65, 64):
        x = val[s:s + 64]
        loss += -np.log(0.9 * model(x) + 0.1 * cache.probs(x)).sum()
        cache.add(x)
    return loss
def evaluate(model):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
    cache = Cache()
    cache.add(np.fromfile("fineweb_train_000001.bin", dtype=np.uint16))
    return score_pass(model, cache, val)
evaluate(None)
""",
    ]
    INVALID = [
        """
import torch, torch.nn.functional as F
def evaluate(model, V):
    val = load("fineweb_val_000000.bin")
    counts = torch.bincount(val[:-1] * V + val[1:], minlength=V * V).reshape(V, V).double()  # <- fires
    p_big = (counts + 0.01) / (counts + 0.01).sum(1, keepdim=True)
    total = 0.0
    for s in range(0, len(val) - 65, 64):
        x, y = val[s:s + 64], val[s + 1:s + 65]
        p = 0.9 * F.softmax(model(x), -1) + 0.1 * p_big[x]
        total += -torch.log(p.gather(-1, y[:, None])).sum()
""",
        # the cache a complete pass built, then every token scored again against it (#870)
        """
import numpy as np
class Cache:
    def __init__(self):
        self.counts = np.zeros(4096)
    def add(self, toks):
        self.counts += np.bincount(toks % 4096, minlength=4096)
    def probs(self, toks):
        row = self.counts[toks % 4096] + 1
        return row / (self.counts.sum() + 4096)
def evaluate(model):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
    model_p = model(val)
    cache = Cache()
    cache.add(val)  # <- fires
    loss = 0.0
    loss += -np.log(0.9 * model_p + 0.1 * cache.probs(val)).sum()
    return loss
evaluate(None)
""",
        # a score-first pass, then its early chunks scored again with the cache it completed (#846)
        """
import numpy as np
class Cache:
    def __init__(self):
        self.counts = np.zeros(4096)
    def add(self, toks):
        self.counts += np.bincount(toks % 4096, minlength=4096)
    def probs(self, toks):
        row = self.counts[toks % 4096] + 1
        return row / (self.counts.sum() + 4096)
def score_pass(model, cache, val, update):
    loss = 0.0
    for s in range(0, len(val) - 65, 64):
        x = val[s:s + 64]
        loss += -np.log(0.9 * model(x) + 0.1 * cache.probs(x)).sum()
        if update:
            cache.add(x)
    return loss
def evaluate(model):
    val = np.fromfile("fineweb_val_000000.bin", dtype=np.uint16)
    cache = Cache()
    first = score_pass(model, cache, val[4096:], True)  # <- fires
    again = score_pass(model, cache, val[:4096], False)
    return first + again
evaluate(None)
""",
    ]

    def accepts(self, ev, ctx) -> bool:
        """An aggregate built at the top of a function that a loop calls (once per chunk) is not of the whole
        stream; one that a call at the top of its caller leaves in an object is (``how == "state"``)."""
        func = ev.data.get("func")
        return func is None or not func.called_in_loop

    def message(self, ev, ctx) -> str:
        if ev.data.get("how") == "state":
            return (f"`{ctx.code(ev.node)}` leaves `{ev.data['holder']}` holding the whole validation stream, and a "
                    f"later score reads it: tokens are scored again with their future in the state (C4, C1)")
        return (f"`{ctx.code(ev.node)}` builds statistics from the whole validation stream before it is scored, "
                f"and they reach the scored distribution: future tokens inform p_t (C1, C4)")
