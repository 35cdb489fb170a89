"""`repowire questions | approve | deny | policies | policy`: a person at a terminal answers
tool-permission questions and manages policy rules, over the hub's REST routes.

Answers carry the question's content hash, so an approval is always for the tool call that
was listed. Exit codes as for every client command: 0 done, 1 the hub said no, 2 unreachable.
"""

from __future__ import annotations

import time

import orjson

from hub.cli.client_commands import call, emit
from hub.cli.failures import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, CommandFailed


def _summary(tool_input: dict, width: int = 70) -> str:
    text = tool_input.get("command") or tool_input.get("file_path") or tool_input.get("url") \
        or orjson.dumps(tool_input).decode()
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def questions(args) -> int:
    body = call("GET", "/questions", home=args.home)
    now = time.time() * 1000
    rows = [f"{'ID':<32}  {'PEER':<16} {'TOOL':<12} {'LEFT':>5}  WHAT"]
    for q in body["questions"]:
        who = (q.get("peer") or q["asker"])["name"]
        rows.append(f"{q['correlation_id']}  {who:<16} {q['tool_name'][:12]:<12} "
                    f"{max(0, int((q['deadline'] - now) / 1000)):>4}s  {_summary(q['tool_input'])}")
    human = "\n".join(rows) + "\n\nrepowire approve <id> | repowire deny <id> --reason ..." if body["questions"] \
        else "no questions waiting"
    emit(body, args.json, human)
    return EXIT_OK


def _decide(args, decision: str) -> int:
    question = call("GET", f"/questions/{args.id}", home=args.home)
    if question["state"] != "pending":
        raise CommandFailed(EXIT_REFUSED, f"already decided: {question.get('decision')} by "
                                          f"{question.get('answered_by')} ({question.get('reason', '')})")
    payload = {"decision": decision, "content_hash": question["content_hash"]}
    if args.reason:
        payload["reason"] = args.reason
    body = call("POST", f"/questions/{args.id}/answer", home=args.home, json=payload)
    emit(body, args.json, f"{body['decision']}  {question['tool_name']}: {_summary(question['tool_input'])}")
    return EXIT_OK


def approve(args) -> int:
    return _decide(args, "allow")


def deny(args) -> int:
    return _decide(args, "deny")


def policies(args) -> int:
    body = call("GET", "/policies", home=args.home)
    rows = [f"{'ID':<32}  {'PRIO':>5} {'ACTION':<6} {'TOOL':<12} MATCH"]
    for p in body["policies"]:
        match = " ".join([*(f"{k}={v}" for k, v in p.get("input", {}).items()),
                          *(f"{k}={p[k]}" for k in ("cwd", "peer", "circle") if p.get(k))])
        rows.append(f"{p['id']}  {p.get('priority', 0):>5} {p['action']:<6} {p['tool']:<12} {match}")
    emit(body, args.json, "\n".join(rows) if body["policies"] else "no policy rules: every tool call asks a person")
    return EXIT_OK


def policy_add(args) -> int:
    rule: dict = {"action": args.rule_action, "tool": args.tool, "priority": args.priority}
    fields = {}
    for item in args.input or []:
        name, sep, pattern = item.partition("=")
        if not sep or not name:
            raise CommandFailed(EXIT_UNREACHABLE, f"--input takes FIELD=GLOB, not {item!r}")
        fields[name] = pattern
    if fields:
        rule["input"] = fields
    for key in ("cwd", "peer", "circle", "reason"):
        if getattr(args, key):
            rule[key] = getattr(args, key)
    body = call("POST", "/policies", home=args.home, json=rule)
    emit(body, args.json, f"added {body['id']}")
    return EXIT_OK


def policy_rm(args) -> int:
    body = call("DELETE", f"/policies/{args.id}", home=args.home)
    emit(body, args.json, f"deleted {body['deleted']}")
    return EXIT_OK
