"""GA116 (training data read after a wall-clock-capped loop): the verdict follows the cap's value under the
official run, not names; a reserve from the settings silences it; code off in the official run is info.
About 1 s."""

from __future__ import annotations

import textwrap

from checks.static import engine
from checks.static.rules.ga116_train_data_after_cap import TrainDataAfterCap

BASE = TrainDataAfterCap.INVALID[0]
WITH_RESERVE = TrainDataAfterCap.VALID[0]


def ga116(code: str, env: dict | None = None) -> list[dict]:
    run_env = dict(engine.OFFICIAL_ENV, **(env or {}))
    found, notes = engine.analyse([engine.Source("train_gpt.py", textwrap.dedent(code))], run_env)
    assert not notes, notes
    return [f for f in found if f["rule"] == "GA116"]


def test_reserve_from_settings_decides():
    assert ga116(WITH_RESERVE) == []
    # the same code with the reserve set to zero by the run's settings reads training data after a full cap
    found = ga116(WITH_RESERVE, {"SPARE": "0"})
    assert [f["severity"] for f in found] == ["warning"]
    assert "600 s" in found[0]["message"] and "logs" in found[0]["message"]


def test_renaming_changes_nothing():
    renamed = WITH_RESERVE.replace("spare", "zz_q").replace("cap_ms", "budget").replace("calibrate", "post")
    assert ga116(renamed) == []
    assert len(ga116(renamed, {"SPARE": "0"})) == 1
    renamed_bad = BASE.replace("cap_ms", "reserve_ms").replace("collect", "quantize").replace("Loader", "Stream")
    assert len(ga116(renamed_bad)) == 1


def test_cap_in_seconds_and_over_the_budget():
    assert len(ga116(WITH_RESERVE, {"SPARE": "0", "MAX_WALLCLOCK_SECONDS": "900"})) == 1
    # a cap of 590 s set directly (not by subtraction) also leaves time
    assert ga116(WITH_RESERVE, {"SPARE": "0", "MAX_WALLCLOCK_SECONDS": "590"}) == []


def test_step_bounded_loop_is_not_a_cap():
    code = BASE.replace("if 1000.0 * (time.perf_counter() - t0) >= cap_ms:", "if opt.step_count >= 20000:")
    assert ga116(code) == []


def test_disabled_calibration_is_info():
    code = BASE.replace("    return collect(model, Loader(args.train_files))",
                        "    if int(os.environ.get('USE_GPTQ', '0')):\n        return collect(model, Loader(args.train_files))")
    assert [f["severity"] for f in ga116(code)] == ["info"]
    assert [f["severity"] for f in ga116(code, {"USE_GPTQ": "1"})] == ["warning"]


def test_reserve_under_a_disabled_condition_does_not_count():
    code = WITH_RESERVE.replace("    if cap_ms is not None:\n        cap_ms -= args.spare * 1000.0",
                                "    if int(os.environ.get('RESERVE_ON', '0')):\n        cap_ms -= args.spare * 1000.0")
    assert code != WITH_RESERVE
    assert len(ga116(code)) == 1
    assert ga116(code, {"RESERVE_ON": "1"}) == []


def test_a_log_message_of_statistics_is_no_forward():
    # statistics of a quantization calibrated on training data, formatted into a log message by a logger the
    # setup returned (a callable held in a local name): a message, not data a model runs on
    code = BASE.replace("    return collect(model, Loader(args.train_files))",
                        "    stats = summarize(load(args.train_files))\n"
                        "    log0, path = make_logger()\n"
                        "    log0(f\"stats:{json.dumps(stats)}\")")
    assert "log0(f" in code
    assert ga116(code) == []
    # the same values handed to the callable as data are a forward
    assert len(ga116(code.replace('log0(f"stats:{json.dumps(stats)}")', "log0(stats)"))) == 1


def test_a_call_through_the_module_itself():
    # ``core = sys.modules[__name__]; core.collect(...)`` calls this module's function: its forward is the work
    code = BASE.replace("import os, time", "import os, sys, time\ncore = sys.modules[__name__]").replace(
        "    return collect(model, Loader(args.train_files))", "    return core.collect(model, Loader(args.train_files))")
    found = ga116(code)
    assert [f["line"] for f in found] == [10]
    assert "model(loader.next_batch())" in found[0]["message"]


LOADER_BUILT_INSIDE = """
import os, time
class Args:
    max_wallclock_seconds = float(os.environ.get("MAX_WALLCLOCK_SECONDS", 600))
    train_files = "data/fineweb_train_*.bin"
class Stream:
    def __init__(self, pattern):
        self.tokens = load(pattern)
    def take(self, n):
        return self.tokens[:n]
def calibrate(model, pattern, n):
    stream = Stream(pattern)
    for _ in range(n):
        model.forward_logits(stream.take(2048))
def main(model, opt):
    args = Args()
    t0 = time.perf_counter()
    while True:
        model(load(args.train_files)[:1024]).backward()
        opt.step()
        if time.perf_counter() - t0 >= args.max_wallclock_seconds:
            break
    calibrate(model, args.train_files, 8)
"""


def test_a_loader_built_inside_the_calibration_from_the_path_it_is_given():
    # the object is built on the path its caller passes (training files): what its methods return was read
    # from them
    found = ga116(LOADER_BUILT_INSIDE)
    assert [f["line"] for f in found] == [14]
    # the same calibration given text files of its own reads no training data
    assert ga116(LOADER_BUILT_INSIDE.replace("calibrate(model, args.train_files, 8)",
                                             'calibrate(model, "calib/generated_*.txt", 8)')) == []
