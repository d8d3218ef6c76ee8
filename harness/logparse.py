"""Train-log parser: every final-metric, size, time and seed line format seen in the challenge's records.

A log is read line by line against one table of patterns (``PATTERNS``). Each pattern names what
the line carries (a metric, the artifact size, the code size, a training or eval time, the seed)
and how to read it; adding a format is adding a row. Lines that look like a metric
(``...bpb:1.23``) but match no row are kept in ``LogRun.unknown`` so the caller can report them:
nothing that resembles a score is skipped silently. Logs that print the training script first are
fine: source lines (f-strings, assignments, calls) are recognised and left alone.

Units: losses in nats per token, BPB in bits per byte, sizes in bytes, times in seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Callable

NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
LABEL = r"[A-Za-z][\w.+\-/ ]*?"
# A wall-clock prefix some loggers put in front of every line ("1776143360.163 quantized ...").
TIMESTAMP = re.compile(r"^\d{9,11}\.\d+\s+")
# Lines of Python source printed into the log (f-strings, assignments, calls, keywords).
CODE_LINE = re.compile(r"""\{|\}|\bf["']|\blog0?\(|\bprint\(|^\s*(?:def|return|if|elif|for|while|with|assert|import|from)\b|\s=\s|^\s*[\w.]+\s*[+\-*/]?=\s""")
# A line that reads like a metric; any such line no pattern matches is reported as unknown.
METRIC_LIKE = re.compile(r"\b\w*bpb\w*[\"']?\s*[:=]\s*" + NUM)
# Labels whose numbers are diagnostics, never the submission's score.
DIAGNOSTIC_LABEL = re.compile(r"diagnostic|pre[-_ ]?quant|post[-_ ]ema|pre[-_]ttt|^step\b|training", re.I)


def decimals(text: str) -> int:
    """Digits after the decimal point as printed ("1.2300" -> 4, "2" -> 0, "1e-3" -> 3)."""
    t = text.strip().lower()
    mant, _, exp = t.partition("e")
    d = len(mant.partition(".")[2])
    if exp:
        try:
            d -= int(exp)
        except ValueError:
            pass
    return max(d, 0)


@dataclass
class Metric:
    """One evaluation result printed in the log."""

    stage: str  # the label, normalized: lower case, "_exact" removed
    val_loss: float | None  # nats per token
    val_bpb: float
    bpb_decimals: int
    line: int  # 1-based
    eval_s: float | None = None
    diagnostic: bool = False
    exact: bool = False


@dataclass
class LogRun:
    """What one log shows about one run."""

    path: str
    seed: int | None = None
    seed_from: str | None = None  # "log" or "file name"
    name_seed: int | None = None  # the seed the file name gives, when it gives one
    metrics: list[Metric] = field(default_factory=list)
    sizes: list[tuple[str, int, int]] = field(default_factory=list)  # (label, bytes, line) of submission totals
    code_sizes: list[tuple[str, int, int]] = field(default_factory=list)  # (kind, bytes, line)
    train_s: float | None = None  # the training timer when the loop stopped
    train_s_from: str | None = None
    last_step_train_s: float | None = None
    step_avg_s: float | None = None
    total_eval_s: float | None = None
    after_train_s: float | None = None  # total elapsed after post-training work (e.g. GPTQ), when printed
    val_tokens: int | None = None  # the validation stream's length, as the loader prints it
    unknown: list[tuple[int, str]] = field(default_factory=list)
    lines: int = 0
    first_line: int = 1  # where this run starts in its log (later runs of a log holding several)

    def seeds(self) -> set[int]:
        """Every seed this run may be: the one it prints and the one its file name gives."""
        return {s for s in (self.seed, self.name_seed) if s is not None}

    def finals(self) -> list[Metric]:
        """Non-diagnostic results, one per stage (its last print), in log order.

        A stage is often printed twice in a row, rounded with its eval time and then ``_exact``;
        the pair is one evaluation: the more precise value with the time of either.
        """
        by_stage: dict[str, Metric] = {}
        for m in self.metrics:
            if m.diagnostic:
                continue
            old = by_stage.get(m.stage)
            if old is not None and m.line - old.line <= 3:
                best = m if m.bpb_decimals >= old.bpb_decimals else old
                m = replace(best, eval_s=m.eval_s if m.eval_s is not None else old.eval_s, line=m.line)
            by_stage[m.stage] = m
        return sorted(by_stage.values(), key=lambda m: m.line)

    def headline(self) -> Metric | None:
        """The run's final score: the last non-diagnostic result the log prints."""
        f = self.finals()
        return f[-1] if f else None

    def bytes_total(self) -> int | None:
        """The artifact size: the last submission-total line (earlier ones count the raw model)."""
        return self.sizes[-1][1] if self.sizes else None

    def code_size(self) -> dict[str, int]:
        """Kind ("plain", "uncompressed", "compressed") -> the last code size the log prints of that kind."""
        return {kind: n for kind, n, _ in self.code_sizes}

    def runs(self) -> list["LogRun"]:
        """The runs this log holds, in order: one, unless the pipeline started over in the same file
        (runs appended to one file: its first result's stage prints again after a later stage, with
        training in between or with another value; a summary that reprints a result, or another eval
        of the same artifact, is not a new run). Each gets the results and size lines between its
        start and the next's."""
        firsts = self.finals_in_order()
        if not firsts:
            return [self]
        head, starts, seen_later = firsts[0], [0], False
        for m in firsts[1:]:
            if m.stage == head.stage and seen_later:
                # The new run starts after the last result printed before it (its _exact twin included).
                start = max(x.line for x in self.metrics if x.line < m.line and not x.diagnostic) + 1
                if m.val_bpb != head.val_bpb or any(start <= x.line < m.line for x in self.metrics if x.diagnostic):
                    starts.append(start)
                    seen_later = False
                head = m
            elif m.stage != head.stage:
                seen_later = True
        if len(starts) == 1:
            return [self]
        bounds = list(zip(starts, starts[1:] + [self.lines + 1]))
        return [replace(self, metrics=[m for m in self.metrics if lo <= m.line < hi],
                        sizes=[s for s in self.sizes if lo <= s[2] < hi],
                        code_sizes=[s for s in self.code_sizes if lo <= s[2] < hi], first_line=max(lo, 1))
                for lo, hi in bounds]

    @property
    def where(self) -> str:
        """The log, and the line its run starts at when the log holds several."""
        return self.path if self.first_line == 1 else f"{self.path} from line {self.first_line}"

    def finals_in_order(self) -> list[Metric]:
        """Every non-diagnostic result print, in log order (a rounded print and its ``_exact`` twin
        within three lines count once)."""
        out: list[Metric] = []
        for m in self.metrics:
            if m.diagnostic:
                continue
            if out and out[-1].stage == m.stage and m.line - out[-1].line <= 3:
                continue
            out.append(m)
        return out

    def eval_times(self) -> dict[str, float]:
        """Stage -> eval seconds, for the results that print their own eval time."""
        return {m.stage: m.eval_s for m in self.finals() if m.eval_s is not None and m.stage != "ttt_sliding:done"}


# ---- the table ---------------------------------------------------------------------------------

Handler = Callable[[LogRun, "re.Match[str]", int], None]


def _metric(stage: str | None = None, suffix: str = "", diagnostic: bool | None = None) -> Handler:
    def handle(run: LogRun, m: re.Match, line: int) -> None:
        label = (stage or m.group("label")).strip()
        exact = "_exact" in label.lower()
        norm = re.sub(r"_exact\b|_exact(?=_)", "", label.lower()).strip() + suffix
        rest = m.groupdict().get("rest") or ""
        ev = None
        t = re.search(r"\b(?:eval_)?time[:=]\s*(" + NUM + r")ms", rest)
        if t:
            ev = float(t.group(1)) / 1000
        elif m.groupdict().get("secs"):
            ev = float(m.group("secs"))
        loss = m.groupdict().get("loss")
        run.metrics.append(Metric(
            stage=norm,
            val_loss=float(loss) if loss is not None else None,
            val_bpb=float(m.group("bpb")),
            bpb_decimals=decimals(m.group("bpb")),
            line=line,
            eval_s=ev,
            diagnostic=bool(DIAGNOSTIC_LABEL.search(label)) if diagnostic is None else diagnostic,
            exact=exact or decimals(m.group("bpb")) >= 6,
        ))
    return handle


def _size(run: LogRun, m: re.Match, line: int) -> None:
    run.sizes.append(((m.groupdict().get("label") or "").strip(), int(m.group("n")), line))


def _code(kind: str | None = None) -> Handler:
    def handle(run: LogRun, m: re.Match, line: int) -> None:
        run.code_sizes.append((kind or (m.groupdict().get("kind") or "plain"), int(m.group("code")), line))
    return handle


def _stop(run: LogRun, m: re.Match, line: int) -> None:
    run.train_s, run.train_s_from = float(m.group("ms")) / 1000, "stopping_early"


def _step_ms(run: LogRun, m: re.Match, line: int) -> None:
    run.last_step_train_s = float(m.group("ms")) / 1000
    if m.groupdict().get("avg"):
        run.step_avg_s = float(m.group("avg")) / 1000


def _step_min(run: LogRun, m: re.Match, line: int) -> None:
    run.last_step_train_s = float(m.group("min")) * 60


def _total_eval(run: LogRun, m: re.Match, line: int) -> None:
    run.total_eval_s = float(m.group("s"))


def _after_train(run: LogRun, m: re.Match, line: int) -> None:
    run.after_train_s = float(m.group("s"))


def _seed(run: LogRun, m: re.Match, line: int) -> None:
    if run.seed is None or run.seed_from != "log":
        run.seed, run.seed_from = int(m.group("seed")), "log"


def _ignore(run: LogRun, m: re.Match, line: int) -> None:
    pass


def _val_tokens(run: LogRun, m: re.Match, line: int) -> None:
    if run.val_tokens is None:
        run.val_tokens = int(m.group("n"))


@dataclass(frozen=True)
class Pattern:
    name: str
    regex: re.Pattern
    handle: Handler
    example: str  # a real line of this format (the tests parse every example)


def _p(name: str, regex: str, handle: Handler, example: str) -> Pattern:
    return Pattern(name, re.compile(regex), handle, example)


L, B = rf"(?P<loss>{NUM})", rf"(?P<bpb>{NUM})"
PATTERNS: list[Pattern] = [
    _p("val-loader", r"^val_loader:.*\btokens:(?P<n>\d+)", _val_tokens,
       "val_loader:shards pattern=./data/datasets/fineweb10B_sp1024/fineweb_val_*.bin tokens:62021632"),
    # progress lines that carry running numbers, never a final score
    _p("train-val", rf"^step:\d+/\d+ val_loss:{L} val_bpb:{B}", _metric("step val", diagnostic=True),
       "step:4000/20000 val_loss:2.0800 val_bpb:1.2319 train_time:180000ms step_avg:45.00ms"),
    _p("train-val-short", rf"^\d+/\d+ val_loss: {L} val_bpb: {B}\s*$", _metric("step val", diagnostic=True),
       "4000/20000 val_loss: 2.8412 val_bpb: 1.0999"),
    _p("ttt-chunk", rf"^ttt_chunk \[\d+/\d+\] bpb={NUM}", _ignore, "ttt_chunk [10/1238] bpb=1.101234 time=3.2s"),
    _p("sliding-progress", rf"^sliding_eval \[\s*\d+(?:\.\d+)?%\] .*running_bpb={NUM}", _ignore,
       "sliding_eval [ 50.0%] 100/200 windows running_bpb=1.123456"),
    _p("ttt-progress", r"^ttt_progress: .*batch_bpb:", _ignore,
       "ttt_progress: batch 3/782 batch_loss:2.9 batch_bpb:1.2 running_loss:2.8 running_bpb:1.1 doc_len:100-200"),
    _p("jepa-probe", r"^jepa_diagnostics .*probe_bpb:", _ignore,
       "jepa_diagnostics cos_sim:0.9942 jepa_mse:0.0014 lm_top1:0.3669 probe_bpb:8.8173"),
    # final results
    _p("ttt-sliding-done", rf"^ttt_sliding:done val_loss={L} val_bpb={B} elapsed=(?P<secs>{NUM})s",
       _metric("ttt_sliding:done"), "ttt_sliding:done val_loss=2.795171 val_bpb=1.082098 elapsed=293.2s"),
    _p("metric-stride-first", rf"^(?P<label>{LABEL})\s+stride:\d+\s+val_loss:{L}\s+val_bpb:{B}(?P<rest>.*)$", _metric(),
       "final_sliding_window_eval_exact stride:64 val_loss:1.96369923 val_bpb:1.16301431"),
    _p("metric-sliding-words", rf"^(?P<label>{LABEL})\s+sliding val_loss:{L}\s+sliding val_bpb:{B}(?P<rest>.*)$",
       _metric(suffix=" sliding"),
       "final_int8_zlib_roundtrip_exact sliding val_loss:2.02095340 sliding val_bpb:1.19692464"),
    _p("metric", rf"^(?P<label>{LABEL})\s+val_loss[:=]\s*{L}\s+val_bpb[:=]\s*{B}(?P<rest>.*)$", _metric(),
       "final_int8_zlib_roundtrip_exact val_loss:2.07269931 val_bpb:1.22436570"),
    # the neural-only sliding score first, then the mixed score the run reports
    _p("metric-sliding-then-val", rf"^(?P<label>{LABEL})\s+sliding_bpb:{NUM}\s+val_bpb:{B}(?P<rest>.*)$", _metric(),
       "final_sliding_window_exact sliding_bpb:1.14775606 val_bpb:0.39220592"),
    _p("summary-bpb", rf"^val_bpb:\s+{B}\s*$", _metric("summary"), "val_bpb:          1.12278022"),
    # a mixture's score printed beside its parts' (PPM over the network's byte probabilities)
    _p("mix-bpb", rf"^(?P<label>[A-Za-z]\w*)\s+(?:\w+={NUM}\s+)*mix_bpb={B}(?P<rest>.*)$", _metric(),
       "ppm_mix bytes=10982035 mix_bpb=1.000307 ppm_only=2.380212 nn_only=1.077557 mode=binary"),
    # sizes
    _p("total-size", r"^Total submission size(?: (?P<label>[^:]+))?:\s*(?P<n>\d+) bytes", _size,
       "Total submission size int8+zlib: 15863489 bytes"),
    _p("budget", r"^budget:(?P<n>\d+)/\d+ ", _size, "budget:15995705/16000000 (16.00/16.00MB) FITS"),
    _p("total-submission-pipe", r"^(?P<label>.+?) model: \d+ bytes \| Total submission: (?P<n>\d+) bytes", _size,
       "INT7+zlib model: 15370972 bytes | Total submission: 15441941 bytes"),
    _p("summary-artifact", r"^artifact_bytes:\s+(?P<n>\d+)\s*$", _size, "artifact_bytes:   15555017"),
    _p("code-size", r"^Code size(?: \((?P<kind>\w+)\))?:\s*(?P<code>\d+) bytes", _code(), "Code size: 47642 bytes"),
    _p("artifact-code", r"^artifact:[\d.]+MB .*\bcode:(?P<code>\d+)", _code("plain"),
       "artifact:15.92MB ternary:64880640(14245920B) fp:2513744(2537376B) code:70853"),
    _p("raw-model-code", r"^Raw model: \d+ bytes \| Code: (?P<code>\d+) bytes", _code("plain"),
       "Raw model: 85587955 bytes | Code: 70969 bytes | Total: 85658924"),
    # times
    _p("stopping-early", rf"^stopping_early: wallclock_cap train_time:\s*(?P<ms>{NUM})ms", _stop,
       "stopping_early: wallclock_cap train_time:600038ms step:13780/20000"),
    _p("step-train-time", rf"^step:\d+/\d+ .*\btrain_time:(?P<ms>{NUM})ms(?: step_avg:(?P<avg>{NUM})ms)?", _step_ms,
       "step:13780/20000 train_loss:2.0512 train_time:600038ms step_avg:43.54ms"),
    _p("step-train-minutes", rf"^\d+/\d+ train_loss: {NUM} train_time: (?P<min>{NUM})m\b", _step_min,
       "4500/20000 train_loss: 2.9026 train_time: 9.2m tok/s: 7150349"),
    _p("total-eval-time", rf"^total_eval_time:\s*(?P<s>{NUM})s", _total_eval, "total_eval_time:338.2s"),
    _p("post-train-elapsed", rf"^wallclock:\S+ total_elapsed:(?P<s>{NUM})s", _after_train,
       "wallclock:post_gptq total_elapsed:858.2s train_budget:600.0s"),
    # seed
    _p("seed", r"^\s*seed[:=]\s*(?P<seed>\d{1,12})\s*$", _seed, "seed:1337"),
]


SEED_IN_NAME = (re.compile(r"seed[_-]?(\d{1,12})(?!\d)", re.I),
                re.compile(r"(?:_log|^log|_s)[_-]?(\d{1,12})\.\w+$", re.I))


def seed_in_name(path: str) -> int | None:
    """The seed a log's file name gives (train_seed42.log, ternary_log_7.txt, run_s42.txt), if any."""
    name = path.rsplit("/", 1)[-1]
    for rx in SEED_IN_NAME:
        m = rx.search(name)
        if m:
            return int(m.group(1))
    return None


def parse_log(text: str, path: str = "") -> LogRun:
    """Parse a whole log (text already bounded and decoded by the caller)."""
    run = LogRun(path=path)
    run.name_seed = seed_in_name(path)
    if run.name_seed is not None:
        run.seed, run.seed_from = run.name_seed, "file name"
    n = 0
    for n, raw in enumerate(text.splitlines(), start=1):
        if len(raw) > 4000:  # a line this long is data, not a log line we know
            raw = raw[:4000]
        line = TIMESTAMP.sub("", raw.rstrip())
        body = line.lstrip()
        matched = False
        for p in PATTERNS:
            mm = p.regex.match(body if p.name != "seed" else line)
            if mm:
                try:
                    p.handle(run, mm, n)
                except (ValueError, OverflowError):
                    break  # a number too odd to use: falls through to "unknown"
                matched = True
                break
        if not matched and METRIC_LIKE.search(body) and not CODE_LINE.search(body):
            run.unknown.append((n, body[:200]))
    run.lines = n
    return run
