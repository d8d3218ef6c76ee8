"""Import a submission's training script as a module, without running its ``main()``.

Runs inside the sandboxed child only (see harness/sandbox.py). The module is executed under the
configuration of the official run: the environment variables its Hyperparameters read keep their
defaults, except those the official 8-GPU launch sets (``WORLD_SIZE=8``), which the submission
sees through ``OFFICIAL_ENV``. RANK is deliberately not set so that no process group is started.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

OFFICIAL_ENV = {"WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "8"}
MODULE_NAME = "golf_audit_submission"


def import_submission(entry: str | os.PathLike, env: dict[str, str] | None = None) -> ModuleType:
    """Execute ``entry`` as module ``golf_audit_submission`` (``__name__`` is not ``__main__``)."""
    entry = Path(entry)
    os.environ.update(OFFICIAL_ENV)
    os.environ.update(env or {})
    folder = str(entry.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # helper modules shipped beside train_gpt.py
    spec = importlib.util.spec_from_file_location(MODULE_NAME, entry)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {entry.name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module
