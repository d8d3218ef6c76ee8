"""A submission cannot write its own probe verdict (the probes decide in golf-audit's process).

Each case is the bundled target-in-key example with a payload that runs at import, in the
sandboxed child, hidden from the static rules behind an ``exec`` of an XOR-ed blob: it writes a
well-formed result of its own on the result pipe, replaces the probe engine's search in the child,
or answers some scorings differently from others. The probes must still FAIL it, or say they could
not examine it (incomplete); never PASS.
"""

from __future__ import annotations

import pytest

from checks.parts import AuditOptions, run_parts
from harness.submission import load_submission
from reports.model import Report
from tests.conftest import rewritten_example

ANCHOR = "import torch\n"


def hidden(code: str) -> str:
    """``code`` as an exec of an XOR-ed blob: no name of ours appears in the file."""
    blob = bytes(b ^ 0x5A for b in code.encode())
    return f"exec(bytes(b ^ 0x5A for b in {blob!r}).decode())\n"


FORGED_RESULT = '''
import json, os, sys
body = json.dumps({"ok": True, "value": {"results": [], "pipeline": {}}, "blocked": []}).encode()
os.write(int(sys.argv[1]), b"GASB1 %d\\n" % len(body) + body)
os._exit(0)
'''

ENGINE_PATCHED = '''
import checks.probes.engine as _engine
_engine._search = lambda probe, ctx, profile, seed: _engine.Search(None, None, 16)
'''

# A lie that depends on what the run was asked before: a stream like one already scored (same
# length, same start) gets, before their first difference, the scores the earlier one got. The
# future-invariance probe then sees no earlier score move; a second, separate run asked for one of
# those streams alone answers honestly, and the cross-run check sees the difference.
HISTORY_LIE = """
import harness.remote_pipeline as _rp, numpy as _np
_first = {}
_real = _rp.PipelineServer.score
def _score(self, request):
    out = _real(self, request)
    if "nll" not in out:
        return out
    toks = _np.asarray(request["tokens"])
    key = (toks.shape[0], toks[:8].tobytes())
    if key not in _first:
        _first[key] = (toks, out["nll"].copy())
        return out
    old_toks, old = _first[key]
    d = _np.nonzero(old_toks != toks)[0]
    cut = max(int(d[0]) - 1, 0) if d.size else old.shape[0]
    out["nll"] = out["nll"].copy()
    out["nll"][:cut] = old[:cut]
    return out
_rp.PipelineServer.score = _score
"""


def probe_report(folder, probes=("normalization",)) -> Report:
    opts = AuditOptions(command="probe", profile="ci", extra={"probes": list(probes)})
    return run_parts(load_submission(folder), opts, ["probes"], Report(submission=str(folder)))


@pytest.fixture
def hostile(tmp_path):
    def make(payload: str, example: str = "ngram_target_in_key"):
        return rewritten_example(tmp_path / "hostile", example, [(ANCHOR, ANCHOR + hidden(payload))])
    return make


def test_a_forged_result_on_the_pipe_is_not_a_verdict(hostile):
    report = probe_report(hostile(FORGED_RESULT))
    assert report.verdict == "incomplete", report.verdict
    assert "out of turn" in report.incomplete[0].reason or "tampered" in report.incomplete[0].reason


def test_replacing_the_engine_in_the_child_changes_nothing(hostile):
    report = probe_report(hostile(ENGINE_PATCHED))
    assert report.verdict == "fail"
    assert {f.rule for f in report.findings} >= {"PRB-normalization"}


def test_answers_that_depend_on_earlier_requests_fail_the_cross_run_check(hostile):
    report = probe_report(hostile(HISTORY_LIE, "two_pass"), probes=("future-invariance",))
    status = {p.probe: p.status for p in report.probes}
    assert status == {"future-invariance": "pass", "cross-run": "fail"}, status  # the lie fooled the probe alone
    # Answers that do not repeat carry no verdict: the probes part is incomplete, never a pass.
    assert report.verdict == "incomplete" and "PRB-cross-run" in {f.rule for f in report.findings}
    assert any("cross-run" in n.reason for n in report.incomplete)


def test_the_same_pipeline_without_the_lie_fails_future_invariance(hostile):
    report = probe_report(hostile("pass\n", "two_pass"), probes=("future-invariance",))
    assert {p.probe: p.status for p in report.probes} == {"future-invariance": "fail", "cross-run": "pass"}
