"""The catalog of finding IDs: what each ID any part emits means, why it matters, an example, the fix.

Every reader of rule documentation reads it from here: ``golf-audit rules`` and ``golf-audit explain``,
the SARIF rule help (``reports/render/common.py``) and the rule pages in ``docs/rules/``
(``write_rule_pages``). Two sources feed it:

- static rules (``GA101``...) document themselves: the rule class's docstring holds what it finds,
  ``Why:``, ``Example:`` and ``Fix:``, next to its ``VALID``/``INVALID`` code (``checks/static/rules/``);
- every other ID (engine notes ``GA001``/``GA100``, claims ``CLM``, reproduction ``REPRO``, sandbox
  ``SBX``, data ``DATA``, probes ``PRB-<probe>``) has one ``Entry`` in ``PART_ENTRIES`` below.

Adding an ID that is not a static rule is one edit: an ``Entry`` in ``PART_ENTRIES``.
``tests/test_catalog.py`` reads the code (by its syntax tree) for every ID a part can emit and fails,
naming this file, when one has no entry.
"""

from __future__ import annotations

import enum
import textwrap
from dataclasses import dataclass
from pathlib import Path

from checks.static.engine import Rule, all_rules
from reports.model import FAMILIES


class Part(enum.Enum):
    """The audit part that emits an ID (the order in which ``golf-audit rules`` lists them)."""

    STATIC = "static"
    CLAIMS = "claims"
    PROBES = "probes"
    REPRODUCTION = "reproduction"
    SANDBOX = "sandbox"
    DATA = "data"


@dataclass(frozen=True)
class Entry:
    id: str
    part: Part
    name: str  # a few words, kebab-case
    families: tuple[str, ...]  # the family it is reported under (first: the usual one)
    severity: str  # "error", "warning", "info", or "error / warning" where the finding decides
    what: str
    why: str
    example: str
    fix: str
    condition_override: str | None = None  # probes state the condition they test

    @property
    def family(self) -> str:
        return self.families[0]

    @property
    def condition(self) -> str:
        return self.condition_override or FAMILIES[self.family]


def _static_entry(rule: Rule) -> Entry:
    sec = rule.sections()
    head, _, rest = sec["example"].partition("\n")
    example = (head + "\n" + textwrap.dedent(rest)).strip()  # the first line lost its indent to a strip
    return Entry(rule.ID, Part.STATIC, rule.NAME or rule.ID, (rule.family,), rule.severity,
                 sec["what"], sec["why"], example, sec["fix"])


def _e(rid: str, part: Part, name: str, families: str, severity: str, what: str, why: str, example: str, fix: str,
       condition: str | None = None) -> Entry:
    """An entry written as text: ``families`` separated by spaces, prose dedented and joined."""
    def prose(s: str) -> str:
        return " ".join(s.split())
    return Entry(rid, part, name, tuple(families.split()), severity, prose(what), prose(why),
                 textwrap.dedent(example).strip("\n"), prose(fix), condition)


S, C, P, R, X, D = Part.STATIC, Part.CLAIMS, Part.PROBES, Part.REPRODUCTION, Part.SANDBOX, Part.DATA

PART_ENTRIES: tuple[Entry, ...] = (
    # --- notes of the static engine -----------------------------------------------------------
    _e("GA001", S, "file-not-checked", "structure", "warning",
       "A Python file of the submission that the static rules could not read: it does not parse, is "
       "larger than 5,000,000 bytes, cannot be read, or is a self-extracting wrapper that does not unpack.",
       "Code that is not read is not checked. When it is the entry file, the static part cannot be done "
       "and the audit ends with exit code 2.",
       "train_gpt.py: not parsed as Python (line 12: invalid syntax)",
       "Commit the source as plain Python (3.12 syntax at most); a wrapper must decode with the standard "
       "library (lzma/zlib/bz2 with base64 or base85)."),
    _e("GA100", S, "allow-without-reason", "structure", "warning",
       "An inline suppression `# golf-audit: allow[ID]` that gives no reason after it.",
       "An accepted finding stays in every report with its reason; without one a reviewer cannot tell "
       "a considered exception from a silenced warning.",
       "k = hash(ctx) ^ tgt  # golf-audit: allow[GA101]",
       "Say why: `# golf-audit: allow[GA101] the table is filled with context tokens only`, or fix "
       "the finding."),
    # --- claims: layout, submission.json, logs ------------------------------------------------
    _e("CLM001", C, "required-file-missing", "structure", "error / warning",
       "A file every submission folder holds is missing: submission.json, the entry `train_gpt*.py`, a "
       "train log, or README.md (the README is a warning).",
       "The challenge asks for these files; without them the claim cannot be checked or reproduced.",
       "missing from the submission folder: a train log (*.log or *.txt)",
       "Commit the log of every seed the claim averages, the entry file as run, submission.json and a README."),
    _e("CLM002", C, "large-committed-file", "structure", "warning",
       "A committed file over 10 MB (data shards, checkpoints).",
       "Submissions ship code, logs and the artifact; training data or checkpoints in the folder bloat "
       "the repository and can hide data the eval reads.",
       "fineweb_train_000000.bin: 200,001,024 bytes committed",
       "Remove data and checkpoints from the folder; the artifact's size is given in submission.json."),
    _e("CLM003", C, "submission-json-invalid", "structure", "error",
       "submission.json is not valid JSON, a field has the wrong type, or it gives no val_bpb.",
       "The claimed score and sizes are read from it; a claim that cannot be read cannot be checked.",
       '{"val_bpb": "1.12",}',
       'Write valid JSON with numbers as numbers: `{"val_bpb": 1.1234, "bytes_total": 15876543, ...}`.'),
    _e("CLM004", C, "submission-json-field-missing", "structure", "warning",
       "submission.json lacks an expected field (val_bpb, bytes_total, bytes_code, ...).",
       "Each missing field is a claim golf-audit cannot compare with the logs.",
       '{"val_bpb": 1.1234}  (no bytes_total, no bytes_code)',
       "Give the fields of the challenge's template."),
    _e("CLM005", C, "log-not-understood", "structure", "warning / info",
       "A log line that reads like a metric but in a format golf-audit does not know, a log that cannot "
       "be read, or a log without a final result (info).",
       "Numbers that are not read are not checked; a log without a final line may be a run that did not finish.",
       "final_eval bpb=1.1234 (not one of the known line formats)",
       "Print the challenge's own final lines (`final_int8_zlib_roundtrip_exact val_loss:... val_bpb:...`)."),
    _e("CLM010", C, "claimed-bpb-not-the-logs-mean", "claims-mismatch", "error / warning",
       "The claimed val_bpb is not the mean of the per-seed final values in the logs, to the digits "
       "printed (a warning when it is one log's value among several).",
       "The score is the mean over the submitted seeds; a claim the logs do not support is a false score.",
       'submission.json: "val_bpb": 1.1190; logs: 1.1221, 1.1234, 1.1228 (mean 1.1228)',
       "Claim the mean of the seeds' final scored values as the logs print them."),
    _e("CLM011", C, "seed-bpb-not-in-its-log", "claims-mismatch", "error",
       "A per-seed val_bpb in submission.json that is not in that seed's log.",
       "Per-seed values are the evidence behind the mean and the significance test.",
       'submission.json: "seed_bpbs": {"1337": 1.1201}; train_seed1337.log ends with val_bpb:1.1234',
       "Copy each seed's value from its own log."),
    _e("CLM012", C, "claimed-std-differs", "claims-mismatch", "warning",
       "The claimed standard deviation is neither the sample nor the population std of the logs' values.",
       "The spread over seeds decides whether an improvement is significant.",
       '"val_bpb_std": 0.0001; logs: 1.1221, 1.1234, 1.1228 (sample std 0.00065)',
       "Compute the std from the per-seed values the logs print."),
    _e("CLM013", C, "claimed-loss-differs", "claims-mismatch", "warning",
       "The claimed val_loss is not the logs' mean at the stage that gives the val_bpb.",
       "Loss and BPB are printed together; a loss from another stage points at a claim assembled by hand.",
       '"val_loss": 1.8901; logs at the scored stage: 1.8950 (mean)',
       "Claim the val_loss printed on the same line as the claimed val_bpb."),
    _e("CLM014", C, "readme-does-not-state-the-claim", "claims-mismatch", "warning",
       "The README does not state the claimed val_bpb.",
       "Reviewers read the README; a score there that differs from submission.json is a second claim.",
       "README.md: \"reaches 1.12 BPB\"; submission.json: 1.1234",
       "State the submitted val_bpb in the README as submission.json gives it."),
    _e("CLM015", C, "seed-without-log", "claims-mismatch", "error / warning",
       "A seed listed in submission.json has no log, or a log's seed is not the one the claim lists.",
       "Each averaged seed must be backed by its run.",
       '"seeds": [1337, 42, 7]; logs: train_seed1337.log, train_seed42.log',
       "Commit every listed seed's log (file name or a printed `seed:` line names the seed)."),
    _e("CLM020", C, "code-size-differs", "claims-mismatch size-cap", "warning / error",
       "`bytes_code` is not the size of the committed entry file (or of all its .py files). An error "
       "(family size-cap) when the claimed total with the committed code exceeds 16,000,000 bytes.",
       "Code counts toward the 16,000,000-byte cap; the committed code is what the claim must count.",
       '"bytes_code": 47000; train_gpt.py is 52,113 bytes',
       "Give the committed file's size in bytes (of the code as run, wrappers included)."),
    _e("CLM021", C, "total-size-differs", "claims-mismatch", "warning",
       "`bytes_total` or a per-seed size differs from the logs' printed totals.",
       "The total is the number the size cap is judged on; it must be the one the run measured.",
       '"bytes_total": 15800000; log: Total submission size: 15,912,344 bytes',
       "Copy the total the run printed."),
    _e("CLM022", C, "logged-code-size-differs", "claims-mismatch", "warning",
       "The code size a log prints is not the size of the committed code.",
       "The run measured other code than the one committed: the committed file may not be what ran.",
       "log: Code size: 48,001 bytes; train_gpt.py: 52,113 bytes",
       "Commit the code that produced the logs."),
    _e("CLM030", C, "over-the-size-cap", "size-cap", "error / warning",
       "A logged or claimed total (artifact plus code) over 16,000,000 bytes (a warning when the run counted "
       "other code than the committed .py files, and its model with the committed code fits).",
       "The challenge's cap is 16,000,000 bytes (decimal) for the compressed model and the code together.",
       "log: Total submission size: 16,012,455 bytes",
       "Shrink the artifact or the code below 16,000,000 bytes."),
    _e("CLM040", C, "training-over-time", "time-cap", "error / info",
       "Training took more than 600 s on some seed (info on a non-record track).",
       "Records train in 10 minutes on 8xH100; a longer run is not comparable.",
       "step:7200/7200 train_time:612345ms",
       "Stop training at the wall-clock cap (less the time the rest of the run needs)."),
    _e("CLM041", C, "evaluation-over-time", "time-cap", "error / warning / info",
       "The evaluation (total_eval_time, else the scored stage's eval_time) took more than 600 s.",
       "Evaluation has its own 10-minute budget.",
       "final_int6_sliding_window val_loss:1.89 val_bpb:1.12 eval_time:640211ms",
       "Bring the scored evaluation under 600 s (larger stride, batched windows)."),
    _e("CLM042", C, "work-after-the-training-budget", "time-cap", "warning",
       "Work logged after the training budget ran out (calibration, extra steps) before the eval.",
       "Time spent training or calibrating on training data counts toward the training budget.",
       "train_time:600010ms ... gptq calibration on 64 train batches: 41 s",
       "Reserve the time for that work inside the 600 s (stop the loop earlier)."),
    _e("CLM050", C, "not-significant", "significance", "error",
       "With a baseline (`--baseline-bpb`, `--baseline-record`): the improvement is not shown to be at "
       "least 0.005 nats at p < 0.01 (one-sided Welch test on the per-seed val_bpb).",
       "A new record must beat the previous one by 0.005 nats with significance; noise across seeds is "
       "not an improvement.",
       "seeds 1.1221, 1.1234, 1.1228 against a record at 1.1240: p = 0.21",
       "Run more seeds or improve the model; give every seed's log."),
    # --- probes ------------------------------------------------------------------------------
    _e("PRB-future-invariance", P, "future-invariance", "multi-pass update-before-score", "error",
       "Changing a token at or after position t moved the scored NLL of a position before t, in the "
       "submission's own eval run on a generated stream.",
       "A score may depend only on the tokens before it (causality); state built from later tokens is "
       "a second pass over the stream.",
       "stream of 40 tokens, position 12, token 31 -> 7 at position 30, NLL diff +0.42 nats",
       "Build caches, statistics and adapted weights only from tokens already scored.",
       condition="C1"),
    _e("PRB-normalization", P, "normalization", "unnormalized target-gated-mixing target-in-key", "error",
       "With the prefix fixed and the stream cut after x_t, the probabilities the eval gives every value "
       "of x_t do not sum to 1 (tolerance 1e-3, 2e-2 under bf16 autocast).",
       "BPB is a log loss only for a normalized distribution; a score that looks at the target can sum to "
       "more than 1 and print a better number than any real model.",
       "stream of 20 tokens, position 9, sum_v p = 1.37",
       "Mix full distributions over the vocabulary and renormalize; never read a table at the target.",
       condition="C2"),
    _e("PRB-score-before-update", P, "score-before-update", "update-before-score", "error",
       "For a pipeline whose weights change during the eval, the logits that score x_t changed with the "
       "value of x_t.",
       "Training on a token before scoring it lets the model see the answer.",
       "stream of 64 tokens, position 40, tokens 3 -> 9, NLL diff -1.2 nats",
       "Score each chunk first, then train on it (score-first TTT).",
       condition="C3"),
    _e("PRB-exactly-once", P, "exactly-once", "double-scoring", "error / warning",
       "A position of the stream was scored more than once (or skipped) by the eval. A warning when the "
       "measured effect at the real validation length is below the claim's printed precision.",
       "Each validation token counts once; re-scored tail windows change the denominator and the mean.",
       "stream of 21 tokens, position 16, scored 2 times",
       "Slide windows so that each target is scored once (the last window scores only new positions).",
       condition="C4"),
    _e("PRB-document-isolation", P, "document-isolation", "boundary-leak", "error",
       "With BOS-packed documents scored per document, the end of document N moved the scores of document N+1.",
       "An eval that claims per-document scoring must not carry state across the boundary.",
       "stream of 3 documents, position 25 (document 2), NLL diff +0.08 nats",
       "Reset or mask every state that mixes neighbouring tokens at BOS (smear gates, caches, convolutions).",
       condition="C1"),
    _e("PRB-determinism", P, "determinism", "claims-mismatch", "error",
       "The same stream scored twice gave different NLLs.",
       "A score that changes from run to run cannot be reproduced or compared.",
       "stream of 30 tokens, position 4, NLL diff 3e-3 nats between two runs",
       "Seed every random source of the eval; avoid state that persists between calls.",
       condition="rules"),
    _e("PRB-cross-run", P, "cross-run", "claims-mismatch", "warning",
       "Streams the probes had scored, asked again of a second, separate sandboxed run of the same "
       "pipeline, got other NLLs or counts.",
       "Every probe verdict is reached in golf-audit's process from the scores the submission's sandboxed "
       "run sends back; scores that a fresh run does not give again (state kept across calls, a pipeline "
       "that answers differently once it has seen a probe) cannot carry a verdict: the probes part is then "
       "incomplete (exit 2), never a pass.",
       "stream of 130 tokens, position 57, NLL 4.81 then 4.63 nats in the second run",
       "Make the eval a function of the stream it is given: seed it, and keep no state between calls.",
       condition="rules"),
    _e("PRB-bucket-collapse", P, "bucket-collapse", "target-in-key", "error",
       "With every hashed table shrunk to one bucket, the probabilities of the values of x_t no longer sum to 1.",
       "A table whose key contains the target reads a different count for each candidate value: it is "
       "only hidden by hashing into many buckets.",
       "NGRAM_BUCKETS=1: stream of 20 tokens, position 9, sum_v p = 2.4",
       "Key tables by the context only and read a full distribution from them.",
       condition="C1"),
    # --- reproduction -----------------------------------------------------------------------
    _e("REPRO001", R, "reproduced-score-differs", "claims-mismatch", "warning",
       "The score rerun from the committed artifact with the submission's own eval differs from its log.",
       "The claimed number must come from the artifact that is submitted.",
       "reported 1.12340000, reproduced 1.13102311 (log train_seed1337.log)",
       "Commit the artifact and code that produced the log."),
    _e("REPRO002", R, "score-explained-by-a-non-compliant-pipeline", "target-in-key target-gated-mixing "
       "update-before-score multi-pass", "error",
       "Our reference pipeline of a known violation (target-in-key n-gram cache, target-gated tilt, "
       "update-before-score TTT) reproduces the submitted score exactly; the legal variant gives legal_bpb.",
       "The score came from the violation: the same artifact scored legally is worse.",
       "explained_by ngram_target-in-key (1.91165659); legal_bpb 1.93856121",
       "Use the legal variant (renormalized cache, plain tilt, score-first TTT) and claim its score."),
    _e("REPRO003", R, "own-eval-disagrees-with-ours", "claims-mismatch", "warning",
       "The submission's own sliding-window eval and our reference evaluator disagree on the same model.",
       "Same model, same tokens: a difference means other windows or other byte counts than the challenge's.",
       "own eval_val_sliding 1.9710, our evaluator 1.9732 on the same model",
       "Score every target once with the challenge's byte rule (see docs/conditions.md)."),
    _e("REPRO004", R, "score-depends-on-process-count", "claims-mismatch", "warning",
       "Rerun with --nproc N, the submission's own eval gives another score on N processes (as torchrun "
       "runs it) than in one.",
       "A claim made on 8 GPUs is only reproduced with the same split; a score that moves with the number of "
       "ranks keeps state per rank (a cache that sees only its rank's tokens) or loses or repeats targets "
       "where the ranks' shares meet.",
       "final_int6_sliding_window_tilt 1.88386156 BPB on 2 processes, 1.87900131 in one (+4.86e-03)",
       "Score every target once whatever the world size; say in the README with how many processes the "
       "claimed score was computed, and reproduce it with --nproc launch."),
    # --- sandbox ---------------------------------------------------------------------------
    _e("SBX001", X, "network-access", "external-access", "error",
       "Submission code tried to open a network connection (socket, connect, DNS lookup) while it ran in the sandbox.",
       "Evaluation must use only the artifact and the validation data; downloads can bring in anything.",
       "train_gpt.py:88 socket.connect(('example.org', 443)) denied",
       "Remove network access; ship what the model needs in the artifact."),
    _e("SBX002", X, "credential-read", "external-access", "error",
       "Submission code tried to read credentials (~/.ssh, ~/.aws, .git/config, other processes' environments).",
       "No submission needs secrets; reading them is an attack on the machine that audits it.",
       "train_gpt.py:12 open('~/.ssh/id_rsa') denied",
       "Remove the read."),
    _e("SBX003", X, "other-process", "external-access", "warning",
       "Submission code tried to start another program, fork, or signal another process.",
       "Outside programs run outside the audit's view (and outside its measurements).",
       "train_gpt.py:40 subprocess.run(['nvidia-smi']) denied",
       "Do the work in Python within the submission, or leave it out of the eval."),
    _e("SBX004", X, "foreign-native-code", "external-access", "warning",
       "Submission code tried to load native code from outside the submission and the Python installation.",
       "Native code is not covered by the audit hooks and can do anything the user can.",
       "train_gpt.py:5 ctypes.CDLL('/usr/lib/libfoo.so') denied",
       "Ship helpers as source in the folder, or use the installed Python packages."),
    # --- data ------------------------------------------------------------------------------
    _e("DATA001", D, "validation-data", "structure", "info",
       "The validation data the audit scores against: shards, scored tokens, bytes by the challenge's "
       "byte rule, tokenizer vocabulary.",
       "BPB divides by these bytes; the report records them so that a reviewer can check the denominator.",
       "validation data: 1 shard(s), 71478 scored tokens, 216691 bytes by the challenge's byte rule, tokenizer vocab 1024",
       "Nothing to fix: informational."),
)


def entries() -> list[Entry]:
    """Every catalogued ID: static rules first (by ID), then the other parts in ``Part`` order."""
    static = [_static_entry(r) for r in all_rules()]
    order = list(Part)
    parts = sorted(PART_ENTRIES, key=lambda e: (order.index(e.part), e.id))
    engine_notes = [e for e in parts if e.part is Part.STATIC]
    rest = [e for e in parts if e.part is not Part.STATIC]
    return sorted(engine_notes + static, key=lambda e: e.id) + rest


def entry(rid: str) -> Entry | None:
    """The entry of an ID (case does not matter), or None."""
    return next((e for e in entries() if e.id.upper() == rid.strip().upper()), None)


# --- the rule pages (docs/rules/) -----------------------------------------------------------

def rule_page(e: Entry) -> str:
    """One ID as a Markdown page: what it does, why it is bad, an example, what to do instead."""
    fence = "python" if e.part is Part.STATIC and e.id not in ("GA001", "GA100") else "text"
    return "\n".join([
        f"# {e.id} {e.name}", "",
        f"Part: {e.part.value} · family: {', '.join(f'`{f}`' for f in e.families)} · condition: "
        f"{e.condition} ([conditions](../conditions.md)) · severity: {e.severity}", "",
        "## What it does", e.what, "", "## Why is this bad?", e.why, "",
        "## Example", f"```{fence}", e.example, "```", "", "## Use instead", e.fix, "",
    ])


def rules_index(es: list[Entry]) -> str:
    rows = [f"| [{e.id}]({e.id}.md) | {e.part.value} | {e.name} | {e.family} | {e.condition} | {e.severity} |" for e in es]
    return "\n".join([
        "# Finding IDs", "",
        "Generated from the catalog (`checks/catalog.py`) by `python -m checks.catalog docs/rules`; "
        "`tests/test_catalog.py` fails when these pages and the catalog differ.", "",
        "| ID | part | name | family | condition | severity |", "|---|---|---|---|---|---|", *rows, "",
    ])


def rule_pages() -> dict[str, str]:
    """File name -> text of every page of docs/rules/."""
    es = entries()
    return {"README.md": rules_index(es), **{f"{e.id}.md": rule_page(e) for e in es}}


def write_rule_pages(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.md"):
        old.unlink()
    for name, text in rule_pages().items():
        (folder / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    import sys

    write_rule_pages(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/rules"))
