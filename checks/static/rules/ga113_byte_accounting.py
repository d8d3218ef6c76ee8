import libcst as cst

from checks.static import flow
from checks.static.engine import Rule


class _LutScan(cst.CSTVisitor):
    def __init__(self):
        self.pieces = self.encoded_len = self.is_byte = self.space = False

    def visit_Call(self, node: cst.Call) -> None:
        name = node.func.attr.value if isinstance(node.func, cst.Attribute) else getattr(node.func, "value", "")
        if name in ("id_to_piece", "IdToPiece"):
            self.pieces = True
        elif name in ("is_byte", "IsByte"):
            self.is_byte = True
        elif name == "len" and node.args and "encode" in flow.code(node.args[0].value):
            self.encoded_len = True

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        try:
            if "\u2581" in node.evaluated_value:
                self.space = True
        except Exception:  # noqa: BLE001
            pass


class ByteAccounting(Rule):
    """The bytes-per-token table is not built by the challenge's byte rule.

    Why:
    BPB divides by the UTF-8 bytes of the scored text. The reference table counts a piece's UTF-8 length
    with the leading "▁" removed (the space is added back only after a non-boundary token), and 1 byte
    for each byte-fallback piece. Counting "<0xE2>" as 6 bytes or the leading space twice inflates the
    denominator and lowers the reported BPB (issue #897, #1184).

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
    severity = "warning"
    VALID = [
        """
def build_luts(sp, n):
    base, space = [0] * n, [False] * n
    for i in range(n):
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
    ]
    INVALID = [
        """
def build_luts(sp, n):
    return [len(sp.id_to_piece(i).encode("utf-8")) for i in range(n)]
""",
        """
def build_luts(sp, n):
    base = [0] * n
    for i in range(n):
        piece = sp.id_to_piece(i).replace("\u2581", " ")
        base[i] = len(piece.encode("utf-8"))
    return base
""",
    ]

    def check_module(self, module, ctx):
        if "id_to_piece" not in module.source and "IdToPiece" not in module.source:
            return []
        out = []
        for node in _functions(module.tree):
            scan = _LutScan()
            node.visit(scan)
            if not (scan.pieces and scan.encoded_len):
                continue
            missing = []
            if not scan.is_byte:
                missing.append("byte-fallback pieces are counted by the length of their text, not as 1 byte")
            if not scan.space:
                missing.append('the leading "▁" is not removed before counting, so the space is counted in the piece')
            if missing:
                out.append((node, f"`{node.name.value}` builds the bytes-per-token table from piece text: " + "; ".join(missing)))
        return out


def _functions(tree):
    stack = list(tree.body)
    while stack:
        n = stack.pop()
        if isinstance(n, cst.FunctionDef):
            yield n
            stack.extend(s for s in n.body.body if isinstance(s, (cst.FunctionDef, cst.ClassDef)))
        elif isinstance(n, cst.ClassDef):
            stack.extend(n.body.body)
