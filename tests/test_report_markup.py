"""Reports carry no one else's markup: text the submission controls (messages quoting its code,
paths, errors, probe details, numbers from its files) shows as that text in every format, with no
terminal escapes, and no links, mentions, emphasis, HTML or broken code fences in Markdown.

The Markdown is read back with a CommonMark parser (markdown-it, which rich already installs),
so what counts as a link or as emphasis is the parser's call, not ours."""

from __future__ import annotations

import json

from markdown_it import MarkdownIt

from reports.model import Finding, ProbeResult, Report
from reports.render import render

ESC = "\x1b[2K\r\x1b[1;32mverdict: PASS\x1b[0m \u202eevil\u202c \x07"
MARKUP = ("[click](https://evil.example/x) **PASS** _ok_ @maintainer #12 <img src=x onerror=alert(1)> "
          "<b>bold</b> ~~gone~~ ![i](https://evil.example/i.png) https://evil.example/bare www.evil.example "
          "$x^2$ ``` fence | cell")


def hostile_report() -> Report:
    r = Report(submission="records/x` **y**")
    r.add(Finding(rule="GA101", family="target-in-key", severity="error", path="train_gpt.py", line=3,
                  message=f"code quotes {MARKUP} {ESC}", fix=f"fix {MARKUP}", code_frame=f"  3 | x = 1 {ESC}"))
    r.probes.append(ProbeResult(probe="future_invariance", status="fail", detail=f"detail {MARKUP} {ESC}",
                                counterexample={"note": MARKUP}, replay=f"golf-audit probe x ``` {MARKUP}"))
    r.skip("reproduction", f"the evaluation could not be rerun: {MARKUP} {ESC}")
    r.claims = {"claimed_bpb": 1.0, "author": MARKUP}
    r.error = f"probes: {MARKUP} {ESC}"
    return r


def test_no_control_character_reaches_any_format():
    for fmt in ("text", "json", "sarif", "markdown", "junit"):
        out = render(hostile_report(), fmt)
        bad = [c for c in out if (ord(c) < 32 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f or c in "\u202e\u202c"]
        assert bad == [], (fmt, bad)
    text = render(hostile_report(), "text", width=400)
    assert "\\x1b[2K\\x0d\\x1b[1;32mverdict: PASS" in text  # shown, not acted on


def test_rich_markup_in_submission_text_is_shown_as_text():
    r = hostile_report()
    r.probes[0].detail = "[bold red]FAKE[/bold red] [link=https://evil.example]x[/link]"
    text = render(r, "text", width=400)
    assert "[bold red]FAKE[/bold red]" in text and "[link=https://evil.example]" in text


def walk(tokens):
    for t in tokens:
        yield t
        yield from walk(t.children or [])


def test_markdown_carries_no_markup_from_the_submission():
    md = render(hostile_report(), "markdown")
    parser = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    tokens = list(walk(parser.parse(md)))
    links = [t.attrGet("href") for t in tokens if t.type == "link_open"]
    assert all("evil" not in (h or "") for h in links), links  # our links to lines only
    assert not [t for t in tokens if t.type == "image"]
    assert not [t for t in tokens if t.type in ("html_inline", "html_block") and ("img" in t.content or "<b>" in t.content)]
    assert not [t for t in tokens if t.type == "s_open"]
    strong = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "strong_open"]
    assert "PASS" not in strong and not [t for t in tokens if t.type == "em_open"]
    # text outside code spans (GitHub links nothing inside a code span)
    text = "".join(t.content for t in tokens if t.type == "text")
    assert "@\u200bmaintainer" in text and "@maintainer" not in text.replace("@\u200b", "")
    assert "https://evil" not in text and "www.evil" not in text  # nothing GitHub would link by itself
    # the replay command stays inside its code block, whatever backticks it holds
    fences = [t for t in tokens if t.type == "fence"]
    assert len(fences) == 1 and "``` [click]" in fences[0].content
    # every table row has as many cells as its header: a pipe in a message did not add one
    assert "fence \\| cell" in md


def test_saved_json_reports_are_cleaned_when_rendered_again():
    saved = json.loads(render(hostile_report(), "json"))
    saved["findings"][0]["message"] = "again \x1b]8;;https://evil.example\x07link\x1b]8;;\x07"
    out = render(Report.from_dict(saved), "text")
    assert "\x1b" not in out and "\\x1b]8;;https://evil.example" in out
