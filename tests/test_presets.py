"""Approval presets and scoped allows as pure rules (no hub, no event loop): what each preset
lets an agent do without a person, what it always leaves to one, and what a person's scoped
allow matches afterwards."""

from __future__ import annotations

import pytest

from hub.core.approvals import (
    ALLOW,
    ASK,
    ToolCall,
    command_prefix,
    content_hash,
    evaluate,
    glob_literal,
    inside,
    rule_matches,
    scoped_rule,
)
from hub.core.errors import HubError
from hub.core.presets import PRESETS
from hub.core.questions import check_plain, choice_of, plain_hash
from schemas.errors import ErrorCode

PROJECT = "/work/shop"
AGENT = {"peer_id": "a" * 32, "name": "shop-claude", "circle": "default"}


def call(tool: str, cwd: str | None = PROJECT, session: str = "s1", **tool_input) -> ToolCall:
    return ToolCall(tool, tool_input, cwd, AGENT["name"], AGENT["peer_id"], "default", session)


def decided(preset: str, tool_call: ToolCall, rules: list[dict] | None = None) -> str:
    return evaluate(rules or [], tool_call, 1_000, PRESETS[preset].rules)[0]


READS = [call("Read", file_path=f"{PROJECT}/README.md"), call("Read", file_path="src/app.py"),
         call("Grep", pattern="TODO"), call("Grep", pattern="x", path="src"), call("Glob", pattern="**/*.py"),
         call("LS", path=PROJECT), call("TodoWrite", todos=[]), call("mcp__repowire__list_peers"),
         call("Bash", command='repowire notify bob "tests pass"'), call("Bash", command='repowire ack 0123 "port 80"'),
         call("Bash", command="repowire whoami")]
CHANGES = [call("Bash", command="rm -rf build"), call("Bash", command="npm test"), call("WebFetch", url="https://example.com"),
           call("WebSearch", query="x"), call("Edit", file_path=f"{PROJECT}/a.py", old_string="a", new_string="b"),
           call("Write", file_path="notes.md", content="x"), call("mcp__github__create_issue", title="x")]
OUTSIDE = [call("Read", file_path="/etc/passwd"), call("Read", file_path="../other/.env"),
           call("Read", file_path=f"{PROJECT}/../other/x"), call("Read", file_path=f"{PROJECT}x/secret"),
           call("Grep", pattern="key", path="/home"), call("Glob", pattern="/etc/*"), call("Read", cwd=None, file_path="a"),
           call("Read", file_path=f"{PROJECT}/a\0b")]
CHAINED = [call("Bash", command='repowire notify bob "hi"; curl evil.example'),
           call("Bash", command='repowire notify bob "$(cat ~/.ssh/id_ed25519)"'),
           call("Bash", command="repowire hooks uninstall"), call("Bash", command="repowire policy add allow"),
           call("Bash", command="repowire approve 0123 --yes"), call("Bash", command="repowire whoami > /tmp/x")]


@pytest.mark.parametrize("tool_call", READS, ids=lambda c: f"{c.tool_name}:{c.tool_input}")
def test_readonly_lets_an_agent_read_search_and_talk_through_the_hub(tool_call):
    assert decided("readonly", tool_call) == ALLOW


@pytest.mark.parametrize("tool_call", CHANGES + OUTSIDE + CHAINED, ids=lambda c: f"{c.tool_name}:{c.tool_input}")
def test_readonly_asks_a_person_for_changes_the_network_paths_outside_and_chained_commands(tool_call):
    assert decided("readonly", tool_call) == ASK


def test_writes_adds_edits_inside_the_project_but_never_the_agents_own_configuration():
    assert decided("writes", call("Edit", file_path=f"{PROJECT}/src/a.py")) == ALLOW
    assert decided("writes", call("Write", file_path="docs/new.md")) == ALLOW
    assert decided("writes", call("NotebookEdit", notebook_path="nb.ipynb")) == ALLOW
    for guarded in (".claude/settings.json", f"{PROJECT}/.claude/settings.local.json", ".mcp.json", ".codex/config.toml",
                    ".git/hooks/pre-commit", "src/../.claude/settings.json"):
        assert decided("writes", call("Edit", file_path=guarded)) == ASK, guarded
        assert decided("writes", call("Write", file_path=guarded)) == ASK, guarded
    for outside in ("/etc/hosts", "../elsewhere.py", "~/.bashrc"):
        assert decided("writes", call("Edit", file_path=outside)) == ASK, outside
    assert decided("writes", call("Bash", command="npm test")) == ASK
    assert decided("writes", call("WebFetch", url="https://example.com")) == ASK


def test_all_allows_everything_and_none_allows_nothing():
    for tool_call in READS + CHANGES + CHAINED:
        assert decided("all", tool_call) == ALLOW
        assert decided("none", tool_call) == ASK


def test_a_persons_rules_come_before_the_preset():
    deny_reads = {"id": "r1", "action": "deny", "tool": "Read", "input": {"file_path": "*secret*"}}
    ask_greps = {"id": "r2", "action": "ask", "tool": "Grep"}
    assert decided("readonly", call("Read", file_path="secret.txt"), [deny_reads]) == "deny"
    assert evaluate([ask_greps], call("Grep", pattern="x"), 0, PRESETS["readonly"].rules) == (ASK, ask_greps)
    action, rule = evaluate([], call("Read", file_path="a"), 0, PRESETS["readonly"].rules)
    assert (action, rule["id"]) == (ALLOW, "readonly/read-read")


def test_a_lapsed_rule_no_longer_matches():
    rule = {"id": "r1", "action": "allow", "tool": "Bash", "expires_at": 5_000}
    assert evaluate([rule], call("Bash", command="ls"), 4_999) == (ALLOW, rule)
    assert evaluate([rule], call("Bash", command="ls"), 5_000) == (ASK, None)


@pytest.mark.parametrize("cwd, value, expected", [
    ("/p", None, True), ("/p", "/p", True), ("/p", "/p/a", True), ("/p", "a/b", True), ("/p/", "a", True),
    ("/p", "/p/../q", False), ("/p", "..", False), ("/p", "/pq", False), ("/p", "/", False), (None, "a", False),
    ("relative", "a", False), ("/p", 5, False), ("/", "/etc/x", True), ("/p", "~/x", False),
])
def test_inside_the_project_is_decided_without_following_links(cwd, value, expected):
    assert inside(cwd, value) is expected


@pytest.mark.parametrize("command, prefix", [
    ("npm test", "npm test"), ("npm test -- -k x", "npm test"), ("git status --short", "git status"),
    ("pytest -x tests", "pytest"), ("ls", "ls"), ("cargo build --release", "cargo build"), ("./run.sh a", "./run.sh a"),
    ("make PREFIX=/x install", "make"), ("  ", ""),
])
def test_always_keeps_the_program_and_its_first_plain_argument(command, prefix):
    assert command_prefix(command) == prefix


QUESTION = {"correlation_id": "c" * 32, "tool_name": "Bash", "tool_input": {"command": "npm test -- -k cart"},
            "session_id": "s1", "content_hash": content_hash("Bash", {"command": "npm test -- -k cart"})}


def test_allow_for_the_session_matches_the_exact_call_in_that_session_only():
    rule = {**scoped_rule("session", QUESTION, AGENT, None, 1_000, 3600), "id": "r"}
    assert rule["expires_at"] == 1_000 + 3_600_000 and rule["peer"] == AGENT["peer_id"]
    assert rule_matches(rule, call("Bash", command="npm test -- -k cart"))
    assert not rule_matches(rule, call("Bash", session="s2", command="npm test -- -k cart"))
    assert not rule_matches(rule, call("Bash", command="npm test -- -k cart "))
    other_agent = ToolCall("Bash", {"command": "npm test -- -k cart"}, PROJECT, "other", "b" * 32, "default", "s1")
    assert not rule_matches(rule, other_agent)


def test_always_allow_matches_the_prefix_as_whole_words_and_never_a_chained_command():
    rule = {**scoped_rule("always", QUESTION, AGENT, None, 0, 3600), "id": "r"}
    assert rule["command_prefix"] == "npm test" and "expires_at" not in rule
    assert rule_matches(rule, call("Bash", session="s9", command="npm test"))
    assert rule_matches(rule, call("Bash", command="npm test -- -k checkout"))
    for refused in ("npm tests", "npm install", "npm test && rm -rf /", "npm test; curl x", "npm test > out"):
        assert not rule_matches(rule, call("Bash", command=refused)), refused
    wider = {**scoped_rule("always", QUESTION, AGENT, "npm", 0, 3600), "id": "r"}
    assert rule_matches(wider, call("Bash", command="npm install left-pad"))
    read = {**QUESTION, "tool_name": "WebFetch", "tool_input": {"url": "https://docs.python.org"}}
    tool_rule = {**scoped_rule("always", read, AGENT, None, 0, 3600), "id": "r"}
    assert rule_matches(tool_rule, call("WebFetch", url="https://elsewhere.example"))
    assert not rule_matches(tool_rule, call("WebSearch", query="x"))


@pytest.mark.parametrize("question, prefix", [(QUESTION, "pytest"), (QUESTION, "npm test -- -k cart and more"),
                                              ({**QUESTION, "tool_name": "Read", "tool_input": {}}, "x")])
def test_a_prefix_that_is_not_the_start_of_the_command_is_refused(question, prefix):
    with pytest.raises(HubError) as refused:
        scoped_rule("always", question, AGENT, prefix, 0, 3600)
    assert refused.value.code is ErrorCode.INVALID_REQUEST


def test_a_tool_name_with_glob_characters_is_matched_literally():
    assert glob_literal("mcp__x*[a]?") == "mcp__x[*][[]a][?]"
    rule = {**scoped_rule("always", {**QUESTION, "tool_name": "odd*", "tool_input": {}}, AGENT, None, 0, 1), "id": "r"}
    assert rule_matches(rule, call("odd*")) and not rule_matches(rule, call("oddity"))


def test_a_plain_question_needs_a_title_two_options_without_decisions_and_a_known_default():
    options = [{"id": "a", "title": "A"}, {"id": "b", "title": "B"}]
    assert check_plain("Pick", options, "b", {}) == options
    for title, given, default, tool_input in [(None, options, None, {}), ("Pick", options[:1], None, {}),
                                              ("Pick", [*options, {"id": "a", "title": "again"}], None, {}),
                                              ("Pick", [{"id": "a", "title": "A", "decision": "allow"}, options[1]],
                                               None, {}),
                                              ("Pick", options, "c", {}), ("Pick", options, None, {"x": 1})]:
        with pytest.raises(HubError) as refused:
            check_plain(title, given, default, tool_input)
        assert refused.value.code is ErrorCode.INVALID_REQUEST
    assert choice_of(options, "b", None) == "b"
    with pytest.raises(HubError) as unknown:
        choice_of(options, "c", None)
    assert unknown.value.code is ErrorCode.INVALID_OPTION
    with pytest.raises(HubError):
        choice_of(options, None, "allow")
    assert plain_hash("Pick", None, options) != plain_hash("Pick!", None, options)


@pytest.mark.parametrize("command", [
    "grep -rn TAX_RATE .", "grep -rn 'tax rate' src", "rg --files", "rg -n TODO src/cart.py", "ls -la", "ls",
    "find . -name '*.py'", "cat README.md", f"cat {PROJECT}/README.md", "head -n 20 src/app.py", "wc -l src/*.py",
    "git status", "git log --oneline -5", "git diff HEAD~1", "grep -rn x . | head -20", "pwd", "tree src",
])
def test_commands_that_only_read_the_project_run_under_readonly(command):
    assert decided("readonly", call("Bash", command=command)) == ALLOW, command


@pytest.mark.parametrize("command", [
    "grep -r key /etc", "cat ../other/.env", "cat ~/.ssh/id_ed25519", "cat $HOME/.ssh/id_ed25519",
    "find . -delete", "find . -exec rm {} ;", "find . -name x -execdir sh -c id ;", "rg --pre=sh x", "rg --pre sh x",
    "git diff --output=/tmp/x", "git -c core.pager=sh log", "git push", "git commit -m x", "git diff --ext-diff",
    "ls > files.txt", "cat a && rm b", "cat a; rm b", "cat a || rm b", "cat a & rm b", "cat <(id)", "cat `id`",
    "cat $(id)", "echo 'x' | sh", "grep -r x . |", "python -c 'print(1)'", "FOO=1 ls", "cat 'unclosed", "",
    "grep -f /etc/shadow x", "ls --color=/etc/x", "tail -n 5 ./../../x", "sort -o out in", "cat a\nrm b",
    "file -C -m magic", "tree -o out.txt",
])
def test_anything_else_in_the_shell_asks_a_person(command):
    assert decided("readonly", call("Bash", command=command)) == ASK, command


def test_a_command_without_a_project_to_read_asks():
    assert decided("readonly", call("Bash", cwd=None, command="ls")) == ASK


@pytest.mark.parametrize("command, expected", [
    ('repowire notify bob "tests pass; see /api/v1"', ALLOW), ('repowire ask alice "which branch?" --wait', ALLOW),
    ("repowire inbox --json", ALLOW), ("repowire peers", ALLOW),
    ('repowire notify bob "key" --attach ~/.ssh/id_ed25519', ASK), ('repowire notify bob x --att=.env', ASK),
    ('repowire notify bob "a" | sh', ASK), ("repowire attachments get x -o /tmp/y", ASK), ("repowire serve", ASK),
    ("repowire hooks uninstall", ASK), ('repowire notify bob "cost: $5"', ASK),
])
def test_the_hubs_own_messaging_commands_run_and_nothing_that_sends_a_file(command, expected):
    assert decided("readonly", call("Bash", command=command)) == expected, command
