"""Other people's text, made safe to show: one line of printable characters in which nothing
can act on a terminal and nothing is hidden from the reader.

Line breaks become a visible `↵`, tabs a space, every other C0 and C1 control (ESC and Ctrl-C
included) its visible Unicode control picture or `�`, and every character that shows nothing or
changes how the rest reads (bidirectional overrides, zero-width characters, tag characters,
variation selectors, fillers) a visible marker such as `⟨U+202E⟩`. The panes, the CLI and the
hub's alerts show agent text through `neutralise`; the dashboard has the same rule in script.
"""

from __future__ import annotations

import re

LINE_BREAK = " ↵ "
# Characters that show nothing, or change how the text around them reads: every format
# character (Unicode category Cf: bidi controls, zero-width space/joiners, word joiner, BOM, tag
# characters, …; a test checks the list against unicodedata), variation selectors, the combining
# grapheme joiner and the Hangul fillers.
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD),
    (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F),
    (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001), (0xE0020, 0xE007F), (0xE0100, 0xE01EF),
)
_INVISIBLE = re.compile("[" + "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in _INVISIBLE_RANGES) + "]")
QUOTE_OPEN, QUOTE_CLOSE = "«", "»"
_LINE_BREAKS = re.compile("\r\n|[\r\n\x0b\x0c\x85\u2028\u2029]")


def _control_picture(char: str) -> str:
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ … ␟: ESC shows as ␛, Ctrl-C as ␃
    if code == 0x7F:
        return "␡"
    return "�"  # C1 controls (0x80-0x9f)


_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def neutralise(text: str) -> str:
    """One line of printable text; nothing in it can act on a terminal, and nothing in it is
    hidden from the person or agent reading it."""
    text = _INVISIBLE.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)
    text = _LINE_BREAKS.sub(LINE_BREAK, text).replace("\t", " ")
    return _CONTROLS.sub(lambda m: _control_picture(m.group()), text)


def quoted(text: str) -> str:
    """Someone else's text, neutralised, inside `«…»` that it cannot close."""
    inner = neutralise(text).replace(QUOTE_OPEN, "‹").replace(QUOTE_CLOSE, "›")
    return f"{QUOTE_OPEN}{inner}{QUOTE_CLOSE}"


