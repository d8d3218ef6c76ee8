"""Settings the run's own logs print (hyperparameter dumps, env lines) fill what the README leaves open."""

from __future__ import annotations

from harness.launch import logged_settings, resolve_launch

DUMP = "Hyperparameters:\n  ttt_enabled: True\n  ttt_epochs: 21\n  data_path: ./data\nstep:1/20 val_bpb:1.3 x\n"


def folder(tmp_path, readme: str, logs: dict[str, str]):
    (tmp_path / "README.md").write_text(readme)
    (tmp_path / "train_gpt.py").write_text("import os\n")
    for name, text in logs.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_a_dump_gives_booleans_as_flags_and_numbers_and_skips_the_rest():
    got = logged_settings(DUMP + "TTT_LR=0.005\nseed:42\n", "train.log")
    assert got == {"TTT_ENABLED": ("1", "train.log:2"), "TTT_EPOCHS": ("21", "train.log:3"),
                   "TTT_LR": ("0.005", "train.log:6")}


def test_the_launch_takes_logged_settings_the_readme_leaves_open(tmp_path):
    root = folder(tmp_path, "```\nTTT_EPOCHS=3 torchrun --standalone --nproc_per_node=8 train_gpt.py\n```\n",
                  {"train_seed1.log": DUMP, "train_seed2.log": DUMP})
    launch = resolve_launch(root)
    assert launch.env["TTT_ENABLED"] == "1" and launch.env["TTT_EPOCHS"] == "3"  # the README's value stays
    assert launch.sources["TTT_ENABLED"].startswith("train_seed1.log:2")


def test_logs_that_disagree_set_nothing(tmp_path):
    root = folder(tmp_path, "# run\n", {"a.log": DUMP, "b.log": DUMP.replace("True", "False")})
    assert "TTT_ENABLED" not in resolve_launch(root).env


def test_a_log_that_prints_its_own_source_gives_no_settings():
    # Records' logs often start with the training script itself: its assignments are code, not settings.
    code = 'import os\nKEEP_FLOAT_MAX_NUMEL = 4096\ndef f():\n    ws = 0\n    ttt_enabled = 1\n'
    assert logged_settings(code + "  ttt_epochs: 3\n", "train.log") == {"TTT_EPOCHS": ("3", "train.log:6")}
