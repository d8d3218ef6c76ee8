"""Byte accounting against the challenge's real tokenizers: LUT bytes == UTF-8 bytes of the text."""

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from harness.tokenbytes import ByteLUT, TokenizerError, bits_per_byte, bpb_from_nll, load_sentencepiece
from tests.conftest import TOKENIZER, data_file

TOKENIZERS = ["fineweb_8192_bpe.model", "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model"]
_cache: dict = {}


def tokenizer(name):
    if name not in _cache:
        path = TOKENIZER if name == "kjv" else data_file(name)
        sp = load_sentencepiece(path)
        _cache[name] = (sp, ByteLUT.from_sentencepiece(sp))
    return _cache[name]


# Prose-like text with the characters that stress the byte rule: spaces, digits, punctuation,
# accents, CJK and emoji (byte-fallback pieces), newlines.
texts = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ,.;:'\"!?-0123456789\n")),
        st.characters(codec="utf-8", exclude_categories=("Cs", "Co", "Cn", "Cc")),
    ),
    min_size=1,
    max_size=200,
)


@pytest.mark.parametrize("name", ["kjv", *TOKENIZERS])
@given(docs=st.lists(texts, min_size=1, max_size=4))
def test_lut_bytes_equal_utf8_bytes_of_decoded_docs(name, docs):
    """A BOS-separated stream, as the challenge exports it: bytes of targets == bytes of the text."""
    sp, lut = tokenizer(name)
    stream, expected = [], 0
    for doc in docs:
        ids = sp.encode(doc)
        stream += [sp.bos_id(), *ids]
        expected += len(sp.decode(ids).encode("utf-8"))
    assert int(lut.stream_bytes(np.array(stream)).sum()) == expected


@pytest.mark.parametrize("name", TOKENIZERS)
def test_table_shapes_and_special_pieces(name):
    sp, lut = tokenizer(name)
    assert lut.base_bytes.size == sp.vocab_size() == 8192
    for special in (sp.bos_id(), sp.eos_id(), sp.unk_id(), sp.pad_id()):
        if special >= 0:
            assert lut.is_boundary[special] and lut.base_bytes[special] == 0
    byte_ids = [i for i in range(sp.vocab_size()) if sp.is_byte(i)]
    assert byte_ids and all(lut.base_bytes[i] == 1 and not lut.has_leading_space[i] for i in byte_ids)


def test_leading_space_counted_only_after_non_boundary():
    sp, lut = tokenizer(TOKENIZERS[0])
    space_piece = next(i for i in range(sp.vocab_size()) if sp.id_to_piece(i).startswith("\u2581") and len(sp.id_to_piece(i)) > 1)
    base = int(lut.base_bytes[space_piece])
    word = sp.encode("word")[0]
    assert lut.target_bytes(np.array([sp.bos_id()]), np.array([space_piece]))[0] == base
    assert lut.target_bytes(np.array([word]), np.array([space_piece]))[0] == base + 1


def test_bpb_formula():
    loss, bpb = bits_per_byte(nll_sum_nats=100.0, n_tokens=50, n_bytes=200)
    assert loss == 2.0 and bpb == pytest.approx(2.0 / math.log(2) * 50 / 200)
    sp, lut = tokenizer(TOKENIZERS[0])
    ids = np.array([sp.bos_id(), *sp.encode("Hello world, hello golf.")])
    nll = np.full(ids.size - 1, 1.5)
    loss, bpb = bpb_from_nll(nll, ids[:-1], ids[1:], lut)
    assert bpb == pytest.approx(1.5 * (ids.size - 1) / math.log(2) / len("Hello world, hello golf."))


def test_bad_tokenizer_paths(tmp_path):
    with pytest.raises(TokenizerError, match="not found"):
        load_sentencepiece(tmp_path / "missing.model")
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(TokenizerError, match="not a sentencepiece model") as e:
        load_sentencepiece(junk)
    assert "\n" not in str(e.value)
