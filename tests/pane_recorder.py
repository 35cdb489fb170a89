"""Runs in a tmux pane for the tests: raw terminal, bracketed paste on, records every byte it
receives to a file, and shows what it got so that the pane can be read back."""

from __future__ import annotations

import os
import sys
import termios
import tty


def main(record_path: str, swallow_enter: bool = False) -> None:
    """`swallow_enter`: Enter changes nothing on the screen, like an input box that never
    submits (the text stays where it was typed)."""
    fd = sys.stdin.fileno()
    tty.setraw(fd)
    os.write(sys.stdout.fileno(), b"\x1b[?2004h")  # ask for bracketed paste, as agent TUIs do
    os.write(sys.stdout.fileno(), b"recorder ready\r\n")
    with open(record_path, "ab", buffering=0) as record:
        try:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                record.write(data)
                shown = data.replace(b"\x1b[200~", b"").replace(b"\x1b[201~", b"")
                shown = shown.replace(b"\r", b"") if swallow_enter else shown.replace(b"\r", b"\r\n")
                os.write(sys.stdout.fileno(), shown)
        finally:
            termios.tcsetattr(fd, termios.TCSANOW, termios.tcgetattr(fd))


if __name__ == "__main__":
    main(sys.argv[1], swallow_enter="--swallow-enter" in sys.argv[2:])
