"""The pane-text sanitiser: nothing a peer sends can act on a terminal."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from transports.pane_text import LINE_BREAK, frame_delivery, neutralise

CORPUS = {
    "line\nbreak": "line ↵ break",
    "crlf\r\nand cr\r": "crlf ↵ and cr ↵ ",
    "esc \x1b[31mred": "esc ␛[31mred",
    "paste end \x1b[201~ then": "paste end ␛[201~ then",
    "ctrl-c \x03 ctrl-d \x04": "ctrl-c ␃ ctrl-d ␄",
    "nul\x00 bel\x07 del\x7f": "nul␀ bel␇ del␡",
    "c1 \x9b31m csi": "c1 �31m csi",
    "tab\there": "tab here",
    "bidi \u202eevil\u202c": "bidi evil",
    "unicode ✓ 日本語 emoji 🎉": "unicode ✓ 日本語 emoji 🎉",
}


def test_corpus():
    for raw, expected in CORPUS.items():
        assert neutralise(raw) == expected, raw


def _acts_on_a_terminal(char: str) -> bool:
    return unicodedata.category(char) == "Cc" or char in "\u2028\u2029" or 0x202A <= ord(char) <= 0x202E \
        or 0x2066 <= ord(char) <= 0x2069


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_nothing_that_acts_on_a_terminal_survives(text):
    out = neutralise(text)
    assert not any(_acts_on_a_terminal(c) for c in out)
    assert neutralise(out) == out  # already safe text passes unchanged


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Cf"))))
def test_printable_text_is_kept_as_it_is(text):
    assert neutralise(text) == text.replace("\t", " ")


def test_framing():
    ask = {"kind": "ask", "correlation_id": "c" * 32, "text": "merge?\nnow", "from": {"name": "alice\x1b"},
           "question": {"kind": "choice", "prompt": "p", "options": [{"id": "y", "title": "Yes"}]}}
    assert frame_delivery(ask) == f"[ask {'c' * 32} from alice␛] merge?{LINE_BREAK}now (y) Yes — reply: repowire ack {'c' * 32} \"<answer>\""
    assert frame_delivery({"kind": "notify", "text": "hi", "from": {"name": "bob"}}) == "[notify from bob] hi"
    reply = {"kind": "reply", "correlation_id": "d" * 32, "text": "done", "from": {"name": "bob"}}
    assert frame_delivery(reply) == f"[reply to {'d' * 32} from bob] done"
