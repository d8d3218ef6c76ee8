"""The fast tree walk of the static engine (``flow.children``/``flow.walk``) against libcst's own
``children``: same nodes, same order, on the bundled examples, every rule example and syntax the
examples do not use (f-string format specs, which libcst visits only when present). About 3 s."""

from __future__ import annotations

import gc
import textwrap
from pathlib import Path

import pytest

from checks.static import engine, flow

ROOT = Path(__file__).resolve().parents[1]
EXTRA = '''
from . import a as b
from x import *
import os.path as p, sys
async def f(x: int = 1, /, *args, k=2, **kw) -> "T":
    async with a as (b, c):
        async for i in g():
            yield f"{x!r:>{w}.{p}} {y=} {{z}}", *args
    match x:
        case [1, *rest] | {"k": v, **kw} if v:
            pass
        case Point(x=0, y=_) as q:
            del q
    try:
        raise E from e
    except* (A, B) as err:
        global G; nonlocal_ = lambda *, z=1: z
    finally:
        assert x, "msg"
    return [y async for y in z if y] or {k: v for k, v in d.items()} or {*s} or (a := 1)
@dec(1)
class C(B, metaclass=M):
    x: int = 1
    def m[T](self, a: T) -> T: return a[1:2, ::3, ...] @ b ** -c
type Alias[K] = dict[K, int]
'''


def sources() -> list[str]:
    out = [(ROOT / "submissions" / name / "train_gpt.py").read_text() for name in ("boundary_leak", "two_pass")]
    out += [textwrap.dedent(code) for r in engine.all_rules() for code in (*r.VALID, *r.INVALID)]
    return out + [EXTRA]


def full_walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(n.children)


@pytest.mark.parametrize("text", sources(), ids=lambda t: str(len(t)))
def test_children_and_walk_follow_libcst(text):
    tree = engine.parse(text)
    everything = list(full_walk(tree))
    for n in everything:
        mine, theirs = flow.children(n), list(n.children)
        assert len(mine) == len(theirs) and all(a is b for a, b in zip(mine, theirs)), type(n).__name__
    code = [n for n in everything if not isinstance(n, flow.TRIVIA)]
    walked = list(flow.walk(tree))
    assert len(walked) == len(code) and all(a is b for a, b in zip(walked, code))


def test_format_spec_found_after_a_plain_f_string():
    # libcst visits a format spec only when there is one: the field order recorded on a plain f-string
    # lacks it, and a later f-string with a spec must still be walked whole
    flow._ORDER.pop(flow.cst.FormattedStringExpression, None)
    tree = engine.parse('b = f"{y:{width}}"\na = f"{x}"\n')  # the walk meets the last statement first
    names = [n.value for n in flow.walk(tree) if isinstance(n, flow.cst.Name)]
    assert names == [n.value for n in full_walk(tree) if isinstance(n, flow.cst.Name)]
    assert names == ["x", "a", "width", "y", "b"]
    assert "format_spec" in flow._ORDER[flow.cst.FormattedStringExpression].visited


def _analyse_two_pass():
    code = (ROOT / "submissions" / "two_pass" / "train_gpt.py").read_text()
    engine.analyse([engine.Source("train_gpt.py", code)], dict(engine.OFFICIAL_ENV))


@pytest.fixture
def gc_state():
    """Restores the collector's state, thresholds and callbacks after the test (the test's own cleanup)."""
    enabled, thresholds = gc.isenabled(), gc.get_threshold()
    yield
    gc.callbacks.clear()
    gc.set_debug(0)
    gc.garbage.clear()
    gc.set_threshold(*thresholds)
    (gc.enable if enabled else gc.disable)()


@pytest.mark.parametrize("enabled_before", [True, False])
def test_analysis_pauses_the_cycle_collector_and_restores_its_state(gc_state, monkeypatch, enabled_before):
    """With a threshold of one allocation the collector would run many times while the trees are
    parsed and analysed; the engine pauses it, and leaves it on or off as it found it."""
    inside, runs = [], []
    original = engine._analyse

    def analysing(*args):
        inside.append(True)
        try:
            return original(*args)
        finally:
            inside.clear()

    monkeypatch.setattr(engine, "_analyse", analysing)
    gc.set_threshold(1)
    (gc.enable if enabled_before else gc.disable)()
    gc.callbacks.append(lambda phase, info: runs.append(phase) if phase == "start" and inside else None)
    _analyse_two_pass()
    gc.callbacks.clear()
    assert runs == []
    assert gc.isenabled() is enabled_before


def test_analysis_frees_its_trees_without_the_cycle_collector(gc_state):
    import libcst as cst

    gc.collect()
    gc.disable()
    _analyse_two_pass()
    gc.set_debug(gc.DEBUG_SAVEALL)
    gc.collect()
    left = [o for o in gc.garbage if isinstance(o, cst.CSTNode)]
    assert not left, f"{len(left)} tree nodes kept alive by reference cycles"
