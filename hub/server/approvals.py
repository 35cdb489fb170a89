"""REST routes for tool-permission questions, policies and the decision log.

`POST /questions/ask-blocking` holds the request open until the question is decided. If the
caller leaves first, the trace records `waiter_lost`; if no decision is recorded by the
deadline (the store is down), the answer is still `deny`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from starlette.requests import Request

from hub.core.errors import HubError
from hub.runtime.policies import PolicyService
from hub.runtime.questions import Opened, QuestionService, error_view
from hub.server.responses import JSON
from hub.server.rest import caller, client_left, int_param, read_body
from hub.server.services import services
from schemas.errors import ErrorCode
from schemas.rest import (
    AskBlockingRequest,
    DecisionList,
    DecisionView,
    EvaluateRequest,
    PolicyBody,
    PolicyDeleted,
    PolicyList,
    PresetChoice,
    QuestionAnswer,
    QuestionList,
)

GRACE_S = 2.0   # past the deadline, a decision the store never recorded is answered `deny`


def questions_of(request: Request) -> QuestionService:
    return services(request).questions


def policies_of(request: Request) -> PolicyService:
    return services(request).policies


async def ask_blocking(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, AskBlockingRequest)
    questions = questions_of(request)
    opened = await questions.open(who, body)
    decision = await _wait(request, questions, opened)
    return JSON(decision)


async def _wait(request: Request, questions: QuestionService, opened: Opened) -> DecisionView:
    if opened.decision.done():
        return opened.decision.result()
    left = asyncio.ensure_future(client_left(request))
    bound = max(opened.deadline - questions.hub.now_ms(), 0) / 1000 + GRACE_S
    try:
        waiting: set[asyncio.Future[Any]] = {opened.decision, left}
        await asyncio.wait(waiting, timeout=bound, return_when=asyncio.FIRST_COMPLETED)
    finally:
        left.cancel()
    if opened.decision.done() and not opened.decision.cancelled():
        return opened.decision.result()
    reason = "client_disconnected" if left.done() and not left.cancelled() else "no_decision_recorded"
    questions.waiter_lost(opened.correlation_id, opened.decision, reason)
    return error_view(opened.correlation_id, "no decision was recorded by the deadline (is the store up?)")


async def list_questions(request: Request) -> JSON:
    who = caller(request)
    limit = int_param(request, "limit", 100, 1, 1000)
    return JSON(QuestionList(questions=await questions_of(request).list_pending(who, limit)))


async def get_question(request: Request) -> JSON:
    who = caller(request)
    return JSON(await questions_of(request).get(who, request.path_params["question_id"]))


async def answer_question(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, QuestionAnswer)
    return JSON(await questions_of(request).answer(who, request.path_params["question_id"], decision=body.decision,
                                                   option_id=body.option_id, reason=body.reason,
                                                   expected_hash=body.content_hash, scope=body.scope,
                                                   prefix=body.prefix))


async def list_decisions(request: Request) -> JSON:
    caller(request)
    decision = request.query_params.get("decision")
    if decision is not None and decision not in ("allow", "deny", "ask"):
        raise HubError(ErrorCode.INVALID_REQUEST, "decision is allow, deny or ask", {"decision": decision})
    limit = int_param(request, "limit", 50, 1, 1000)
    return JSON(DecisionList(decisions=await questions_of(request).decisions(
        peer=request.query_params.get("peer") or None, decision=decision,
        tool=request.query_params.get("tool") or None, limit=limit)))


# ---- policies --------------------------------------------------------------------------------

async def list_policies(request: Request) -> JSON:
    caller(request)
    policies = policies_of(request)
    return JSON(PolicyList(policies=[policies.view(r) for r in await policies.list()],
                           preset=policies.preset_view(await policies.preset())))


async def choose_preset(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, PresetChoice)
    policies = policies_of(request)
    return JSON(policies.preset_view(await policies.choose_preset(who, body.name)))


async def create_policy(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, PolicyBody)
    policies = policies_of(request)
    return JSON(policies.view(await policies.create(who, msgspec.to_builtins(body))), status_code=201)


async def replace_policy(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, PolicyBody)
    policies = policies_of(request)
    return JSON(policies.view(await policies.replace(who, request.path_params["policy_id"],
                                                     msgspec.to_builtins(body))))


async def delete_policy(request: Request) -> JSON:
    who = caller(request)
    policy_id = request.path_params["policy_id"]
    await policies_of(request).delete(who, policy_id)
    return JSON(PolicyDeleted(deleted=policy_id))


async def evaluate_policy(request: Request) -> JSON:
    who = caller(request)
    body = await read_body(request, EvaluateRequest)
    return JSON(await policies_of(request).evaluate(who, body.tool_name, body.tool_input, body.cwd, body.peer))
