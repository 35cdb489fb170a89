"""The OpenAPI 3.1 document of the REST routes, generated from the schemas' structs.

The generated document is checked in at `schemas/generated/openapi.json`; a test fails when
the two drift. Regenerate with `python -m hub.server.openapi > schemas/generated/openapi.json`.
Descriptions are normalised (`schemas.normalise`), so the document served, the one checked in
and the one compared do not depend on how a msgspec release formats docstrings.
"""

from __future__ import annotations

import sys

import msgspec

from hub import __version__
from hub.core.peers import STATUSES
from hub.server.access import ROUTE_ACCESS
from schemas.errors import ERROR_TABLE
from schemas.frames import API_VERSION
from schemas.normalise import dump, normalised
from schemas.rest import (
    AckRequest,
    AnswerRequest,
    AskAccepted,
    AskBlockingRequest,
    AskGroup,
    AskRequest,
    AskView,
    AttachmentCreated,
    Closed,
    DashboardLink,
    DashboardSession,
    DecisionList,
    DecisionView,
    DoctorReport,
    ErrorEnvelope,
    EvaluateRequest,
    Evaluation,
    Health,
    InboxTaken,
    InboxTakeRequest,
    InboxWaitRequest,
    JobList,
    JobRequest,
    JobView,
    KeysRequest,
    KeysSent,
    Linked,
    LinkRequest,
    MessageAccepted,
    NodeList,
    NotifyRequest,
    OrphanList,
    PaneOutput,
    PeerCreated,
    PeerCreateRequest,
    PeerDeleted,
    PeerList,
    PeerView,
    PendingAsks,
    PolicyBody,
    PolicyDeleted,
    PolicyList,
    PolicyView,
    PresenceRequest,
    PresetChoice,
    PresetView,
    QuestionAnswer,
    QuestionList,
    QuestionView,
    RehookReport,
    RehookRequest,
    ScheduleCreated,
    ScheduleDeleted,
    ScheduleList,
    ScheduleRequest,
    ScheduleView,
    SessionJoined,
    SessionStartRequest,
    Trace,
    Unlinked,
    WaitRequest,
    Whoami,
)

_STRUCTS = [AttachmentCreated, AckRequest, AnswerRequest, AskAccepted, AskBlockingRequest, AskGroup, AskRequest, AskView, Closed,
            DecisionList, DecisionView, ErrorEnvelope, Evaluation, EvaluateRequest, Health, MessageAccepted,
            NotifyRequest, PeerDeleted, PeerList, PeerView, PendingAsks, PolicyBody, PolicyDeleted, PolicyList,
            PolicyView, PresetChoice, PresetView, QuestionAnswer, QuestionList, QuestionView, Trace, WaitRequest,
            DoctorReport, KeysRequest, KeysSent, LinkRequest, Linked, OrphanList, PaneOutput, RehookReport, RehookRequest, ScheduleCreated,
            ScheduleDeleted, ScheduleList, ScheduleRequest, ScheduleView, Unlinked, SessionStartRequest, SessionJoined,
            PresenceRequest, InboxTakeRequest, InboxTaken, DashboardLink, DashboardSession, PeerCreateRequest,
            PeerCreated, Whoami]


def _ref(struct: type) -> dict:
    return {"$ref": f"#/components/schemas/{struct.__name__}"}


def _json(struct: type, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(struct)}}}


def _errors(*statuses: int) -> dict:
    return {str(s): _json(ErrorEnvelope, "error; `error.code` is from the code table") for s in statuses}


def _body(struct: type) -> dict:
    return {"required": True, "content": {"application/json": {"schema": _ref(struct)}}}


def openapi_document() -> dict:
    """The document as served at /openapi.json and checked in, descriptions normalised; each
    operation says who may call it (`x-access`, from `hub.server.access`)."""
    document = normalised(_raw_document())
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            operation["x-access"] = ROUTE_ACCESS[(method.upper(), path)].value
    return document


def _raw_document() -> dict:
    _, components = msgspec.json.schema_components(_STRUCTS, ref_template="#/components/schemas/{name}")
    bearer: list[dict[str, list[str]]] = [{"bearer": []}]
    ref_param = {"name": "ref", "in": "path", "required": True, "schema": {"type": "string"},
                 "description": "a peer id, name or name@circle"}
    question_param = {"name": "question_id", "in": "path", "required": True, "schema": {"type": "string"},
                      "description": "the question's correlation id"}
    policy_param = {"name": "policy_id", "in": "path", "required": True, "schema": {"type": "string"}}
    schedule_param = {"name": "schedule_id", "in": "path", "required": True, "schema": {"type": "string"}}
    job_param = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"},
                 "description": "a work item's id, or a recurring job's (`cal-…`)"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "repowire hub", "version": __version__, "description": f"wire contract {API_VERSION}",
                 "x-error-codes": {code.value: {"status": info.http_status, "meaning": info.meaning}
                                   for code, info in ERROR_TABLE.items()}},
        "servers": [{"url": "http://127.0.0.1:8377"}],
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "the hub token or a peer token"}}},
        "paths": {
            "/health": {"get": {"summary": "Is the hub up, and what is it", "security": [],
                                "responses": {"200": _json(Health, "the hub's facts")}}},
            "/metrics": {"get": {
                "summary": "The hub's metrics in Prometheus's text format, labelled by node (person role only)",
                "security": bearer,
                "responses": {"200": {"description": "the exposition (text/plain)",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}},
                              **_errors(401, 403, 503)}}},
            "/nodes": {"get": {
                "summary": "The hub nodes of this store: where each answers, whether it is alive, its peers online "
                           "(person role only)", "security": bearer,
                "responses": {"200": _json(NodeList, "by name"), **_errors(401, 403, 503)}}},
            "/peers": {"get": {
                "summary": "List peers", "security": bearer,
                "parameters": [{"name": "circle", "in": "query", "schema": {"type": "string"}},
                               {"name": "status", "in": "query",
                                "schema": {"enum": list(STATUSES)}}],
                "responses": {"200": _json(PeerList, "peers sorted by circle and name"), **_errors(401, 422)}},
                "post": {
                    "summary": "Register an agent peer by name and get its token (a person only); an offline peer "
                               "of that name is taken back with a new token",
                    "security": bearer, "requestBody": _body(PeerCreateRequest),
                    "responses": {"201": _json(PeerCreated, "a new peer"),
                                  "200": _json(PeerCreated, "the offline peer of that name, with a new token"),
                                  **_errors(401, 403, 409, 413, 415, 422)}}},
            "/whoami": {"get": {
                "summary": "Who this credential acts as: the operator, or one peer", "security": bearer,
                "responses": {"200": _json(Whoami, "the operator, or the peer"), **_errors(401)}}},
            "/peers/{ref}": {
                "get": {"summary": "One peer", "security": bearer, "parameters": [ref_param],
                        "responses": {"200": _json(PeerView, "the peer"), **_errors(401, 404, 409)}},
                "delete": {"summary": "Delete a peer and its inbox", "security": bearer, "parameters": [ref_param],
                           "responses": {"200": _json(PeerDeleted, "deleted"), **_errors(401, 403, 404, 409)}}},
            "/peers/{ref}/output": {"get": {
                "summary": "What a linked peer's pane shows: screen and recent scrollback as text (traced)",
                "security": bearer,
                "parameters": [ref_param, {"name": "lines", "in": "query",
                                           "schema": {"type": "integer", "minimum": 1, "maximum": 2000}}],
                "responses": {"200": _json(PaneOutput, "the lines, oldest first"),
                              **_errors(401, 404, 409, 422, 502, 503)}}},
            "/peers/{ref}/keys": {"post": {
                "summary": "Send named keys from the allow-list to a linked peer's pane (person role only; traced)",
                "security": bearer, "parameters": [ref_param], "requestBody": _body(KeysRequest),
                "responses": {"200": _json(KeysSent, "sent"), **_errors(401, 403, 404, 409, 415, 422, 502, 503)}}},
            "/peers/{ref}/doctor": {"get": {
                "summary": "Read-only health report of a peer and its pane, with contradictions", "security": bearer,
                "parameters": [ref_param],
                "responses": {"200": _json(DoctorReport, "the report"), **_errors(401, 404, 409, 503)}}},
            "/peers/{ref}/rehook": {"post": {
                "summary": "Restart a dead pane transport (dry run unless apply; person role only)", "security": bearer,
                "parameters": [ref_param],
                "requestBody": {"required": False, "content": {"application/json": {"schema": _ref(RehookRequest)}}},
                "responses": {"200": _json(RehookReport, "the plan, and whether it was applied"),
                              **_errors(401, 403, 404, 409, 415, 422, 502, 503)}}},
            "/peers/{ref}/unlink": {"post": {
                "summary": "Stop typing into the peer's pane; it goes offline and keeps its id and inbox "
                           "(person role only)", "security": bearer, "parameters": [ref_param],
                "responses": {"200": _json(Unlinked, "unlinked"), **_errors(401, 403, 404, 409)}}},
            "/peers/{ref}/presence": {"post": {
                "summary": "Say a live peer (connected, or an agent session reading its inbox) is online (idle), busy or awaiting_input; `offline` ends its "
                           "session (the pane transport stops; link, id and inbox stay). The peer itself or a person",
                "security": bearer, "parameters": [ref_param], "requestBody": _body(PresenceRequest),
                "responses": {"200": _json(PeerView, "the peer now"), **_errors(401, 403, 404, 409, 415, 422)}}},
            "/peers/{ref}/inbox/take": {"post": {
                "summary": "Deliver queued messages in the answer, for a peer with no connection (each is confirmed "
                           "and traced `received`, reason `taken`). The peer itself or a person",
                "security": bearer, "parameters": [ref_param], "requestBody": _body(InboxTakeRequest),
                "responses": {"200": _json(InboxTaken, "the deliveries, oldest first, and how many remain"),
                              **_errors(401, 403, 404, 409, 415, 422, 503)}}},
            "/peers/{ref}/inbox/wait": {"post": {
                "summary": "Like inbox/take, but when nothing is queued wait up to timeout_s (at most 60) for the "
                           "first message; an empty list after that. The peer itself or a person",
                "security": bearer, "parameters": [ref_param], "requestBody": _body(InboxWaitRequest),
                "responses": {"200": _json(InboxTaken, "the deliveries (none if the wait ran out), and how many remain"),
                              **_errors(401, 403, 404, 409, 415, 422, 503)}}},
            "/sessions": {"post": {
                "summary": "An agent session began (its SessionStart hook): register it, link its pane or reuse "
                           "the pane's peer (hub token)", "security": bearer, "requestBody": _body(SessionStartRequest),
                "responses": {"200": _json(SessionJoined, "who the session is on the hub, and who else is online"),
                              **_errors(401, 403, 409, 415, 422, 502, 503)}}},
            "/panes/orphans": {"get": {
                "summary": "Panes on the bridges' tmux servers that no peer is linked to, with the agent detected",
                "security": bearer,
                "responses": {"200": _json(OrphanList, "unlinked panes"), **_errors(401, 422, 503)}}},
            "/panes/{pane_id}/link": {"post": {
                "summary": "Register a pane as a peer and bring its transport up; undone if it does not come up "
                           "(person role only)", "security": bearer,
                "parameters": [{"name": "pane_id", "in": "path", "required": True, "schema": {"type": "string"},
                                "description": "a tmux pane id: %12 (percent-encoded as %2512) or 12"}],
                "requestBody": _body(LinkRequest),
                "responses": {"201": _json(Linked, "linked; the transport is connected"),
                              **_errors(400, 401, 403, 404, 409, 415, 422, 502, 503)}}},
            "/messages": {"post": {
                "summary": "Notify a peer or a circle (durable, traced)", "security": bearer,
                "parameters": [{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(NotifyRequest)}}},
                "responses": {"202": _json(MessageAccepted, "written; delivered or queued"),
                              **_errors(400, 401, 404, 409, 413, 415, 422, 429, 503)}}},
            "/ask": {"post": {
                "summary": "Ask one or several peers (durable, with a deadline)", "security": bearer,
                "requestBody": _body(AskRequest),
                "responses": {"202": _json(AskAccepted, "written; delivered or queued"),
                              **_errors(400, 401, 404, 409, 413, 415, 422, 429, 503)}}},
            "/ack": {"post": {
                "summary": "Close an ask you were asked; with text, the asker gets a reply", "security": bearer,
                "requestBody": _body(AckRequest),
                "responses": {"200": _json(Closed, "closed; the notice is delivered or queued"),
                              **_errors(401, 403, 404, 409, 410, 413, 415, 422, 503)}}},
            "/answer": {"post": {
                "summary": "Answer an ask's structured question (the first answer wins)", "security": bearer,
                "requestBody": _body(AnswerRequest),
                "responses": {"200": _json(Closed, "answered"), **_errors(401, 403, 404, 409, 410, 415, 422, 503)}}},
            "/asks/pending": {"get": {
                "summary": "Open asks of a peer, oldest first", "security": bearer,
                "parameters": [{"name": "peer", "in": "query", "schema": {"type": "string"}},
                               {"name": "direction", "in": "query", "schema": {"enum": ["inbound", "outbound", "both"]}},
                               {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
                               {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
                "responses": {"200": _json(PendingAsks, "a page of asks"), **_errors(401, 403, 404, 422)}}},
            "/asks/{correlation_id}": {"get": {
                "summary": "One ask (or an ask group's aggregate view)", "security": bearer,
                "parameters": [{"name": "correlation_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the ask, or the group", "content": {"application/json": {
                    "schema": {"oneOf": [_ref(AskView), _ref(AskGroup)]}}}}, **_errors(401, 403, 404)}}},
            "/asks/{correlation_id}/wait": {"post": {
                "summary": "Long-poll until the ask closes (asker only, at most 60 s)", "security": bearer,
                "parameters": [{"name": "correlation_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {"required": False, "content": {"application/json": {"schema": _ref(WaitRequest)}}},
                "responses": {"200": _json(AskView, "the ask, closed or still pending"), **_errors(401, 403, 404, 422)}}},
            "/questions/ask-blocking": {"post": {
                "summary": "Ask whether a tool call may run; held open until a person or a policy decides, or the "
                           "deadline decides deny. The same tool_use_id asked again joins the first question.",
                "security": bearer, "requestBody": _body(AskBlockingRequest),
                "responses": {"200": _json(DecisionView, "the decision"),
                              **_errors(400, 401, 404, 409, 413, 415, 422, 503)}}},
            "/questions": {"get": {
                "summary": "Pending tool-permission questions, soonest deadline first", "security": bearer,
                "parameters": [{"name": "limit", "in": "query",
                                "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                "responses": {"200": _json(QuestionList, "pending questions"), **_errors(401, 422)}}},
            "/questions/{question_id}": {"get": {
                "summary": "One tool-permission question, pending or decided", "security": bearer,
                "parameters": [question_param],
                "responses": {"200": _json(QuestionView, "the question"), **_errors(401, 404)}}},
            "/questions/{question_id}/answer": {"post": {
                "summary": "Allow or deny (person role only; the first answer wins)", "security": bearer,
                "parameters": [question_param], "requestBody": _body(QuestionAnswer),
                "responses": {"200": _json(DecisionView, "decided"), **_errors(401, 403, 404, 409, 410, 415, 422, 503)}}},
            "/decisions": {"get": {
                "summary": "The audit log of decisions, newest first", "security": bearer,
                "parameters": [{"name": "peer", "in": "query", "schema": {"type": "string"}},
                               {"name": "decision", "in": "query", "schema": {"enum": ["allow", "deny", "ask"]}},
                               {"name": "tool", "in": "query", "schema": {"type": "string"},
                                "description": "only decisions about this tool"},
                               {"name": "limit", "in": "query",
                                "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                "responses": {"200": _json(DecisionList, "decisions"), **_errors(401, 422)}}},
            "/policies": {
                "get": {"summary": "Policy rules in the order they are tried, then the approval preset's",
                        "security": bearer,
                        "responses": {"200": _json(PolicyList, "rules, highest priority first"), **_errors(401)}},
                "post": {"summary": "Add a rule (person role only)", "security": bearer, "requestBody": _body(PolicyBody),
                         "responses": {"201": _json(PolicyView, "the stored rule"),
                                       **_errors(400, 401, 403, 413, 415, 422, 503, 507)}}},
            "/policies/{policy_id}": {
                "put": {"summary": "Replace a rule (person role only)", "security": bearer,
                        "parameters": [policy_param], "requestBody": _body(PolicyBody),
                        "responses": {"200": _json(PolicyView, "the stored rule"),
                                      **_errors(400, 401, 403, 404, 415, 422, 503)}},
                "delete": {"summary": "Delete a rule (person role only)", "security": bearer,
                           "parameters": [policy_param],
                           "responses": {"200": _json(PolicyDeleted, "deleted"), **_errors(401, 403, 404, 503)}}},
            "/policies/preset": {"put": {
                "summary": "Choose the approval preset: what agents may do without asking a person (person role only)",
                "security": bearer, "requestBody": _body(PresetChoice),
                "responses": {"200": _json(PresetView, "the preset now in force"),
                              **_errors(400, 401, 403, 415, 422, 503)}}},
            "/policies/evaluate": {"post": {
                "summary": "What the policies would decide for a tool call, and which rule matched; asks nobody",
                "security": bearer, "requestBody": _body(EvaluateRequest),
                "responses": {"200": _json(Evaluation, "the action and the rule"), **_errors(400, 401, 404, 415, 422)}}},
            "/schedules": {
                "post": {"summary": "Schedule a notify or an ask: once (`at`) or recurring (`cron`, in `timezone`)",
                         "security": bearer, "requestBody": _body(ScheduleRequest),
                         "responses": {"201": _json(ScheduleCreated, "stored; `next_fire_at` is ISO 8601 UTC"),
                                       **_errors(400, 401, 404, 409, 413, 415, 422, 503, 507)}},
                "get": {"summary": "Your schedules (a person sees everyone's, or one peer's with `peer`)",
                        "security": bearer,
                        "parameters": [{"name": "peer", "in": "query", "schema": {"type": "string"},
                                        "description": "whose schedules: a peer id, name, or `operator`"}],
                        "responses": {"200": _json(ScheduleList, "oldest first"), **_errors(401, 403, 404, 503)}}},
            "/schedules/{schedule_id}": {
                "get": {"summary": "One schedule with its fire history (the last 100 fires and their trace ids)",
                        "security": bearer, "parameters": [schedule_param],
                        "responses": {"200": _json(ScheduleView, "the schedule"), **_errors(401, 403, 404, 503)}},
                "delete": {"summary": "Delete a schedule and its history", "security": bearer,
                           "parameters": [schedule_param],
                           "responses": {"200": _json(ScheduleDeleted, "deleted"), **_errors(401, 403, 404, 503)}}},
            "/schedules/{schedule_id}/pause": {"post": {
                "summary": "Stop a schedule firing until it is resumed", "security": bearer,
                "parameters": [schedule_param],
                "responses": {"200": _json(ScheduleView, "paused"), **_errors(401, 403, 404, 409, 503)}}},
            "/schedules/{schedule_id}/resume": {"post": {
                "summary": "Fire again from the next occurrence (occurrences while paused are skipped)",
                "security": bearer, "parameters": [schedule_param],
                "responses": {"200": _json(ScheduleView, "active"), **_errors(401, 403, 404, 409, 503)}}},
            "/jobs": {
                "post": {"summary": "Make a job: for a peer (an ask) or a backend in a folder; now, at `at`, or on "
                                    "`cron` (recurring)", "security": bearer, "requestBody": _body(JobRequest),
                         "responses": {"201": _json(JobView, "stored, with its id and state (`queued`; a recurring "
                                                            "job `active`)"),
                                       **_errors(400, 401, 403, 404, 413, 415, 422, 503, 507)}},
                "get": {"summary": "Your jobs, newest first: `{work, recurring}` (a person sees everyone's)",
                        "security": bearer,
                        "parameters": [{"name": "view", "in": "query", "schema": {"type": "string",
                                                                                   "enum": ["full", "summary"]},
                                        "description": "`summary` leaves out prompts, requests, provenance, runner "
                                                       "state, progress and traces"},
                                       {"name": "peer", "in": "query", "schema": {"type": "string"},
                                        "description": "whose jobs: a peer id, name, or `operator`"},
                                       {"name": "limit", "in": "query",
                                        "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}],
                        "responses": {"200": _json(JobList, "newest first"), **_errors(401, 403, 404, 422, 503)}}},
            "/jobs/{job_id}/status": {"get": {
                "summary": "One job in full: state, result, runner, progress and trace (a recurring job: its fires)",
                "security": bearer, "parameters": [job_param],
                "responses": {"200": _json(JobView, "the job"), **_errors(401, 403, 404, 503)}}},
            "/jobs/{job_id}/cancel": {"post": {
                "summary": "Cancel a queued or running job (its executor's process group is ended) or a recurring "
                           "one (and its running fire)", "security": bearer, "parameters": [job_param],
                "responses": {"200": _json(JobView, "cancelled"), **_errors(401, 403, 404, 409, 503)}}},
            "/attachments": {"post": {
                "summary": "Upload a file (multipart/form-data, one part with a filename); send its id with a message",
                "security": bearer,
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}}}}}},
                "responses": {"201": _json(AttachmentCreated, "stored"), **_errors(401, 413, 415, 422, 503, 507)}}},
            "/attachments/{attachment_id}": {"get": {
                "summary": "Download an attachment (uploader, peers sent a message carrying it, people)",
                "security": bearer,
                "parameters": [{"name": "attachment_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the file, as a download (Content-Disposition: attachment, "
                                                     "nosniff, a sandboxing CSP); X-Repowire-Sha256 is its hash",
                                      "content": {"application/octet-stream": {"schema": {
                                          "type": "string", "format": "binary"}}}},
                              **_errors(401, 403, 404, 503)}}},
            "/dashboard": {"get": {
                "summary": "The browser dashboard (static page; sign in with a one-time link)", "security": [],
                "responses": {"200": {"description": "the page", "content": {"text/html": {}}}}}},
            "/dashboard/links": {"post": {
                "summary": "A one-time sign-in link for the dashboard (hub token only)", "security": bearer,
                "responses": {"201": _json(DashboardLink, "the link; it works once, within expires_in_s"),
                              **_errors(401, 403, 503)}}},
            "/dashboard/login": {"get": {
                "summary": "Open a one-time link: sets the session cookie (HttpOnly, SameSite=Strict) and "
                           "sends the page its key in the URL fragment; "
                           "redirects to /dashboard", "security": [],
                "parameters": [{"name": "code", "in": "query", "required": True, "schema": {"type": "string"}}],
                "responses": {"303": {"description": "signed in; the cookie is set"}, **_errors(401, 503)}}},
            "/dashboard/session": {"get": {
                "summary": "Is this browser signed in (session cookie and the page's key in `X-Repowire-Dashboard`)",
                "security": [], "responses": {"200": _json(DashboardSession, "signed in"), **_errors(401)}}},
            "/dashboard/logout": {"post": {
                "summary": "End this browser's session", "security": [],
                "responses": {"204": {"description": "signed out; the cookie is cleared"}}}},
            "/traces/{trace_id}": {"get": {
                "summary": "A message's delivery trace", "security": bearer,
                "parameters": [{"name": "trace_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json(Trace, "stages in order"), **_errors(401, 404)}}},
        },
    }


if __name__ == "__main__":
    sys.stdout.write(dump(openapi_document()).decode())
