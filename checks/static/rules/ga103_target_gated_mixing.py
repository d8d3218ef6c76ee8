from checks.static.engine import Rule
from checks.static.flow.vocab import TARGET_GATE


class TargetGatedMixing(Rule):
    """A mixing gate, branch or weight is chosen from the scored target, and the result is scored.

    Why:
    Choosing which distribution scores position t by looking at x_t (its word-start or boundary class,
    whether it is in a cache, a threshold on it) makes p_t depend on x_t (C1); the mixture over all
    tokens no longer sums to 1 (#1026, #2041, #1420 before its fix). Comparing the target with a
    prefix-derived hint (``tgt == hint``) is not a gate: it evaluates an indicator feature of a
    normalized tilt at the target.

    Example:
        word_start = has_leading_space_lut[tgt]
        nll = -torch.where(word_start, tilted_lp, model_lp)

    Fix:
    Compute the gate from the prefix only (the previous token's class, the context's statistics),
    apply it to the whole vocabulary, renormalize, then read the target.
    """

    ID = "GA103"
    NAME = "target-gated-mixing"
    family = "target-gated-mixing"
    severity = "error"
    KINDS = (TARGET_GATE,)
    NEEDS_SINK = True
    VALID = [
        """
import torch, torch.nn.functional as F
def evaluate(model, lut, hint_of):
    val = torch.from_numpy(read("fineweb_val_000000.bin"))
    x, y = val[:-1], val[1:]
    logp = F.log_softmax(model(x), dim=-1)
    hint = hint_of(x)
    gate = lut[x] > 0
    tilted = F.log_softmax(logp + 2.0 * F.one_hot(hint, 1024) * gate[:, None], dim=-1)
    lp = tilted.gather(-1, y[:, None]).squeeze(-1)
    total = 0.0
    total += -torch.where(y == hint, lp, lp).sum()
""",
        # a branch on the context's own count (no target in it) is a backoff rule of the prefix
        """
import math
def backoff_logprob(counts, ctx, target):
    row = counts.get(ctx)
    if row is not None and sum(row.values()) >= 3:
        return math.log((row.get(target, 0) + 1) / (sum(row.values()) + 1024))
    return math.log(1 / 1024)
def evaluate(model, counts):
    val = load("fineweb_val_000000.bin")
    loss = 0.0
    for t in range(2, len(val) - 1):
        loss += -math.log(0.5 * model(val[: t + 1])[val[t + 1]] + 0.5 * math.exp(backoff_logprob(counts, val[t], val[t + 1])))
""",
        # the target's bytes counted with an indicator of its leading space (``1 if c else 0`` is c as a number,
        # not a choice between scorings), each token's NLL spread over them
        """
import torch, torch.nn.functional as F
def piece_bytes(tid, base_bytes, has_space):
    return base_bytes[tid] + (1 if has_space[tid] else 0)
def evaluate(model, base_bytes, has_space):
    val = torch.from_numpy(read("fineweb_val_000000.bin"))
    loss = 0.0
    for t in range(1, len(val) - 1):
        lp = F.log_softmax(model(val[: t + 1]), dim=-1)
        loss += -lp[val[t + 1]] / piece_bytes(val[t + 1], base_bytes, has_space)
    return loss
""",
    ]
    INVALID = [
        """
import torch, torch.nn.functional as F
def evaluate(model, lut, hint_of):
    val = torch.from_numpy(read("fineweb_val_000000.bin"))
    x, y = val[:-1], val[1:]
    logp = F.log_softmax(model(x), dim=-1)
    tilted = F.log_softmax(logp + hint_of(x), dim=-1).gather(-1, y[:, None])
    plain = logp.gather(-1, y[:, None])
    total = 0.0
    total += -torch.where(lut[y], tilted, plain).sum()  # <- fires
""",
        """
import math
def score(p_model, p_cache, t, vocab_class):
    return p_cache if vocab_class[t] == 1 else p_model  # <- fires
def evaluate(model, cache, vocab_class):
    toks = load("val_*.bin")
    s = 0.0
    for i in range(len(toks) - 1):
        s += -math.log(score(model(toks[: i + 1])[toks[i + 1]], cache(toks[: i + 1]), toks[i + 1], vocab_class))
""",
        # the branch that returns the n-gram estimate is taken only when the target's own count is positive
        # (#659: returned only if cnt > 0, else the caller keeps the model's score)
        """
import math
def logprob_target(counts, ctx, target):
    row = counts.get(ctx)
    if row is not None:
        total = sum(row.values())
        cnt = row.get(target, 0)
        if cnt > 0:  # <- fires
            return math.log(cnt / total)
    return None
def evaluate(model, counts):
    val = load("fineweb_val_000000.bin")
    loss = 0.0
    for t in range(2, len(val) - 1):
        lp = logprob_target(counts, val[t], val[t + 1])
        model_lp = math.log(model(val[: t + 1])[val[t + 1]])
        loss += -(model_lp if lp is None else math.log(0.5 * math.exp(model_lp) + 0.5 * math.exp(lp)))
""",
    ]

    def message(self, ev, ctx) -> str:
        return (f"`{ctx.code(ev.node)}` chooses between scorings with a condition computed from the scored target; "
                f"the distribution used at t depends on x_t (C1)")
