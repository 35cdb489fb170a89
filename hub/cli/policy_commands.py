"""`repowire policies | policy | decisions`: a person manages the rules that decide tool calls
without asking them, chooses the approval preset, tries a call against the rules (a dry run),
and reads the audit log of decisions, over the hub's REST routes.
"""

from __future__ import annotations

import time

import orjson

from hub.cli.client_commands import call, emit
from hub.cli.failures import EXIT_OK, EXIT_USAGE, CommandFailed
from schemas.visible import neutralise


def _match(rule: dict) -> str:
    parts = [*(f"{k}={v}" for k, v in rule.get("input", {}).items()),
             *(f"{k}={rule[k]}" for k in ("cwd", "peer", "circle", "session_id") if rule.get(k))]
    if rule.get("command_prefix"):
        parts.append(f"command-starts={rule['command_prefix']!r}")
    if rule.get("inside_cwd"):
        parts.append(f"inside-cwd={','.join(rule['inside_cwd'])}")
    if rule.get("content_hash"):
        parts.append(f"exact-call={rule['content_hash'][:12]}")
    if rule.get("expires_at"):
        parts.append(f"until={time.strftime('%Y-%m-%d %H:%M', time.localtime(rule['expires_at'] / 1000))}")
    if rule.get("scope"):
        parts.append(f"({rule['scope']} allow of question {rule.get('question_id', '?')[:12]})")
    return neutralise(" ".join(parts))


def policies(args) -> int:
    body = call("GET", "/policies", home=args.home)
    preset = body["preset"]
    rows = [f"{'ID':<32}  {'PRIO':>5} {'ACTION':<6} {'TOOL':<12} MATCH"]
    rows += [f"{p['id']}  {p.get('priority', 0):>5} {p['action']:<6} {neutralise(p['tool']):<12} {_match(p)}"
             for p in body["policies"]]
    if not body["policies"]:
        rows.append("(no rules of your own)")
    rows += ["", f"then the approval preset `{preset['name']}`: {preset['summary']}"]
    rows += [f"{p['id']:<32}  {p.get('priority', 0):>5} {p['action']:<6} {p['tool']:<12} {_match(p)}"
             for p in preset["rules"]]
    rows.append("anything no rule decides asks a person.")
    emit(body, args.json, "\n".join(rows))
    return EXIT_OK


def choose_preset(args) -> int:
    body = call("PUT", "/policies/preset", home=args.home, json={"name": args.name})
    emit(body, args.json, f"approval preset is now `{body['name']}`: {body['summary']}")
    return EXIT_OK


def _fields(items: list[str] | None, what: str) -> dict:
    fields = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CommandFailed(EXIT_USAGE, f"{what} takes FIELD=VALUE, not {item!r}")
        fields[name] = value
    return fields


def evaluate(args) -> int:
    """A dry run: what would the rules and the preset decide for this call? Asks nobody."""
    tool_input = _fields(args.input, "--input")
    if args.input_json:
        try:
            tool_input = orjson.loads(args.input_json)
        except orjson.JSONDecodeError as exc:
            raise CommandFailed(EXIT_USAGE, f"--input-json is not JSON: {exc}") from None
    request = {"tool_name": args.tool, "tool_input": tool_input}
    for key in ("cwd", "peer"):
        if getattr(args, key):
            request[key] = getattr(args, key)
    body = call("POST", "/policies/evaluate", home=args.home, json=request)
    rule = body.get("rule")
    source = "no rule" if rule is None else f"rule {rule['id']}"
    if rule is not None and body.get("preset"):
        source = f"preset {body['preset']}, {source}"
    emit(body, args.json, f"{body['action']}  ({source}): {neutralise(body['reason'])}")
    return EXIT_OK


def policy_add(args) -> int:
    rule: dict = {"action": args.rule_action, "tool": args.tool, "priority": args.priority}
    fields = _fields(args.input, "--input")
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


def decisions(args) -> int:
    """The audit log, newest first: who decided what, for which agent and tool, and why."""
    params = {"limit": args.limit, **{k: getattr(args, k) for k in ("peer", "tool", "decision") if getattr(args, k)}}
    body = call("GET", "/decisions", home=args.home, params=params)
    rows = [f"{'WHEN':<19}  {'PEER':<16} {'TOOL':<12} {'DECISION':<8} {'BY':<9} REASON"]
    for entry in body["decisions"]:
        who = neutralise((entry.get("peer") or {}).get("name", "?"))
        what = entry.get("decision") or f"#{entry.get('option_id') or '-'}"
        scope = f" [{entry['scope']}]" if entry.get("scope") else ""
        rows.append(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(entry['at'] / 1000))}  {who:<16} "
                    f"{neutralise(entry.get('tool_name') or '(question)')[:12]:<12} {what:<8} "
                    f"{entry['answered_by']:<9} {neutralise(entry['reason'])[:80]}{scope}")
    emit(body, args.json, "\n".join(rows) if body["decisions"] else "no decisions recorded")
    return EXIT_OK
