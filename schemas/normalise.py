"""The one way generated documents (JSON Schema, OpenAPI) are written and compared.

What a generator library does with whitespace is not part of the contract: msgspec 0.22 kept a
docstring's indentation in `description`, 0.23 dedents it. Every `description` is therefore
cleaned here the same way whatever the library did (each paragraph on one line, paragraphs
separated by one blank line); the alternatives of an `anyOf` or `oneOf`, whose order means
nothing, are sorted (msgspec 0.19 put `null` first, later releases last); keys are written in
sorted order. The checked-in files and the drift tests then depend only on the structs and
routes themselves.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import orjson

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_WHITESPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """A docstring or description as one line per paragraph, whatever indentation it came with."""
    paragraphs = _PARAGRAPH_BREAK.split(inspect.cleandoc(text))
    return "\n\n".join(_WHITESPACE.sub(" ", paragraph).strip() for paragraph in paragraphs if paragraph.strip())


_UNORDERED = ("anyOf", "oneOf")


def _canonical(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def normalised(document: Any) -> Any:
    """A copy of a JSON document with every string `description` cleaned by `clean_text` and the
    alternatives of every `anyOf`/`oneOf` in one order."""
    if isinstance(document, dict):
        out: dict[str, Any] = {}
        for key, value in document.items():
            if key == "description" and isinstance(value, str):
                out[key] = clean_text(value)
            elif key in _UNORDERED and isinstance(value, list):
                out[key] = sorted((normalised(item) for item in value), key=_canonical)
            else:
                out[key] = normalised(value)
        return out
    if isinstance(document, list):
        return [normalised(item) for item in document]
    return document


def dump(document: Any) -> bytes:
    """The checked-in form: normalised, keys sorted, two-space indent, one trailing newline."""
    return orjson.dumps(normalised(document), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
