"""Rewrite Python 3.12-only f-strings (PEP 701) into code Python 3.11 compiles.

Python 3.12 lets a replacement field reuse the string's own quotes (``f"{", ".join(xs)}"``), span
lines, hold comments and backslashes. Some submissions use that, and this interpreter may be 3.11.
``down_level`` parses the module with libcst's 3.12 grammar and rewrites only the f-strings (and
the implicit concatenations holding them) that 3.11 cannot parse. Each becomes a ``str.format``
call on a plain literal with the same prefix and quotes::

    f"  {cat}: {", ".join(xs)!r:>{w}}"   ->   ("  {0}: {1!r:>{2}}".format((cat), (", ".join(xs)), (w)))

The literal text is kept verbatim (``{{``/``}}`` escapes and backslash escapes mean the same in
both), each field becomes ``{N[!c][:spec]}`` with its expression passed as the N-th argument, so
expressions are evaluated once, left to right, as in the f-string. ``str.format`` is a method of the
literal, so no builtin name a submission might shadow is used. A format spec's nested field that
has its own conversion or spec is formatted by a nested ``str.format`` call; the ``=`` debug form
passes its source text as a literal argument and defaults to ``!r`` as in an f-string. Plain string
parts of a rewritten implicit concatenation are passed as arguments, unchanged. The rewrite keeps
the number of lines of every rewritten string, so line numbers after it do not move.
"""

from __future__ import annotations

import ast
import io
import keyword
import tokenize

import libcst as cst

PARSER_CONFIG = cst.PartialParserConfig(python_version="3.12")


class DownLevelError(SyntaxError):
    """The source does not parse with the 3.12 grammar either, or the rewrite does not compile."""


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def _parses_on_this_python(expr_code: str) -> bool:
    try:
        ast.parse("(" + expr_code + "\n)", mode="eval")
        return True
    except SyntaxError:
        return False


def _flatten(node: cst.BaseExpression) -> list[tuple[cst.BaseExpression, str]]:
    """Parts of an implicit string concatenation with the whitespace after each (last: "")."""
    if isinstance(node, cst.ConcatenatedString):
        left = _flatten(node.left)
        left[-1] = (left[-1][0], _code(node.whitespace_between))
        return left + _flatten(node.right)
    return [(node, "")]


class _Builder:
    """Collects the literal text and the arguments of one ``str.format`` call."""

    def __init__(self):
        self.args: list[str] = []

    def arg(self, code: str) -> int:
        self.args.append(code)
        return len(self.args) - 1

    def field(self, f: cst.FormattedStringExpression, nested: bool = False) -> str:
        """``{N...}`` text for one replacement field; adds its argument(s)."""
        expr = "(" + _code(f.whitespace_before_expression) + _code(f.expression) + \
            _code(f.whitespace_after_expression) + ")"
        conversion = f.conversion
        debug = None
        if f.equal is not None:
            debug = repr(_code(f.whitespace_before_expression) + _code(f.expression) +
                         _code(f.whitespace_after_expression) + _code(f.equal))
            if conversion is None and f.format_spec is None:
                conversion = "r"
        if nested and (debug is not None or conversion is not None or f.format_spec):
            # str.format allows only plain fields inside a spec: format this one on its own.
            inner = _Builder()
            text = inner.field(f)
            return "{%d}" % self.arg(f"({text!r}.format({', '.join(inner.args)}))")
        out = "" if debug is None else "{%d}" % self.arg(debug)
        out += "{%d" % self.arg(expr)
        if conversion is not None:
            out += "!" + conversion
        if f.format_spec is not None:
            out += ":" + self.spec(f.format_spec)
        return out + "}"

    def spec(self, parts) -> str:
        out = ""
        for p in parts:
            if isinstance(p, cst.FormattedStringText):
                out += p.value
            else:
                out += self.field(p, nested=True)
        return out


def _rewrite(parts: list[tuple[cst.BaseExpression, str]]) -> tuple[str, str, str]:
    """(source of one parenthesized ``str.format`` call equal to the concatenation of ``parts``,
    the string's own opening and closing parentheses)."""
    b = _Builder()
    pieces: list[str] = []
    for node, ws_after in parts:
        if isinstance(node, cst.FormattedString):
            prefix = node.start.replace("f", "").replace("F", "")
            body = "".join(p.value if isinstance(p, cst.FormattedStringText) else b.field(p) for p in node.parts)
            pieces.append(prefix + body + node.end)
        else:  # a plain (or already 3.11-valid) string part: passed through untouched
            pieces.append('"{%d}"' % b.arg(_code(node)))
        pieces.append(ws_after)
    lpar = "".join(_code(p) for p in parts[0][0].lpar) if len(parts) == 1 else ""
    rpar = "".join(_code(p) for p in parts[0][0].rpar) if len(parts) == 1 else ""
    return f"({''.join(pieces)}.format({', '.join(b.args)}))", lpar, rpar


class _Transformer(cst.CSTTransformer):
    def __init__(self):
        self.count = 0
        self.in_concat: set[int] = set()

    def visit_ConcatenatedString(self, node: cst.ConcatenatedString) -> bool:
        # Its parts (and the nested concatenations of ``a b c``) are rewritten as one, here.
        right = node.right
        while isinstance(right, cst.ConcatenatedString):
            self.in_concat.add(id(right))
            right = right.right
        for part, _ in _flatten(node):
            self.in_concat.add(id(part))
        return True

    def _replace(self, original: cst.BaseExpression, updated: cst.BaseExpression, parts) -> cst.BaseExpression:
        old = _code(updated)
        if _parses_on_this_python(old):
            return updated
        text, lpar, rpar = _rewrite(parts)
        missing = old.count("\n") - (lpar + text + rpar).count("\n")
        if missing > 0:  # keep the line count: extra newlines inside the call's parentheses
            text = text[:-2] + "\n" * missing + text[-2:]
        new = cst.parse_expression(lpar + text + rpar, config=PARSER_CONFIG)
        self.count += 1
        return new

    def leave_FormattedString(self, original: cst.FormattedString, updated: cst.FormattedString):
        if id(original) in self.in_concat:
            return updated  # rewritten with its concatenation, if needed
        return self._replace(original, updated, [(updated, "")])

    def leave_ConcatenatedString(self, original: cst.ConcatenatedString, updated: cst.ConcatenatedString):
        if id(original) in self.in_concat:
            return updated
        parts = _flatten(updated)
        if not any(isinstance(p, cst.FormattedString) for p, _ in parts):
            return updated
        new = self._replace(original, updated, parts)
        if new is not updated and (updated.lpar or updated.rpar):
            new = new.with_changes(lpar=[*updated.lpar, *new.lpar], rpar=[*new.rpar, *updated.rpar])
        return new


def down_level(source: str, filename: str = "<source>") -> tuple[str, int]:
    """(source 3.11 compiles, number of f-strings rewritten). Raises DownLevelError when the source
    is not valid 3.12 either, or when the rewritten source still does not compile here."""
    try:
        module = cst.parse_module(source, config=PARSER_CONFIG)
    except cst.ParserSyntaxError as e:
        raise DownLevelError(f"not valid Python 3.12 either: {str(e).splitlines()[0][:120]}") from None
    except cst.CSTValidationError:  # a spelling libcst refuses and CPython takes (``f(p)for p in ps``)
        try:
            module = cst.parse_module(space_keywords(source), config=PARSER_CONFIG)
        except (cst.ParserSyntaxError, cst.CSTValidationError) as e:
            raise DownLevelError(f"not read as Python 3.12: {str(e).splitlines()[0][:120]}") from None
    t = _Transformer()
    out = module.visit(t).code
    try:
        compile(out, filename, "exec", dont_inherit=True)
    except SyntaxError as e:
        raise DownLevelError(f"down-levelled source does not compile: {e.msg} (line {e.lineno})") from None
    return out, t.count


def space_keywords(text: str) -> str:
    """The source with a space on each side of every keyword that touches the token before or after it
    (``f(p)for p in ps`` -> ``f(p) for p in ps``); lines and meaning unchanged."""
    lines = text.splitlines(keepends=True)
    inserts: dict[int, set[int]] = {}
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return text
    touching = (tokenize.OP, tokenize.NUMBER, tokenize.STRING)
    for prev, tok, nxt in zip([None, *toks], toks, [*toks[1:], None]):
        if tok.type != tokenize.NAME or not keyword.iskeyword(tok.string):
            continue
        if prev is not None and prev.type in touching and prev.end == tok.start:
            inserts.setdefault(tok.start[0], set()).add(tok.start[1])
        if nxt is not None and nxt.type in touching and nxt.start == tok.end:
            inserts.setdefault(tok.end[0], set()).add(tok.end[1])
    for row, cols in inserts.items():
        line = lines[row - 1]
        for col in sorted(cols, reverse=True):
            line = line[:col] + " " + line[col:]
        lines[row - 1] = line
    return "".join(lines)
