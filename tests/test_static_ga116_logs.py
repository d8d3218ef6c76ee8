"""GA116 with the folder's training logs: an error when they show the capped loop ran to the full 600 s
budget before the training data was used again; a warning without logs that show when it stopped."""

from __future__ import annotations

import textwrap

from checks.static import engine
from checks.static.rules.ga116_train_data_after_cap import TrainDataAfterCap

LATE = textwrap.dedent(TrainDataAfterCap.INVALID[0])
EARLY_STOP_LOG = "step:9000/20000 train_loss:2.1 train_time:587000ms step_avg:65.2ms\n"
FULL_CAP_LOG = EARLY_STOP_LOG + "stopping_early: wallclock_cap train_time:600105ms step:9190/20000\n"


def severities(tmp_path, logs: dict[str, str], use_cache: bool = False) -> list[str]:
    (tmp_path / "train_gpt.py").write_text(LATE)
    paths = []
    for name, text in logs.items():
        (tmp_path / name).write_text(text)
        paths.append(tmp_path / name)
    found, _ = engine.check_files(tmp_path, [tmp_path / "train_gpt.py"], engine.OFFICIAL_ENV, use_cache, logs=paths)
    return [f["severity"] for f in found if f["rule"] == "GA116"]


def test_no_logs_is_a_warning(tmp_path):
    assert severities(tmp_path, {}) == ["warning"]


def test_logs_at_the_full_cap_make_it_an_error(tmp_path):
    assert severities(tmp_path, {"train_seed1.log": FULL_CAP_LOG}) == ["error"]


def test_a_log_that_stops_before_the_cap_leaves_a_warning(tmp_path):
    assert severities(tmp_path, {"train_seed1.log": FULL_CAP_LOG, "train_seed2.log": EARLY_STOP_LOG}) == ["warning"]


def test_the_logs_are_part_of_the_cache_key(tmp_path, monkeypatch):
    monkeypatch.setenv("GOLF_AUDIT_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    run.mkdir()
    assert severities(run, {"train.log": EARLY_STOP_LOG}, use_cache=True) == ["warning"]
    assert severities(run, {"train.log": FULL_CAP_LOG}, use_cache=True) == ["error"]


def test_the_message_quotes_the_logged_stop():
    found, _ = engine.analyse([engine.Source("train_gpt.py", LATE)], dict(engine.OFFICIAL_ENV), 600.105)
    msg = [f["message"] for f in found if f["rule"] == "GA116"][0]
    assert "600.105 s" in msg
