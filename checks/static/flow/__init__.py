"""Label-flow analysis over libcst: which values derive from validation data and from the scored target.

Every value carries a set of labels. Sources: file patterns of the validation (``val``) and training
(``train``) splits, shifted slices of validation data (``X[1:]``, ``X[i + 1]``, ``arange(a + 1, b + 1)``)
which hold the *target* x_t (``tgt``), log-probabilities and losses (``loss``), full distributions
(``dist``), environment variables (``env``). Labels flow through assignments, arithmetic, calls and
returns. A function is analysed once, its parameters standing as ``p:<i>`` placeholders; its summary
(return labels, effects, pending events) is instantiated at each call site, so a violation split
across helpers (key built in one function, read in another, summed in a third) is still seen.

Events are the facts rules read: a table read keyed by the target, a gate computed from the target,
an aggregate over the whole stream, a training step before a score, a window offset that re-scores the
tail, outside access. An event whose conditions still depend on placeholders is pending and travels to
the callers; it is dropped when no caller makes it true. Code under a condition that is false in the
official run (``WORLD_SIZE=8``, defaults of env-var settings, the README's run command) is analysed
but marked disabled.

The package, by seam: ``vocab`` (the labels, events and effects by name, in one table), ``labels`` (the
label lattice), ``model`` (modules, functions, summaries, events), ``tree`` (reading libcst trees),
``interpret`` (the walk that carries labels through statements), ``expressions`` (what an expression's
value carries), ``calls`` (calls of the submission's functions, constructors), ``library`` (what library
calls do to labels), ``consts`` (values under the launch). A rule names the events it reads (``KINDS``, from
``vocab``); the walk records them where it names the same constant (``Event(TARGET_KEYED_READ, ...)``).
"""

from __future__ import annotations

import libcst as cst  # noqa: F401 - re-exported for tests

from .consts import UNKNOWN  # noqa: F401
from .interpret import Walker  # noqa: F401
from .labels import EMPTY, It, Tup, flat, join  # noqa: F401
from .model import Effect, Event, FunctionDef, ModuleInfo, Need, Program, Summary  # noqa: F401
from .reported import reaches_reported  # noqa: F401
from .tree import _ORDER, TRIVIA, children, code, code_children, dotted, literal_value, walk  # noqa: F401
