"""Plain blocking questions as pure rules: what one may ask, and what an answer may choose.

A blocking question is a tool permission (may this agent run this call?) or a plain question:
a title, options with ids, and optionally a default that the deadline picks. A plain question
is never decided by a policy; its answer is one of its option ids.
"""

from __future__ import annotations

import hashlib

import orjson

from hub.core.errors import HubError
from schemas.errors import ErrorCode

TOOL_PERMISSION, CHOICE = "tool_permission", "choice"


def check_plain(title: str | None, options: list[dict] | None, default: str | None, tool_input: dict) -> list[dict]:
    """The options of a plain question, or `invalid_request` saying what is missing."""
    if title is None:
        raise HubError(ErrorCode.INVALID_REQUEST, "a blocking question is a tool permission (`tool_name`, "
                       "`tool_input`, `tool_use_id`) or a plain question (`title` and `options`): give one")
    if tool_input:
        raise HubError(ErrorCode.INVALID_REQUEST, "a plain question has no `tool_input`; put the details in `prompt`")
    if not options or len(options) < 2:
        raise HubError(ErrorCode.INVALID_REQUEST, "a plain question needs at least two options to choose from")
    if any("decision" in option for option in options):
        raise HubError(ErrorCode.INVALID_REQUEST, "the options of a plain question are chosen by id; `decision` "
                       "(allow or deny) is for tool permissions")
    ids = [option["id"] for option in options]
    if len(set(ids)) != len(ids):
        raise HubError(ErrorCode.INVALID_REQUEST, "option ids must be unique", {"options": ids})
    if default is not None and default not in ids:
        raise HubError(ErrorCode.INVALID_REQUEST, f"default must be one of the option ids {ids}", {"default": default})
    return options


def choice_of(options: list[dict], option_id: str | None, decision: str | None) -> str:
    """A plain question is answered with one of its option ids."""
    ids = [option["id"] for option in options]
    if decision is not None or option_id is None:
        raise HubError(ErrorCode.INVALID_REQUEST, "answer a plain question with `option_id`, one of its options",
                       {"options": ids})
    if option_id not in ids:
        raise HubError(ErrorCode.INVALID_OPTION, f"option_id must be one of {ids}",
                       {"option_id": option_id, "options": ids})
    return option_id


def plain_hash(title: str | None, prompt: str | None, options: list[dict]) -> str:
    """sha256 of what a person is shown, so that an answer is for what was shown."""
    shown = {"title": title, "prompt": prompt, "options": options}
    return hashlib.sha256(orjson.dumps(shown, option=orjson.OPT_SORT_KEYS)).hexdigest()
