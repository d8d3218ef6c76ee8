"""Import a submission's training script as a module, without running its ``main()``.

Runs inside the sandboxed child only (see harness/sandbox.py). The module is executed under the
submission's launch (harness/launch.py, passed in by the caller as ``launch_env``; the challenge's
8-rank default when none is given): the variables its README or run script sets and the world size
torchrun gives it; everything else keeps its default. The rank variables (RANK, LOCAL_RANK) are the
caller's to set (``env``): without them no process group is started.

On a machine without CUDA, flash-attention, triton, ``torch.compile``, torch.distributed and CUDA
autocast are replaced by CPU stand-ins first (harness/shims.py). A self-extracting wrapper
(``exec(lzma.decompress(b85decode(...)))``) is unpacked and the real source is imported instead.
Source that this interpreter cannot compile but that is valid Python 3.12 (PEP 701 f-strings) is
down-levelled first (harness/downlevel.py); ``notes`` says so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Mapping

# Launch variables not applied to the importing process: which rank it is (the caller's), and settings
# of the launching machine's loader and devices rather than of the submission.
NOT_IMPORTED = ("RANK", "LOCAL_RANK", "CUDA_VISIBLE_DEVICES")
NOT_IMPORTED_PREFIXES = ("LD_", "PYTHON")
MODULE_NAME = "golf_audit_submission"


def read_source(entry: str | os.PathLike) -> tuple[str, int]:
    """The source that runs when ``entry`` runs: (text, self-extracting layers removed)."""
    from harness.unwrap import unwrap_source

    text = Path(entry).read_text(encoding="utf-8", errors="replace")
    return unwrap_source(text, entry)


def parsable_source(source: str, filename: str = "<source>") -> str:
    """``source`` as this interpreter's ``ast`` parses it: 3.12-only f-strings rewritten where needed
    (compile_source's rule), the source unchanged where that does not help (its SyntaxError stands)."""
    try:
        compile(source, filename, "exec", flags=0x400, dont_inherit=True)  # ast.PyCF_ONLY_AST
        return source
    except SyntaxError:
        if sys.version_info >= (3, 12):
            return source
        from harness.downlevel import DownLevelError, down_level

        try:
            return down_level(source, filename)[0]
        except DownLevelError:
            return source


def compile_source(source: str, filename: str, notes: dict | None = None):
    """``compile(source)``; on a SyntaxError, the source with its 3.12-only f-strings rewritten for
    this interpreter (``notes["fstrings_downlevelled"]`` = how many), or the original SyntaxError
    when that does not help."""
    try:
        return compile(source, filename, "exec", dont_inherit=True)
    except SyntaxError as original:
        if sys.version_info >= (3, 12):
            raise
        from harness.downlevel import DownLevelError, down_level

        try:
            text, count = down_level(source, filename)
        except DownLevelError:
            raise original from None
        if count == 0:
            raise original from None
        if notes is not None:
            notes["fstrings_downlevelled"] = count
        return compile(text, filename, "exec", dont_inherit=True)


def import_env(launch_env: Mapping[str, str] | None) -> dict[str, str]:
    """The part of a launch's environment the importing process takes on."""
    if launch_env is None:
        from harness.launch import official_default

        launch_env = official_default().env
    return {k: str(v) for k, v in launch_env.items()
            if k not in NOT_IMPORTED and not k.startswith(NOT_IMPORTED_PREFIXES)}


def import_submission(entry: str | os.PathLike, env: dict[str, str] | None = None, *,
                      launch_env: Mapping[str, str] | None = None, shims: bool = True, autocast_on_cpu: bool = True,
                      notes: dict | None = None) -> ModuleType:
    """Execute ``entry`` as module ``golf_audit_submission`` (``__name__`` is not ``__main__``).

    The launch's environment (``launch_env``, ``Launch.env``) is applied first, then ``env`` (e.g.
    smaller model dims for a CPU forward). ``notes`` (if given) receives what was changed to load it
    (``fstrings_downlevelled``).
    """
    entry = Path(entry)
    os.environ.update(import_env(launch_env))
    os.environ.update(env or {})
    if shims:
        from harness import shims as cpu_shims

        cpu_shims.install(autocast_on_cpu=autocast_on_cpu)
    folder = str(entry.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # helper modules shipped beside train_gpt.py
    source, _ = read_source(entry)
    module = ModuleType(MODULE_NAME)
    module.__file__ = str(entry)
    sys.modules[MODULE_NAME] = module
    code = compile_source(source, str(entry), notes)
    exec(code, module.__dict__)
    return module
