"""Progress bars on stderr for steps that take more than a second (parts, eval windows, probe
examples, folders of a scan).

Shown only when enabled (the CLI enables them when stderr is a terminal) and only once a step
has run for ``DELAY_S``: quick steps and piped or CI output never see a bar, and stdout, where
the report goes, is never touched. Steps may nest (a part, inside it the eval windows): they
share one display, one line each. Parts use it as::

    with progress.task(opts.progress, "eval windows", total=n) as advance:
        for batch in batches:
            ...
            advance(len(batch))
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
DELAY_S = 1.0

_lock = threading.RLock()
_display = None  # the shared rich Progress while any step is open
_open = 0  # steps open on it
_started = False


def _noop(_: float = 1) -> None:
    pass


def _make_display():
    from rich.console import Console
    from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class Count(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{int(task.completed)}/{int(task.total)}" if task.total else "", style="progress.download")

    return Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), Count(), TimeElapsedColumn(),
                    console=Console(file=sys.stderr), transient=True)


@contextlib.contextmanager
def task(enabled: bool, description: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
    """A bar (a pulsing one when ``total`` is None) that appears after ``DELAY_S`` seconds.

    Yields ``advance(n=1)``. Disabled, it costs nothing and prints nothing.
    """
    global _display, _open, _started
    if not enabled:
        yield _noop
        return
    with _lock:
        if _display is None:
            _display = _make_display()
        display = _display
        _open += 1
        tid = display.add_task(description, total=total, visible=False)
    done = threading.Event()

    def show() -> None:
        global _started
        with _lock:
            if done.is_set():
                return
            display.update(tid, visible=True)
            if not _started:
                display.start()
                _started = True

    timer = threading.Timer(DELAY_S, show)
    timer.daemon = True
    timer.start()
    try:
        yield lambda n=1: display.advance(tid, n)
    finally:
        with _lock:
            done.set()
            timer.cancel()
            display.remove_task(tid)
            _open -= 1
            if _open == 0:
                if _started:
                    display.stop()
                _display, _started = None, False


def track(enabled: bool, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a delayed progress bar (``total`` defaults to ``len(items)``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with task(enabled, description, total) as advance:
        for item in items:
            yield item
            advance(1)
