"""tests/data/ holds byte-identical copies of public files (tests/data/README.md names each source)."""

import hashlib
import re

import pytest

from tests.conftest import TEST_DATA


def listed_digests() -> dict[str, str]:
    """The SHA-256 lines of tests/data/README.md, by file name."""
    text = (TEST_DATA / "README.md").read_text()
    return {name: digest for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", text, re.M)}


def test_every_data_file_is_documented_and_unchanged():
    listed = listed_digests()
    present = {p.name for p in TEST_DATA.iterdir() if p.is_file() and p.name != "README.md"}
    assert present == set(listed), "every file of tests/data/ needs a source, version and licence in its README"
    for name, digest in listed.items():
        assert hashlib.sha256((TEST_DATA / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("name", ["fineweb_8192_bpe.model", "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model"])
def test_tokenizers_are_the_vocab_8192_models(name):
    from harness.tokenbytes import load_sentencepiece

    assert load_sentencepiece(TEST_DATA / name).get_piece_size() == 8192
