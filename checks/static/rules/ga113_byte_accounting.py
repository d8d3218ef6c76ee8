import ast
import re

import libcst as cst

from checks.static.engine import Rule
from checks.static.flow import pieces


class ByteAccounting(Rule):
    """The bytes-per-token table is not built by the challenge's byte rule.

    Why:
    BPB divides by the UTF-8 bytes of the scored text. The reference table counts a piece's UTF-8 length
    with the leading "▁" removed (the space is added back only after a non-boundary token), and 1 byte
    for each byte-fallback piece and 0 for control and unknown pieces. Counting "<0xE2>" as 6 bytes, the
    leading space twice (#1545, #1632) or a fixed bytes-per-token in place of the table (#875) inflates
    the denominator and lowers the reported BPB (issue #897, #1184). The submission's own table builder
    is evaluated on sample pieces (``checks/static/flow/pieces.py``): an error when its counts differ
    from the rule's, a warning when the builder is beyond that evaluator and its text lacks the rule's
    steps.

    Example:
        for i in range(sp.vocab_size()):
            base_bytes[i] = len(sp.id_to_piece(i).encode("utf-8"))

    Fix:
    Build the table as the reference does: ``sp.is_byte(i)`` -> 1; strip a leading "▁" (recording
    ``has_leading_space``) before ``len(piece.encode("utf-8"))``.
    """

    ID = "GA113"
    NAME = "byte-accounting"
    family = "byte-accounting"
    severity = "error"  # a warning where the table builder is beyond the evaluator
    VALID = [
        """
def build_luts(sp, n):
    base, space = [0] * n, [False] * n
    for i in range(n):
        if sp.is_control(i) or sp.is_unknown(i):
            continue
        if sp.is_byte(i):
            base[i] = 1
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith("\u2581"):
            space[i] = True
            piece = piece[1:]
        base[i] = len(piece.encode("utf-8"))
    return base, space
""",
        """
import math

def bpb(loss_nats, tokens, nbytes):
    return loss_nats / math.log(2) * tokens / nbytes
""",
    ]
    INVALID = [
        """
def build_luts(sp, n):  # <- fires
    return [len(sp.id_to_piece(i).encode("utf-8")) for i in range(n)]
""",
        """
def build_luts(sp, n):  # <- fires
    base = [0] * n
    for i in range(n):
        piece = sp.id_to_piece(i).replace("\u2581", " ")
        base[i] = len(piece.encode("utf-8"))
    return base
""",
        """
def build_luts(sp, n):  # <- fires
    base, space = [0] * n, [False] * n
    for i in range(n):
        if sp.is_control(i) or sp.is_unknown(i):
            continue
        if sp.is_byte(i):
            base[i] = 1
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith("\u2581"):
            space[i] = True
            base[i] = len(piece[1:].encode("utf-8")) + 1
        else:
            base[i] = len(piece.encode("utf-8"))
    return base, space
""",
        """
import math

BYTES_PER_TOKEN = 2.75

def bpb(loss_nats):
    return loss_nats / math.log(2) / BYTES_PER_TOKEN  # <- fires
""",
    ]

    def check_module(self, module, ctx):
        try:
            tree = ast.parse(module.source)
        except (SyntaxError, ValueError):
            return self._unread_builders(module, set())
        aliases = pieces.import_aliases(tree)
        out, decided = [], set()
        for fn in pieces.builders(tree):
            tables = pieces.evaluate(fn, aliases)
            if tables is None:
                continue
            decided.add(fn.name)
            wrong = pieces.miscounts(tables)
            if tables.space_at is not None and pieces.space_table_discarded(tree, fn, tables.space_at):
                wrong = [w for w in wrong if not w.piece.startswith(pieces.SPACE)]
            if wrong:
                out.append((module.tree, _miscount_message(fn.name, wrong), {"line": fn.lineno}))
        for d in pieces.fixed_divisors(tree):
            out.append((module.tree, f"BPB divides by a fixed {d.value:g} bytes per token instead of the UTF-8 bytes "
                                     "of the scored tokens (the per-token table summed over the scored targets)",
                        {"line": d.node.lineno}))
        return out + self._unread_builders(module, decided)

    def _unread_builders(self, module, decided: set) -> list:
        """Builders the evaluator could not follow: a warning when their text lacks the reference's steps."""
        src = module.source
        out, seen = [], set()
        for m in re.finditer(r"\b(id_to_piece|IdToPiece)\b", src):
            defs = list(_DEF.finditer(src, 0, m.start()))
            if not defs:
                continue
            d = defs[-1]
            indent = len(d.group(1))
            end = _end_of_block(src, d.end(), indent)
            if d.start() in seen or d.group(2) in decided:
                continue
            seen.add(d.start())
            body = src[d.start():end]
            if not (re.search(r"\blen\(", body) and ".encode(" in body):
                continue
            missing = []
            if not re.search(r"\b(is_byte|IsByte)\b", body):
                missing.append("byte-fallback pieces are counted by the length of their text, not as 1 byte")
            if "\u2581" not in body and "\\u2581" not in body:
                missing.append('the leading "▁" is not removed before counting, so the space is counted in the piece')
            node = _function_named(module.tree, d.group(2))
            if missing and node is not None:
                out.append((node, f"`{d.group(2)}` builds the bytes-per-token table from piece text: " + "; ".join(missing),
                            {"severity": "warning"}))
        return out


def _miscount_message(name: str, wrong: list) -> str:
    """One clause per reason, each with its first sample piece (bytes counted vs the rule's)."""
    first: dict[str, pieces.Miscount] = {}
    for w in wrong:
        first.setdefault(w.why, w)
    parts = [f'"{w.piece}" counts {w.counted} bytes, the rule {w.expected}: {w.why}' for w in first.values()]
    return f"`{name}` builds a bytes-per-token table that breaks the challenge's byte rule: " + "; ".join(parts)


_DEF = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]+(\w+)", re.M)


def _end_of_block(src: str, start: int, indent: int) -> int:
    """End of a def block: the next non-blank line indented at most as far as the def."""
    for m in re.finditer(r"\n([ \t]*)(\S)", src[start:]):
        if len(m.group(1)) <= indent and m.group(2) not in ")]}#":
            return start + m.start()
    return len(src)


def _function_named(tree, name: str):
    stack = list(tree.body)
    while stack:
        n = stack.pop()
        if isinstance(n, cst.FunctionDef):
            if n.name.value == name:
                return n
            stack.extend(s for s in n.body.body if isinstance(s, (cst.FunctionDef, cst.ClassDef)))
        elif isinstance(n, cst.ClassDef):
            stack.extend(n.body.body)
        elif isinstance(n, (cst.If, cst.Try)):
            stack.extend(n.body.body)
    return None
