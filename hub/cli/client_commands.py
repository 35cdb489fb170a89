"""`repowire peers | notify | trace`: talk to a running hub over its REST routes.

Human-readable output by default, `--json` for scripts. Exit codes: 0 done, 1 the hub said no
(the error code is printed), 2 the hub could not be reached or the command was misused.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import httpx
import orjson

from transports.discovery import HubAddress, find_hub, find_token

EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE = 0, 1, 2


class CommandFailed(Exception):
    def __init__(self, exit_code: int, message: str):
        super().__init__(message)
        self.exit_code = exit_code


def _client(address: HubAddress) -> httpx.Client:
    transport = httpx.HTTPTransport(uds=address.uds) if address.uds else None
    return httpx.Client(base_url=address.http_url, transport=transport, timeout=15.0)


def call(method: str, path: str, *, home: str | None = None, json: dict | None = None,
         params: dict | None = None) -> dict:
    address = find_hub(home)
    token = find_token(home)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with _client(address) as client:
            response = client.request(method, path, json=json, params=params, headers=headers)
    except httpx.TransportError as exc:
        raise CommandFailed(EXIT_UNREACHABLE, f"cannot reach the hub at {address.uds or address.http_url} "
                                              f"({exc.__class__.__name__}). Start it with `repowire serve`, "
                                              f"or set REPOWIRE_URL.") from exc
    try:
        body = response.json()
    except ValueError:
        raise CommandFailed(EXIT_REFUSED, f"the hub answered {response.status_code} without JSON") from None
    if response.status_code >= 400:
        err = body.get("error", {}) if isinstance(body, dict) else {}
        raise CommandFailed(EXIT_REFUSED, f"{err.get('code', response.status_code)}: {err.get('message', '')}")
    return body


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _emit(data: dict, as_json: bool, human: str) -> None:
    sys.stdout.write((orjson.dumps(data).decode() if as_json else human) + "\n")


def peers(args) -> int:
    params = {k: v for k, v in (("circle", args.circle), ("status", args.status)) if v}
    body = call("GET", "/peers", home=args.home, params=params)
    rows = [f"{'NAME':<24} {'CIRCLE':<16} {'STATUS':<8} {'PENDING':>7}  PEER ID"]
    rows += [f"{p['name']:<24} {p['circle']:<16} {p['status']:<8} {p['pending']:>7}  {p['peer_id']}"
             for p in body["peers"]]
    _emit(body, args.json, "\n".join(rows) if body["peers"] else "no peers yet")
    return EXIT_OK


def notify(args) -> int:
    payload = {"to": args.peer, "text": args.text}
    if args.idempotency_key:
        payload["idempotency_key"] = args.idempotency_key
    body = call("POST", "/messages", home=args.home, json=payload)
    _emit(body, args.json, f"{body['state']}  {body['message_id']}\n"
                           f"trace: repowire trace {body['message_id']}")
    return EXIT_OK


def trace(args) -> int:
    body = call("GET", f"/traces/{args.id}", home=args.home)
    lines = [f"{body['kind']} {body['trace_id']}  from {body.get('from') or '-'} to {body.get('to') or '-'}"]
    for stage in body["stages"]:
        extra = " ".join(f"{k}={v}" for k, v in stage.items() if k not in ("stage", "at", "node", "kind", "to"))
        lines.append(f"  {_when(stage['at'])}  {stage['stage']:<9} {stage['node']:<10} {extra}")
    _emit(body, args.json, "\n".join(lines))
    return EXIT_OK
