"""The bytes-per-token table builder, evaluated on sample pieces (checks/static/flow/pieces.py)."""

import ast
import textwrap

import pytest

from checks.static import engine
from checks.static.flow import pieces

RIGHT = '''
import numpy as np
import torch

def build_luts(sp, vocab_size, device):
    n = max(int(sp.vocab_size()), vocab_size)
    base = np.zeros((n,), dtype=np.int16)
    space = np.zeros((n,), dtype=np.bool_)
    boundary = np.ones((n,), dtype=np.bool_)
    for t in range(int(sp.vocab_size())):
        if sp.is_control(t) or sp.is_unknown(t) or sp.is_unused(t):
            continue
        boundary[t] = False
        if sp.is_byte(t):
            base[t] = 1
            continue
        piece = sp.id_to_piece(t)
        if piece.startswith("\\u2581"):
            space[t] = True
            piece = piece[1:]
        base[t] = len(piece.encode("utf-8"))
    return (torch.tensor(base, dtype=torch.int16, device=device),
            torch.tensor(space, dtype=torch.bool, device=device),
            torch.tensor(boundary, dtype=torch.bool, device=device))

base_lut, space_lut, boundary_lut = build_luts(sp, 1024, "cpu")
'''

# the "▁" is left in the base count and the leading-space table is still returned and used
SPACE_TWICE = '''
import torch

def make_tables(tok, n, device):
    base = torch.zeros(n, dtype=torch.float32, device=device)
    lead = torch.zeros(n, dtype=torch.bool, device=device)
    bound = torch.zeros(n, dtype=torch.bool, device=device)
    for i in range(n):
        if tok.is_control(i) or tok.is_unknown(i):
            bound[i] = True
            continue
        if tok.is_byte(i):
            base[i] = 1
            continue
        p = tok.id_to_piece(i)
        base[i] = len(p.encode("utf-8"))
        if p.startswith("\\u2581"):
            lead[i] = True
    return base, lead, bound

b, s, d = make_tables(tok, 1024, "cpu")
total = b[y] + (s[y] & ~d[x])
'''

# byte pieces counted by the length of "<0x0A>"; control pieces by the length of "<s>"
NAME_LENGTHS = '''
def luts(sp):
    n = sp.get_piece_size()
    base, lead = [0] * n, [False] * n
    for i in range(n):
        piece = sp.id_to_piece(i)
        if piece.startswith("\\u2581"):
            lead[i] = True
            piece = piece[1:]
        base[i] = len(piece.encode("utf-8"))
    return base, lead
'''


def tables_of(code: str):
    tree = ast.parse(textwrap.dedent(code))
    fns = pieces.builders(tree)
    assert len(fns) == 1
    return tree, fns[0], pieces.evaluate(fns[0], pieces.import_aliases(tree))


def ga113(code: str) -> list[dict]:
    found, notes = engine.analyse([engine.Source("train_gpt.py", textwrap.dedent(code))], dict(engine.OFFICIAL_ENV))
    assert not notes, notes
    return [f for f in found if f["rule"] == "GA113"]


def test_the_reference_builder_counts_every_sample_as_the_rule_does():
    _, _, tables = tables_of(RIGHT)
    assert tables.base == tuple(pieces.reference(p, k)[0] for p, k in pieces.SAMPLES)
    assert tables.space_at == 1 and pieces.miscounts(tables) == []
    assert ga113(RIGHT) == []


def test_a_leading_space_counted_in_the_base_and_again_is_an_error():
    tree, fn, tables = tables_of(SPACE_TWICE)
    wrong = pieces.miscounts(tables)
    assert {w.piece for w in wrong} == {p for p, k in pieces.SAMPLES if k == pieces.NORMAL and p.startswith(pieces.SPACE)}
    assert not pieces.space_table_discarded(tree, fn, tables.space_at)
    [f] = ga113(SPACE_TWICE)
    assert f["severity"] == "error" and f["line"] == 4 and "added again" in f["message"]


def test_the_same_table_is_not_an_error_when_the_leading_space_table_is_dropped():
    code = SPACE_TWICE.replace("b, s, d = make_tables", "b, _, d = make_tables").replace("(s[y] & ~d[x])", "0")
    assert [f for f in ga113(code) if f["severity"] == "error"] == []


def test_byte_and_control_pieces_counted_by_their_names_are_errors():
    _, _, tables = tables_of(NAME_LENGTHS)
    wrong = {w.piece: (w.counted, w.expected) for w in pieces.miscounts(tables)}
    assert wrong["<0x0A>"] == (6, 1) and wrong["<s>"] == (3, 0) and "\u2581the" not in wrong
    [f] = ga113(NAME_LENGTHS)
    assert f["severity"] == "error" and "byte-fallback" in f["message"]


@pytest.mark.parametrize("body", [
    "return [len(sp.decode([i]).encode('utf-8')) for i in range(n)]",  # decode is not modelled
    "return {i: len(sp.id_to_piece(i)) for i in range(n)}",  # nor dict comprehensions
])
def test_a_builder_beyond_the_evaluator_is_undecided(body):
    code = f"def build(sp, n):\n    sp.id_to_piece(0)\n    {body}\n"
    _, _, tables = tables_of(code)
    assert tables is None
    assert [f for f in ga113(code) if f["severity"] == "error"] == []


@pytest.mark.parametrize("code,value", [
    ("import math\nbpb = val_loss / (math.log(2) * 3.5)\n", 3.5),
    ("import math\nBPT = 2.75\nbpb = val_loss / math.log(2) / BPT\n", 2.75),
    ("import numpy as np\nbpb = val_loss / 3.1 / np.log(2)\n", 3.1),
])
def test_a_fixed_bytes_per_token_divisor_is_an_error(code, value):
    [d] = pieces.fixed_divisors(ast.parse(code))
    assert d.value == value
    [f] = ga113(code)
    assert f["severity"] == "error" and f["line"] == code.count("\n")


@pytest.mark.parametrize("code", [
    "import math\nbpb = val_loss / math.log(2) * tokens / nbytes\n",  # the per-token table's sum
    "import math\nbits = val_loss / math.log(2)\n",  # bits per token, no byte count
    "import math\nK = 3.5\nK = 4.0\nbpb = val_loss / math.log(2) / K\n",  # not one constant
    "import math\nbpb = val_loss / (math.log(2) * 1.0)\n",  # a unit, not a byte count
])
def test_no_fixed_divisor(code):
    assert pieces.fixed_divisors(ast.parse(code)) == []


def test_a_table_sized_past_the_tokenizer_is_read_on_the_tokenizer_ids():
    code = RIGHT.replace("def build_luts(sp, vocab_size, device):", "def build_luts(sp, vocab_size=1024, device=None):")
    _, _, tables = tables_of(code)
    assert tables is not None and pieces.miscounts(tables) == []


def test_a_huge_table_is_undecided_not_built():
    code = "def build(sp, n=1_000_000_000_000):\n    base = [0] * n\n    base[0] = len(sp.id_to_piece(0))\n    return base\n"
    assert tables_of(code)[2] is None
