"""Blocking questions as pure rules: what one may ask, what an answer may choose, and what
is decided when nobody answers.

A blocking question is a tool permission (may this agent run this call?) or a plain question:
a title, options with ids, and optionally a default that the deadline picks. A plain question
is never decided by a policy; its answer is one of its option ids. When the deadline passes, or
no person can be reached, the default option is picked, and a tool permission is denied (or,
with nobody to reach and the hub set so, handed back to the agent's own prompt): never allowed.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

import orjson

from hub.core.approvals import ABANDONED, ASK, DENY, TIMEOUT, check_options
from hub.core.errors import HubError
from schemas.errors import ErrorCode

TOOL_PERMISSION, CHOICE = "tool_permission", "choice"
FALLBACK = "fallback"     # answered_by: no person could be reached, the hub's fallback decided


def check_tool_options(tool_use_id: str | None, title: str | None, options: list[dict[str, Any]] | None,
                       default: str | None) -> list[dict[str, Any]]:
    """The options of a tool permission (Allow/Deny when none are given), or `invalid_request`."""
    if tool_use_id is None:
        raise HubError(ErrorCode.INVALID_REQUEST, "a tool permission needs `tool_use_id` (the hook's id of the "
                       "call, so that a retried hook joins the same question)")
    if title is not None:
        raise HubError(ErrorCode.INVALID_REQUEST, "`title` is for a plain question; a tool permission is titled "
                       "by its tool", {"title": title})
    if options and any("decision" not in o for o in options):
        raise HubError(ErrorCode.INVALID_REQUEST, "each option of a tool permission says its decision (allow or "
                       "deny)", {"options": [o["id"] for o in options]})
    checked = check_options(options)
    if default is not None:
        chosen = next((o for o in checked if o["id"] == default), None)
        if chosen is None or chosen["decision"] != DENY:
            raise HubError(ErrorCode.INVALID_REQUEST, "the default of a tool permission is what its deadline "
                           "picks, so it must name a deny option", {"default": default})
    return checked


def default_outcome(plain: bool, default: str | None) -> dict[str, Any]:
    """What a deadline (or no person) picks: the default option if any; for a tool permission
    always deny."""
    outcome: dict[str, Any] = {} if plain else {"decision": DENY}
    if default is not None:
        outcome["option_id"] = default
    return outcome


def fallback_outcome(plain: bool, default: str | None, fallback: str, now_ms: int) -> dict[str, Any]:
    """Nobody could answer (no dashboard or `questions --follow` watches, no alert channel is
    set): deny (or the default option), or hand a tool call back to the agent's own permission
    prompt (`ask`) when the hub's fallback says so."""
    outcome = default_outcome(plain, default)
    if not plain and fallback == ASK:
        outcome["decision"] = ASK
    said = outcome.get("decision") or (f"option {default}" if default else "no answer")
    return {**outcome, "answered_by": FALLBACK, "decided_at": now_ms,
            "reason": f"no person can be reached (no dashboard, no `repowire questions --follow`, no alert "
                      f"channel): {said}"}


def check_plain(title: str | None, options: list[dict[str, Any]] | None, default: str | None, tool_input: dict[str, Any]) -> list[dict[str, Any]]:
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


def choice_of(options: list[dict[str, Any]], option_id: str | None, decision: str | None) -> str:
    """A plain question is answered with one of its option ids."""
    ids = [option["id"] for option in options]
    if decision is not None or option_id is None:
        raise HubError(ErrorCode.INVALID_REQUEST, "answer a plain question with `option_id`, one of its options",
                       {"options": ids})
    if option_id not in ids:
        raise HubError(ErrorCode.INVALID_OPTION, f"option_id must be one of {ids}",
                       {"option_id": option_id, "options": ids})
    return option_id


def plain_hash(title: str | None, prompt: str | None, options: list[dict[str, Any]]) -> str:
    """sha256 of what a person is shown, so that an answer is for what was shown."""
    shown = {"title": title, "prompt": prompt, "options": options}
    return hashlib.sha256(orjson.dumps(shown, option=orjson.OPT_SORT_KEYS)).hexdigest()


class QuestionState(StrEnum):
    """A blocking question's life: pending until a person, a policy, the deadline or the
    fallback decides it (`decided`), or until nobody waits for it any more (`abandoned`:
    the hook that asked is gone, so its tool call was already denied where it ran)."""
    PENDING = "pending"
    DECIDED = "decided"
    ABANDONED = "abandoned"


def on_decide_answer(question_id: str, store_status: str, answered_by: str | None) -> HubError | None:
    """What the store's answer to a decision means (the decide script compares the question's
    state and content hash and sets its decision in one step, so the first decision wins):
    None when this one won; otherwise the error its decider gets. `store_status` is `ok`,
    `missing`, `mismatch` (not the content that was shown) or `decided` (with the earlier
    decision's `answered_by`)."""
    if store_status == "ok":
        return None
    details = {"correlation_id": question_id}
    if store_status == "missing":
        return HubError(ErrorCode.QUESTION_NOT_FOUND, f"no question {question_id}", details)
    if store_status == "mismatch":
        return HubError(ErrorCode.CONTENT_MISMATCH, "content_hash is not the hash of this question's tool name and "
                        "input; reload the question and answer what it asks now", details)
    if answered_by == ABANDONED:
        return HubError(ErrorCode.QUESTION_ABANDONED, "nobody waits for this answer any more: the agent's hook is gone "
                        "(the hub restarted, the hook gave up, or the session ended), so the tool call was already "
                        "denied and approving it would run nothing", details)
    if answered_by == TIMEOUT:
        return HubError(ErrorCode.EXPIRED, "this question passed its deadline and was denied", details)
    return HubError(ErrorCode.ALREADY_ANSWERED, "this question was already decided; the first answer wins",
                    {**details, "answered_by": answered_by})
