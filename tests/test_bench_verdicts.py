"""The verdict benchmark: corpus format, scoring arithmetic, and materialising folders from git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks import bench_verdicts as bv
from reports.model import FAMILIES

C1, C2, C3, C4, C5 = ("1" * 40, "2" * 40, "3" * 40, "4" * 40, "5" * 40)
HEADER = "\t".join(bv.COLUMNS)


def entry(pr, commit, expected, status="C"):
    fams = frozenset() if expected == "legal" else frozenset(expected.split(","))
    return bv.Entry(pr, commit, f"records/track_10min_16mb/f{pr}", fams, status, "why")


def finding(rule, family, severity="error"):
    return {"rule": rule, "family": family, "severity": severity, "path": "train_gpt.py", "line": 1, "message": "m"}


def report(*findings):
    return {"verdict": "fail", "findings": list(findings)}


# ------------------------------------------------------------------ the committed corpus


def test_corpus_rows_are_well_formed():
    entries = bv.parse_corpus(bv.CORPUS.read_text(encoding="utf-8"))
    assert len(entries) >= 80
    assert sum(e.legal for e in entries) >= 30
    for e in entries:
        assert len(e.commit) == 40 and int(e.commit, 16) >= 0
        assert e.legal or e.expected <= set(FAMILIES)
        assert e.evidence.strip()
        assert (e.status == "R") == (e.pr == "merged")
    keys = [(e.commit, e.folder) for e in entries]
    assert len(keys) == len(set(keys)), "a folder is listed twice at the same commit"


def test_every_labelled_family_has_flagged_folders():
    entries = bv.parse_corpus(bv.CORPUS.read_text(encoding="utf-8"))
    flagged = {f for e in entries for f in e.expected}
    for fam in ("target-in-key", "multi-pass", "eval-time-optimization", "byte-accounting", "partial-eval"):
        assert sum(fam in e.expected for e in entries) >= 3, fam
    assert flagged <= set(FAMILIES)


@pytest.mark.parametrize(
    "row, message",
    [
        (f"715\t{'a' * 39}\trecords/x\ttarget-in-key\tC\tev", "40 lowercase hex"),
        (f"715\t{C1}\trecords/x\ttarget-in-keys\tC\tev", "unknown family"),
        (f"715\t{C1}\trecords/x\tlegal\tC\t", "evidence is empty"),
        (f"715\t{C1}\trecords/x\tlegal\tX\tev", "status"),
        (f"merged\t{C1}\trecords/x\tlegal\tC\tev", "status R"),
        (f"715\t{C1}\t../x\tlegal\tC\tev", "under records/"),
        (f"715\t{C1}\trecords/x\tlegal\tC", "fields"),
    ],
)
def test_malformed_rows_are_rejected(row, message):
    with pytest.raises(bv.CorpusError, match=message):
        bv.parse_corpus(f"# comment\n{HEADER}\n{row}\n")


def test_wrong_header_is_rejected():
    with pytest.raises(bv.CorpusError, match="header"):
        bv.parse_corpus("pr\tcommit\n")


# ------------------------------------------------------------------ scoring on hand-written reports


SCOPE = frozenset({"target-in-key", "multi-pass", "boundary-leak", "external-access"})


def scored():
    a = entry("1", C1, "target-in-key")  # caught, plus one wrong error
    b = entry("2", C2, "multi-pass")  # only a warning of its family: missed
    c = entry("3", C3, "legal")  # an error on a legal folder
    d = entry("4", C4, "boundary-leak")  # crashed: a miss
    e = entry("5", C5, "significance")  # no part of this mode reports it: out of scope
    pairs = [
        (a, bv.outcome_from_report(report(finding("GA101", "target-in-key"), finding("GA112", "external-access"),
                                          finding("GA105", "multi-pass", "warning")))),
        (b, bv.outcome_from_report(report(finding("GA105", "multi-pass", "warning")))),
        (c, bv.outcome_from_report(report(finding("GA114", "boundary-leak"), finding("GA110", "double-scoring", "warning")))),
        (d, bv.Outcome([], [], None, crash="timed out after 1 s")),
        (e, bv.outcome_from_report(report(finding("GA101", "target-in-key")))),
    ]
    return bv.score(pairs, SCOPE)


def test_totals():
    s = scored()
    # in scope: a, b, d flagged; c legal. Caught: a. Missed: b (warning only), d (crash).
    assert (s.total.caught, s.total.missed) == (1, 2)
    # error findings in scope: a has 1 right + 1 wrong, c has 1 wrong -> precision 1/3
    assert (s.total.true_findings, s.total.false_findings) == (1, 2)
    assert s.total.precision == pytest.approx(1 / 3)
    assert s.total.false_alarm_folders == 2  # a (external-access) and c
    assert s.legal_with_error == 1
    assert s.crashes == 1


def test_per_family_and_rule():
    s = scored()
    tik, mp, bl, ea = (s.by_family[f] for f in ("target-in-key", "multi-pass", "boundary-leak", "external-access"))
    assert (tik.caught, tik.missed, tik.true_findings, tik.false_findings) == (1, 0, 1, 0)
    assert (mp.caught, mp.missed) == (0, 1)
    assert (bl.caught, bl.missed, bl.false_alarm_folders, bl.false_findings) == (0, 1, 1, 1)
    assert (ea.false_alarm_folders, ea.precision) == (1, 0.0)
    assert "significance" not in s.by_family  # e is out of scope, its GA101 error is not counted
    assert s.by_rule["GA101"].precision == 1.0 and s.by_rule["GA101"].caught == 1
    assert s.by_rule["GA114"].false_alarm_folders == 1 and s.by_rule["GA114"].precision == 0.0
    assert "GA105" not in s.by_rule  # warnings are not error findings


def test_folder_lines_name_misses_and_false_alarms():
    s = scored()
    by_pr = {fs.entry.pr: fs for fs in s.folders}
    assert by_pr["2"].warned_only == ["multi-pass"]
    text = bv.render_folders(s)
    assert "MISSED (only below error: multi-pass)" in text
    assert "NO REPORT: timed out after 1 s" in text
    assert "FALSE ALARM GA112 external-access" in text and "FALSE ALARM GA114 boundary-leak" in text
    assert "#5:" not in text  # out of scope folders are not listed
    table = bv.render_table(s, "check")
    assert "flagged caught with an expected family: 1/3 (33%)" in table
    assert "| GA112 | 0 | 1 | 0/1 | 0% |" in table


def test_legal_folders_are_tallied_by_verdict():
    pairs = [(entry(str(i), c, "legal"), bv.Outcome([], [], v, crash=None if v else "timed out after 1 s"))
             for i, (c, v) in enumerate([(C1, "pass"), (C2, "incomplete"), (C3, "pass"), (C4, None)])]
    table = bv.render_table(bv.score(pairs, SCOPE), "audit")
    assert "- legal folders' verdicts: pass 2, incomplete 1, no report 1" in table


def test_precision_without_errors_is_undefined():
    s = bv.score([(entry("1", C1, "multi-pass"), bv.outcome_from_report(report()))], SCOPE)
    assert s.total.precision is None and s.total.missed == 1


# ------------------------------------------------------------------ materialising from git


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(repo), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env).stdout.strip()


def test_materialise_skips_and_records_absent_blobs(tmp_path):
    repo = tmp_path / "repo"
    folder = repo / "records/track_10min_16mb/sub"
    (folder / "helpers").mkdir(parents=True)
    (folder / "train_gpt.py").write_text("print('hi')\n")
    (folder / "helpers/util.py").write_text("X = 1\n")
    (folder / "model.ptz").write_bytes(b"\x00\x01big")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "c")
    commit = _git(repo, "rev-parse", "HEAD")
    blob = _git(repo, "rev-parse", f"HEAD:records/track_10min_16mb/sub/model.ptz")
    (repo / ".git/objects" / blob[:2] / blob[2:]).unlink()  # the mirror lacks this blob
    e = bv.Entry("7", commit, "records/track_10min_16mb/sub", frozenset({"multi-pass"}), "C", "why")
    git_dir = bv.resolve_git_dir(str(repo))
    m = bv.materialise(git_dir, e, tmp_path / "cache")
    assert m.error is None and m.missing == ["records/track_10min_16mb/sub/model.ptz"]
    assert (m.path / "train_gpt.py").read_text() == "print('hi')\n"
    assert (m.path / "helpers/util.py").read_text() == "X = 1\n"
    assert not (m.path / "model.ptz").exists()
    again = bv.materialise(git_dir, e, tmp_path / "cache")  # second time: from the cache
    assert again.path == m.path and again.missing == m.missing


def test_materialise_reports_a_missing_folder(tmp_path):
    repo = tmp_path / "repo"
    (repo / "records").mkdir(parents=True)
    (repo / "records/a.txt").write_text("a")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "c")
    e = bv.Entry("7", _git(repo, "rev-parse", "HEAD"), "records/nope", frozenset(), "C", "why")
    m = bv.materialise(bv.resolve_git_dir(str(repo)), e, tmp_path / "cache")
    assert m.path is None and "no files under records/nope" in m.error


def test_bad_repository_is_a_one_line_error(tmp_path, capsys):
    assert bv.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench_verdicts: error:") and "not a git repository" in err and "\n" not in err


def test_outcome_log_keeps_finished_folders_only(tmp_path):
    log_path = tmp_path / "outcomes.jsonl"
    log = bv.OutcomeLog(log_path, fresh=False)
    a, b, c = entry("1", C1, "multi-pass"), entry("2", C2, "legal"), entry("3", C3, "legal")
    log.record(a, bv.outcome_from_report(report(finding("GA105", "multi-pass"), finding("GA110", "double-scoring", "warning"))))
    log.record(b, bv.Outcome([], [], None, crash="exit 2, no JSON report: boom"))
    log.record(c, bv.Outcome([], [], None, crash="timed out after 9 s"))  # transient: not kept
    with log_path.open("a") as f:
        f.write('{"commit": "cut short')  # an interrupted write
    known = bv.OutcomeLog(log_path, fresh=False).known
    assert set(known) == {(a.commit, a.folder), (b.commit, b.folder)}
    assert [f["rule"] for f in known[(a.commit, a.folder)].errors] == ["GA105"]
    assert [f["rule"] for f in known[(a.commit, a.folder)].lesser] == ["GA110"]
    assert known[(b.commit, b.folder)].crash == "exit 2, no JSON report: boom"
    assert bv.OutcomeLog(log_path, fresh=True).known == {}


def test_a_mode_reports_the_families_of_the_parts_it_runs():
    from benchmarks.bench_verdicts import mode_families

    check, audit = mode_families("check"), mode_families("audit")
    assert {"target-in-key", "unnormalized"} <= check and "claims-mismatch" not in check
    assert check < audit and {"claims-mismatch", "size-cap"} <= audit


def test_part_qualified_labels_are_legal_code_under_other_modes():
    # A merged record without its log: legal code, a claims defect. Under check it is a legal folder (a
    # static error on it is a false alarm); under audit it expects the claims part's structure error.
    row = "merged\t" + "c" * 40 + "\trecords/track_10min_16mb/x\tclaims:structure,claims:claims-mismatch\tR\tno log"
    (e,) = bv.parse_corpus("\t".join(bv.COLUMNS) + "\n" + row + "\n")
    assert e.expected == {"structure", "claims-mismatch"}
    assert e.in_mode(bv.MODE_PARTS["check"]).legal
    assert e.in_mode(bv.MODE_PARTS["audit"]).expected == {"structure", "claims-mismatch"}
    with pytest.raises(bv.CorpusError):
        bv.parse_corpus("\t".join(bv.COLUMNS) + "\n" + row.replace("claims:structure", "structure") + "\n")
    with pytest.raises(bv.CorpusError):
        bv.parse_corpus("\t".join(bv.COLUMNS) + "\n" + row.replace("claims:structure", "nopart:structure") + "\n")
