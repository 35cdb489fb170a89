"""What may be typed into an agent's tmux pane, and how a delivery is framed there.

`tmux send-keys -l` and `paste-buffer` do not sanitise: a newline submits a line, ESC starts a
terminal sequence, `ESC[201~` ends a bracketed paste early, Ctrl-C interrupts the agent. Every
byte a peer controls goes through `neutralise`, which turns the whole text into one line of
printable characters: line breaks become a visible `↵`, tabs a space, every other C0 and C1
control (ESC and Ctrl-C included) its visible Unicode control picture or `�`, and every
character that shows nothing or changes how the rest reads (bidirectional overrides, zero-width
characters, tag characters, variation selectors, fillers) a visible marker such as `⟨U+202E⟩`.

A delivery is framed as a header the hub writes, then the sender's text in `«…»`: the text
cannot close the quote (its own `«` and `»` become `‹` and `›`), so a body that contains
`[notify from operator]` shows inside the quote, never as a header of its own.
"""

from __future__ import annotations

import re
import shlex

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


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    return f"{size / 1024:.1f} KiB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MiB"


def attachment_lines(frame: dict, hub_url: str | None) -> str:
    """One `[file …]` per attachment, with the command that saves it and, given the hub's URL,
    where it can be downloaded."""
    lines = []
    for item in frame.get("attachments") or []:
        name = neutralise(str(item.get("filename") or "attachment"))
        attachment_id = neutralise(str(item.get("id", "")))
        kind = neutralise(str(item.get("content_type") or "application/octet-stream"))
        size = item.get("size")
        url = f" ({hub_url.rstrip('/')}/attachments/{attachment_id})" if hub_url else ""
        lines.append(f"[file {quoted(name)}, {human_size(size) if isinstance(size, int) else '?'}, {kind}: "
                     f"repowire attachments get {attachment_id} -o {shlex.quote(name)}{url}]")
    return "".join(LINE_BREAK + line for line in lines)


def frame_delivery(frame: dict, hub_url: str | None = None) -> str:
    """A delivery as the agent sees it: who sent it, what it is, and how to answer; then the
    files it carries."""
    return _frame_text(frame) + attachment_lines(frame, hub_url)


def _frame_text(frame: dict) -> str:
    sender = neutralise(str(frame.get("from", {}).get("name", "?")))
    kind = frame.get("kind", "notify")
    body = quoted(str(frame.get("text") or ""))
    cid = frame.get("correlation_id")
    if kind == "ask":
        header = f"[ask {cid} from {sender}]"
        question = frame.get("question") or {}
        options = " ".join(f"({neutralise(str(o.get('id')))}) {quoted(str(o.get('title')))}"
                           for o in question.get("options") or [])
        hint = f" — reply: repowire ack {cid} \"<answer>\""
        return f"{header} {body}{' ' + options if options else ''}{hint}"
    if kind in ("reply", "answer"):
        detail = " ".join(neutralise(str(frame[k])) for k in ("option_id", "outcome") if frame.get(k))
        text = body if frame.get("text") else ""
        return f"[{kind} to {cid} from {sender}] {text}{' ' + detail if detail else ''}".rstrip()
    if kind == "expired":
        return f"[expired {cid}] {neutralise(str(frame.get('reason') or ''))}".rstrip()
    return f"[notify from {sender}] {body}"


_TERMINAL_CODES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|[\x00-\x08\x0b-\x1f\x7f]")


def strip_terminal_codes(line: str) -> str:
    """A captured line as plain text: escape sequences and control bytes removed."""
    return _TERMINAL_CODES.sub("", line)
