"""The analysis's vocabulary: the labels a value carries, the facts (events) the rules read, and the effects
a function has. One table; every module names these constants instead of spelling the strings.

A value's labels are a frozenset of strings (labels.py: the lattice). Most are plain labels:

============================  ===========  =====================================================================
constant                      string       what a value with it is or holds
============================  ===========  =====================================================================
``VAL``                       val          validation data: its files, tokens read from them, what is computed from them
``TRAIN``                     train        training data (the training files and what is read from them)
``TRAIN_OBJECT``              trainobj     an object built on the training files (a loader): its batches are reads of them
``TOKEN``                     tok          a token id read from token data: usable as a table key
``TARGET``                    tgt          the target of the position being scored (x_t)
``TARGET_TEST``               tgteq        a test of equality against the target (an indicator evaluated at it)
``TARGET_PROB``               tgtprob      a distribution over the vocabulary read at the target (p(x_t))
``DIST``                      dist         a distribution over the vocabulary (softmax, normalized counts)
``LOSS``                      loss         a log-probability or NLL: summed over validation data, a score
``PAIRED``                    mixp         two data operands combined: a hash or a pair index when one is the target
``SHIFT``                     shift        positions one past the inputs (the targets' positions)
``INPUTS``                    inp          the inputs of a split stream (``x = chunk[:-1]``): shifting them is no target
``MASK``                      mask         truth values used to select (a boolean mask, ``x is None``)
``BOOL``                      bool         truth values (a comparison's result)
``VAL_SIZE``                  valsize      the validation stream's size (or an array sized by it: a record of it)
``SETTING``                   env          a value from the environment (a setting of the launch)
``CLOCK``                     clock        a reading of the wall clock
``RANDOM``                    rand         a random draw
``FRESH``                     fresh        a tensor created in the eval itself (optimizing it is eval-time optimization)
``STATISTIC``                 stat         one number per position summarizing a distribution (its entropy)
``AGGREGATE``                 agg          counts of token data (a bincount, a histogram): added to a table, they fill it
``NATIVE``                    native       a loaded native library: what its functions do with their arguments is unread
``CAPPED``                    vcap         a length capped by a setting: ``min(limit, len(val))``
``SAMPLED``                   rsample      positions drawn at random (with replacement, or a few): a sample
============================  ===========  =====================================================================

Parametric labels are built by the constructors below and read back by their prefixes:

- ``p:<i>`` (``param(i)``): the value of parameter i of the function being analysed, replaced by the call site's
  argument (labels.substitute); ``p:^<i>`` the enclosing function's, as a closure reads it (labels.captured).
- ``size?p:<i>`` (``SIZE_OF``): the size of argument i's data; ``at?p:<i>`` (``READ_AT``): token data read at the
  positions argument i holds; ``tgt?p:<i>`` (``TARGET_IF``): the target if argument i is validation data;
  ``eq?p:<i>`` (``EQUAL_TO``): an equality test on argument i; ``of:<x>`` / ``of?<x>`` (``BUILT_ON``, ``READ_FROM``):
  an object built on data x / what such an object reads (labels.py).
- ``ws:<stride>``, ``wend:<stride>``, ``wlen:<stride>``: a sliding window's start, end and length (double scoring).
- ``cls:<Name>``: an instance of the submission's class Name.
- ``total:<table>`` (``TOTAL``): the sum of a table (a normalizer).
- ``<kind>@<node>`` (``mark(kind, node)``): provenance, the value passed through the event ``kind`` at that node;
  where it reaches a score, the event reaches it (``sink:<kind>``).

Events (facts for the rules; ``Event.kind``) and the rule that reads each:

===============================  =====  ==============================================================  ======
constant                         kind   the fact                                                         rule
===============================  =====  ==============================================================  ======
``TARGET_KEYED_READ``            tread  a table read with a key computed from the target                 GA101, GA102
``STATISTIC_MIXED``              umix   a statistic of a distribution mixed as an expert's score          GA102
``TARGET_GATE``                  gate   a choice between scorings made by a condition on the target      GA103
``ORACLE``                       orc    a minimum over scorings taken after seeing the target            GA104
``FUTURE``                       fut    a statistic of the whole stream, or state, before it is scored   GA105
``UPDATE_BEFORE_SCORE``          ubs    a training step on validation data before its score              GA106, GA107
``EVAL_TIME_OPTIMIZATION``       eto    a tensor created in the eval optimized on validation data        GA108
``VAL_CALIBRATION``              vcal   calibration statistics (Hessians, hooks) of validation data      GA109
``DOUBLE_SCORING``               dbl    a window re-scoring its overlap                                   GA110
``PARTIAL_EVAL``                 pev    part of the validation stream scored (a prefix, a sample)         GA111
``EXTERNAL``                     ext    outside access (network, programs, native code)                  GA112
``TRAIN_DATA_AT_EVAL``           tde    training data inside the score of validation data                GA115
``TRAIN_DATA_LATE``              tlate  training data read after the training-time cap                   GA116
===============================  =====  ==============================================================  ======

``sink:<kind>`` (``SINK``) records that an event's value reaches a score; ``over:<kind>`` (reported.py) that a
later evaluation supersedes that score.

Effects (``Effect.kind``), in program order, from which the walk derives events: ``SCORE`` (a loss summed
over data), ``TRAIN_STEP`` (``backward``), ``TRAIN_FORWARD`` (a forward pass on training data), and
``MAYBE_SCORE`` (a helper's sum into its caller's running total: a score where the caller passes a loss).
"""

from __future__ import annotations

# --- plain labels -------------------------------------------------------------------------------------------
VAL = "val"
TRAIN = "train"
TRAIN_OBJECT = "trainobj"
TOKEN = "tok"
TARGET = "tgt"
TARGET_TEST = "tgteq"
TARGET_PROB = "tgtprob"
DIST = "dist"
LOSS = "loss"
PAIRED = "mixp"
SHIFT = "shift"
INPUTS = "inp"
MASK = "mask"
BOOL = "bool"
VAL_SIZE = "valsize"
SETTING = "env"
CLOCK = "clock"
RANDOM = "rand"
FRESH = "fresh"
STATISTIC = "stat"
AGGREGATE = "agg"
NATIVE = "native"
CAPPED = "vcap"
SAMPLED = "rsample"

# --- parametric labels --------------------------------------------------------------------------------------
PARAM = "p:"
CAPTURED = "p:^"
SIZE_OF = "size?"
READ_AT = "at?"
BUILT_ON = "of:"
READ_FROM = "of?"
TARGET_IF = "tgt?"
EQUAL_TO = "eq?"
CLASS = "cls:"
TOTAL = "total:"
PROVENANCE = "@"


def param(i: int) -> str:
    """The label of parameter i's value."""
    return f"{PARAM}{i}"


def mark(kind: str, node: int) -> str:
    """The provenance label of a value that passed through the event ``kind`` at ``node``."""
    return f"{kind}{PROVENANCE}{node}"


def marks_of(kind: str) -> str:
    """The prefix of the provenance labels of events of ``kind`` (``tread@``)."""
    return kind + PROVENANCE


# --- events -------------------------------------------------------------------------------------------------
TARGET_KEYED_READ = "tread"
STATISTIC_MIXED = "umix"
TARGET_GATE = "gate"
ORACLE = "orc"
FUTURE = "fut"
UPDATE_BEFORE_SCORE = "ubs"
EVAL_TIME_OPTIMIZATION = "eto"
VAL_CALIBRATION = "vcal"
DOUBLE_SCORING = "dbl"
PARTIAL_EVAL = "pev"
EXTERNAL = "ext"
TRAIN_DATA_AT_EVAL = "tde"
TRAIN_DATA_LATE = "tlate"
SINK = "sink:"
OVER = "over:"


def sink(kind: str) -> str:
    """The fact that a value of the event ``kind`` reaches a score."""
    return SINK + kind


# --- effects ------------------------------------------------------------------------------------------------
SCORE = "score"
TRAIN_STEP = "train"
TRAIN_FORWARD = "tfwd"
MAYBE_SCORE = "score?"
