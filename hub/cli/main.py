"""Entry point of the `repowire` console script: parses arguments and runs one command.

Each command's module is imported only when that command runs (the table `COMMANDS`): the
PreToolUse hook runs before every tool call an agent makes, and must not pay for importing
the server, the store client and the HTTP library it does not use.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from hub import __version__
from hub.cli.failures import CommandFailed
from hub.core.attachments import AttachmentPolicy, MiB
from hub.core.jobs import JobPolicy
from hub.core.settings import Limits
from schemas.local import DEFAULT_HOST, DEFAULT_PORT
from schemas.names import BACKENDS, SESSION_HOOK_EVENTS

# (command, subcommand) -> "module:function(args) -> exit code"
COMMANDS: dict[tuple[str, str | None], str] = {
    ("serve", None): "hub.cli.serve:serve_command",
    ("status", None): "hub.cli.peer_commands:status",
    ("whoami", None): "hub.cli.peer_commands:whoami",
    ("peers", None): "hub.cli.client_commands:peers",
    ("peers", "add"): "hub.cli.peer_commands:add_peer",
    ("inbox", None): "hub.cli.peer_commands:inbox",
    ("notify", None): "hub.cli.client_commands:notify",
    ("trace", None): "hub.cli.client_commands:trace",
    ("dashboard", None): "hub.cli.client_commands:dashboard",
    ("ask", None): "hub.cli.client_commands:ask",
    ("ack", None): "hub.cli.client_commands:ack",
    ("answer", None): "hub.cli.client_commands:answer",
    ("asks", None): "hub.cli.client_commands:asks",
    ("questions", None): "hub.cli.question_commands:questions",
    ("questions", "show"): "hub.cli.question_commands:show_question",
    ("approve", None): "hub.cli.question_commands:approve",
    ("deny", None): "hub.cli.question_commands:deny",
    ("questions", "answer"): "hub.cli.question_commands:answer_question",
    ("policies", None): "hub.cli.policy_commands:policies",
    ("policies", "preset"): "hub.cli.policy_commands:choose_preset",
    ("policies", "evaluate"): "hub.cli.policy_commands:evaluate",
    ("policy", "add"): "hub.cli.policy_commands:policy_add",
    ("policy", "rm"): "hub.cli.policy_commands:policy_rm",
    ("decisions", None): "hub.cli.policy_commands:decisions",
    ("hook", "pretooluse"): "hub.cli.hook_command:pretooluse",
    **{("hook", event): "hub.cli.hook_command:session_event" for event in SESSION_HOOK_EVENTS.values()},
    ("mcp", None): "hub.cli.mcp_command:mcp",
    ("hooks", "install"): "hub.cli.hooks_install:install",
    ("hooks", "uninstall"): "hub.cli.hooks_install:uninstall",
    ("hooks", "doctor"): "hub.cli.claude_settings:doctor",
    ("doctor", "hooks"): "hub.cli.claude_settings:doctor",
    ("doctor", "peer"): "hub.cli.pane_commands:doctor",
    ("bridge", None): "hub.cli.bridge_command:bridge",
    ("link", None): "hub.cli.pane_commands:link",
    ("unlink", None): "hub.cli.pane_commands:unlink",
    ("rehook", None): "hub.cli.pane_commands:rehook",
    ("output", None): "hub.cli.pane_commands:output",
    ("keys", None): "hub.cli.pane_commands:keys",
    ("schedule", "notify"): "hub.cli.schedule_commands:create",
    ("schedule", "ask"): "hub.cli.schedule_commands:create",
    ("schedule", "show"): "hub.cli.schedule_commands:show",
    ("schedule", "pause"): "hub.cli.schedule_commands:change",
    ("schedule", "resume"): "hub.cli.schedule_commands:change",
    ("schedule", "rm"): "hub.cli.schedule_commands:change",
    ("schedules", None): "hub.cli.schedule_commands:listing",
    ("jobs", None): "hub.cli.job_commands:listing",
    ("jobs", "add"): "hub.cli.job_commands:add",
    ("jobs", "show"): "hub.cli.job_commands:show",
    ("jobs", "cancel"): "hub.cli.job_commands:cancel",
    ("attachments", "put"): "hub.cli.attachment_commands:put",
    ("attachments", "get"): "hub.cli.attachment_commands:get",
}


def build_parser() -> argparse.ArgumentParser:
    """The whole `repowire` command line (also read by `hub.cli.reference` for the manual)."""
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
                   help="use this Redis/Valkey instead of the embedded store (env REPOWIRE_REDIS_URL); "
                        "any one server of a Redis Cluster or Valkey cluster will do: the hub finds the rest")
    s.add_argument("--replica-acks", type=int, default=0, metavar="N",
                   help="with --redis-url: accept a message only once N replicas of its store server have it "
                        "(WAIT), so a failover loses nothing accepted; 0 accepts on the primary's word (default 0)")
    s.add_argument("--ephemeral", action="store_true",
                   help="accept an external store whose append-only persistence is off")
    s.add_argument("--node", default=os.environ.get("REPOWIRE_NODE", "node-1"),
                   help="this hub node's name, unique among the nodes sharing a --redis-url store "
                        "(env REPOWIRE_NODE; default node-1)")
    s.add_argument("--node-lease", type=float, default=10.0,
                   help="with --redis-url: seconds a node stays alive without renewing its lease; after that "
                        "the other nodes take its peers offline, and they reconnect to any node (default 10)")
    s.add_argument("--heartbeat", type=float, default=20.0,
                   help="seconds between WebSocket pings; a peer that stops answering them is offline "
                        "within twice this (default 20, the interval websockets uses)")
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
    s.add_argument("--max-policies", type=int, default=1000, help="most policy rules the hub holds (default 1000)")
    s.add_argument("--fallback", choices=["deny", "ask"], default="deny",
                   help="what a tool-permission question gets when no person can be reached (no dashboard open, no "
                        "`repowire questions --follow`, no alert channel): deny (default), or ask = hand the call "
                        "back to the agent's own permission prompt. Never allow")
    s.add_argument("--alert-webhook", metavar="URL",
                   help="POST a signed JSON alert here when a question waits for a person (HMAC-SHA256 with "
                        "$REPOWIRE_ALERT_SECRET, else the secret in $REPOWIRE_HOME/alert-secret, made on first use)")
    s.add_argument("--alert-ntfy", metavar="URL",
                   help="post an alert to this ntfy-compatible topic URL, e.g. https://ntfy.sh/my-topic "
                        "(bearer token from $REPOWIRE_NTFY_TOKEN); the alert's link signs its opener in once")
    s.add_argument("--alert-desktop", action="store_true",
                   help="show a desktop notification (notify-send) when a question waits for a person")
    s.add_argument("--max-schedules", type=int, default=100,
                   help="most schedules one peer (or the operator) may hold (default 100)")
    s.add_argument("--schedule-grace", type=float, default=60.0,
                   help="a schedule with catch_up off records an occurrence as missed when it is later than "
                        "this many seconds, such as one that fell due while no hub ran (default 60)")
    s.add_argument("--schedule-lease", type=float, default=30.0,
                   help="seconds after which another hub node sends a fire whose node claimed it and "
                        "did not finish (default 30)")
    jobs = JobPolicy()
    s.add_argument("--max-jobs", type=int, default=jobs.max_per_peer,
                   help=f"most jobs one peer (or the operator) may have queued, running or recurring "
                        f"(default {jobs.max_per_peer})")
    s.add_argument("--max-executors", type=int, default=jobs.max_running_per_node,
                   help="most job executor processes this node runs at once; more jobs wait queued "
                        f"(default {jobs.max_running_per_node})")
    s.add_argument("--job-output-max", type=int, default=jobs.max_output_bytes, metavar="BYTES",
                   help="most bytes one job run may print; more ends it as failed with output_limit "
                        f"(default {jobs.max_output_bytes:,})")
    s.add_argument("--job-timeout", type=float, default=jobs.default_timeout_s,
                   help=f"seconds a job run may take when the job names no timeout_s (default {jobs.default_timeout_s:g})")
    s.add_argument("--job-lease", type=float, default=jobs.lease_s,
                   help="seconds after which a run whose hub node stopped renewing it is recorded lost "
                        f"(default {jobs.lease_s:g})")
    s.add_argument("--job-retention", type=float, default=jobs.retention_s, metavar="SECONDS",
                   help="a job that is over (and its trace and progress) is deleted this long after "
                        f"(default {jobs.retention_s:g}, 7 days)")
    s.add_argument("--job-env", action="append", default=[], metavar="NAME",
                   help="also pass this variable of the hub's environment to job executors (repeatable; "
                        "PATH, HOME, the locale and each backend's own, such as ANTHROPIC_*, always pass)")
    attach = AttachmentPolicy()
    s.add_argument("--attachment-max-bytes", type=int, default=attach.max_file_bytes,
                   help=f"largest file one upload may be (default {attach.max_file_bytes // MiB} MiB)")
    s.add_argument("--attachment-peer-quota", type=int, default=attach.max_peer_bytes,
                   help="bytes of attachments one peer may have stored at once "
                        f"(default {attach.max_peer_bytes // MiB} MiB)")
    s.add_argument("--attachment-hub-quota", type=int, default=attach.max_hub_bytes,
                   help="bytes of attachments the hub (every node of a mesh) may hold "
                        f"(default {attach.max_hub_bytes // MiB} MiB)")
    s.add_argument("--attachment-ttl", type=int, default=attach.ttl_s,
                   help="seconds an attachment is kept; one that a pending message carries is kept until "
                        f"that message is received or closed (default {attach.ttl_s // 3600} h)")
    s.add_argument("--attachment-sweep", type=float, default=attach.sweep_interval_s,
                   help="seconds between looks for expired attachments and stray files (default "
                        f"{attach.sweep_interval_s:g})")
    s.add_argument("--advertise-url", help="where the other hub nodes of a mesh reach this one, e.g. "
                                           "http://10.0.0.5:8377 (default: http://HOST:PORT)")
    s.add_argument("--sweep-interval", type=float, default=5.0, help="seconds between inbox expiry sweeps")
    s.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                   help="override one limit, e.g. --limit max_frame_bytes=65536 (names: "
                        + ", ".join(Limits.__slots__) + ")")
    s.add_argument("--tmux-socket", help="the tmux server whose panes the hub's bridge serves, by socket name "
                                         "(tmux -L NAME; default: tmux's default server)")
    s.add_argument("--no-bridge", action="store_true", help="do not start a pane bridge for the local tmux server")
    s.add_argument("--link-timeout", type=float, default=10.0,
                   help="seconds a pane link waits for its transport before it is undone (default 10)")
    s.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    s.add_argument("--log-format", default="text", choices=["text", "json"],
                   help="text lines for a person (default), or one JSON object per line (ts, level, logger, node, "
                        "message) for a log shipper")

    st = sub.add_parser("status", help="where the hub is, its node and store, who is online, questions waiting",
                        description="A short report on the running hub: its address, node, store, peers online, "
                                    "questions waiting for a person, and how to open the dashboard.")
    st.add_argument("--all-nodes", action="store_true",
                    help="also every hub node of this store: where it answers, whether it is alive, its peers online")
    st.add_argument("--json", action="store_true", help="print JSON")
    wh = sub.add_parser("whoami", help="who this terminal acts as: the operator, or a peer (REPOWIRE_TOKEN)")
    wh.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("peers", help="list peers (`peers add NAME` registers one and prints its token)")
    p.add_argument("--circle")
    p.add_argument("--status", choices=["online", "busy", "awaiting_input", "offline"])
    p.add_argument("--json", action="store_true", help="print JSON")
    p_sub = p.add_subparsers(dest="action", metavar="ACTION")
    pa = p_sub.add_parser("add", help="register a peer by name and print its token (alone on stdout)",
                          description="Register an agent peer by name (as the operator) and print its token alone "
                                      "on standard output. A peer of that name that is offline keeps its id and "
                                      "inbox and gets a new token. Example: BOB=$(repowire peers add bob); "
                                      "REPOWIRE_TOKEN=$BOB repowire inbox")
    pa.add_argument("name")
    pa.add_argument("--circle", default="default", help="its circle (default: default)")
    pa.add_argument("--json", action="store_true", help="print JSON (the peer and its token)")

    ib = sub.add_parser("inbox", help="as a peer (REPOWIRE_TOKEN): read and confirm its new messages",
                        description="Take the messages waiting for the peer whose token is in REPOWIRE_TOKEN, "
                                    "print them (an ask with the command that replies to it) and confirm them: "
                                    "each is shown once. For a peer with no connection to the hub.")
    ib.add_argument("--limit", type=int, default=20, choices=range(1, 101), metavar="N",
                    help="at most N messages (1-100, default 20)")
    ib.add_argument("--json", action="store_true", help="print JSON")

    n = sub.add_parser("notify", help="send a message to a peer (name, name@circle, peer id, * or *@circle)")
    n.add_argument("peer")
    n.add_argument("text")
    n.add_argument("--idempotency-key", help="a retry with the same key returns the first result")
    n.add_argument("--attach", action="append", metavar="FILE",
                   help="upload FILE and send it with the message (repeat for more, up to 16)")
    n.add_argument("--json", action="store_true", help="print JSON")
    n.add_argument("-q", "--quiet", action="store_true", help="print only the message id")

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
    a.add_argument("-q", "--quiet", action="store_true",
                   help="print only the ask's correlation id (without --wait), e.g. ID=$(repowire ask … -q)")

    k = sub.add_parser("ack", help="close an ask you were asked, optionally with a reply")
    k.add_argument("id", help="the correlation id")
    k.add_argument("text", nargs="?", help="reply text (omit for a bare ack)")
    k.add_argument("--attach", action="append", metavar="FILE",
                   help="upload FILE and send it with the message (repeat for more, up to 16)")
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

    d = sub.add_parser("dashboard", help="print a one-time sign-in link to the browser dashboard",
                       description="Print a link that signs a browser in to the dashboard at /dashboard. It works "
                                   "once, within 10 minutes; the browser then keeps an HttpOnly cookie for 12 hours.")
    d.add_argument("--open", action="store_true", help="also open it in this machine's web browser")
    d.add_argument("--json", action="store_true", help="print JSON")

    _approval_parsers(sub)
    _schedule_parsers(sub)
    _job_parsers(sub)
    _attachment_parsers(sub)
    _pane_parsers(sub)
    return parser


def _pane_parsers(sub) -> None:
    """tmux panes: the bridge, link and unlink, looking in, doctor and rehook."""
    b = sub.add_parser("bridge", help="run a pane bridge for a tmux server (serve starts one for you)",
                       description="Connect to the hub as the pane bridge of one tmux server: list its panes for "
                                   "the hub and type linked panes' deliveries into them. Runs until stopped.")
    b.add_argument("--tmux-socket", help="tmux socket name (tmux -L NAME; default: tmux's default server)")
    b.add_argument("--tmux-socket-path", help="tmux socket path (tmux -S PATH)")
    b.add_argument("--hub-url", help="the hub's URL (default: the local hub from $REPOWIRE_HOME)")
    b.add_argument("--watch-interval", type=float, default=0.5,
                   help="seconds between checks that linked panes are still what was linked (default 0.5)")
    b.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    b.add_argument("--exit-with", type=int, metavar="PID",
                   help="exit when the process PID (the hub that started this bridge) is gone; serve passes its own")

    ln = sub.add_parser("link", help="list orphan agent panes, or link one to the hub",
                        description="With no pane: a table of the panes on the local tmux server that are not "
                                    "linked to a peer, with the agent detected in each. With a pane id: register "
                                    "it as a peer and start typing its deliveries into it.")
    ln.add_argument("pane", nargs="?", help="the tmux pane id, e.g. %%12")
    ln.add_argument("--backend", choices=BACKENDS, help="the agent running in the pane")
    ln.add_argument("--name", help="peer name (default: the pane's folder name)")
    ln.add_argument("--circle", help="circle (default: the pane's tmux session name)")
    ln.add_argument("--bridge", help="which pane bridge, when several are connected")
    ln.add_argument("--json", action="store_true", help="print JSON")

    un = sub.add_parser("unlink", help="stop typing into a peer's pane (the peer keeps its id and inbox)")
    un.add_argument("peer")
    un.add_argument("--json", action="store_true", help="print JSON")

    rh = sub.add_parser("rehook", help="restart a linked peer's dead pane transport (dry run unless --apply)")
    rh.add_argument("peer")
    rh.add_argument("--apply", action="store_true", help="do it (a healthy transport is never touched)")
    rh.add_argument("--json", action="store_true", help="print JSON")

    out = sub.add_parser("output", help="print what a linked peer's pane shows")
    out.add_argument("peer")
    out.add_argument("--lines", type=int, default=100, help="how many lines of screen and scrollback (default 100)")
    out.add_argument("--json", action="store_true", help="print JSON")

    ks = sub.add_parser("keys", help="send named keys to a linked peer's pane (Escape, Ctrl-C, Enter, Up, …)")
    ks.add_argument("peer")
    ks.add_argument("keys", nargs="+")
    ks.add_argument("--json", action="store_true", help="print JSON")


def _attachment_parsers(sub) -> None:
    """`repowire attachments put FILE` and `repowire attachments get ID -o FILE`."""
    att = sub.add_parser("attachments", help="upload a file, or save one that a message carried",
                         description="Files travel with messages as attachments: `notify … --attach FILE` uploads "
                                     "and sends in one step; `attachments get` saves one you were sent.")
    att_sub = att.add_subparsers(dest="action", metavar="ACTION", required=True)
    put = att_sub.add_parser("put", help="upload a file; prints its id for a message's `attachments`")
    put.add_argument("file")
    put.add_argument("--json", action="store_true", help="print JSON")
    get = att_sub.add_parser("get", help="save an attachment (checked against its SHA-256)")
    get.add_argument("id", help="the attachment id (a delivery's attachments[].id)")
    get.add_argument("-o", "--output", required=True, metavar="FILE", help="where to save it; `-` for stdout")


def _job_parsers(sub) -> None:
    """Jobs: durable tracked work."""
    jobs = sub.add_parser("jobs", help="hand off work to a peer or to a fresh agent process in a folder, and follow it",
                          description="Durable tracked work. Examples: repowire jobs add 'review the diff' --peer "
                                      "reviewer; repowire jobs add 'summarise new issues' --path ~/src/app --backend "
                                      "claude --cron '0 9 * * mon-fri'; repowire jobs show ID; repowire jobs cancel ID")
    jobs.add_argument("--summary", action="store_true", help="the summary view (no prompts, progress or traces)")
    jobs.add_argument("--peer", dest="owner", metavar="PEER", help="only the jobs this peer made (name, id, or `operator`)")
    jobs.add_argument("--json", action="store_true", help="print JSON")
    jobs_sub = jobs.add_subparsers(dest="action", metavar="ACTION")
    add = jobs_sub.add_parser("add", help="make a job (now, --at once, or --cron recurring)")
    add.add_argument("prompt", help="what to do")
    add.add_argument("--peer", help="give it to this peer (name, name@circle or id), as an ask whose reply is the result")
    add.add_argument("--path", help="run a backend in this folder instead (with --backend; a relative path is "
                                    "read from the current folder)")
    add.add_argument("--backend", help="claude, codex, or command (a person's jobs; the arguments after `--`)")
    add.add_argument("--scope", choices=["per_fire", "session"],
                     help="per_fire: a short-lived executor for each run (default); session: one kept for the job's runs")
    add.add_argument("--continuity", choices=["fresh", "resume"],
                     help="resume: a fire continues the backend's own session (default for --cron); fresh: never")
    add.add_argument("--at", metavar="WHEN", help="once, later: ISO 8601 or +90s, +15m, +2h, +1d")
    add.add_argument("--cron", metavar="EXPR", help="recurring: minute hour day-of-month month day-of-week")
    add.add_argument("--timezone", default="UTC", help="IANA zone for --cron and for --at without an offset (default UTC)")
    add.add_argument("--timeout", type=float, help="seconds one run may take")
    add.add_argument("--wait", action="store_true", help="wait until the job (a work item) is over, then print it")
    add.add_argument("--json", action="store_true", help="print JSON")
    add.set_defaults(argv=[])
    add.epilog = ("The command backend runs the argument list given after `--`, e.g. `repowire jobs add 'tidy' --path "
                  "/srv/app --backend command -- python3 tidy.py`; the prompt reaches it on standard input.")
    for action, text in (("show", "a job with its progress and trace"), ("cancel", "cancel a job (and end its run)")):
        a = jobs_sub.add_parser(action, help=text)
        a.add_argument("id", help="the job id (from `repowire jobs`)")
        a.add_argument("--json", action="store_true", help="print JSON")


def _schedule_parsers(sub) -> None:
    """Scheduled messages."""
    sch = sub.add_parser("schedule", help="send a notify or an ask later, or on a cron schedule",
                         description="Schedule a message. Examples: repowire schedule notify reviewer 'look at "
                                     "#42' --at +2h; repowire schedule ask triage 'summary?' --cron '0 9 * * "
                                     "mon-fri' --timezone Europe/Berlin")
    sch_sub = sch.add_subparsers(dest="action", metavar="ACTION", required=True)
    for kind in ("notify", "ask"):
        k = sch_sub.add_parser(kind, help=f"schedule a {kind}")
        k.add_argument("peer", help="name, name@circle or peer id" + (" (or *@circle)" if kind == "notify" else ""))
        k.add_argument("text")
        k.add_argument("--at", metavar="WHEN", help="once: ISO 8601 (2026-11-23T09:00:00+01:00) or +90s, +15m, +2h, +1d")
        k.add_argument("--cron", metavar="EXPR", help="recurring: minute hour day-of-month month day-of-week")
        k.add_argument("--timezone", default="UTC", help="IANA zone for --cron and for --at without an offset "
                                                         "(default UTC)")
        k.add_argument("--no-catch-up", action="store_true",
                       help="record occurrences that fell due while no hub ran as missed instead of sending them")
        if kind == "ask":
            k.add_argument("--timeout", type=float, help="seconds each ask waits for its answer")
            k.add_argument("--queue", action="store_true", help="wait for an offline peer instead of failing the fire")
        k.add_argument("--json", action="store_true", help="print JSON")
    for action, text in (("show", "a schedule and its fire history"), ("pause", "stop a schedule firing"),
                         ("resume", "fire again from the next occurrence"), ("rm", "delete a schedule")):
        a = sch_sub.add_parser(action, help=text)
        a.add_argument("id", help="the schedule id (from `repowire schedules`)")
        a.add_argument("--json", action="store_true", help="print JSON")
    ls = sub.add_parser("schedules", help="list schedules (yours; the hub token sees everyone's)")
    ls.add_argument("--peer", help="only the schedules this peer made (name, id, or `operator`)")
    ls.add_argument("--json", action="store_true", help="print JSON")


def _approval_parsers(sub) -> None:
    """Tool-permission questions, policies and the Claude Code hook."""
    qs = sub.add_parser("questions", help="list questions waiting for a person, newest first (`questions show ID`: "
                                          "one, whole; --follow: watch)")
    qs.add_argument("--json", action="store_true", help="print JSON")
    qs.add_argument("--follow", action="store_true",
                    help="keep watching: print each question as it opens and is decided, until Ctrl-C. While one "
                         "watches, questions wait for a person instead of taking the hub's --fallback")
    qs_sub = qs.add_subparsers(dest="action", metavar="ACTION")
    qshow = qs_sub.add_parser("show", help="one question with its whole tool input, every character visible")
    qshow.add_argument("id", help="the question's id (from `repowire questions`)")
    qshow.add_argument("--json", action="store_true", help="print JSON")
    qans = qs_sub.add_parser("answer", help="answer a plain question (one that is not a tool call) with an option")
    qans.add_argument("id", help="the question's id")
    qans.add_argument("option", help="the id of the option you choose (`questions show ID` lists them)")
    qans.add_argument("--reason", help="why; the asker sees it")
    qans.add_argument("--json", action="store_true", help="print JSON")
    for verb, meaning in (("approve", "allow"), ("deny", "deny")):
        v = sub.add_parser(verb, help=f"{meaning} a waiting tool-permission question (as a person)",
                           description=("Allow a waiting tool call. It prints the whole call first and asks you to "
                                        "confirm, unless --yes." if verb == "approve" else
                                        "Deny a waiting tool call; the agent sees --reason."))
        v.add_argument("id", help="the question's id (from `repowire questions`)")
        v.add_argument("--reason", help="why; the agent sees it")
        v.add_argument("--json", action="store_true", help="print JSON")
        if verb == "approve":
            v.add_argument("-y", "--yes", action="store_true",
                           help="do not ask: approve what `repowire questions show ID` showed")
            v.add_argument("--for-session", action="store_true",
                           help="also allow this exact call again, without asking, for the rest of the agent's session")
            v.add_argument("--always", nargs="?", const="", metavar="PREFIX",
                           help="also allow this tool for this agent from now on; for Bash, the commands that start "
                                "with PREFIX (default: the program and its first argument, e.g. `npm test`). A policy "
                                "rule you can list and remove")
        else:
            v.set_defaults(yes=True)

    ps = sub.add_parser("policies", help="list policy rules in the order they are tried, then the approval preset's "
                                         "(`policies preset NAME` chooses it; `policies evaluate` tries a call)")
    ps.add_argument("--json", action="store_true", help="print JSON")
    ps_sub = ps.add_subparsers(dest="action", metavar="ACTION")
    pre_set = ps_sub.add_parser("preset", help="choose what agents may do without asking a person (as a person)",
                                description="readonly: read and search the project, talk through the hub (the "
                                            "default). writes: also edit files in the project (not .claude/, "
                                            ".codex/, .mcp.json, .git/). all: everything runs, still audited. none: "
                                            "no preset; only your rules decide without a person.")
    pre_set.add_argument("name", choices=["readonly", "writes", "all", "none"])
    pre_set.add_argument("--json", action="store_true", help="print JSON")
    ev = ps_sub.add_parser("evaluate", help="a dry run: what would the rules decide for this tool call?",
                           description="Example: repowire policies evaluate Bash --input 'command=git push' --cwd "
                                       "$PWD --peer myproj-claude")
    ev.add_argument("tool", help="the tool name, e.g. Bash, Read, Edit, mcp__github__create_issue")
    ev.add_argument("--input", action="append", metavar="FIELD=VALUE", help="a field of the tool input; repeatable")
    ev.add_argument("--input-json", metavar="JSON", help="the whole tool input as JSON (instead of --input)")
    ev.add_argument("--cwd", help="the agent's working folder")
    ev.add_argument("--peer", help="the agent (name, name@circle or id)")
    ev.add_argument("--json", action="store_true", help="print JSON")
    dc = sub.add_parser("decisions", help="the audit log of decisions on questions, newest first")
    dc.add_argument("--peer", help="only this agent's (name, name@circle or id)")
    dc.add_argument("--tool", help="only this tool's, e.g. Bash")
    dc.add_argument("--decision", choices=["allow", "deny", "ask"], help="only these decisions")
    dc.add_argument("--limit", type=int, default=50, help="at most this many (default 50, up to 1000)")
    dc.add_argument("--json", action="store_true", help="print JSON")
    pol = sub.add_parser("policy", help="add or remove a policy rule (as a person)")
    pol_sub = pol.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = pol_sub.add_parser("add", help="add a rule: every glob given must match; highest priority first",
                             description="Add a policy rule. Example: repowire policy add allow --tool Bash "
                                         "--input 'command=git status*' --priority 10")
    add.add_argument("rule_action", choices=["allow", "deny", "ask"], metavar="ACTION",
                     help="allow, deny, or ask (a person decides)")
    add.add_argument("--tool", default="*", help="tool-name glob, e.g. Bash or mcp__* (default *)")
    add.add_argument("--input", action="append", metavar="FIELD=GLOB",
                     help="a glob on a field of the tool input (dotted for nested fields); repeatable")
    add.add_argument("--cwd", help="glob on the agent's working folder")
    add.add_argument("--peer", help="glob on the agent's peer name or id")
    add.add_argument("--circle", help="glob on the agent's circle")
    add.add_argument("--priority", type=int, default=0, help="higher is tried first (default 0)")
    add.add_argument("--reason", help="shown to the agent and in the audit log")
    add.add_argument("--json", action="store_true", help="print JSON")
    rm = pol_sub.add_parser("rm", help="delete a rule")
    rm.add_argument("id")
    rm.add_argument("--json", action="store_true", help="print JSON")

    hook = sub.add_parser("hook", help="run an agent hook (Claude Code runs these, not people)")
    hook_sub = hook.add_subparsers(dest="action", metavar="EVENT", required=True)
    pre = hook_sub.add_parser(
        "pretooluse", help="Claude Code PreToolUse: ask the hub whether the tool call may run",
        description="Reads Claude Code's PreToolUse JSON on stdin, asks the hub, prints the decision JSON. "
                    "Exit 0 = allow, 2 = deny. Every failure (hub down, no token, timeout, bad answer) is deny, "
                    "printed before the hook's own deadline.")
    pre.add_argument("--timeout", type=float,
                     help="the timeout Claude Code gives this hook, in seconds (default $REPOWIRE_HOOK_TIMEOUT or 60)")
    for event, text in (("session-start", "register this agent session on the hub (and link its tmux pane); "
                                          "prints who it is and who else is online"),
                        ("user-prompt-submit", "say the agent is busy"),
                        ("stop", "say the agent is idle; show new messages and asks waiting for it, once each"),
                        ("notification", "say the agent is waiting for a person (awaiting_input)"),
                        ("session-end", "take the agent offline (its pane link and inbox stay)")):
        ev = hook_sub.add_parser(event, help=text,
                                 description=f"{text[0].upper()}{text[1:]}. Reads the agent's hook JSON on stdin. "
                                             "Never blocks the agent: a short deadline, and silent (exit 0) when the "
                                             "hub is down.")
        ev.add_argument("--agent", choices=("claude", "codex"), default="claude",
                        help="which agent runs this hook (default claude)")

    sub.add_parser("mcp", help="run the MCP server (stdio) that gives an agent tools to talk to its peers",
                   description="An MCP server on stdio for Claude Code or Codex (`repowire hooks install` adds it): "
                               "tools whoami, list_peers, notify, ask, wait_for_reply, ack, answer, inbox, "
                               "wait_for_message, pending_asks, acting as the agent's own peer (its session's "
                               "credential, or REPOWIRE_TOKEN).")

    hooks = sub.add_parser("hooks", help="install or remove the repowire hooks and MCP server for Claude Code or Codex")
    hooks_sub = hooks.add_subparsers(dest="action", metavar="ACTION", required=True)
    for action, text in (("install", "merge the repowire hooks and MCP server into the agent's settings (idempotent, "
                                     "keeps a backup)"),
                         ("uninstall", "remove exactly what `hooks install` added")):
        h = hooks_sub.add_parser(action, help=text, description=(
            f"{text[0].upper()}{text[1:]}. Claude Code: the PreToolUse approval hook and the session hooks "
            "(SessionStart, UserPromptSubmit, Stop, Notification, SessionEnd) in ~/.claude/settings.json, the MCP "
            "server in ~/.claude.json. Codex: the session hooks in ~/.codex/hooks.json, the MCP server and "
            "`features.hooks` in ~/.codex/config.toml (trust the hooks in Codex's /hooks screen)."))
        h.add_argument("--agent", choices=("claude", "codex", "all"), default="claude",
                       help="which agent's configuration (default claude)")
        h.add_argument("--project", action="store_true",
                       help="this project's files (.claude/settings.json and .mcp.json, or .codex/) instead of "
                            "the user's")
        h.add_argument("--settings", help="Claude Code: a settings file to edit instead")
        h.add_argument("--mcp-config", help="Claude Code: the file for the MCP server entry (default ~/.claude.json, "
                                            "or .mcp.json with --project)")
        if action == "install":
            h.add_argument("--timeout", type=int,
                           help="the hook's timeout in seconds (default: the hub's question cap plus margins)")
            h.add_argument("--approvals", choices=["readonly", "writes", "all", "none", "off"], default="readonly",
                           help="what the agent may do without asking a person: readonly (read and search the "
                                "project, talk through the hub; the default), writes (also edit project files), all "
                                "(everything, still audited), none (only your own policy rules), off (no approval "
                                "hook at all). Sets the hub's preset")

    hdoc = hooks_sub.add_parser("doctor", help="check the installed Claude Code hooks and say which approval preset "
                                               "the hub applies (the same as `repowire doctor hooks`)")
    hdoc.add_argument("--project", action="store_true", help="check .claude/settings.json in this folder")
    hdoc.add_argument("--settings", help="a settings file to check instead")
    hdoc.add_argument("--json", action="store_true", help="print JSON")

    doc = sub.add_parser("doctor", help="check a peer (`doctor <peer>`) or the Claude Code hook (`doctor hooks`)",
                         description="`repowire doctor <peer>`: a read-only report on a peer (transport, pane, "
                                     "fingerprint, process, pending messages) and its contradictions; exit 1 when "
                                     "any. `repowire doctor hooks`: check the installed Claude Code hook: present "
                                     "once, command resolves, timeout above the hub's cap.")
    doc.add_argument("target", metavar="PEER|hooks", help="a peer (name, name@circle or id), or `hooks`")
    doc.add_argument("--project", action="store_true", help="hooks: check .claude/settings.json in this folder")
    doc.add_argument("--settings", help="hooks: a settings file to check instead")
    doc.add_argument("--json", action="store_true", help="print JSON")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    rest: list[str] = []
    if "--" in argv:   # what follows is an argument list to run (`jobs add … -- COMMAND`), never parsed
        argv, rest = argv[:argv.index("--")], argv[argv.index("--") + 1:]
    args = parser.parse_args(argv)
    if rest:
        if not hasattr(args, "argv"):
            parser.error(f"unrecognized arguments: -- {' '.join(rest)}")
        args.argv = rest
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "doctor":
        args.action = "hooks" if args.target == "hooks" else "peer"
    target = COMMANDS.get((args.command, getattr(args, "action", None)))
    if target is None:
        parser.parse_args([args.command, "--help"])
        return 2
    module_name, function_name = target.split(":")
    handler = getattr(importlib.import_module(module_name), function_name)
    try:
        return handler(args)
    except CommandFailed as exc:
        print(f"repowire: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
