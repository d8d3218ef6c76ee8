"""Data checks: the validation shards and tokenizer the audit would score against.

Reads the shards in the challenge format, loads the tokenizer, checks every token id against
the vocabulary, and reports the scoring denominators (tokens, bytes) that BPB divides by.
"""

from __future__ import annotations

from harness import AuditError
from harness.shards import load_tokens, resolve_shards
from harness.submission import Submission, find_data_near
from harness.tokenbytes import ByteLUT, load_sentencepiece
from reports.model import Finding, Report


def resolve_data(sub: Submission, opts) -> tuple[str | None, str | None]:
    """Val glob and tokenizer: the options if given, else the challenge layout near the folder."""
    near_val, near_tok = find_data_near(sub)
    return opts.val or near_val, opts.tokenizer or near_tok


def run(sub: Submission, opts, report: Report) -> None:
    val, tok = resolve_data(sub, opts)
    if val is None or tok is None:
        missing = " and ".join(n for n, v in (("--val", val), ("--tokenizer", tok)) if v is None)
        report.skip("data", f"no validation data found near the submission; pass {missing}")
        return
    # Given explicitly, a bad path stops the audit; found by discovery, it is a finding.
    tokens = load_tokens(val, opts.max_tokens)
    sp = load_sentencepiece(tok)
    lut = ByteLUT.from_sentencepiece(sp)
    vocab = int(sp.vocab_size())
    too_big = int((tokens >= vocab).sum())
    if too_big:
        raise AuditError(f"{val}: {too_big} token ids are >= the tokenizer's vocabulary size {vocab}")
    n_bytes = int(lut.stream_bytes(tokens).sum())
    report.add(
        Finding(
            rule="DATA001",
            family="structure",
            severity="info",
            message=(
                f"validation data: {len(resolve_shards(val))} shard(s), {tokens.size - 1} scored tokens, "
                f"{n_bytes} bytes by the challenge's byte rule, tokenizer vocab {vocab}"
                + (f" (prefix of {opts.max_tokens} tokens)" if opts.max_tokens else "")
            ),
            data={"val": val, "tokenizer": tok, "tokens": int(tokens.size - 1), "bytes": n_bytes, "vocab": vocab},
        )
    )
