"""torchrun inside one sandbox (harness/ranks.py): the ranks see torchrun's environment and one
process group, rank 0 answers for the world, and any rank that fails fails the run."""

from __future__ import annotations

from harness.sandbox import Limits, run_sandboxed



def run_world(ranks: int, **args):
    return run_sandboxed("tests.sandbox_drivers:world", args, limits=Limits(ranks=ranks, wall_seconds=120))


def test_two_ranks_share_one_process_group():
    r = run_world(2)
    assert r.ok, r.error
    assert r.value["sum"] == 3.0  # 1 + 2: both ranks took part
    assert r.value["backend"] == "gloo" and r.value["world_size"] == 2
    assert r.value["env"] == {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2",
                              "MASTER_ADDR": "127.0.0.1"}


def test_a_rank_that_dies_fails_the_run():
    r = run_world(2, die_rank=1)
    assert not r.ok and r.error.startswith("rank 1 of 2: ended without a result (exit status 3)")


def test_rank_zero_failing_fails_the_run():
    r = run_world(2, fail_rank=0)
    assert not r.ok and r.error.startswith("rank 0 of 2: ValueError: rank 0 fails on purpose")
