"""The example submissions shipped in ``submissions/``: what each one is and how it is built.

Each example is a real challenge-format folder (train_gpt.py, README.md, submission.json, train
logs, the int6+zstd artifact) whose ``train_gpt.py`` is composed from the templates in
``templates/``: a shared head (hyperparameters, data, model, quantization), the shared
sliding-window evaluator, the example's own evaluation parts, and the shared ``main()``. A part may
replace a shared function by defining one with the same name.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    name: str
    title: str
    doc: str
    parts: tuple[str, ...]
    final_label: str  # the log line whose *_exact value is the submission's claimed score
    family: str | None  # the violation family it demonstrates; None for legal examples
    hparams: str = ""
    seeds: tuple[int, ...] = (1337,)
    notes: str = ""
    extra: dict = field(default_factory=dict)


NGRAM_HPARAMS = """
    # Backward-looking n-gram cache.
    ngram_order = int(os.environ.get("NGRAM_ORDER", 7))
    ngram_alpha = float(os.environ.get("NGRAM_ALPHA", 0.40))
    ngram_buckets = int(os.environ.get("NGRAM_BUCKETS", 1 << 20))
    ngram_min_count = int(os.environ.get("NGRAM_MIN_COUNT", 2))
"""
TILT_HPARAMS = """
    # Context-predicted hint token and its exponential tilt.
    tilt_order = int(os.environ.get("TILT_ORDER", 5))
    tilt_beta = float(os.environ.get("TILT_BETA", 1.5))
    tilt_buckets = int(os.environ.get("TILT_BUCKETS", 1 << 18))
    tilt_min_count = int(os.environ.get("TILT_MIN_COUNT", 2))
"""
TTT_HPARAMS = """
    # Test-time training on the validation stream.
    ttt_chunk_tokens = int(os.environ.get("TTT_CHUNK_TOKENS", 8192))
    ttt_lr = float(os.environ.get("TTT_LR", 3e-3))
    ttt_epochs = int(os.environ.get("TTT_EPOCHS", 1))
    ttt_batch_seqs = int(os.environ.get("TTT_BATCH_SEQS", 8))
"""
BIGRAM_HPARAMS = """
    # Second-pass bigram mixing.
    bigram_alpha = float(os.environ.get("BIGRAM_ALPHA", 0.30))
"""

EXAMPLES: dict[str, Example] = {
    e.name: e
    for e in [
        Example(
            name="legal_sliding",
            title="Legal baseline: int6+zstd artifact, sliding-window eval at stride 64.",
            doc="Every validation token is scored exactly once, by the model alone.",
            parts=("legal_sliding",),
            final_label="final_int6_sliding_window",
            family=None,
            seeds=(1337, 42, 2025),
        ),
        Example(
            name="ngram_target_in_key",
            title="7-gram cache whose lookup key XORs in the target token (the PR #779 family).",
            doc="The cache is filled only with scored tokens, but the count read for position t is\n"
            "looked up with a key built from x_t itself, so p_t is not a distribution over the vocabulary.",
            parts=("ngram_common", "ngram_target_in_key"),
            final_label="final_int6_sliding_window_ngram7",
            family="target-in-key",
            hparams=NGRAM_HPARAMS,
        ),
        Example(
            name="ttt_update_before_score",
            title="Chunked test-time training that adapts on a chunk before scoring it.",
            doc="Each chunk of the validation stream is trained on, then scored with the adapted weights.",
            parts=("ttt_common", "ttt_update_before_score"),
            final_label="final_int6_ttt",
            family="update-before-score",
            hparams=TTT_HPARAMS,
        ),
        Example(
            name="ttt_score_first",
            title="Score-first chunked test-time training (legal).",
            doc="Each chunk is scored under inference_mode before the model trains on it; the last\n"
            "chunk is never trained on.",
            parts=("ttt_common", "ttt_score_first"),
            final_label="final_int6_ttt",
            family=None,
            hparams=TTT_HPARAMS,
        ),
        Example(
            name="ngram_context_only",
            title="Context-only n-gram tilt renormalized over the full vocabulary (legal).",
            doc="A hint token is read from the context before position t; the whole distribution is\n"
            "tilted toward it and renormalized; the table learns x_t only after x_t is scored.",
            parts=("ngram_common", "tilt_common", "ngram_context_only"),
            final_label="final_int6_sliding_window_tilt",
            family=None,
            hparams=TILT_HPARAMS,
        ),
        Example(
            name="tilt_target_gated",
            title="N-gram tilt whose gate reads the target's word-start class (the PR #1420 bug).",
            doc="The tilt is applied only when the target token starts a word, so the score escapes\n"
            "the normalizer whenever the tilt would hurt.",
            parts=("ngram_common", "tilt_common", "tilt_target_gated"),
            final_label="final_int6_sliding_window_tilt",
            family="target-gated-mixing",
            hparams=TILT_HPARAMS,
        ),
        Example(
            name="two_pass",
            title="Two passes: score, then rescore with bigram statistics of the whole stream.",
            doc="The second pass mixes in bigram counts built from every validation token, the future included.",
            parts=("two_pass",),
            final_label="final_int6_two_pass",
            family="multi-pass",
            hparams=BIGRAM_HPARAMS,
        ),
        Example(
            name="double_score_tail",
            title="Sliding-window eval whose final partial windows re-score the tail.",
            doc="Windows start every stride tokens up to the end of the stream; each partial window at\n"
            "the tail scores its last stride positions again.",
            parts=("double_score_tail",),
            final_label="final_int6_sliding_window",
            family="double-scoring",
        ),
        Example(
            name="boundary_leak",
            title="Per-document attention with a SmearGate that is not masked at BOS (the PR #1797 blocker).",
            doc="Attention stops at each document's BOS, so every document is scored from its own tokens;\n"
            "but the previous-token mix carries the last token of document N into document N+1.",
            parts=("boundary_leak",),
            final_label="final_int6_sliding_window",
            family="boundary-leak",
        ),
    ]
}
