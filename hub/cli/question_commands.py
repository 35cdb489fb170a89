"""`repowire questions | approve | deny | policies | policy`: a person at a terminal answers
tool-permission questions and manages policy rules, over the hub's REST routes.

Answers carry the question's content hash, so an approval is always for the tool call that
was shown. Everything an agent wrote is shown through `neutralise`: control characters, and
characters that would hide or reorder text, appear as visible markers, never raw; a summary cut
to fit a row says so. `questions show ID` prints the whole input, and `approve` prints it and
asks for confirmation unless given `--yes`. Exit codes as for every client command: 0 done, 1
the hub said no, 2 unreachable or misused.
"""

from __future__ import annotations

import sys
import time

import orjson
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect, unix_connect
from websockets.typing import Subprotocol

from hub.cli.client_commands import call, emit
from hub.cli.failures import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, CommandFailed
from schemas.dashboard import SOCKET_PROTOCOL
from schemas.visible import neutralise
from transports.discovery import find_hub
from transports.identity import NotOnHub, resolve

SUMMARY_WIDTH = 70


def _summary(tool_input: dict, question_id: str = "", width: int = SUMMARY_WIDTH) -> str:
    """One neutralised line; when cut, it says how much is missing and how to see it all."""
    value = tool_input.get("command") or tool_input.get("file_path") or tool_input.get("url")
    text = neutralise(str(value) if isinstance(value, str) else orjson.dumps(tool_input).decode())
    if len(text) <= width:
        return text
    hidden = len(text) - width
    return f"{text[:width]}… [+{hidden} more: repowire questions show {question_id}]"


def _lines_of(value: object, indent: str = "  ") -> list[str]:
    """A tool input as lines a person can read whole: each string line by line, every
    character visible (markers for controls and invisible characters)."""
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) or (isinstance(item, str) and ("\n" in item or "\r" in item)):
                out.append(f"{indent}{neutralise(str(key))}:")
                out += _lines_of(item, indent + "  ")
            else:
                out.append(f"{indent}{neutralise(str(key))}: {_scalar(item)}")
        return out
    if isinstance(value, list):
        out = []
        for item in value:
            out += [f"{indent}-", *_lines_of(item, indent + "  ")]
        return out
    if isinstance(value, str):
        return [f"{indent}| {neutralise(line)}" for line in value.replace("\r\n", "\n").split("\n")]
    return [f"{indent}{_scalar(value)}"]


def _scalar(item: object) -> str:
    return neutralise(item) if isinstance(item, str) else orjson.dumps(item).decode()


def full_question(question: dict) -> str:
    who = question.get("peer") or question["asker"]
    lines = [f"question {question['correlation_id']}  ({question['state']})",
             f"agent    {neutralise(who['name'])}@{neutralise(who['circle'])}"]
    if question.get("kind") == "choice":
        lines.append(f"asks     {neutralise(question.get('title') or '')}")
        if question.get("prompt"):
            lines += [f"  | {neutralise(line)}" for line in question["prompt"].split("\n")]
        lines += [f"option   {neutralise(o['id'])}: {neutralise(o['title'])}"
                  f"{'  (the default on timeout)' if o['id'] == question.get('default') else ''}"
                  for o in question["options"]]
        return "\n".join(lines)
    lines.append(f"tool     {neutralise(question['tool_name'])}")
    if question.get("cwd"):
        lines.append(f"cwd      {neutralise(question['cwd'])}")
    if question.get("prompt"):
        lines.append(f"prompt   {neutralise(question['prompt'])}")
    lines.append("input")
    lines += _lines_of(question["tool_input"]) or ["  (empty)"]
    return "\n".join(lines)


def _row(q: dict, now: float) -> str:
    who = neutralise((q.get("peer") or q["asker"])["name"])
    what = (f"? {neutralise(q.get('title') or '')}" if q.get("kind") == "choice"
            else _summary(q["tool_input"], q["correlation_id"]))
    tool = neutralise(q.get("tool_name") or "(question)")[:12]
    return f"{q['correlation_id']}  {who:<16} {tool:<12} {max(0, int((q['deadline'] - now) / 1000)):>4}s  {what}"


def follow(args) -> int:
    """Watch for questions as they open and are decided, until interrupted. While it runs, a
    person can be reached: questions wait for an answer instead of taking the fallback."""
    address = find_hub(args.home)
    try:
        token = resolve(args.home).token
    except NotOnHub as exc:
        raise CommandFailed(EXIT_USAGE, f"{exc}.") from None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        if address.uds:
            socket = unix_connect(address.uds, uri="ws://localhost/dashboard/ws", additional_headers=headers,
                                  subprotocols=[Subprotocol(SOCKET_PROTOCOL)], open_timeout=10)
        else:
            socket = connect(address.http_url.replace("http", "ws", 1) + "/dashboard/ws", additional_headers=headers,
                             subprotocols=[Subprotocol(SOCKET_PROTOCOL)], open_timeout=10)
    except (OSError, InvalidHandshake) as exc:
        raise CommandFailed(EXIT_UNREACHABLE, f"cannot reach the hub at {address.uds or address.http_url} "
                                              f"({exc.__class__.__name__}). Start it with `repowire serve`.") from None
    with socket:
        socket.send(orjson.dumps({"type": "subscribe", "backlog": 0}).decode())
        try:
            return _follow_events(socket, args.json, args.home)
        except ConnectionClosed as exc:
            reason = exc.rcvd.reason if exc.rcvd else "the connection closed"
            raise CommandFailed(EXIT_REFUSED, f"the hub ended the watch: {reason}") from None
        except KeyboardInterrupt:
            return EXIT_OK


def _follow_events(socket, as_json: bool, home: str | None) -> int:
    """The questions waiting now, then each one as it opens or is decided (subscribed first,
    so none falls between the two)."""
    shown = set()
    for q in sorted(call("GET", "/questions", home=home)["questions"], key=lambda q: q["created_at"]):
        shown.add(q["correlation_id"])
        print(orjson.dumps({"kind": "question", **q}).decode() if as_json else _row(q, time.time() * 1000), flush=True)
    print("watching for questions (Ctrl-C to stop); answer with repowire approve|deny ID", file=sys.stderr, flush=True)
    for raw in socket:
        frame = orjson.loads(raw)
        if frame.get("type") == "error":
            raise CommandFailed(EXIT_REFUSED, f"{frame.get('code')}: {frame.get('message')}")
        if frame.get("type") != "event" or frame.get("kind") not in ("question", "question_decided"):
            continue
        data = frame["data"]
        if frame["kind"] == "question":
            if data["correlation_id"] in shown:
                continue
            shown.add(data["correlation_id"])
        if as_json:
            print(orjson.dumps({"kind": frame["kind"], **data}).decode(), flush=True)
        elif frame["kind"] == "question":
            print(_row(data, time.time() * 1000), flush=True)
        else:
            said = data.get("decision") or (f"option {data['option_id']}" if data.get("option_id") else "no answer")
            print(f"{data['correlation_id']}  decided: {said} ({data['answered_by']})", flush=True)
    return EXIT_OK


def questions(args) -> int:
    if getattr(args, "follow", False):
        return follow(args)
    body = call("GET", "/questions", home=args.home)
    now = time.time() * 1000
    rows = [f"{'ID':<32}  {'PEER':<16} {'TOOL':<12} {'LEFT':>5}  WHAT"]
    rows += [_row(q, now) for q in sorted(body["questions"], key=lambda q: -q["created_at"])]
    human = "\n".join(rows) + "\n\nrepowire questions show <id> | repowire approve <id> | repowire deny <id> " \
                               "--reason ..." if body["questions"] else "no questions waiting"
    emit(body, args.json, human)
    return EXIT_OK


def show_question(args) -> int:
    question = call("GET", f"/questions/{args.id}", home=args.home)
    emit(question, args.json, full_question(question))
    return EXIT_OK


def _confirmed(question: dict) -> bool:
    """The person saw the whole call and said yes at the terminal."""
    if not sys.stdin.isatty():
        raise CommandFailed(EXIT_USAGE, "approve shows the whole tool call and asks you to confirm; with no "
                                        "terminal to ask at, add --yes (after `repowire questions show ID`)")
    print(full_question(question))
    answer = input("Allow this tool call? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _pending(question_id: str, home: str | None) -> dict:
    question = call("GET", f"/questions/{question_id}", home=home)
    if question["state"] == "abandoned":
        raise CommandFailed(EXIT_REFUSED, "question_abandoned: nobody waits for this answer any more: the agent's hook "
                                          "is gone, so its tool call was already denied and deciding it would change "
                                          f"nothing ({neutralise(question.get('reason') or '')})")
    if question["state"] != "pending":
        said = question.get("decision") or question.get("option_id") or "no answer"
        raise CommandFailed(EXIT_REFUSED, f"already decided: {said} by {question.get('answered_by')} "
                                          f"({neutralise(question.get('reason') or '')})")
    return question


def _scope(args) -> dict:
    """`--for-session`: this exact call again, for the rest of the agent's session; `--always
    [PREFIX]`: this tool (a Bash command starting with PREFIX) for this agent from now on."""
    if getattr(args, "for_session", False) and getattr(args, "always", None) is not None:
        raise CommandFailed(EXIT_USAGE, "choose one of --for-session and --always")
    if getattr(args, "for_session", False):
        return {"scope": "session"}
    if getattr(args, "always", None) is not None:
        return {"scope": "always", **({"prefix": args.always} if args.always else {})}
    return {}


def _decide(args, decision: str) -> int:
    question = _pending(args.id, args.home)
    if question.get("kind") == "choice":
        raise CommandFailed(EXIT_USAGE, "this is a plain question, not a tool call: answer it with "
                                        f"`repowire questions answer {args.id} OPTION` (options: "
                                        f"{', '.join(o['id'] for o in question['options'])})")
    scope = _scope(args) if decision == "allow" else {}
    if decision == "allow" and not args.yes and not _confirmed(question):
        print("not approved; the question is still waiting")
        return EXIT_REFUSED
    payload = {"decision": decision, "content_hash": question["content_hash"], **scope}
    if args.reason:
        payload["reason"] = args.reason
    body = call("POST", f"/questions/{args.id}/answer", home=args.home, json=payload)
    lasting = {"session": " (and again for the rest of this session)",
               "always": " (and from now on: policy " + str(body.get("policy_id")) + ")"}.get(str(body.get("scope")), "")
    emit(body, args.json, f"{body['decision']}  {neutralise(question['tool_name'])}: "
                          f"{_summary(question['tool_input'], question['correlation_id'])}{lasting}")
    return EXIT_OK


def approve(args) -> int:
    return _decide(args, "allow")


def deny(args) -> int:
    return _decide(args, "deny")


def answer_question(args) -> int:
    """A plain question: choose one of its options."""
    question = _pending(args.id, args.home)
    if question.get("kind") != "choice":
        raise CommandFailed(EXIT_USAGE, f"this is a tool call: use `repowire approve {args.id}` or `repowire deny "
                                        f"{args.id}`")
    payload = {"option_id": args.option, "content_hash": question["content_hash"]}
    if args.reason:
        payload["reason"] = args.reason
    body = call("POST", f"/questions/{args.id}/answer", home=args.home, json=payload)
    emit(body, args.json, f"answered {neutralise(question.get('title') or '')}: {body.get('option_id')}")
    return EXIT_OK
