"""What a submission folder holds: entry code, helpers, README, submission.json, logs, artifacts.

Discovery only reads names and sizes; nothing here imports or executes submission code.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from harness import AuditError

ARTIFACT_SUFFIXES = (".ptz", ".pt", ".pth", ".bin.zst", ".int6", ".int8", ".lzma", ".br", ".xz", ".zst")
LOG_SUFFIXES = (".log", ".txt")
# Files a reviewer's checkout might hold that are never train logs.
NOT_LOGS = {"requirements.txt", "README.txt", "LICENSE.txt", "CMakeLists.txt"}
MAX_SOURCE_BYTES = 5_000_000


@dataclass
class Submission:
    root: Path  # the folder (or, for a single .py file, its parent)
    given: str  # the path as the user gave it, used in reports
    entry: Path | None = None  # train_gpt.py (or the single file given)
    sources: list[Path] = field(default_factory=list)  # every .py file, entry first
    readme: Path | None = None
    submission_json: Path | None = None
    logs: list[Path] = field(default_factory=list)
    artifacts: list[Path] = field(default_factory=list)
    # Files left out of discovery, relative path -> why (not a regular file, or a symlink
    # leading outside the folder: hashing or parsing those could hang or leak the runner's files).
    ignored: dict[str, str] = field(default_factory=dict)

    def rel(self, p: Path) -> str:
        """Path relative to the submission folder, with forward slashes (stable across machines)."""
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return p.as_posix()

    def display(self, p: Path) -> str:
        """Path as the user would type it: the given path joined with the relative one."""
        if self.entry is not None and self.root == self.entry.parent and Path(self.given).suffix == ".py":
            return Path(self.given).as_posix() if p == self.entry else (Path(self.given).parent / self.rel(p)).as_posix()
        return (Path(self.given) / self.rel(p)).as_posix()

    def input_hashes(self) -> dict[str, str]:
        files = [f for f in [*self.sources, self.readme, self.submission_json, *self.logs] if f is not None]
        return {self.rel(f): sha256_file(f) for f in sorted(set(files))}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_submission(path: str | os.PathLike) -> Submission:
    """Discover a submission's files. A .py path audits that file alone (its folder as root)."""
    given = os.fspath(path)
    p = Path(given)
    if not p.exists():
        raise AuditError(f"{given}: no such file or directory")
    if p.is_file():
        if p.suffix != ".py":
            raise AuditError(f"{given}: expected a submission folder or a .py file")
        return Submission(root=p.parent, given=given, entry=p, sources=[p])
    if not p.is_dir():
        raise AuditError(f"{given}: not a folder")
    try:
        names = sorted(os.listdir(p))
    except OSError as e:
        raise AuditError(f"{given}: cannot list folder: {e.strerror}") from None
    sub = Submission(root=p, given=given)
    real_root = os.path.realpath(p)
    keep = lambda f: _plain_file(f, real_root, sub)  # noqa: E731
    py = [p / n for n in names if n.endswith(".py") and keep(p / n)]
    entries = [f for f in py if f.name == "train_gpt.py"] or [f for f in py if f.name.startswith("train_gpt")]
    sub.entry = entries[0] if entries else None
    sub.sources = ([sub.entry] if sub.entry else []) + [f for f in py if f != sub.entry]
    # Helper code may sit in sub-folders (e.g. ngram/ with C++ or .py helpers the eval imports).
    for dirpath, dirnames, filenames in os.walk(p):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        if Path(dirpath) == p:
            continue
        sub.sources += [Path(dirpath) / n for n in sorted(filenames) if n.endswith(".py") and keep(Path(dirpath) / n)]
    for n in names:
        f = p / n
        if not keep(f):
            continue
        low = n.lower()
        if low == "readme.md":
            sub.readme = f
        elif low == "submission.json":
            sub.submission_json = f
        elif low.endswith(LOG_SUFFIXES) and n not in NOT_LOGS:
            sub.logs.append(f)
        elif low.endswith(ARTIFACT_SUFFIXES):
            sub.artifacts.append(f)
    return sub


def _plain_file(f: Path, real_root: str, sub: Submission) -> bool:
    """A regular file that resolves inside the submission; anything else is noted in ``ignored``."""
    real = os.path.realpath(f)
    if not real.startswith(real_root.rstrip(os.sep) + os.sep):
        sub.ignored[sub.rel(f)] = "symlink leading outside the submission folder"
        return False
    if not os.path.isfile(real):
        if not os.path.isdir(real):
            sub.ignored[sub.rel(f)] = "not a regular file"
        return False
    return True


def find_data_near(sub: Submission) -> tuple[str | None, str | None]:
    """Val shard glob and tokenizer next to the submission, in the challenge's ``data/`` layout.

    Walks up from the submission looking for ``data/datasets/<name>/*_val_*.bin`` and
    ``data/tokenizers/*.model``; returns (None, None) parts it cannot decide on uniquely.
    """
    for parent in [sub.root.resolve(), *sub.root.resolve().parents][:4]:
        data = parent / "data"
        if not data.is_dir():
            continue
        vals = sorted({f.parent for f in data.glob("datasets/*/*_val_*.bin")})
        toks = sorted(data.glob("tokenizers/*.model"))
        # Relative to the working directory: reports must not carry absolute paths.
        val = Path(os.path.relpath(vals[0] / "*_val_*.bin")).as_posix() if len(vals) == 1 else None
        tok = Path(os.path.relpath(toks[0])).as_posix() if len(toks) == 1 else None
        if val or tok:
            return val, tok
    return None, None
