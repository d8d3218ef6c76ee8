"""What a submission's training logs show that the static check needs: when the timed training stopped.

A rule that finds work on the training data after a loop capped at the full wall-clock budget can only
say "unless the logs show it fit" from the code; the logs (``*.log``, ``*.txt`` of the folder) show when
the loop stopped. Only logs that print the stop are read; a folder without any leaves the answer unknown.
"""

from __future__ import annotations

from pathlib import Path

from harness.logparse import parse_log
from harness.safeio import read_text_bounded

MAX_LOG_BYTES = 4_000_000


def stop_seconds(text: str) -> float | None:
    """The training timer when the loop stopped (``stopping_early``), else at the last step printed."""
    run = parse_log(text)
    return run.train_s if run.train_s is not None else run.last_step_train_s


def train_stop_s(logs: list[Path], root: Path) -> float | None:
    """The earliest time, over the logs that print one, at which training stopped; None without any."""
    times = []
    for p in logs:
        try:
            t = stop_seconds(read_text_bounded(p, MAX_LOG_BYTES, within=root))
        except Exception:  # noqa: BLE001 - an unreadable log shows nothing
            continue
        if t is not None:
            times.append(t)
    return min(times) if times else None
