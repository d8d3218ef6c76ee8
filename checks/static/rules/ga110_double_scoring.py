from checks.static.engine import Rule
from checks.static.flow.vocab import DOUBLE_SCORING


class DoubleScoring(Rule):
    """Sliding windows run to the end of the stream and the final partial windows re-score the tail.

    Why:
    Every validation token must be scored exactly once (C4). With window starts every ``stride`` tokens
    up to the end and a scored offset ``max(wlen - stride, 0)``, the windows that are cut short by the
    end of the stream score their last ``stride`` positions again, which the last full window already
    scored (#50, #558; the shared sliding-window code carries it). The effect on BPB is small (a few
    thousand of tens of millions of tokens), so this is a warning.

    Example:
        for ws in range(0, total, stride):
            wlen = min(ws + seq_len, total) - ws
            s = 0 if ws == 0 else max(wlen - stride, 0)

    Fix:
    Stop after the first window that reaches the end of the stream, or score in each window only the
    positions beyond the previous window's end.
    """

    ID = "GA110"
    NAME = "double-scoring"
    family = "double-scoring"
    severity = "warning"
    KINDS = (DOUBLE_SCORING,)
    VALID = [
        """
def windows(total, seq_len, stride):
    out, ws = [], 0
    while True:
        end = min(ws + seq_len, total)
        out.append((ws, 0 if ws == 0 else seq_len - stride, end - ws))
        if end >= total:
            return out
        ws += stride
""",
    ]
    INVALID = [
        """
def windows(total, seq_len, stride):
    out = []
    for ws in range(0, total, stride):
        wlen = min(ws + seq_len, total) - ws
        out.append((ws, 0 if ws == 0 else max(wlen - stride, 0), wlen))  # <- fires
    return out
""",
        """
def evaluate(total_tokens, seq_len, stride, nll):
    starts = [w for w in range(0, total_tokens, stride) if min(w + seq_len, total_tokens) - w >= 1]
    for w in starts:
        end = min(w + seq_len, total_tokens)
        n = end - w
        first = 0 if w == 0 else max(n - stride, 0)  # <- fires
""",
    ]

    def message(self, ev, ctx) -> str:
        return (f"`{ctx.code(ev.node)}` is the scored start of windows that run past the last full window: the final "
                f"partial windows re-score positions the previous window already scored (C4)")
