"""The static analysis's vocabulary (checks/static/flow/vocab.py) is its one documented table: every label,
event and effect constant is described there, the strings are distinct within their kind, and every rule
reads events the vocabulary names."""

from __future__ import annotations

import re

from checks.static.engine import all_rules
from checks.static.flow import vocab

LABELS = ["VAL", "TRAIN", "TRAIN_OBJECT", "TOKEN", "TARGET", "TARGET_TEST", "TARGET_PROB", "DIST", "LOSS", "PAIRED",
          "SHIFT", "INPUTS", "MASK", "BOOL", "VAL_SIZE", "SETTING", "CLOCK", "RANDOM", "FRESH", "STATISTIC",
          "AGGREGATE", "NATIVE", "CAPPED", "SAMPLED"]
EVENTS = ["TARGET_KEYED_READ", "STATISTIC_MIXED", "TARGET_GATE", "ORACLE", "FUTURE", "UPDATE_BEFORE_SCORE",
          "EVAL_TIME_OPTIMIZATION", "VAL_CALIBRATION", "DOUBLE_SCORING", "PARTIAL_EVAL", "EXTERNAL",
          "TRAIN_DATA_AT_EVAL", "TRAIN_DATA_LATE"]


def table_rows() -> dict[str, str]:
    """constant -> its string, from the rows of the docstring's tables."""
    return dict(re.findall(r"^``(\w+)``\s{2,}(\S+)\s", vocab.__doc__, re.M))


def test_every_label_and_event_has_its_row_with_its_string():
    rows = table_rows()
    for name in LABELS + EVENTS:
        assert rows.get(name) == getattr(vocab, name), name


def test_the_table_documents_no_constant_that_is_gone():
    assert set(table_rows()) == set(LABELS + EVENTS)


def test_strings_are_distinct():
    labels = [getattr(vocab, n) for n in LABELS]
    events = [getattr(vocab, n) for n in EVENTS]
    assert len(set(labels)) == len(labels)
    assert len(set(events)) == len(events)


def test_every_rule_reads_events_the_vocabulary_names():
    events = {getattr(vocab, n) for n in EVENTS}
    kinds = [k for rule in all_rules() for k in rule.KINDS]
    assert kinds and set(kinds) <= events
    # and every event the table names is read by some rule
    assert events <= set(kinds)


def test_parametric_constructors_give_the_prefixed_forms():
    assert vocab.param(3) == "p:3" and vocab.param(3).startswith(vocab.PARAM)
    assert vocab.mark(vocab.TARGET_KEYED_READ, 12) == "tread@12"
    assert vocab.mark(vocab.TARGET_GATE, 7).startswith(vocab.marks_of(vocab.TARGET_GATE))
    assert vocab.sink(vocab.PARTIAL_EVAL) == "sink:pev"
