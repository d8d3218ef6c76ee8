"""Progress bars: nothing when disabled, nested steps share one display, nothing left behind."""

from __future__ import annotations

import io
import time

from reports import progress


def test_disabled_prints_nothing(capsys):
    with progress.task(False, "quiet", total=3) as advance:
        advance(3)
    assert list(progress.track(False, [1, 2, 3], "items")) == [1, 2, 3]
    assert capsys.readouterr() == ("", "")


def test_nested_steps_share_one_display(monkeypatch):
    monkeypatch.setattr(progress, "DELAY_S", 0.05)
    buf = io.StringIO()
    monkeypatch.setattr(progress.sys, "stderr", buf)
    with progress.task(True, "part", total=None):
        assert progress._display is not None
        outer = progress._display
        for _ in progress.track(True, range(3), "windows"):
            assert progress._display is outer  # nested: the same display, no second live view
            time.sleep(0.05)
        time.sleep(0.1)
    assert progress._display is None and progress._open == 0


def test_quick_steps_never_show(monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(progress.sys, "stderr", buf)
    with progress.task(True, "fast", total=1) as advance:
        advance()
    assert buf.getvalue() == ""
