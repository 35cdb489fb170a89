"""The commands the README gives, read from the README itself (standard library only).

`.ci/run` runs the README's second command through `python3 -m tests.readme_commands test`, so
CI runs exactly what a newcomer copies; the tour test runs the tour's blocks as written.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
TOUR_HEADING = "## A five-minute tour"


def two_commands(text: str) -> tuple[str, str]:
    """The first code block's two lines: (install and serve, install and test)."""
    match = _FENCE.search(text)
    if match is None:
        raise ValueError("the README has no code block")
    lines = [line for line in match.group(2).splitlines() if line.strip()]
    if len(lines) != 2:
        raise ValueError(f"the README's first block has {len(lines)} commands, not 2")
    return lines[0], lines[1]


def tour_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every code block in the tour section, in order."""
    start = text.index(TOUR_HEADING)
    end = text.find("\n## ", start + len(TOUR_HEADING))
    section = text[start:end if end != -1 else len(text)]
    return [(language, code) for language, code in _FENCE.findall(section)]


def main(argv: list[str]) -> int:
    which = argv[1] if len(argv) > 1 else ""
    serve, test = two_commands(README.read_text(encoding="utf-8"))
    if which not in ("serve", "test"):
        print("usage: python3 -m tests.readme_commands serve|test", file=sys.stderr)
        return 2
    print(serve if which == "serve" else test)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
