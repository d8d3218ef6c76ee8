"""Import a submission's training script as a module, without running its ``main()``.

Runs inside the sandboxed child only (see harness/sandbox.py). The module is executed under the
configuration of the official run: the environment variables its Hyperparameters read keep their
defaults, except those the official 8-GPU launch sets (``WORLD_SIZE=8``), which the submission
sees through ``OFFICIAL_ENV``. RANK is deliberately not set so that no process group is started.

On a machine without CUDA, flash-attention, triton, ``torch.compile``, torch.distributed and CUDA
autocast are replaced by CPU stand-ins first (harness/shims.py). A self-extracting wrapper
(``exec(lzma.decompress(b85decode(...)))``) is unpacked and the real source is imported instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType

OFFICIAL_ENV = {"WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "8"}
MODULE_NAME = "golf_audit_submission"


def read_source(entry: str | os.PathLike) -> tuple[str, int]:
    """The source that runs when ``entry`` runs: (text, self-extracting layers removed)."""
    from harness.unwrap import unwrap_source

    text = Path(entry).read_text(encoding="utf-8", errors="replace")
    return unwrap_source(text, entry)


def import_submission(entry: str | os.PathLike, env: dict[str, str] | None = None, *,
                      shims: bool = True, autocast_on_cpu: bool = True) -> ModuleType:
    """Execute ``entry`` as module ``golf_audit_submission`` (``__name__`` is not ``__main__``).

    ``env`` is applied after OFFICIAL_ENV (e.g. smaller model dims for a CPU forward).
    """
    entry = Path(entry)
    os.environ.update(OFFICIAL_ENV)
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
    code = compile(source, str(entry), "exec")
    exec(code, module.__dict__)
    return module
