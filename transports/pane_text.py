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

from schemas.visible import LINE_BREAK, neutralise, quoted


# the visible-text rules are shared with the hub (alerts) and the CLI: schemas.visible
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
