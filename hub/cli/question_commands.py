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

from hub.cli.client_commands import call, emit
from hub.cli.failures import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, CommandFailed
from transports.pane_text import neutralise

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
            out += [f"{indent}-"] + _lines_of(item, indent + "  ")
        return out
    if isinstance(value, str):
        return [f"{indent}| {neutralise(line)}" for line in value.replace("\r\n", "\n").split("\n")]
    return [f"{indent}{_scalar(value)}"]


def _scalar(item: object) -> str:
    return neutralise(item) if isinstance(item, str) else orjson.dumps(item).decode()


def full_question(question: dict) -> str:
    who = question.get("peer") or question["asker"]
    lines = [f"question {question['correlation_id']}  ({question['state']})",
             f"agent    {neutralise(who['name'])}@{neutralise(who['circle'])}",
             f"tool     {neutralise(question['tool_name'])}"]
    if question.get("cwd"):
        lines.append(f"cwd      {neutralise(question['cwd'])}")
    if question.get("prompt"):
        lines.append(f"prompt   {neutralise(question['prompt'])}")
    lines.append("input")
    lines += _lines_of(question["tool_input"]) or ["  (empty)"]
    return "\n".join(lines)


def questions(args) -> int:
    body = call("GET", "/questions", home=args.home)
    now = time.time() * 1000
    rows = [f"{'ID':<32}  {'PEER':<16} {'TOOL':<12} {'LEFT':>5}  WHAT"]
    for q in body["questions"]:
        who = neutralise((q.get("peer") or q["asker"])["name"])
        rows.append(f"{q['correlation_id']}  {who:<16} {neutralise(q['tool_name'])[:12]:<12} "
                    f"{max(0, int((q['deadline'] - now) / 1000)):>4}s  {_summary(q['tool_input'], q['correlation_id'])}")
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


def _decide(args, decision: str) -> int:
    question = call("GET", f"/questions/{args.id}", home=args.home)
    if question["state"] == "abandoned":
        raise CommandFailed(EXIT_REFUSED, "question_abandoned: nobody waits for this answer any more: the agent's hook "
                                          "is gone, so its tool call was already denied and deciding it would change "
                                          f"nothing ({neutralise(question.get('reason') or '')})")
    if question["state"] != "pending":
        raise CommandFailed(EXIT_REFUSED, f"already decided: {question.get('decision')} by "
                                          f"{question.get('answered_by')} ({neutralise(question.get('reason') or '')})")
    if decision == "allow" and not args.yes and not _confirmed(question):
        print("not approved; the question is still waiting")
        return EXIT_REFUSED
    payload = {"decision": decision, "content_hash": question["content_hash"]}
    if args.reason:
        payload["reason"] = args.reason
    body = call("POST", f"/questions/{args.id}/answer", home=args.home, json=payload)
    emit(body, args.json, f"{body['decision']}  {neutralise(question['tool_name'])}: "
                          f"{_summary(question['tool_input'], question['correlation_id'])}")
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
