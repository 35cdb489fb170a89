"""`repowire status | whoami | peers add | inbox`: where the hub is, who you are on it, how a
peer gets its token, and how a peer without a socket reads its messages.

`peers add` prints the new peer's token alone on standard output (like `kubectl create token`),
so `BOB=$(repowire peers add bob)` keeps it; `REPOWIRE_TOKEN=$BOB repowire …` then acts as bob.
"""

from __future__ import annotations

import sys

from hub.cli.client_commands import call, emit
from hub.cli.failures import EXIT_OK, EXIT_REFUSED, CommandFailed
from transports.discovery import find_hub
from transports.pane_text import frame_delivery


def status(args) -> int:
    address = find_hub(args.home)
    health = call("GET", "/health", home=args.home)
    me = call("GET", "/whoami", home=args.home)
    peers = call("GET", "/peers", home=args.home)["peers"]
    online = [p for p in peers if p["status"] != "offline" and p["role"] != "bridge"]
    questions = len(call("GET", "/questions", home=args.home)["questions"]) if me["operator"] else None
    store = health["store"]
    body = {"hub": address.http_url, "uds": address.uds, "node": health["node"], "version": health["version"],
            "store": store, "peers": len(peers), "online": len(online), "open_questions": questions,
            "acting_as": "operator" if me["operator"] else me["peer"]["name"] + "@" + me["peer"]["circle"]}
    lines = [f"hub        {address.http_url}" + (f"  (and {address.uds})" if address.uds else ""),
             f"node       {health['node']}  repowire {health['version']}",
             f"store      {store.get('engine', '?')} {store.get('version', '')}"
             + ("  embedded" if store.get("embedded") else "  external")
             + (f"  cluster of {store.get('shards')} primaries" if store.get("cluster") else "")
             + (f"  replica acks {store['replica_acks']}" if store.get("replica_acks") else "")
             + ("  append-only on" if store.get("aof_enabled") else "  append-only OFF"),
             f"peers      {len(online)} online of {len(peers)}"
             + (": " + ", ".join(p["name"] for p in online[:10]) + (" …" if len(online) > 10 else "") if online else ""),
             f"you        {body['acting_as']}"]
    if questions is not None:
        lines.append(f"questions  {questions} waiting for a person" + ("  (repowire questions)" if questions else ""))
        lines.append("dashboard  repowire dashboard   (prints a one-time sign-in link)")
    if args.all_nodes:
        body["nodes"] = nodes = call("GET", "/nodes", home=args.home)["nodes"]
        lines += ["", f"{'NODE':<16} {'STATE':<6} {'ONLINE':>6}  {'WHERE':<32} PROCESS"]
        lines += [f"{n['node'] + (' *' if n['this'] else ''):<16} {'live' if n['live'] else 'gone':<6} "
                  f"{n['peers_online']:>6}  {n['url']:<32} {n.get('host') or ''} {n.get('pid') or ''}".rstrip()
                  for n in nodes]
    emit(body, args.json, "\n".join(lines))
    return EXIT_OK


def whoami(args) -> int:
    me = call("GET", "/whoami", home=args.home)
    peer = me["peer"]
    human = ("operator (the person at the hub: the hub token)" if me["operator"]
             else f"{peer['name']}@{peer['circle']}  {peer['peer_id']}  ({peer['role']}, {peer['status']})")
    emit(me, args.json, human)
    return EXIT_OK


def add_peer(args) -> int:
    body = call("POST", "/peers", home=args.home, json={"name": args.name, "circle": args.circle})
    peer = body["peer"]
    if args.json:
        emit(body, True, "")
        return EXIT_OK
    sys.stdout.write(body["token"] + "\n")
    sys.stderr.write(f"{'registered' if body['created'] else 'new token for'} {peer['name']}@{peer['circle']} "
                     f"(peer id {peer['peer_id']}). Its token went to standard output; act as it with\n"
                     f"  REPOWIRE_TOKEN=<that token> repowire inbox\n")
    return EXIT_OK


def inbox(args) -> int:
    me = call("GET", "/whoami", home=args.home)
    if me["operator"]:
        raise CommandFailed(EXIT_REFUSED, "the operator has no inbox. Read a peer's messages with its token: "
                                          "REPOWIRE_TOKEN=<token> repowire inbox (repowire peers add NAME prints one)")
    peer = me["peer"]
    body = call("POST", f"/peers/{peer['peer_id']}/inbox/take", home=args.home, json={"limit": args.limit})
    hub_url = find_hub(args.home).http_url
    lines = [frame_delivery(delivery, hub_url) for delivery in body["deliveries"]]
    if body["remaining"]:
        lines.append(f"({body['remaining']} more: run repowire inbox again)")
    emit(body, args.json, "\n".join(lines) if lines else "no new messages")
    return EXIT_OK
