"""How a client command fails: an exit code and a message for the person at the terminal.

Exit codes: 0 done, 1 the hub said no (its error code is printed), 2 the hub could not be
reached or the command was misused, 3 no answer before a deadline (`ask --wait`).
"""

from __future__ import annotations

EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_EXPIRED = 0, 1, 2, 3
EXIT_USAGE = 2   # the same code as unreachable: the command could not be carried out as given


class CommandFailed(Exception):
    def __init__(self, exit_code: int, message: str):
        super().__init__(message)
        self.exit_code = exit_code
