"""Progress bars on stderr for steps that take more than a second (parts, eval windows, probe
examples, folders of a scan).

Shown only when enabled (the CLI enables them when stderr is a terminal) and only once a step
has run for ``DELAY_S``: quick steps and piped or CI output never see a bar, and stdout, where
the report goes, is never touched. Parts use it as::

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


def _noop(_: float = 1) -> None:
    pass


@contextlib.contextmanager
def task(enabled: bool, description: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
    """A bar (or a spinner when ``total`` is None) that appears after ``DELAY_S`` seconds.

    Yields ``advance(n=1)``. Disabled, it costs nothing and prints nothing.
    """
    if not enabled:
        yield _noop
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    columns.append(TimeElapsedColumn())
    bar = Progress(*columns, console=Console(file=sys.stderr), transient=True)
    tid = bar.add_task(description, total=total)
    lock = threading.Lock()
    started = False

    def start() -> None:
        nonlocal started
        with lock:
            if not done.is_set():
                bar.start()
                started = True

    done = threading.Event()
    timer = threading.Timer(DELAY_S, start)
    timer.daemon = True
    timer.start()
    try:
        yield lambda n=1: bar.advance(tid, n)
    finally:
        with lock:
            done.set()
            timer.cancel()
            if started:
                bar.stop()


def track(enabled: bool, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a delayed progress bar (``total`` defaults to ``len(items)``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with task(enabled, description, total) as advance:
        for item in items:
            yield item
            advance(1)
