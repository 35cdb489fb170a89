"""`repowire peers | notify | ask | ack | answer | asks | trace`: talk to a running hub over its REST routes.

Human-readable output by default, `--json` for scripts. Exit codes: 0 done, 1 the hub said no
(the error code is printed), 2 the hub could not be reached or the command was misused.
"""

from __future__ import annotations

import contextlib
import os
import sys
import webbrowser
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import orjson

from hub.cli.failures import EXIT_EXPIRED, EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, CommandFailed
from schemas.visible import neutralise, quoted
from transports.discovery import HubAddress, find_hub
from transports.identity import NotOnHub, resolve


def _client(address: HubAddress) -> httpx.Client:
    transport = httpx.HTTPTransport(uds=address.uds) if address.uds else None
    return httpx.Client(base_url=address.http_url, transport=transport, timeout=15.0)


@contextlib.contextmanager
def hub_session(home: str | None) -> Iterator[httpx.Client]:
    """An HTTP client for the hub found from `home` (or REPOWIRE_URL), carrying the credential
    transports.identity picks (inside an agent session: the agent's own); a hub that cannot be reached becomes a CommandFailed that says how to start one."""
    address = find_hub(home)
    try:
        token = resolve(home).token
    except NotOnHub as exc:
        raise CommandFailed(EXIT_USAGE, f"{exc}.") from None
    with _client(address) as client:
        if token:
            client.headers["Authorization"] = f"Bearer {token}"
        try:
            yield client
        except httpx.TransportError as exc:
            raise CommandFailed(EXIT_UNREACHABLE, f"cannot reach the hub at {address.uds or address.http_url} "
                                                  f"({exc.__class__.__name__}). Start it with `repowire serve`, "
                                                  f"or set REPOWIRE_URL.") from exc


def refusal(response: httpx.Response) -> CommandFailed:
    """What the hub said no with, as `code: message`."""
    try:
        body = response.json()
    except ValueError:
        return CommandFailed(EXIT_REFUSED, f"the hub answered {response.status_code} without JSON")
    err = body.get("error", {}) if isinstance(body, dict) else {}
    return CommandFailed(EXIT_REFUSED, f"{err.get('code', response.status_code)}: {err.get('message', '')}")


def call(method: str, path: str, *, home: str | None = None, json: dict | None = None,
         params: dict | None = None, files: dict | None = None) -> dict:
    with hub_session(home) as client:
        response = client.request(method, path, json=json, params=params, files=files)
    if response.status_code >= 400:
        raise refusal(response)
    try:
        return response.json()
    except ValueError:
        raise CommandFailed(EXIT_REFUSED, f"the hub answered {response.status_code} without JSON") from None


def attach(args) -> dict:
    """Upload each `--attach FILE` first; the message then carries their ids."""
    ids = [upload(path, args.home)["id"] for path in getattr(args, "attach", None) or []]
    return {"attachments": ids} if ids else {}


def upload(path: str, home: str | None) -> dict:
    try:
        with open(path, "rb") as file:
            return call("POST", "/attachments", home=home, files={"file": (os.path.basename(path), file)})
    except OSError as exc:
        raise CommandFailed(EXIT_USAGE, f"cannot read {path}: {exc.strerror}") from None


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def emit(data: dict, as_json: bool, human: str) -> None:
    sys.stdout.write((orjson.dumps(data).decode() if as_json else human) + "\n")


def peers(args) -> int:
    params = {k: v for k, v in (("circle", args.circle), ("status", args.status)) if v}
    body = call("GET", "/peers", home=args.home, params=params)
    rows = [f"{'NAME':<24} {'CIRCLE':<16} {'STATUS':<8} {'PENDING':>7}  PEER ID"]
    rows += [f"{p['name']:<24} {p['circle']:<16} {p['status']:<8} {p['pending']:>7}  {p['peer_id']}"
             for p in body["peers"]]
    emit(body, args.json, "\n".join(rows) if body["peers"] else "no peers yet")
    return EXIT_OK


def notify(args) -> int:
    payload = {"to": args.peer, "text": args.text, **attach(args)}
    if args.idempotency_key:
        payload["idempotency_key"] = args.idempotency_key
    body = call("POST", "/messages", home=args.home, json=payload)
    if args.quiet and not args.json:
        sys.stdout.write(body["message_id"] + "\n")
        return EXIT_OK
    emit(body, args.json, f"{body['state']}  {body['message_id']}\n"
                           f"trace: repowire trace {body['message_id']}")
    return EXIT_OK


def trace(args) -> int:
    body = call("GET", f"/traces/{args.id}", home=args.home)
    lines = [f"{body['kind']} {body['trace_id']}  from {body.get('from') or '-'} to {body.get('to') or '-'}"]
    for stage in body["stages"]:
        extra = " ".join(f"{k}={v}" for k, v in stage.items() if k not in ("stage", "at", "node", "kind", "to"))
        lines.append(f"  {_when(stage['at'])}  {stage['stage']:<9} {stage['node']:<10} {extra}")
    emit(body, args.json, "\n".join(lines))
    return EXIT_OK


def dashboard(args) -> int:
    body = call("POST", "/dashboard/links", home=args.home)
    emit(body, args.json, f"Open this link to sign in to the dashboard (it works once, within "
                          f"{body['expires_in_s'] // 60} minutes):\n  {body['url']}")
    if args.open:
        webbrowser.open(body["url"])
    return EXIT_OK


def ask(args) -> int:
    payload: dict = {"to": args.peer, "text": args.text, **attach(args)}
    if args.timeout is not None:
        payload["timeout_s"] = args.timeout
    if args.queue:
        payload["queue_if_offline"] = True
    if args.choice:
        options = [{"id": c.partition(":")[0], "title": c.partition(":")[2] or c.partition(":")[0]} for c in args.choice]
        payload["question"] = {"kind": "choice", "prompt": args.text, "options": options}
    body = call("POST", "/ask", home=args.home, json=payload)
    if not args.wait and args.quiet and not args.json:
        sys.stdout.write(body["correlation_id"] + "\n")
        return EXIT_OK
    if not args.wait:
        emit(body, args.json, f"{body['state']}  {body['correlation_id']}\n"
                               f"wait: repowire asks --direction outbound   trace: repowire trace {body['correlation_id']}")
        return EXIT_OK
    view = _wait_until_closed(args.home, body["correlation_id"], body["deadline"])
    result = view.get("result") or {}
    human = {"replied": f"{view['to']['name']} replied: {quoted(str(result.get('text') or ''))}",
             "acked": f"{view['to']['name']} acked",
             "answered": f"{view['to']['name']} answered: "
                         + " ".join(quoted(str(result[k])) for k in ("option_id", "text", "outcome") if result.get(k)),
             "expired": "no answer before the deadline"}.get(view["state"], view["state"])
    emit(view, args.json, human)
    return EXIT_EXPIRED if view["state"] == "expired" else EXIT_OK


def _wait_until_closed(home: str | None, correlation_id: str, deadline_ms: int) -> dict:
    """Long-poll in bounded rounds until the ask closes; the hub closes it at its deadline."""
    rounds = int(max(0, deadline_ms / 1000 - datetime.now(UTC).timestamp()) // 30) + 3
    view: dict = {}
    for _ in range(rounds):
        view = call("POST", f"/asks/{correlation_id}/wait", home=home, json={"timeout_s": 30})
        if view["state"] != "pending":
            return view
    return view


def ack(args) -> int:
    payload = {"correlation_id": args.id, **attach(args)}
    if args.text is not None:
        payload["text"] = args.text
    body = call("POST", "/ack", home=args.home, json=payload)
    emit(body, args.json, f"{body['ask_state']}  reply {body['state']}")
    return EXIT_OK


def answer(args) -> int:
    payload = {"correlation_id": args.id}
    for key in ("option", "text", "outcome"):
        value = getattr(args, key)
        if value is not None:
            payload["option_id" if key == "option" else key] = value
    body = call("POST", "/answer", home=args.home, json=payload)
    emit(body, args.json, f"answered  {body['state']}")
    return EXIT_OK


def asks(args) -> int:
    params = {"direction": args.direction}
    if args.peer:
        params["peer"] = args.peer
    body = call("GET", "/asks/pending", home=args.home, params=params)
    rows = [f"{'CORRELATION ID':<32}  {'DIR':<8} {'FROM':<16} {'TO':<16} {'AGE':>6}  TEXT"]
    for a in body["asks"]:
        text = neutralise(a["text"])
        cut = f"{text[:60]}… [+{len(text) - 60} more: repowire asks --json]" if len(text) > 60 else text
        rows.append(f"{a['correlation_id']}  {a['direction']:<8} {a['from']['name']:<16} {a['to']['name']:<16} "
                    f"{a['age_ms'] // 1000:>5}s  {cut}")
    emit(body, args.json, "\n".join(rows) if body["asks"] else "no pending asks")
    return EXIT_OK
