"""Typing into a real tmux pane (private server, `-f /dev/null`) that records the exact bytes."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from tests.support import wait_until
from transports.pane_text import frame_delivery, neutralise
from transports.tmux_pane import PaneInjector

CORPUS = ["plain words", "two\nlines", "esc \x1b[31m red", "early end \x1b[201~ ; rm -rf /", "ctrl-c \x03 now",
          "unicode ✓ 日本語 🎉", "bidi \u202eevil"]


def recorder_pane(tmux, tmp_path: Path):
    record = tmp_path / "received.bin"
    record.touch()
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).with_name('pane_recorder.py')))} " \
              f"{shlex.quote(str(record))}"
    session = tmux.new_session(session_name="agents", window_command=command, detach=True, x=200, y=50)
    pane = session.active_window.active_pane
    wait_until(lambda: "recorder ready" in tmux.cmd("capture-pane", "-p", "-t", pane.pane_id).stdout, 10,
               "the recorder to start")
    return pane, record


async def test_deliveries_arrive_as_one_neutral_block_then_enter(tmux, tmp_path):
    pane, record = recorder_pane(tmux, tmp_path)
    injector = PaneInjector(tmux)
    expected = b""
    for raw in CORPUS:
        text = frame_delivery({"kind": "notify", "text": raw, "from": {"name": "alice"}})
        result = await injector.inject(pane.pane_id, text)
        assert result.status == "injected", (raw, result)
        expected += b"\x1b[200~" + neutralise(text).encode() + b"\x1b[201~\r"
        wait_until(lambda: record.read_bytes() == expected, 5, f"the bytes of {raw!r}")
    body = expected.replace(b"\x1b[200~", b"").replace(b"\x1b[201~", b"").replace(b"\r", b"")
    assert not any(byte < 0x20 or byte == 0x7F for byte in body)  # no raw control byte reached the pane
    assert "[notify from alice] «early end ␛[201~ ; rm -rf /»".encode() in body
    assert "[notify from alice] «bidi ⟨U+202E⟩evil»".encode() in body


async def test_copy_mode_is_left_before_pasting(tmux, tmp_path):
    pane, record = recorder_pane(tmux, tmp_path)
    tmux.cmd("copy-mode", "-t", pane.pane_id)
    assert tmux.cmd("display-message", "-p", "-t", pane.pane_id, "#{pane_in_mode}").stdout == ["1"]
    result = await PaneInjector(tmux).inject(pane.pane_id, "[notify from bob] out of copy mode")
    assert result.status == "injected"
    wait_until(lambda: b"out of copy mode" in record.read_bytes(), 5)


async def test_a_missing_pane_fails_with_a_reason(tmux, tmp_path):
    pane, _ = recorder_pane(tmux, tmp_path)
    injector = PaneInjector(tmux)
    assert (await injector.inject("%999", "x")).reason == "pane_missing"
    pane.cmd("kill-pane")
    assert (await injector.inject(pane.pane_id, "x")).status == "failed"


async def test_text_that_never_shows_is_not_called_injected(tmux, tmp_path):
    session = tmux.new_session(session_name="blind", window_command="stty -echo; sleep 60", detach=True)
    pane = session.active_window.active_pane
    result = await PaneInjector(tmux, confirm_timeout_s=0.3).inject(pane.pane_id, "[notify from x] unseen")
    assert result == type(result)("failed", "not_visible")
