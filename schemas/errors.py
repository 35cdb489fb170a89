"""The one error-code table of the wire contract.

Every error the hub reports, on REST or on the WebSocket, carries one of these codes. Each code
fixes the HTTP status a REST route answers with and, where the error ends a connection, the
WebSocket close code. Clients may rely on codes; messages are for people and may change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_FRAME = "invalid_frame"
    INVALID_REQUEST = "invalid_request"
    FRAME_TOO_LARGE = "frame_too_large"
    BODY_TOO_LARGE = "body_too_large"
    TEXT_TOO_LONG = "text_too_long"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    HELLO_REQUIRED = "hello_required"
    ALREADY_WELCOMED = "already_welcomed"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    HOST_NOT_ALLOWED = "host_not_allowed"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    PEER_NOT_FOUND = "peer_not_found"
    AMBIGUOUS_PEER = "ambiguous_peer"
    NAME_TAKEN = "name_taken"
    NO_RECIPIENTS = "no_recipients"
    TRACE_NOT_FOUND = "trace_not_found"
    CONFLICT = "conflict"
    PEER_OFFLINE = "peer_offline"
    ASK_NOT_FOUND = "ask_not_found"
    ALREADY_CLOSED = "already_closed"
    ALREADY_ANSWERED = "already_answered"
    EXPIRED = "expired"
    QUESTION_ABANDONED = "question_abandoned"
    BAD_HTTP = "bad_http"
    NOT_A_QUESTION = "not_a_question"
    INVALID_OPTION = "invalid_option"
    TOO_MANY_RECIPIENTS = "too_many_recipients"
    TOO_MANY_PENDING_ASKS = "too_many_pending_asks"
    TOO_MANY_QUESTIONS = "too_many_questions"
    INBOX_FULL = "inbox_full"
    QUESTION_NOT_FOUND = "question_not_found"
    CONTENT_MISMATCH = "content_mismatch"
    POLICY_NOT_FOUND = "policy_not_found"
    TOO_MANY_POLICIES = "too_many_policies"
    PANE_NOT_FOUND = "pane_not_found"
    ALREADY_LINKED = "already_linked"
    NOT_LINKED = "not_linked"
    FINGERPRINT_CHANGED = "fingerprint_changed"
    BRIDGE_UNAVAILABLE = "bridge_unavailable"
    TRANSPORT_FAILED = "transport_failed"
    INVALID_CRON = "invalid_cron"
    INVALID_TIMEZONE = "invalid_timezone"
    SCHEDULE_IN_PAST = "schedule_in_past"
    SCHEDULE_NOT_FOUND = "schedule_not_found"
    SCHEDULE_FINISHED = "schedule_finished"
    TOO_MANY_SCHEDULES = "too_many_schedules"
    JOB_NOT_FOUND = "job_not_found"
    JOB_FINISHED = "job_finished"
    TOO_MANY_JOBS = "too_many_jobs"
    ATTACHMENT_NOT_FOUND = "attachment_not_found"
    ATTACHMENT_TOO_LARGE = "attachment_too_large"
    ATTACHMENT_QUOTA_EXCEEDED = "attachment_quota_exceeded"
    ATTACHMENT_UNAVAILABLE = "attachment_unavailable"
    LOGIN_LINK_INVALID = "login_link_invalid"
    SUBSCRIBE_REQUIRED = "subscribe_required"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    SLOW_CONSUMER = "slow_consumer"
    REPLACED = "replaced"
    PEER_DELETED = "peer_deleted"
    STORE_UNAVAILABLE = "store_unavailable"
    SHUTTING_DOWN = "shutting_down"
    REQUEST_TIMEOUT = "request_timeout"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    http_status: int
    close_code: int | None
    meaning: str


# close codes 4000-4999 are the application's own (RFC 6455 §7.4.2); 4xxx mirrors the HTTP status.
ERROR_TABLE: dict[ErrorCode, CodeInfo] = {
    ErrorCode.BAD_JSON: CodeInfo(400, None, "the frame or body is not valid JSON, nests deeper than 32 levels, or has an integer outside 64 bits"),
    ErrorCode.BAD_HTTP: CodeInfo(400, None, "the request is not valid HTTP/1.1 (a malformed request line or header)"),
    ErrorCode.UNKNOWN_TYPE: CodeInfo(400, None, "the frame's `type` is not one the hub knows"),
    ErrorCode.INVALID_FRAME: CodeInfo(422, None, "a field is missing, has the wrong type or an invalid value"),
    ErrorCode.INVALID_REQUEST: CodeInfo(422, None, "the request body or a query parameter is invalid"),
    ErrorCode.FRAME_TOO_LARGE: CodeInfo(413, None, "the frame is larger than the hub's frame limit"),
    ErrorCode.BODY_TOO_LARGE: CodeInfo(413, None, "the request body is larger than the hub's body limit"),
    ErrorCode.TEXT_TOO_LONG: CodeInfo(413, None, "the message text is longer than the hub's text limit"),
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: CodeInfo(415, None, "mutating routes take `Content-Type: application/json`"),
    ErrorCode.REQUEST_TIMEOUT: CodeInfo(408, None, "the request's headers, or the next part of its body, did not "
                                                   "arrive in time"),
    ErrorCode.HELLO_REQUIRED: CodeInfo(400, 4400, "the first frame on a connection must be `hello`"),
    ErrorCode.ALREADY_WELCOMED: CodeInfo(409, None, "this connection already said hello"),
    ErrorCode.UNAUTHORIZED: CodeInfo(401, 4401, "a valid hub token or peer token is required"),
    ErrorCode.FORBIDDEN: CodeInfo(403, 4403, "this identity may not do that"),
    ErrorCode.HOST_NOT_ALLOWED: CodeInfo(403, None, "the Host header is not on the hub's allow-list"),
    ErrorCode.ORIGIN_NOT_ALLOWED: CodeInfo(403, None, "the Origin header is not on the hub's allow-list"),
    ErrorCode.NOT_FOUND: CodeInfo(404, None, "no such route"),
    ErrorCode.METHOD_NOT_ALLOWED: CodeInfo(405, None, "the route does not take this method"),
    ErrorCode.PEER_NOT_FOUND: CodeInfo(404, None, "no peer has that id or name"),
    ErrorCode.AMBIGUOUS_PEER: CodeInfo(409, None, "several peers have that name; say `name@circle` or use the peer id"),
    ErrorCode.NAME_TAKEN: CodeInfo(409, 4409, "a live peer already has that name in that circle"),
    ErrorCode.NO_RECIPIENTS: CodeInfo(404, None, "a broadcast found nobody else in the circle"),
    ErrorCode.TRACE_NOT_FOUND: CodeInfo(404, None, "no trace with that id (unknown or past retention)"),
    ErrorCode.CONFLICT: CodeInfo(409, None, "the idempotency key was used before with a different body"),
    ErrorCode.PEER_OFFLINE: CodeInfo(409, None, "the peer is offline; ask with `queue_if_offline` to wait for it"),
    ErrorCode.ASK_NOT_FOUND: CodeInfo(404, None, "no ask with that correlation id"),
    ErrorCode.ALREADY_CLOSED: CodeInfo(409, None, "the ask was already acked or closed"),
    ErrorCode.ALREADY_ANSWERED: CodeInfo(409, None, "the question was already answered; the first answer wins"),
    ErrorCode.EXPIRED: CodeInfo(410, None, "the ask or question passed its deadline"),
    ErrorCode.QUESTION_ABANDONED: CodeInfo(410, None, "nobody waits for the question's answer any more (its hook is "
                                                      "gone); the tool call was denied where it ran"),
    ErrorCode.NOT_A_QUESTION: CodeInfo(409, None, "the ask carries no question to answer"),
    ErrorCode.INVALID_OPTION: CodeInfo(422, None, "the answer's option is not one the question offers"),
    ErrorCode.TOO_MANY_RECIPIENTS: CodeInfo(422, None, "an ask goes to at most the fan-out limit of peers"),
    ErrorCode.TOO_MANY_PENDING_ASKS: CodeInfo(429, None, "the asker has as many open asks as it may; wait for "
                                                         "replies or deadlines"),
    ErrorCode.TOO_MANY_QUESTIONS: CodeInfo(429, None, "the agent has as many tool-permission questions waiting "
                                                      "for a person as it may; the next waits until one is decided"),
    ErrorCode.INBOX_FULL: CodeInfo(507, None, "the recipient has as many messages waiting as its inbox may hold; "
                                              "nothing was queued for it"),
    ErrorCode.QUESTION_NOT_FOUND: CodeInfo(404, None, "no tool-permission question with that id"),
    ErrorCode.CONTENT_MISMATCH: CodeInfo(409, None, "the tool name and input differ from what the question was asked "
                                                    "about; an answer binds to what was shown"),
    ErrorCode.POLICY_NOT_FOUND: CodeInfo(404, None, "no policy rule with that id"),
    ErrorCode.TOO_MANY_POLICIES: CodeInfo(507, None, "the hub holds its most policy rules; delete some first"),
    ErrorCode.PANE_NOT_FOUND: CodeInfo(404, None, "no tmux pane with that id on the bridge's tmux server"),
    ErrorCode.ALREADY_LINKED: CodeInfo(409, None, "that pane is already linked to a peer; unlink it first"),
    ErrorCode.NOT_LINKED: CodeInfo(409, 4409, "the peer has no tmux pane linked to it"),
    ErrorCode.FINGERPRINT_CHANGED: CodeInfo(409, None, "the pane no longer runs what was linked (another process, "
                                                       "command or folder); nothing was typed into it"),
    ErrorCode.BRIDGE_UNAVAILABLE: CodeInfo(503, None, "no pane bridge for that tmux server is connected, or it "
                                                      "did not answer in time"),
    ErrorCode.TRANSPORT_FAILED: CodeInfo(502, None, "the pane transport did not come up (a link is rolled back); "
                                                    "the message says why"),
    ErrorCode.INVALID_CRON: CodeInfo(422, None, "the cron expression cannot be read (5 fields: minute hour "
                                                "day-of-month month day-of-week), or it never fires"),
    ErrorCode.INVALID_TIMEZONE: CodeInfo(422, None, "the time zone is not a known IANA name such as Europe/Berlin"),
    ErrorCode.SCHEDULE_IN_PAST: CodeInfo(422, None, "a one-time schedule's `at` must be in the future"),
    ErrorCode.SCHEDULE_NOT_FOUND: CodeInfo(404, None, "no schedule with that id"),
    ErrorCode.SCHEDULE_FINISHED: CodeInfo(409, None, "the schedule has fired for the last time; it cannot be "
                                                     "paused or resumed"),
    ErrorCode.TOO_MANY_SCHEDULES: CodeInfo(507, None, "the peer holds its most schedules; delete some first"),
    ErrorCode.JOB_NOT_FOUND: CodeInfo(404, None, "no job with that id (a work item, or a recurring job `cal-…`)"),
    ErrorCode.JOB_FINISHED: CodeInfo(409, None, "the job is over (succeeded, failed, cancelled, timed out or lost); "
                                                "there is nothing to cancel"),
    ErrorCode.TOO_MANY_JOBS: CodeInfo(507, None, "the peer has as many jobs queued, running or recurring as it may; "
                                                 "wait for some to end or cancel them"),
    ErrorCode.ATTACHMENT_NOT_FOUND: CodeInfo(404, None, "no attachment with that id that you may use (unknown, "
                                                        "expired, or uploaded by another peer)"),
    ErrorCode.ATTACHMENT_TOO_LARGE: CodeInfo(413, None, "the file is larger than the hub's per-file limit; nothing "
                                                        "was kept"),
    ErrorCode.ATTACHMENT_QUOTA_EXCEEDED: CodeInfo(507, None, "the upload would take the peer's or the hub's "
                                                             "attachments over their total; nothing was kept"),
    ErrorCode.ATTACHMENT_UNAVAILABLE: CodeInfo(503, None, "the attachment is on another hub node that did not "
                                                          "answer; try again when it is up"),
    ErrorCode.LOGIN_LINK_INVALID: CodeInfo(401, None, "the dashboard sign-in link is unknown, was already used, or "
                                                      "expired; `repowire dashboard` prints a new one"),
    ErrorCode.SUBSCRIBE_REQUIRED: CodeInfo(400, 4402, "the first frame on the dashboard socket must be `subscribe`"),
    ErrorCode.RATE_LIMITED: CodeInfo(429, None, "too many messages; slow down"),
    ErrorCode.TOO_MANY_CONNECTIONS: CodeInfo(503, 4503, "the hub is at its connection limit"),
    ErrorCode.SLOW_CONSUMER: CodeInfo(503, 4008, "the peer did not read its deliveries fast enough; they stay in its inbox"),
    ErrorCode.REPLACED: CodeInfo(409, 4009, "the same peer connected again; this older connection was closed"),
    ErrorCode.PEER_DELETED: CodeInfo(410, 4410, "the peer was deleted"),
    ErrorCode.STORE_UNAVAILABLE: CodeInfo(503, 1013, "the store did not answer; nothing was accepted"),
    ErrorCode.SHUTTING_DOWN: CodeInfo(503, 1001, "the hub is shutting down"),
    ErrorCode.INTERNAL: CodeInfo(500, 1011, "an unexpected error in the hub; it was logged"),
}
