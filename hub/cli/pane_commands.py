"""`repowire link | unlink | doctor <peer> | rehook | output | keys`: tmux panes on a running hub.

`repowire link` with no arguments lists the orphan panes (running on the local tmux server,
not linked to any peer); `repowire link %12 --backend claude` links one.
"""

from __future__ import annotations

from hub.cli.client_commands import call, emit
from hub.cli.failures import EXIT_OK, EXIT_REFUSED


def _pane_path(pane_id: str) -> str:
    return "/panes/" + pane_id.replace("%", "%25") + "/link"  # %12 travels as %2512


def link(args) -> int:
    if args.pane is None:
        body = call("GET", "/panes/orphans", home=args.home)
        rows = [f"{'PANE':<6} {'AGENT':<9} {'CONF':>4}  {'SESSION:WINDOW':<20} {'COMMAND':<12} FOLDER"]
        for p in body["panes"]:
            agent = p["agent"] or "-"
            rows.append(f"{p['pane_id']:<6} {agent:<9} {p['confidence']:>4.2f}  "
                        f"{p['session'] + ':' + p['window']:<20} {p['command'][:12]:<12} {p['cwd']}")
        human = "\n".join(rows) + "\n\nlink one: repowire link %N --backend claude" if body["panes"] else \
            "no orphan panes: every pane on this tmux server is linked (or none is running)"
        emit(body, args.json, human)
        return EXIT_OK
    if not args.backend:
        emit({}, False, "say which agent runs in the pane: --backend claude|codex|gemini|opencode|aider|other")
        return EXIT_REFUSED
    payload = {"backend": args.backend, **{k: v for k, v in (("name", args.name), ("circle", args.circle),
                                                               ("bridge", args.bridge)) if v}}
    body = call("POST", _pane_path(args.pane), home=args.home, json=payload)
    peer = body["peer"]
    emit(body, args.json, f"linked {args.pane} as {peer['name']}@{peer['circle']} ({peer['peer_id']}); "
                          f"its transport is {body['transport']}")
    return EXIT_OK


def unlink(args) -> int:
    body = call("POST", f"/peers/{args.peer}/unlink", home=args.home)
    emit(body, args.json, f"unlinked {body['pane_id']}; the peer is {body['status']} and keeps its inbox")
    return EXIT_OK


def doctor(args) -> int:
    body = call("GET", f"/peers/{args.target}/doctor", home=args.home)
    checks = body["checks"]
    lines = [f"{body['name']} ({body['peer_id']}): {'healthy' if body['healthy'] else 'needs attention'}"]
    for key in ("status", "transport_connected", "linked", "bridge_connected", "pane_exists", "pane_dead",
                "pid_alive", "fingerprint_matches", "pending", "oldest_pending_age_s", "stale_asks"):
        lines.append(f"  {key:<22} {checks[key]}")
    for finding in body["contradictions"]:
        lines.append(f"  {finding['severity'].upper():<7} {finding['code']}: {finding['detail']}")
    emit(body, args.json, "\n".join(lines))
    return EXIT_OK if body["healthy"] else EXIT_REFUSED


def rehook(args) -> int:
    body = call("POST", f"/peers/{args.peer}/rehook", home=args.home, json={"apply": args.apply})
    verb = "did" if body["applied"] else "would do"
    emit(body, args.json, f"{verb}: {body['action']} ({body['reason']})"
                          + ("" if args.apply or body["action"] == "none" else "\nrun again with --apply to do it"))
    return EXIT_OK


def output(args) -> int:
    body = call("GET", f"/peers/{args.peer}/output", home=args.home, params={"lines": args.lines})
    emit(body, args.json, "\n".join(body["lines"]))
    return EXIT_OK


def keys(args) -> int:
    body = call("POST", f"/peers/{args.peer}/keys", home=args.home, json={"keys": args.keys})
    emit(body, args.json, f"sent {' '.join(body['sent'])} to {body['pane_id']}")
    return EXIT_OK
