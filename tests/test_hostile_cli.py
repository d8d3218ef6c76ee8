"""Crafted hostile inputs through the CLI: each gets exit 2 and one line on stderr, or a report.

Never a traceback, never a hang (tests/hostile.py fails a run that takes longer than HANG s).
"""

import os
import shutil

import pytest

from tests.conftest import SUBMISSIONS, TOKENIZER, VAL_GLOB
from tests.hostile import cli, one_error_line, shard_bytes


@pytest.fixture
def sub(tmp_path):
    """A minimal submission folder (entry file only) in a temporary directory."""
    d = tmp_path / "sub"
    d.mkdir()
    shutil.copy(SUBMISSIONS / "legal_sliding" / "train_gpt.py", d / "train_gpt.py")
    return d


def test_missing_folder_and_wrong_kind_of_path(tmp_path):
    rc, _, err = cli("audit", tmp_path / "nope")
    assert rc == 2 and one_error_line(err) == f"{tmp_path / 'nope'}: no such file or directory"
    (tmp_path / "model.ptz").write_bytes(b"x")
    rc, _, err = cli("check", tmp_path / "model.ptz")
    assert rc == 2 and one_error_line(err) == f"{tmp_path / 'model.ptz'}: expected a submission folder or a .py file"


SHARDS = {
    "short": (b"\x00" * 100, "not a shard: 100 bytes is shorter than the 1024-byte header"),
    "magic": (shard_bytes([1, 2, 3], magic=12345), "not a shard: magic 12345 != 20240520"),
    "version": (shard_bytes([1, 2, 3], version=7), "unsupported shard version 7 (expected 1)"),
    "negative": (shard_bytes([1, 2, 3], count=-5), "implausible token count -5 in header"),
    "truncated": (shard_bytes(range(1000))[:-500], "size 2524 bytes does not match header (1000 tokens -> 3024 bytes)"),
    "trailing": (shard_bytes([1, 2, 3]) + b"garbage", "size 1037 bytes does not match header (3 tokens -> 1030 bytes)"),
    "one_token": (shard_bytes([5]), "fewer than 2 tokens, nothing to score"),
    "vocab": (shard_bytes([5, 6, 1023, 5000, 65535]), "2 token ids are >= the tokenizer's vocabulary size 1024"),
}


@pytest.mark.parametrize("case", sorted(SHARDS))
def test_bad_val_shards(sub, tmp_path, case):
    data, why = SHARDS[case]
    shard = tmp_path / "kjv_val_000000.bin"
    shard.write_bytes(data)
    rc, out, err = cli("audit", sub, "--no-exec", "--val", shard, "--tokenizer", TOKENIZER)
    assert rc == 2 and out == "" and one_error_line(err) == f"{shard}: {why}"


def test_val_glob_that_matches_nothing_and_a_directory(sub, tmp_path):
    rc, _, err = cli("audit", sub, "--no-exec", "--val", tmp_path / "none_*.bin", "--tokenizer", TOKENIZER)
    assert rc == 2 and one_error_line(err) == f"no shard matches '{tmp_path / 'none_*.bin'}'"
    rc, _, err = cli("audit", sub, "--no-exec", "--val", tmp_path, "--tokenizer", TOKENIZER)
    assert rc == 2 and one_error_line(err) == f"{tmp_path}: is a directory, not a shard"


@pytest.mark.parametrize("content", [b"", b"\x00" * 64, os.urandom(4096), b"trainer_spec { }\n"])
def test_bad_tokenizer_files(sub, tmp_path, content):
    tok = tmp_path / "tok.model"
    tok.write_bytes(content)
    rc, _, err = cli("audit", sub, "--no-exec", "--val", VAL_GLOB, "--tokenizer", tok)
    assert rc == 2 and one_error_line(err).startswith(f"{tok}: not a sentencepiece model")


def test_missing_tokenizer_and_tokenizer_folder(sub, tmp_path):
    for bad in (tmp_path / "missing.model", tmp_path):
        rc, _, err = cli("audit", sub, "--no-exec", "--val", VAL_GLOB, "--tokenizer", bad)
        assert rc == 2 and one_error_line(err) == f"{bad}: tokenizer file not found"


@pytest.mark.parametrize("args, last_line", [
    (["--format", "pdf"], "golf-audit audit: error: argument --format: invalid choice: 'pdf'"),
    (["--max-tokens", "ten"], "golf-audit audit: error: argument --max-tokens: invalid int value: 'ten'"),
    (["--device", "tpu"], "golf-audit audit: error: argument --device: invalid choice: 'tpu'"),
])
def test_usage_errors_exit_2(sub, args, last_line):
    rc, out, err = cli("audit", sub, *args)
    assert rc == 2 and out == "" and err.strip().splitlines()[-1].startswith(last_line)


def test_option_values_and_unwritable_output(sub, tmp_path):
    rc, _, err = cli("audit", sub, "--max-tokens", "0")
    assert rc == 2 and one_error_line(err) == "--max-tokens must be a positive number of tokens"
    target = tmp_path / "no" / "such" / "dir" / "report.json"
    rc, _, err = cli("audit", sub, "--no-exec", "--format", "json", "--output", target)
    assert rc == 2 and one_error_line(err) == f"{target}: cannot write report: No such file or directory"


def test_files_that_would_hang_or_leak_are_left_out(sub, tmp_path):
    """FIFOs block, /dev/zero never ends, a symlink to the runner's files leaks them: discovery
    skips all three, and the audit finishes."""
    (sub / "helpers").mkdir()
    (sub / "helpers" / "zero.py").symlink_to("/dev/zero")
    os.mkfifo(sub / "helpers" / "pipe.py")
    os.mkfifo(sub / "README.md")
    secret = tmp_path / "runner_secret.txt"
    secret.write_text("token=abc")
    (sub / "train_seed0.log").symlink_to(secret)
    rc, out, err = cli("audit", sub, "--no-exec", "--format", "json", timeout=120)
    assert rc in (0, 1), err
    assert "abc" not in out and "runner_secret" not in out


def test_empty_folder_is_a_report_not_a_crash(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, out, err = cli("audit", empty, "--no-exec", "--format", "json")
    assert rc in (0, 1) and out.startswith("{"), err


def test_entry_that_is_not_python_is_an_audit_error(sub, tmp_path):
    """A train_gpt.py with a syntax error cannot be checked: exit 2, one line, and the report with
    the GA001 note is still printed. A helper file with a syntax error only gets the note."""
    good = (sub / "train_gpt.py").read_text()
    (sub / "train_gpt.py").write_text("def f(:\n    pass\n")
    rc, out, err = cli("check", sub, "--format", "json")
    assert rc == 2 and one_error_line(err).startswith("static: train_gpt.py: not parsed as Python")
    assert '"GA001"' in out and '"verdict": "error"' in out
    (sub / "train_gpt.py").write_text(good)
    (sub / "helper.py").write_text("def f(:\n    pass\n")
    rc, out, err = cli("check", sub, "--format", "json")
    assert rc == 0 and err == "" and '"GA001"' in out
