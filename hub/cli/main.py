"""Entry point of the `repowire` console script: parses arguments and runs one command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from hub import __version__
from hub.cli import client_commands
from hub.cli.serve import serve
from hub.core.approvals import QuestionPolicy
from hub.core.asks import AskPolicy
from hub.core.settings import Limits, Settings, parse_limits
from schemas.local import DEFAULT_HOST, DEFAULT_PORT, home_dir


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repowire",
        description="A realtime hub where coding agents, their hooks, tmux panes and people talk to each "
                    "other. Start it with `repowire serve`; the other commands talk to a running hub.")
    parser.add_argument("--version", action="version", version=f"repowire {__version__}")
    parser.add_argument("--home", help="state folder (default: $REPOWIRE_HOME or ~/.repowire)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("serve", help="run the hub (on its embedded store unless --redis-url)",
                       description="Run the hub. With no --redis-url it starts a private Valkey server on a "
                                   "Unix socket in $REPOWIRE_HOME/store with append-only persistence, and "
                                   "stops it when the hub stops.")
    s.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port; 0 picks a free one (default {DEFAULT_PORT})")
    s.add_argument("--uds", type=Path, help="also serve the API on this Unix socket (mode 0600)")
    s.add_argument("--redis-url", default=os.environ.get("REPOWIRE_REDIS_URL"),
                   help="use this Redis/Valkey instead of the embedded store (env REPOWIRE_REDIS_URL)")
    s.add_argument("--ephemeral", action="store_true",
                   help="accept an external store whose append-only persistence is off")
    s.add_argument("--node", default=os.environ.get("REPOWIRE_NODE", "node-1"), help="this hub node's name")
    s.add_argument("--heartbeat", type=float, default=10.0,
                   help="seconds between WebSocket pings; a silent peer is offline within twice this")
    s.add_argument("--queue-ttl", type=int, default=7 * 24 * 3600,
                   help="seconds an undelivered message waits in an offline peer's inbox (default 7 days)")
    s.add_argument("--trace-retention", type=int, default=7 * 24 * 3600, help="seconds traces are kept")
    s.add_argument("--ask-timeout", type=float, default=300.0, help="default seconds until an ask expires")
    s.add_argument("--ask-timeout-max", type=float, default=3600.0, help="the longest deadline an ask may ask for")
    s.add_argument("--reply-ttl", type=float, default=24 * 3600.0,
                   help="seconds a reply waits for an offline asker before the replier is told")
    s.add_argument("--ask-fanout", type=int, default=16, help="most peers one ask may go to")
    s.add_argument("--question-timeout-max", type=float, default=300.0,
                   help="the longest a tool-permission question waits for a person before it is denied "
                        "(default 300 s)")
    s.add_argument("--question-margin", type=float, default=5.0,
                   help="the hub denies a question this many seconds before the asking hook's own timeout "
                        "(default 5 s)")
    s.add_argument("--sweep-interval", type=float, default=5.0, help="seconds between inbox expiry sweeps")
    s.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                   help="override one limit, e.g. --limit max_frame_bytes=65536 (names: "
                        + ", ".join(Limits.__slots__) + ")")
    s.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])

    p = sub.add_parser("peers", help="list peers")
    p.add_argument("--circle")
    p.add_argument("--status", choices=["online", "busy", "offline"])
    p.add_argument("--json", action="store_true", help="print JSON")

    n = sub.add_parser("notify", help="send a message to a peer (name, name@circle, peer id, * or *@circle)")
    n.add_argument("peer")
    n.add_argument("text")
    n.add_argument("--idempotency-key", help="a retry with the same key returns the first result")
    n.add_argument("--json", action="store_true", help="print JSON")

    a = sub.add_parser("ask", help="ask a peer and (with --wait) print its reply",
                       description="Ask a peer. Exit codes: 0 replied/acked/answered, 1 refused, "
                                   "2 hub unreachable, 3 no answer before the deadline.")
    a.add_argument("peer")
    a.add_argument("text")
    a.add_argument("--wait", action="store_true", help="wait for the reply, answer or expiry")
    a.add_argument("--timeout", type=float, help="seconds until the ask expires (hub default 300)")
    a.add_argument("--queue", action="store_true", help="if the peer is offline, wait for it instead of failing")
    a.add_argument("--choice", action="append", metavar="ID[:TITLE]",
                   help="make it a choice question; repeat for each option")
    a.add_argument("--json", action="store_true", help="print JSON")

    k = sub.add_parser("ack", help="close an ask you were asked, optionally with a reply")
    k.add_argument("id", help="the correlation id")
    k.add_argument("text", nargs="?", help="reply text (omit for a bare ack)")
    k.add_argument("--json", action="store_true", help="print JSON")

    w = sub.add_parser("answer", help="answer an ask's question")
    w.add_argument("id", help="the correlation id")
    w.add_argument("--option", help="the chosen option id (choice questions)")
    w.add_argument("--text", help="the answer text (text questions)")
    w.add_argument("--outcome", choices=["accepted", "declined", "dismissed"])
    w.add_argument("--json", action="store_true", help="print JSON")

    q = sub.add_parser("asks", help="list pending asks")
    q.add_argument("--peer", help="whose asks (default: yours)")
    q.add_argument("--direction", choices=["inbound", "outbound", "both"], default="both")
    q.add_argument("--json", action="store_true", help="print JSON")

    t = sub.add_parser("trace", help="show a message's delivery trace")
    t.add_argument("id", help="the message id")
    t.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "serve":
        logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            limits = parse_limits(args.limit)
        except ValueError as exc:
            parser.error(str(exc))
        settings = Settings(home=home_dir(args.home), limits=limits, host=args.host, port=args.port, uds=args.uds,
                            redis_url=args.redis_url, ephemeral=args.ephemeral, node=args.node,
                            heartbeat_s=args.heartbeat, queue_ttl_s=args.queue_ttl,
                            trace_retention_s=args.trace_retention, sweep_interval_s=args.sweep_interval,
                            asks=AskPolicy(default_timeout_s=args.ask_timeout, max_timeout_s=args.ask_timeout_max,
                                           reply_ttl_s=args.reply_ttl, max_fanout=args.ask_fanout),
                            questions=QuestionPolicy(max_timeout_s=args.question_timeout_max,
                                                     margin_s=args.question_margin))
        return serve(settings, args.log_level)
    handler = {"peers": client_commands.peers, "notify": client_commands.notify, "trace": client_commands.trace,
               "ask": client_commands.ask, "ack": client_commands.ack, "answer": client_commands.answer,
               "asks": client_commands.asks}[args.command]
    try:
        return handler(args)
    except client_commands.CommandFailed as exc:
        print(f"repowire: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
