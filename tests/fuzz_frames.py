"""A coverage-guided fuzzer (atheris) for what faces the network and the terminal: the frame
decoders, the Host/Origin guard and the pane text sanitiser. A crash is any exception other
than a FrameError whose code is in the table, or a sanitised text that could act on a terminal.

tests/test_fuzz.py runs it for a bounded number of inputs; for a longer run:
    python -m tests.fuzz_frames -runs=2000000
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from hub.server.guard import LocalGuard, default_hosts, default_origins
    from schemas.codec import FrameError, decode_client_frame, decode_dashboard_frame
    from schemas.errors import ERROR_TABLE
    from transports.pane_text import neutralise

LIMIT = 65536
GUARD = LocalGuard(None, allowed_hosts=default_hosts("127.0.0.1", 8377), allowed_origins=default_origins("127.0.0.1", 8377))
ACTS_ON_A_TERMINAL = {*range(0x20), 0x7F, *range(0x80, 0xA0)}


def decode(data: bytes | str) -> None:
    for decoder in (decode_client_frame, decode_dashboard_frame):
        try:
            decoder(data, LIMIT)
        except FrameError as exc:
            if exc.code not in ERROR_TABLE:
                raise AssertionError(f"code {exc.code!r} is not in the table") from exc


def one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    target = provider.ConsumeIntInRange(0, 3)
    if target == 0:
        decode(provider.ConsumeBytes(provider.remaining_bytes()))
    elif target == 1:
        decode(provider.ConsumeUnicodeNoSurrogates(provider.remaining_bytes()))
    elif target == 2:
        host = provider.ConsumeBytes(provider.ConsumeIntInRange(0, 40))
        origin = provider.ConsumeBytes(provider.remaining_bytes())
        refusal = GUARD._refusal({"type": "websocket", "headers": [(b"host", host), (b"origin", origin)]})
        if refusal is not None and refusal[0] not in ERROR_TABLE:
            raise AssertionError(f"guard code {refusal[0]!r} is not in the table")
    else:
        shown = neutralise(provider.ConsumeUnicode(provider.remaining_bytes()))
        if any(ord(c) in ACTS_ON_A_TERMINAL for c in shown):
            raise AssertionError(f"neutralise left a control character in {shown!r}")


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
