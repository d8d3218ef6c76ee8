from checks.static.engine import Rule


from .ga101_target_in_key import mixed_key
from checks.static.flow.vocab import STATISTIC_MIXED, TARGET_KEYED_READ


class Unnormalized(Rule):
    """A count or probability is read for the realised target only and mixed into the score.

    Why:
    The score must be -log p_t(x_t) of a full distribution over the vocabulary, fixed before x_t is
    looked at (C2). An auxiliary estimate read only at the target (``counts[ctx][target]``,
    ``counts.get(target)``) without the whole row behind it gives no distribution; mixing it in can
    make the "probabilities" sum to more than 1 (#972, #1026, the byte-level PPM mixers). So does an
    "expert" whose score is one number per position whatever the token (the entropy of the model's
    distribution, mixed as an NLL by the Hedge mixers #688, #745, #856).

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
    KINDS = (TARGET_KEYED_READ, STATISTIC_MIXED)
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
        # tables of counts divided by their own totals are distributions: a bigram row normalized by the
        # table's sum over the row, a unigram vector by the counter of the tokens added to it (#856's experts)
        """
import torch
class Mixer:
    def __init__(self, V):
        self.V = V
        self.total = 0
        self.uni = torch.zeros(V)
        self.bi = torch.zeros(V, V)
    def update(self, toks):
        n = toks.numel()
        self.total += n
        self.uni.scatter_add_(0, toks, torch.ones(n))
        self.bi.reshape(-1).scatter_add_(0, toks[:-1] * self.V + toks[1:], torch.ones(n - 1))
    def score(self, p_model, x, y):
        uni_p = (self.uni + 0.1) / (self.total + 0.1 * self.V)
        bi_total = self.bi.sum(dim=1, keepdim=True)
        bi_p = (self.bi + 0.1) / (bi_total + 0.1 * self.V)
        return -torch.log(0.8 * p_model + 0.1 * uni_p[y] + 0.1 * bi_p[x, y])
def evaluate(model, mixer):
    val = load("fineweb_val_000000.bin")
    loss = 0.0
    for s in range(0, len(val) - 65, 64):
        x, y = val[s:s + 64], val[s + 1:s + 65]
        loss += mixer.score(model(x).gather(-1, y[:, None]), x, y).sum()
        mixer.update(y)
evaluate(None, Mixer(1024))
""",
        # the entropy of the model's distribution sets the mixing weights; the experts are distributions read
        # at the target (and a constant log V, the uniform distribution)
        """
import math
import torch
import torch.nn.functional as F
class Mixer:
    def __init__(self, V):
        self.V = V
        self.uni = torch.softmax(torch.zeros(V), dim=0)
    def score(self, logits, y):
        lp = F.log_softmax(logits, dim=-1)
        model_nll = -lp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        uni_nll = -self.uni.log()[y]
        flat_nll = torch.full(model_nll.shape, math.log(self.V))
        ent = -(lp.exp() * lp).sum(-1)
        alpha = torch.sigmoid(ent - 2.0)
        nll = torch.stack([model_nll, uni_nll, flat_nll], dim=-1)
        w = torch.stack([1 - alpha, alpha / 2, alpha / 2], dim=-1)
        return -(w * (-nll).exp()).sum(-1).log()
def evaluate(model, mixer):
    val = load("fineweb_val_000000.bin")
    loss = 0.0
    for s in range(0, len(val) - 65, 64):
        x, y = val[s:s + 64], val[s + 1:s + 65]
        loss += mixer.score(model(x), y).sum()
evaluate(None, Mixer(1024))
""",
        # a weight computed from the entropy (through a sigmoid and a log) stacked next to the model's log-probability
        # of the target: the second expert is the uniform distribution, log a - log V for every token
        """
import math
import torch
import torch.nn.functional as F
def score(logits, y, V):
    lp = F.log_softmax(logits, dim=-1)
    model_lp = lp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    ent = -(lp.exp() * lp).sum(dim=-1)
    a = torch.sigmoid(ent - 3.0)
    e_model = torch.log(1 - a) + model_lp
    e_flat = torch.log(a) - math.log(V)
    return -torch.stack([e_model, e_flat], dim=-1).logsumexp(dim=-1)
def evaluate(model):
    val = load("fineweb_val_000000.bin")
    loss = 0.0
    for s in range(0, len(val) - 65, 64):
        x, y = val[s:s + 64], val[s + 1:s + 65]
        loss += score(model(x), y, 1024).sum()
evaluate(None)
""",
        # totals stacked to be reduced across ranks: the entropy's total is a diagnostic, no expert
        """
import torch
import torch.nn.functional as F
def evaluate(model):
    val = load("fineweb_val_000000.bin")
    totals = torch.zeros(2)
    for s in range(0, len(val) - 65, 64):
        x, y = val[s:s + 64], val[s + 1:s + 65]
        lp = F.log_softmax(model(x), dim=-1)
        nll_sum = -lp.gather(-1, y.unsqueeze(-1)).sum()
        ent_sum = -(lp.exp() * lp).sum(-1).sum()
        totals += torch.stack([nll_sum, ent_sum])
    return totals
evaluate(None)
""",
        # hashed pair counts of every token after the context, the target's entry divided by the row's own
        # total: a distribution over the vocabulary (the normalized rerun #978 of #972)
        """
import torch
def evaluate(model, V):
    val = load("fineweb_val_000000.bin")
    B = 1 << 20
    pair_t = torch.zeros(B, dtype=torch.int32)
    vocab = torch.arange(V)
    loss = 0.0
    for s in range(0, len(val) - 65, 64):
        x, y = val[s:s + 64], val[s + 1:s + 65]
        p_model = model(x).softmax(-1).gather(-1, y[:, None]).squeeze(1)
        h = (x * 1000003) % B
        pair_c = pair_t[(h[:, None] * 7919 + vocab[None, :]) % B].float()
        hit = pair_c.gather(1, y[:, None]).squeeze(1)
        row_total = pair_c.sum(dim=1)
        p_ng = (hit + 2.0 * p_model) / (row_total + 2.0)
        loss -= torch.log(0.5 * p_ng + 0.5 * p_model).sum()
        pair_t.scatter_add_(0, (h * 7919 + y) % B, torch.ones_like(h, dtype=torch.int32))
    return loss
evaluate(None, 1024)
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
        # a counter of other tokens (the stream so far) is no total of the table of targets seen after a hit
        """
import torch
class Mixer:
    def __init__(self, V):
        self.V = V
        self.total = 0
        self.hits = torch.zeros(V)
    def update(self, seen, hit_targets):
        n = seen.numel()
        self.total += n
        self.hits.scatter_add_(0, hit_targets, torch.ones(hit_targets.numel()))
    def score(self, p_model, y):
        hit_p = (self.hits + 0.1) / (self.total + 0.1 * self.V)
        return -torch.log(0.8 * p_model + 0.2 * hit_p[y])  # <- fires
def evaluate(model, mixer):
    val = load("fineweb_val_000000.bin")
    loss = 0.0
    for s in range(0, len(val) - 65, 64):
        x, y = val[s:s + 64], val[s + 1:s + 65]
        loss += mixer.score(model(x).gather(-1, y[:, None]), y).sum()
        mixer.update(x, y[y == x])
evaluate(None, Mixer(1024))
""",
        # a Hedge mixer's "entropy expert": one number per position mixed as if it were an NLL of the target
        """
import torch
import torch.nn.functional as F
class Hedge:
    def __init__(self, V):
        self.V = V
        self.log_w = torch.zeros(3)
    def score(self, logits, y):
        lp = F.log_softmax(logits, dim=-1)
        model_nll = -lp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
        flat_nll = torch.full(model_nll.shape, float(self.V)).log()
        spread = -(lp.exp() * lp).sum(-1)
        nll = torch.stack([model_nll, flat_nll, spread], dim=-1)  # <- fires
        w = self.log_w - self.log_w.logsumexp(0)
        return -(-nll + w).logsumexp(dim=-1)
def evaluate(model, hedge):
    val = load("fineweb_val_000000.bin")
    loss = 0.0
    for s in range(0, len(val) - 65, 64):
        x, y = val[s:s + 64], val[s + 1:s + 65]
        loss += hedge.score(model(x), y).sum()
evaluate(None, Hedge(1024))
""",
        # the same "expert" mixed pairwise: the entropy stands in for an NLL of the target
        """
import torch
import torch.nn.functional as F
def score(logits, y):
    lp = F.log_softmax(logits, dim=-1)
    model_lp = lp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    spread = torch.sum(lp.exp() * lp, dim=-1)
    return -torch.logaddexp(model_lp - 0.7, spread - 0.7)  # <- fires
def evaluate(model):
    val = load("fineweb_val_000000.bin")
    loss = 0.0
    for s in range(0, len(val) - 65, 64):
        x, y = val[s:s + 64], val[s + 1:s + 65]
        loss += score(model(x), y).sum()
evaluate(None)
""",
        # experts concatenated along a new last axis, the entropy among them under a minus sign
        """
import torch
import torch.nn.functional as F
def score(logits, y, log_w):
    lp = F.log_softmax(logits, dim=-1)
    model_lp = lp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    h = (lp.exp() * lp).sum(-1)
    experts = torch.cat([model_lp.unsqueeze(-1), h.float().unsqueeze(-1)], dim=-1)  # <- fires
    return -(experts + log_w).logsumexp(dim=-1)
def evaluate(model):
    val = load("fineweb_val_000000.bin")
    log_w = torch.log(torch.tensor([0.9, 0.1]))
    loss = 0.0
    for s in range(0, len(val) - 65, 64):
        x, y = val[s:s + 64], val[s + 1:s + 65]
        loss += score(model(x), y, log_w).sum()
evaluate(None)
""",
        # the same row's target entry divided by the context's count instead of the row's total: with hashed pairs
        # colliding, the row sums to more than the context count, so to more than 1 (#972)
        """
import torch
def evaluate(model, V):
    val = load("fineweb_val_000000.bin")
    B = 1 << 20
    ctx_t = torch.zeros(B, dtype=torch.int32)
    pair_t = torch.zeros(B, dtype=torch.int32)
    vocab = torch.arange(V)
    loss = 0.0
    for s in range(0, len(val) - 65, 64):
        x, y = val[s:s + 64], val[s + 1:s + 65]
        p_model = model(x).softmax(-1).gather(-1, y[:, None]).squeeze(1)
        h = (x * 1000003) % B
        ctx_c = ctx_t[h].float()
        pair_c = pair_t[(h[:, None] * 7919 + vocab[None, :]) % B].float()
        hit = pair_c.gather(1, y[:, None]).squeeze(1)  # <- fires
        p_ng = (hit + 2.0 * p_model) / (ctx_c + 2.0)
        loss -= torch.log(0.5 * p_ng + 0.5 * p_model).sum()
        ctx_t.scatter_add_(0, h, torch.ones_like(h, dtype=torch.int32))
        pair_t.scatter_add_(0, (h * 7919 + y) % B, torch.ones_like(h, dtype=torch.int32))
    return loss
evaluate(None, 1024)
""",
    ]

    def accepts(self, ev, ctx) -> bool:
        return ev.kind == STATISTIC_MIXED or not mixed_key(ev)

    def message(self, ev, ctx) -> str:
        if ev.kind == STATISTIC_MIXED:
            return (f"`{ctx.code(ev.node)}` mixes a statistic of a distribution (the same value for every token, "
                    f"such as its entropy) as an expert's score of the target, next to experts read at the target: "
                    f"that expert is no distribution over the vocabulary (C2)")
        return (f"`{ctx.code(ev.node)}` reads a value for the realised target only and it is mixed into the score "
                f"without a distribution over the whole vocabulary behind it (C2)")
