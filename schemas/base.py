"""The base of every struct in the contract.

Wire data is acyclic: a struct is decoded from JSON or built from plain values, and never holds
a reference back to itself. So instances are left out of Python's cycle collector (`gc=False`):
the hub makes several per message (the frame, its trace stages, the delivery, the result), and
tracked ones made the collector run about half as often again as plain dicts did (measured in
bench/RESULTS.md, section typed-core). Do not put an object that can refer back to its struct
in one.
"""

from __future__ import annotations

import msgspec


class Struct(msgspec.Struct, gc=False):
    """A `msgspec.Struct` that the cycle collector does not track (see the module docstring)."""
