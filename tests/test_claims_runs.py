"""A log that holds several runs: each is a run of its own for the claim."""

from harness.logparse import parse_log

RUN = """step:{s}/100 val_loss:2.0 val_bpb:1.30 train_time:1000ms
Total submission size int6+lzma: {size} bytes
final_int6_roundtrip val_loss:1.9 val_bpb:{rt}
final_int6_sliding_window val_loss:1.8 val_bpb:{sw}
"""


def test_appended_runs_are_split_and_a_summary_reprint_is_not():
    text = RUN.format(s=100, size=15_000_000, rt=1.2, sw=1.1) + RUN.format(s=100, size=15_100_000, rt=1.21, sw=1.11)
    text += "=== summary ===\nfinal_int6_roundtrip val_loss:1.9 val_bpb:1.21\n"  # a reprint, not a run
    runs = parse_log(text, "train.log").runs()
    assert [r.headline().val_bpb for r in runs] == [1.1, 1.21]
    assert [r.first_line for r in runs] == [1, 5]
    assert [r.bytes_total() for r in runs] == [15_000_000, 15_100_000]


def test_another_eval_of_the_same_artifact_is_the_same_run():
    # An eval-only rerun (no training lines) of the same artifact: the same first result, then TTT.
    text = ("final_int6_roundtrip val_loss:1.9 val_bpb:1.2\nfinal_int6_sliding_window val_loss:1.8 val_bpb:1.1\n"
            "final_int6_roundtrip val_loss:1.9 val_bpb:1.2\nfinal_int6_sliding_window val_loss:1.7 val_bpb:1.05\n")
    (run,) = parse_log(text, "train.log").runs()
    assert run.headline().val_bpb == 1.05
