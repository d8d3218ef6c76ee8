"""What a submission's training logs show that the static check needs: when the timed training stopped,
and (their texts, read by ``flow/runlogs.py``) which branches of the code the runs took.

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


def read_logs(logs: list[Path], root: Path) -> list[str]:
    """The texts of the logs that can be read."""
    texts = []
    for p in logs:
        try:
            texts.append(read_text_bounded(p, MAX_LOG_BYTES, within=root))
        except Exception:  # noqa: BLE001 - an unreadable log shows nothing
            continue
    return texts


def train_stop_s(texts: list[str]) -> float | None:
    """The earliest time, over the logs that print one, at which training stopped; None without any."""
    times = []
    for text in texts:
        try:
            t = stop_seconds(text)
        except Exception:  # noqa: BLE001 - a log we cannot parse shows nothing
            continue
        if t is not None:
            times.append(t)
    return min(times) if times else None
