"""Sessions: a sandboxed child answering requests one by one (harness/sandbox_session.py)."""

import time

import pytest

from harness.sandbox import Limits
from harness.sandbox_session import RemoteError, SandboxSession, SessionLost

T = "tests.sandbox_drivers:"


def session(limits=Limits(), k=3):
    # The drivers need no torch: skip its preload, which costs seconds per child.
    return SandboxSession(T + "echo_session", {"k": k}, limits=limits, preload=())


def test_requests_are_answered_in_turn_with_arrays_decoded():
    with session() as s:
        assert s.description == {"k": 3}
        assert s.call({"op": "echo", "value": [1, 2]})["value"].tolist() == [3.0, 6.0]
        assert s.call({"op": "echo", "value": [5]})["value"].tolist() == [15.0]
    res = s.result()
    assert res.ok and "audit-hooks" in res.isolation


def test_a_handler_error_is_one_answer_and_the_session_goes_on():
    with session() as s:
        with pytest.raises(RemoteError, match="ValueError: asked to fail"):
            s.call({"op": "raise"})
        assert s.call({"op": "echo", "value": [1]})["value"].tolist() == [3.0]


def test_denied_actions_are_collected_over_the_session():
    with session() as s:
        with pytest.raises(RemoteError):
            s.call({"op": "socket"})
    assert [b["kind"] for b in s.result().blocked] == ["network"]


def test_an_answer_written_out_of_turn_ends_the_session():
    # The submission writes an answer of its own on the result pipe: the ids no longer match.
    with session() as s:
        with pytest.raises(SessionLost, match="out of turn"):
            s.call({"op": "forge"})
            s.call({"op": "echo", "value": [1]})
        with pytest.raises(SessionLost):
            s.call({"op": "echo", "value": [1]})
    assert not s.result().ok


def test_an_oversized_answer_ends_the_child():
    with session(Limits(result_bytes=1 << 20)) as s:
        with pytest.raises(SessionLost, match="larger than"):
            s.call({"op": "flood"})


def test_a_child_that_dies_or_hangs_is_lost_not_answered():
    with session() as s:
        with pytest.raises(SessionLost, match="exited with code 3|ended before answering"):
            s.call({"op": "die"})
    t0 = time.monotonic()
    with session(Limits(wall_seconds=4)) as s:
        with pytest.raises(SessionLost, match="timed out"):
            s.call({"op": "hang"})
    assert time.monotonic() - t0 < 30


def test_no_sandbox_no_session(monkeypatch):
    monkeypatch.setenv("GOLF_AUDIT_BWRAP", "/nonexistent/bwrap")
    with pytest.raises(SessionLost) as e:
        with session():
            pass
    assert e.value.cannot_run
