"""Reading a submission file as Python without ever crashing the check.

libcst's native parser recurses on the nesting of the code: 1,500 nested parentheses or a 10,000-term
expression overflow its stack and kill the process with a signal, and the Python-level analysis then
recurses as deep. So CPython's own compiler decides first: what it rejects for nesting (too many
nested parentheses, an expression too deep to compile) is reported as not parsed before libcst sees
it. A source this Python's compiler rejects for another reason may still be newer syntax (the 3.12
f-strings and type parameters on a 3.11 interpreter); it is test-parsed by libcst in a separate,
bounded process first, and only parsed here when that process survives. The parse and the analysis
run on a thread with a large stack (``on_large_stack``), so that any source CPython compiles fits.

libcst also refuses some spellings CPython accepts (``sum(f(p)for p in ps)``: no space before a
keyword); those are parsed again with a space put on each side of such keywords, which changes no
line and no meaning.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import warnings

import libcst as cst

from harness.downlevel import PARSER_CONFIG, space_keywords

# CPython's messages for sources nested beyond its limits (tokenizer, parser, compiler).
_NESTING = ("too many nested parentheses", "too complex", "too many statically nested blocks",
            "too many levels of indentation", "maximum recursion depth")
STACK_BYTES = 512 << 20  # the analysis thread's stack: reserved, touched only as deep as the code goes
DEFAULT_RECURSION_LIMIT = 1000  # CPython's own default
RECURSION_LIMIT = 40_000  # Python frames on that thread (a frame uses well under 512 MiB / 40,000)
PROBE_TIMEOUT_S = 60
PROBE_MEMORY_BYTES = 4 << 30
_PROBE = (
    "import resource, sys\n"
    "resource.setrlimit(resource.RLIMIT_AS, ({mem}, {mem}))\n"
    "import libcst\n"
    "try:\n"
    "    libcst.parse_module(sys.stdin.read(), libcst.PartialParserConfig(python_version='3.12'))\n"
    "except libcst.ParserSyntaxError as e:\n"
    "    print(str(e).splitlines()[0][:100]); sys.exit(3)\n"
    "except libcst.CSTValidationError:\n"
    "    pass\n"
)


class NotParsed(Exception):
    """The source is not read as Python; the message says why, in one line."""


def parse(text: str) -> tuple[cst.Module, str]:
    """The tree of a source, and the text it was parsed from (``text``, or ``text`` with spaces put
    around keywords that libcst wants separated; same lines). Raises NotParsed."""
    compiled = _cpython_compiles(text)
    if not compiled:
        _probe_in_subprocess(text)
    try:
        return cst.parse_module(text, PARSER_CONFIG), text
    except cst.ParserSyntaxError as e:
        raise NotParsed(_first_line(e)) from None
    except cst.CSTValidationError:
        spaced = space_keywords(text)
        try:
            return cst.parse_module(spaced, PARSER_CONFIG), spaced
        except (cst.ParserSyntaxError, cst.CSTValidationError) as e:
            raise NotParsed(_first_line(e)) from None


def _cpython_compiles(text: str) -> bool:
    """Whether this interpreter compiles the source; NotParsed when it rejects it for its nesting (or
    for anything, from 3.12 on, whose grammar libcst is asked to read)."""
    limit = sys.getrecursionlimit()
    try:
        # CPython's compiler scales its depth bound with the recursion limit: judge under the default
        sys.setrecursionlimit(DEFAULT_RECURSION_LIMIT)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(text, "<submission>", "exec", dont_inherit=True)
        return True
    except (RecursionError, MemoryError):
        raise NotParsed("nested deeper than CPython compiles") from None
    except ValueError as e:  # null bytes
        raise NotParsed(_first_line(e)) from None
    except SyntaxError as e:
        msg = e.msg or ""
        if any(m in msg for m in _NESTING) or sys.version_info >= (3, 12):
            raise NotParsed(f"{msg} (line {e.lineno})" if e.lineno else msg) from None
        return False
    finally:
        sys.setrecursionlimit(limit)


def _probe_in_subprocess(text: str) -> None:
    """libcst's parse of a source this interpreter cannot judge, in a process of its own (memory and
    time bounded): NotParsed when it fails or dies."""
    try:
        r = subprocess.run([sys.executable, "-I", "-c", _PROBE.format(mem=PROBE_MEMORY_BYTES)], input=text.encode(),
                           capture_output=True, timeout=PROBE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise NotParsed(f"the parser did not finish in {PROBE_TIMEOUT_S} s") from None
    except OSError as e:
        raise NotParsed(f"the parser could not be started ({e.strerror})") from None
    if r.returncode == 3:
        raise NotParsed(r.stdout.decode(errors="replace").strip() or "syntax error")
    if r.returncode != 0:
        how = f"signal {-r.returncode}" if r.returncode < 0 else f"exit {r.returncode}"
        raise NotParsed(f"the parser failed on it ({how}; nested too deeply?)")


def on_large_stack(fn, *args):
    """``fn(*args)`` on a thread with a large stack and a high recursion limit (deeply nested code parses
    and is analysed there instead of overflowing the interpreter's stack); its exception is re-raised."""
    result: list = []
    error: list = []

    def run() -> None:
        try:
            result.append(fn(*args))
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            error.append(e)

    old_stack, old_limit = threading.stack_size(), sys.getrecursionlimit()
    threading.stack_size(STACK_BYTES)
    sys.setrecursionlimit(max(old_limit, RECURSION_LIMIT))
    try:
        t = threading.Thread(target=run, name="golf-audit-static")
        t.start()
        t.join()
    finally:
        threading.stack_size(old_stack)
        sys.setrecursionlimit(old_limit)
    if error:
        raise error[0]
    return result[0]


def _first_line(e: BaseException) -> str:
    s = str(e)
    return s.splitlines()[0][:100] if s else type(e).__name__
