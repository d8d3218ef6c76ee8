"""Generated token streams and the hypothesis strategies that draw them.

A stream is built deterministically from a few small integers (so a counterexample is replayable
from its spec): random tokens with a handful of short *phrases* copied in again and again, so
that n-gram contexts recur (caches and tilts fire) while every model window stays unique (the
scorer can locate each window in the stream). Ids 0-3 are left out: they are the control pieces
(BOS/EOS/PAD/UNK) of a sentencepiece vocabulary.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from harness.shards import DOC_TOKENS, mark_documents

FIRST_ID = 4
PHRASES = 2
PHRASE_LEN = 8


def make_stream(seed: int, length: int, vocab: int, bos: int | None = None,
                doc_tokens: int = DOC_TOKENS) -> np.ndarray:
    """``length`` tokens (int64): random ids with recurring phrases; with ``bos``, a document starts
    every ``doc_tokens`` tokens."""
    rng = np.random.default_rng(seed)
    s = rng.integers(FIRST_ID, vocab, size=length)
    phrases = rng.integers(FIRST_ID, vocab, size=(PHRASES, PHRASE_LEN))
    pos = 8
    while pos + PHRASE_LEN <= length:
        if rng.random() < 0.9:
            s[pos : pos + PHRASE_LEN] = phrases[rng.integers(PHRASES)]
        pos += PHRASE_LEN + int(rng.integers(2, 7))
    s = s.astype(np.int64)
    return s if bos is None else mark_documents(s, bos, doc_tokens)


def make_documents(seed: int, docs: int, vocab: int, bos: int) -> tuple[np.ndarray, list[int]]:
    """BOS-packed documents; returns the stream and the index of each document's BOS."""
    rng = np.random.default_rng(seed)
    parts, starts, at = [], [], 0
    for _ in range(docs):
        body = make_stream(int(rng.integers(1 << 30)), int(rng.integers(16, 48)), vocab)
        body[body == bos] = FIRST_ID
        starts.append(at)
        parts += [np.array([bos]), body]
        at += 1 + body.shape[0]
    return np.concatenate(parts).astype(np.int64), starts


def repeated_context_targets(s: np.ndarray, order: int = 4, share=None) -> list[int]:
    """Target indices i (predicting s[i+1]) whose preceding ``order`` tokens occurred at least twice
    before; with ``share`` (i -> a length), only occurrences in the ``share(i)`` tokens before i count
    (the part of the stream the rank scoring i has seen)."""
    seen: dict[bytes, list[int]] = {}
    out = []
    for i in range(order - 1, s.shape[0] - 1):
        key = s[i - order + 1 : i + 1].tobytes()
        earlier = seen.setdefault(key, [])
        since = i - share(i) if share is not None else -1
        if sum(1 for j in earlier if j >= since) >= 2:
            out.append(i)
        earlier.append(i)
    return out


def probed_position(s: np.ndarray, k: int, min_t: int = 8, repeated: bool = True, share=None) -> int:
    """A target index of the stream ``s`` drawn by ``k``: preferably one whose context recurred
    (within ``share(i)`` tokens before it, when given)."""
    cands = [i for i in repeated_context_targets(s, share=share) if i >= min_t] if repeated else []
    if not cands:
        cands = list(range(min(min_t, s.shape[0] - 2), s.shape[0] - 1))
    return cands[k % len(cands)]


# Each strategy's lengths are per rank: with ``ranks`` ranks the eval splits a stream among them, so
# the drawn streams are ``ranks`` times longer and each rank's share is as long as one stream.

def stream_specs(min_len: int = 24, max_len: int = 160, ranks: int = 1):
    return st.fixed_dictionaries({"seed": st.integers(0, 999), "n": st.integers(min_len * ranks, max_len * ranks)})


def position_specs(min_len: int = 24, max_len: int = 160, ranks: int = 1):
    return st.fixed_dictionaries({"seed": st.integers(0, 999), "n": st.integers(min_len * ranks, max_len * ranks),
                                  "k": st.integers(0, 1 << 16)})


def change_specs(min_len: int = 24, max_len: int = 160, ranks: int = 1):
    """A stream, a position (``k``), how far after it the change lands (``d``) and the new token (``b``)."""
    return st.fixed_dictionaries({"seed": st.integers(0, 999), "n": st.integers(min_len * ranks, max_len * ranks),
                                  "k": st.integers(0, 1 << 16), "d": st.integers(0, 63), "b": st.integers(0, 1 << 16)})


def document_specs(ranks: int = 1):
    return st.fixed_dictionaries({"seed": st.integers(0, 999), "docs": st.integers(2 * ranks, 4 * ranks), "k": st.integers(0, 7),
                                  "b": st.integers(0, 1 << 16)})
