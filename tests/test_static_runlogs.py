"""Branches the claimed runs' logs show taken or not taken (flow/runlogs.py): a branch whose opening log
line appears in no log of the script, though a line printed after it does, did not run in the claimed
runs (its findings are warnings); a branch whose own line appears ran, whatever the launch's defaults."""

from __future__ import annotations

import textwrap

from checks.static import engine


def findings(code: str, logs: list[str], env: dict | None = None) -> list[tuple[str, str]]:
    launch = dict(engine.OFFICIAL_ENV, **(env or {}))
    out, _ = engine.analyse([engine.Source("train_gpt.py", textwrap.dedent(code), False)], launch, None,
                            [textwrap.dedent(x) for x in logs])
    return [(f["rule"], f["severity"]) for f in out if f["rule"] in ("GA106", "GA107")]


def messages(code: str, logs: list[str]) -> list[str]:
    out, _ = engine.analyse([engine.Source("train_gpt.py", textwrap.dedent(code), False)], dict(engine.OFFICIAL_ENV),
                            None, [textwrap.dedent(x) for x in logs])
    return [f["message"] for f in out if f["rule"] == "GA107"]


def adapt_before_eval(default: str, opening: str = 'log0(f"adapt:begin lr={args.lr}")') -> str:
    return f'''
import os
import torch.nn.functional as F
def log0(msg):
    print(msg)
class Hyperparameters:
    adapt_enabled = bool(int(os.environ.get("ADAPT_ENABLED", "{default}")))
    lr = 0.1
def adapt(model, opt, tokens):
    for c in range(0, len(tokens) - 1025, 1024):
        loss = model(tokens[c:c + 1024], tokens[c + 1:c + 1025])
        loss.backward()
        opt.step()
def evaluate(model, tokens):
    total = 0.0
    total += F.cross_entropy(model(tokens[:-1]), tokens[1:], reduction="sum")
    return total
def main(model, opt):
    args = Hyperparameters()
    log0(f"model_params:{{model.n}}")
    log0(f"world_size:{{8}} grad_accum_steps:{{1}}")
    val = load("fineweb_val_000000.bin")
    log0(f"val_loader:tokens:{{len(val)}}")
    if args.adapt_enabled:
        if model.distributed:
            model.barrier()
        {opening}
        adapt(model, opt, val)
    loss = evaluate(model, val)
    log0(f"final_roundtrip_exact val_loss:{{loss}}")
main(None, None)
'''


RUN_WITHOUT_ADAPT = '''
    model_params:27137223
    world_size:8 grad_accum_steps:1
    val_loader:tokens:62021632
    step:1000/20000 val_loss:2.01
    final_roundtrip_exact val_loss:1.90
'''
RUN_WITH_ADAPT = '''
    model_params:27137223
    world_size:8 grad_accum_steps:1
    val_loader:tokens:62021632
    adapt:begin lr=0.1
    final_roundtrip_exact val_loss:1.90
'''


def test_branch_whose_opening_line_no_log_shows_is_off_in_the_claimed_runs():
    code = adapt_before_eval("1")
    assert findings(code, [RUN_WITHOUT_ADAPT, RUN_WITHOUT_ADAPT]) == [("GA107", "warning")]
    assert "its log line `adapt:begin lr=` appears in no log" in messages(code, [RUN_WITHOUT_ADAPT])[0]


def test_branch_whose_opening_line_a_log_shows_ran():
    assert findings(adapt_before_eval("1"), [RUN_WITHOUT_ADAPT, RUN_WITH_ADAPT]) == [("GA107", "error")]


def test_branch_off_by_default_whose_line_the_logs_show_ran_in_the_claimed_runs():
    code = adapt_before_eval("0")
    assert findings(code, []) == [("GA107", "info")]
    assert findings(code, [RUN_WITH_ADAPT]) == [("GA107", "error")]


def test_no_logs_or_logs_of_another_script_say_nothing():
    other = "step:1/20 train_loss:6.9\nval_bpb:1.2\nfinal_int8_zlib_roundtrip_exact val_bpb:1.2\n"
    assert findings(adapt_before_eval("1"), []) == [("GA107", "error")]
    assert findings(adapt_before_eval("1"), [other]) == [("GA107", "error")]


def test_a_log_cut_before_the_branch_says_nothing():
    cut = "model_params:27137223\nworld_size:8 grad_accum_steps:1\nstep:1000/20000 val_loss:2.01\n"
    assert findings(adapt_before_eval("1"), [cut]) == [("GA107", "error")]


def test_a_log_cut_down_to_chosen_lines_says_nothing_of_what_it_lacks():
    # main's opening line is missing while its later lines are there: the log was filtered (grep)
    chosen = "world_size:8 grad_accum_steps:1\nval_loader:tokens:62021632\nfinal_roundtrip_exact val_loss:1.90\n"
    assert findings(adapt_before_eval("1"), [chosen]) == [("GA107", "error")]


def test_the_source_a_log_prints_first_is_not_its_output():
    dump = 'def main():\n    log0(f"adapt:begin lr={args.lr}")\n    log0(f"model_params:{n}")\n'
    assert findings(adapt_before_eval("1"), [dump + textwrap.dedent(RUN_WITHOUT_ADAPT)]) == [("GA107", "warning")]
    assert findings(adapt_before_eval("1"), [dump + textwrap.dedent(RUN_WITH_ADAPT)]) == [("GA107", "error")]


def test_a_line_printed_another_way_than_the_lines_after_says_nothing():
    # ``print`` may write where ``log0`` does not (a console the folder's logs did not keep)
    code = adapt_before_eval("1", opening='print(f"adapt:begin lr={args.lr}")')
    assert findings(code, [RUN_WITHOUT_ADAPT]) == [("GA107", "error")]


def test_a_line_printed_only_under_a_condition_is_no_opening_line():
    code = adapt_before_eval("1", opening='if args.lr > 0:\n            log0(f"adapt:begin lr={args.lr}")')
    assert findings(code, [RUN_WITHOUT_ADAPT]) == [("GA107", "error")]


def test_a_generic_line_is_not_distinctive():
    code = adapt_before_eval("1", opening='log0(f"start {args.lr}")')
    assert findings(code, [RUN_WITHOUT_ADAPT]) == [("GA107", "error")]


SECOND_SCORER = '''
import os
import torch
import torch.nn.functional as F
def log0(msg):
    print(msg)
class Hyperparameters:
    second_enabled = bool(int(os.environ.get("SECOND_ENABLED", "0")))
    keep = int(os.environ.get("SECOND_KEEP", 3_000_000))
def evaluate(h, model, tokens):
    log0(f"val_loader:tokens:{tokens.numel()}")
    total = tokens.numel() - 1
    collect = bool(getattr(h, "second_enabled", False))
    if collect:
        nll = torch.full((total,), float("nan"))
    loss = 0.0
    for s in range(0, total, 1024):
        x, y = tokens[s:s + 1024], tokens[s + 1:s + 1025]
        part = F.cross_entropy(model(x), y, reduction="none")
        loss += part.sum()
        if collect:
            nll[s:s + 1024] = part
    if collect and h.rank == 0:
        sub = min(int(h.keep), total)
        mix = second_scorer(nll[:sub])
        log0(f"second_mix_time:{mix}")
    log0(f"final val_loss:{loss}")
    return loss
log0(f"model_params:{27137223}")
log0(f"world_size:{8} grad_accum_steps:{1}")
evaluate(Hyperparameters(), None, load("fineweb_val_*.bin"))
'''
SECOND_RUN = "model_params:27137223\nworld_size:8 grad_accum_steps:1\nval_loader:tokens:62021632\n"


def ga111(code: str, logs: list[str]) -> list[str]:
    out, _ = engine.analyse([engine.Source("train_gpt.py", textwrap.dedent(code), False)], dict(engine.OFFICIAL_ENV),
                            None, [textwrap.dedent(x) for x in logs])
    return [f["severity"] for f in out if f["rule"] == "GA111"]


def test_a_flag_another_branch_shows_on_held_for_every_branch_it_guards():
    # off by default: the record is made under the same flag as the cut, in a branch that prints nothing
    assert "error" not in ga111(SECOND_SCORER, [])
    # the cut's branch printed its line: the flag held, so the branch that made the record ran too
    assert ga111(SECOND_SCORER, [SECOND_RUN + "second_mix_time:1.0\nfinal val_loss:2.0\n"]) == ["error"]
    # a flag bound twice may differ between its tests: the other branch says nothing of it
    rebound = SECOND_SCORER.replace("    if collect and", "    collect = h.rank == 0\n    if collect and", 1)
    assert ga111(rebound, [SECOND_RUN + "second_mix_time:1.0\nfinal val_loss:2.0\n"]) != ["error"]
