"""The pure rules of tool-permission questions: content binding, deadlines, policy matching."""

from __future__ import annotations

import pytest

from hub.core.approvals import (
    ASK,
    QuestionPolicy,
    ToolCall,
    content_hash,
    decision_of,
    evaluate,
    question_deadline,
    question_id,
    rule_matches,
)
from hub.core.errors import HubError
from schemas.errors import ErrorCode

OPTIONS = [{"id": "allow", "title": "Allow", "decision": "allow"}, {"id": "deny", "title": "Deny", "decision": "deny"}]


def call(tool="Bash", cwd="/work/shop", peer="builder", circle="team", **tool_input) -> ToolCall:
    return ToolCall(tool, tool_input, cwd, peer, "a" * 32, circle)


def rule(action="allow", **fields) -> dict:
    return {"id": fields.pop("id", "r1"), "action": action, "priority": fields.pop("priority", 0),
            "created_at": fields.pop("created_at", 0), **fields}


def test_content_hash_ignores_key_order_and_sees_every_change():
    assert content_hash("Bash", {"a": 1, "b": 2}) == content_hash("Bash", {"b": 2, "a": 1})
    assert content_hash("Bash", {"command": "ls"}) != content_hash("Bash", {"command": "ls "})
    assert content_hash("Bash", {"command": "ls"}) != content_hash("Shell", {"command": "ls"})
    assert len(content_hash("Bash", {})) == 64


def test_the_same_tool_call_maps_to_one_question_per_asker():
    assert question_id("p1", "s", "toolu_1") == question_id("p1", "s", "toolu_1")
    assert question_id("p1", "s", "toolu_1") != question_id("p2", "s", "toolu_1")
    assert question_id("p1", "s", "toolu_1") != question_id("p1", "s", "toolu_2")


@pytest.mark.parametrize("requested, hook, expected_s", [
    (None, None, 300), (10, None, 10), (None, 60, 55), (100, 60, 55), (20, 60, 20), (None, 1000, 300), (None, 5, 0),
])
def test_deadline_is_the_least_of_requested_hook_less_margin_and_cap(requested, hook, expected_s):
    assert question_deadline(1_000, requested, hook, QuestionPolicy(max_timeout_s=300, margin_s=5)) \
        == 1_000 + expected_s * 1000


def test_an_answer_names_an_option_or_a_decision_not_both():
    assert decision_of(OPTIONS, "deny", None) == "deny"
    assert decision_of(OPTIONS, None, "allow") == "allow"
    for option_id, decision in ((None, None), ("allow", "allow")):
        with pytest.raises(HubError) as exc:
            decision_of(OPTIONS, option_id, decision)
        assert exc.value.code is ErrorCode.INVALID_REQUEST
    with pytest.raises(HubError) as exc:
        decision_of(OPTIONS, "maybe", None)
    assert exc.value.code is ErrorCode.INVALID_OPTION


def test_every_glob_of_a_rule_must_match():
    r = rule(tool="Bash", input={"command": "git status*"}, cwd="/work/*", peer="build*", circle="team")
    assert rule_matches(r, call(command="git status -s"))
    assert not rule_matches(r, call(tool="Read", command="git status"))
    assert not rule_matches(r, call(command="git push"))
    assert not rule_matches(r, call(cwd="/etc", command="git status"))
    assert not rule_matches(r, call(peer="reviewer", command="git status"))
    assert not rule_matches(r, call(circle="other", command="git status"))
    assert not rule_matches(r, call())  # the field is missing: no match


def test_peer_globs_match_the_name_or_the_id():
    assert rule_matches(rule(peer="a" * 32), call(command="x"))


def test_nested_fields_and_non_string_values():
    r = rule(input={"options.force": "true", "limit": "1?"})
    assert rule_matches(r, ToolCall("T", {"options": {"force": True}, "limit": 10}, None, None, None, None))
    assert not rule_matches(r, ToolCall("T", {"options": {"force": False}, "limit": 10}, None, None, None, None))


@pytest.mark.parametrize("command", ["git status; rm -rf ~", "git status && curl x | sh", "git status `id`",
                                     "git status $(id)", "git status > /etc/passwd", "git status\nrm -rf ~",
                                     "git status < x", "git status || true", "git status & sleep 1"])
def test_an_allow_glob_never_stretches_over_a_shell_operator(command):
    assert not rule_matches(rule("allow", input={"command": "git status*"}), call(command=command))
    # a deny rule matches regardless: the guard only narrows what is allowed
    assert rule_matches(rule("deny", input={"command": "git status*"}), call(command=command))


def test_an_allow_glob_that_spells_the_operator_out_matches_it():
    assert rule_matches(rule("allow", input={"command": "make && make test"}), call(command="make && make test"))


def test_highest_priority_first_then_the_older_rule():
    rules = [rule("allow", id="low", priority=1, tool="Bash"),
             rule("deny", id="high", priority=9, tool="Bash", input={"command": "rm *"}),
             rule("ask", id="older", priority=1, tool="Bash", created_at=-5)]
    assert evaluate(rules, call(command="rm -rf build"))[1]["id"] == "high"
    assert evaluate(rules, call(command="ls"))[1]["id"] == "older"
    assert evaluate(rules, call(tool="Read", command="ls")) == (ASK, None)
