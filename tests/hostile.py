"""Helpers for the hostile-input tests: run the CLI as a user would and check its contract."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HANG = 180  # seconds; any hostile input that takes longer counts as a hang


def cli(*args: str, cwd: Path = ROOT, timeout: float = HANG) -> tuple[int, str, str]:
    """Run ``cli.py`` in a subprocess; returns (exit code, stdout, stderr). Fails on a hang."""
    env = {k: v for k, v in os.environ.items() if k != "GOLF_AUDIT_DEBUG"}
    p = subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, p.stdout, p.stderr


def one_error_line(stderr: str) -> str:
    """The single ``golf-audit: error: ...`` line of an exit-2 run (asserts it is the only one)."""
    lines = stderr.strip("\n").splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("golf-audit: error: "), stderr
    return lines[0][len("golf-audit: error: "):]


def shard_bytes(tokens, *, magic: int = 20240520, version: int = 1, count: int | None = None) -> bytes:
    """A shard in the challenge format, with any header field overridable (to craft bad ones)."""
    tokens = np.asarray(tokens, dtype="<u2")
    header = np.zeros(256, dtype="<i4")
    header[0], header[1], header[2] = magic, version, tokens.size if count is None else count
    return header.tobytes() + tokens.tobytes()
