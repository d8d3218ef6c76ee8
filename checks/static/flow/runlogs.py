"""What the claimed runs' logs show about the branches the code took.

A branch that prints a distinctive line as it starts (``log0(f"ttt:start lr={lr}")``) leaves that line
in the log of every run that took it. The logs of the folder are the claimed runs' logs when they show
the script's own lines; where they do:

- a line printed only inside a branch (or by a function only that branch calls) appears in them: the
  branch ran in the claimed runs, whatever the launch's constants say;
- the line a branch prints unconditionally appears in none of them, though a line the code prints after
  the branch does (the run went past it) in a whole log (one that never shows a line of a function or
  branch without the line it opens with): the branch did not run in the claimed runs.

A line is distinctive when its literal start (the text before the first ``{}`` of an f-string) has at
least ``MIN_PREFIX`` characters with a word in them and no other print of the program holds that text.
A log shows it where it is not preceded by a quote or a word character, so that a log that begins with
the script's own source (``log0(code)``) does not show the lines that source prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import libcst as cst

from .tree import code_children, dotted

MIN_PREFIX = 8  # characters of a distinctive line's literal start
MIN_SCRIPT_LINES = 3  # distinct lines of the script a log must show to be taken for the script's log
# printing functions: print, log0, log_fn, print0, master_print, logger.info
_PRINTER = re.compile(r"^(?:print\w*|_?log\w*|\w*_(?:log|print)\d*)$")
_LOGGER_METHODS = {"info", "warning"}
_HARMLESS_KEYWORDS = {"flush"}  # a print with another keyword (console=False, file=...) may leave no log line
_DEFS = (cst.FunctionDef, cst.ClassDef, cst.Lambda)


@dataclass(frozen=True)
class Shown:
    """What the logs show of a branch: ``ran`` True (a line of it appears), False (its opening line appears
    in none, past it the run went on), or None (they do not say); ``line`` the log line that says it."""
    ran: bool | None
    line: str = ""

    def reason(self) -> str:
        return f"off in the claimed runs: its log line `{self.line}` appears in no log"


NOT_SHOWN = Shown(None)


def _printed_text(call: cst.Call) -> tuple[str, list[str]] | None:
    """(literal start, literal pieces) of the text a print call prints, or None for another call."""
    func = call.func
    if isinstance(func, cst.Name):
        if not _PRINTER.match(func.value):
            return None
    elif not (isinstance(func, cst.Attribute) and func.attr.value in _LOGGER_METHODS and "log" in dotted(func.value).lower()):
        return None
    if not call.args or call.args[0].keyword is not None or call.args[0].star:
        return None
    if any(a.keyword is not None and a.keyword.value not in _HARMLESS_KEYWORDS for a in call.args):
        return None
    return _literal_pieces(call.args[0].value)


def _literal_pieces(node) -> tuple[str, list[str]] | None:
    if isinstance(node, cst.SimpleString):
        try:
            text = node.evaluated_value
        except Exception:  # noqa: BLE001 - a string we cannot read prints nothing we know
            return None
        return (text, [text]) if isinstance(text, str) else None
    if isinstance(node, cst.FormattedString):
        pieces, start, open_ = [], "", True
        for part in node.parts:
            if isinstance(part, cst.FormattedStringText):
                pieces.append(part.value)
                if open_:
                    start += part.value
            else:
                open_ = False
        return start, pieces
    if isinstance(node, cst.ConcatenatedString):
        left, right = _literal_pieces(node.left), _literal_pieces(node.right)
        if left is None or right is None:
            return None
        whole = left[0] == "".join(left[1])  # the left part has no placeholder
        return (left[0] + right[0] if whole else left[0]), left[1] + right[1]
    return None


def _code_nodes(node):
    """The nodes under ``node``, not entering function, class or lambda definitions."""
    stack = list(code_children(node))
    while stack:
        n = stack.pop()
        yield n
        if not isinstance(n, _DEFS):
            stack.extend(code_children(n))


def _statements(body) -> list:
    stmts = body.body if hasattr(body, "body") else body
    return list(stmts) if isinstance(stmts, (list, tuple)) else [stmts]


def _callee_name(call: cst.Call) -> str:
    f = call.func
    return f.value if isinstance(f, cst.Name) else f.attr.value if isinstance(f, cst.Attribute) else ""


@dataclass
class _Index:
    """The program's print calls and functions, for the claimed runs' logs."""
    starts: dict = field(default_factory=dict)  # id(print call) -> its distinctive literal start
    printer: dict = field(default_factory=dict)  # id(print call) -> the function it calls (print, log0)
    calls: dict = field(default_factory=dict)  # function name -> number of calls of it in the program
    defs: dict = field(default_factory=dict)  # function name -> its definitions
    bodies: list = field(default_factory=list)  # the bodies of functions and branches


def _index(trees: list[cst.Module]) -> _Index:
    idx, sites = _Index(), []
    for tree in trees:
        for n in _all_nodes(tree):
            if isinstance(n, cst.FunctionDef):
                idx.defs.setdefault(n.name.value, []).append(n)
                idx.bodies.append(n.body)
            elif isinstance(n, cst.If):
                idx.bodies += [n.body] + ([n.orelse.body] if isinstance(n.orelse, cst.Else) else [])
            elif isinstance(n, cst.Call):
                name = _callee_name(n)
                idx.calls[name] = idx.calls.get(name, 0) + 1
                printed = _printed_text(n)
                if printed is not None:
                    sites.append((id(n), printed[0].strip(), printed[1]))
                    idx.printer[id(n)] = dotted(n.func)
    for key, start, _ in sites:
        if len(start) >= MIN_PREFIX and re.search(r"[A-Za-z]{3}", start) and \
                not any(k != key and any(start in piece for piece in pieces) for k, _, pieces in sites):
            idx.starts[key] = start
    return idx


def _all_nodes(tree):
    stack = [tree]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(code_children(n))


class RunLogs:
    """The claimed runs' logs (their texts) read against one program's print calls."""

    def __init__(self, texts: list[str]):
        self.texts = texts
        self._idx: _Index | None = None
        self._shown: set[str] = set()  # distinctive starts some log of the script shows
        self._shown_whole: set[str] = set()  # those some whole log of the script shows (_whole)
        self._script = False  # some log shows the script's own lines
        self._memo: dict[int, Shown] = {}

    def bind(self, trees: list[cst.Module]) -> None:
        """Index the program's prints and find which of them the logs show (once per program)."""
        if self._idx is not None or not self.texts:
            return
        self._idx = _index(trees)
        starts = sorted(set(self._idx.starts.values()), key=len, reverse=True)
        if not starts:
            return
        pattern = re.compile(r"(?<![\w\"'])(?:" + "|".join(map(re.escape, starts)) + ")")
        openings = self._openings()
        for text in self.texts:
            found = {m.group(0) for m in pattern.finditer(text)}
            if len(found) >= MIN_SCRIPT_LINES:  # the script's log: only those say anything
                self._script = True
                self._shown |= found
                if _whole(found, openings):
                    self._shown_whole |= found

    def _openings(self) -> list[tuple[str, set[str]]]:
        """(opening line, the other lines it prints itself) of every function and branch with one."""
        idx, out = self._idx, []
        for body in idx.bodies:
            opening = self._opening_line(body)
            if opening is not None:
                own = {idx.starts[id(n)] for s in _statements(body) for n in _code_nodes_of(s) if id(n) in idx.starts}
                out.append((idx.starts[opening], own - {idx.starts[opening]}))
        return out

    def branch(self, body, after: list) -> Shown:
        """What the logs show of a branch whose statements are ``body``, with ``after`` the statements
        the code runs next (those after the branch in its block and in the blocks around it)."""
        if not self._script:
            return NOT_SHOWN
        key = id(body)
        if key not in self._memo:
            self._memo[key] = self._branch(body, after)
        return self._memo[key]

    def ran(self, body) -> Shown:
        """Whether the logs show a line that only this branch prints (``ran`` True), else nothing."""
        if self._script:
            for start in self._lines_inside(body):
                if start in self._shown:
                    return Shown(True, start)
        return NOT_SHOWN

    def _branch(self, body, after: list) -> Shown:
        idx = self._idx
        shown = self.ran(body)
        if shown.ran:
            return shown
        opening = self._opening_line(body)
        if opening is None or idx.starts[opening] in self._shown:
            return NOT_SHOWN
        # past the branch, in a whole log, a line printed the same way (a ``print`` may reach another file
        # than ``log0``)
        printer = idx.printer[opening]
        if any(idx.starts.get(id(n)) in self._shown_whole and idx.printer[id(n)] == printer
               for s in after for n in _code_nodes_of(s)):
            return Shown(False, idx.starts[opening])
        return NOT_SHOWN

    def _lines_inside(self, body):
        """The distinctive lines printed only by this branch: its own prints, and those of a function
        it calls that nothing else calls."""
        idx = self._idx
        for s in _statements(body):
            for n in _code_nodes_of(s):
                if not isinstance(n, cst.Call):
                    continue
                if id(n) in idx.starts:
                    yield idx.starts[id(n)]
                name = _callee_name(n)
                if idx.calls.get(name) == 1 and len(idx.defs.get(name, ())) == 1:
                    for m in _code_nodes(idx.defs[name][0].body):
                        if id(m) in idx.starts:
                            yield idx.starts[id(m)]

    def _opening_line(self, body) -> int | None:
        """The first distinctive line the branch prints whenever it runs: a print among its own
        statements, or the first print among the statements of a function it calls there, before any
        statement that may leave the branch."""
        idx = self._idx
        for s in _statements(body):
            for call in _top_calls(s):
                if id(call) in idx.starts:
                    return id(call)
                defs = idx.defs.get(_callee_name(call), ())
                if len(defs) == 1:
                    for inner in _statements(defs[0].body):
                        hit = next((id(c) for c in _top_calls(inner) if id(c) in idx.starts), None)
                        if hit is not None:
                            return hit
                        if not _plain(inner):
                            break
            if not _plain(s):
                return None
        return None


def _whole(found: set[str], openings: list[tuple[str, set[str]]]) -> bool:
    """A log that keeps every line the run printed: none shows a line of a function or branch without
    the line it opens with (a log cut down to chosen lines, ``grep``ed from the run's output, does)."""
    return not any(opening not in found and own & found for opening, own in openings)


def _code_nodes_of(stmt):
    yield stmt
    if not isinstance(stmt, _DEFS):
        yield from _code_nodes(stmt)


def _plain(stmt) -> bool:
    """A statement after which the code goes on to the next: no ``return`` or ``raise`` in it, and no
    ``continue`` or ``break`` outside a loop of its own."""
    return not _leaves(stmt, in_loop=False)


def _leaves(node, in_loop: bool) -> bool:
    if isinstance(node, (cst.Return, cst.Raise)):
        return True
    if isinstance(node, (cst.Continue, cst.Break)):
        return not in_loop
    if isinstance(node, _DEFS):
        return False
    inner = in_loop or isinstance(node, (cst.For, cst.While))
    return any(_leaves(c, inner) for c in code_children(node))


def _top_calls(stmt) -> list[cst.Call]:
    """The calls a simple statement makes whenever it runs: ``f(...)``, ``x = f(...)``."""
    if not isinstance(stmt, cst.SimpleStatementLine):
        return []
    out = []
    for small in stmt.body:
        value = small.value if isinstance(small, (cst.Expr, cst.Assign, cst.AnnAssign)) else None
        if isinstance(value, cst.Call):
            out.append(value)
    return out
