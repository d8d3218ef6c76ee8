"""Byte mutations shared by the fuzz tests: take a valid input, damage it the ways files get damaged."""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def mutated(draw, valid: bytes) -> bytes:
    """``valid`` after 1-4 edits: truncation, byte flips, inserted or deleted runs, duplication."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "duplicate", "zero"]))
        n = len(data)
        at = draw(st.integers(0, n))
        if op == "truncate":
            del data[at:]
        elif op == "flip" and n:
            i = min(at, n - 1)
            data[i] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "duplicate":
            data[at:at] = data[at:at + draw(st.integers(1, 256))]
        elif op == "zero":
            end = at + draw(st.integers(1, 64))
            data[at:end] = bytes(len(data[at:end]))
    return bytes(data)


def damaged(valid: bytes) -> st.SearchStrategy[bytes]:
    """Mostly mutations of ``valid``, sometimes arbitrary bytes or the valid input itself."""
    return st.one_of(mutated(valid), st.binary(max_size=2048), st.just(valid))
