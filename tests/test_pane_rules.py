"""The pure rules of pane links: pane ids, keys, default names, doctor findings, rehook plans,
fingerprint comparison."""

from __future__ import annotations

from dataclasses import replace

import msgspec
import pytest

from hub.core.errors import HubError
from hub.core.panes import MAX_KEYS, PaneLink, check_pane_id, default_name, diagnose, plan_rehook, tmux_keys
from hub.core.peers import PeerRecord
from schemas.names import as_name
from schemas.rest import DoctorChecks
from transports.panes import PaneCheck, PaneInfo, changed_fields

HEALTHY = DoctorChecks(status="online", transport_connected=True, linked=True, bridge_connected=True,
                       pane_exists=True, pane_dead=False, pid_alive=True, fingerprint_matches=True, changed=[],
                       pending=0, oldest_pending_age_s=None, stale_asks=0)
FINGERPRINT = {"server": "/tmp/tmux-0/default", "server_pid": 10, "pane_id": "%3", "pid": 99, "started_at": 1000,
               "command": "claude", "cwd": "/src/api"}


@pytest.mark.parametrize("pane_id, ok", [("%0", True), ("%123456789", True), ("%1234567890", False), ("12", False),
                                         ("%", False), ("%1;rm", False), ("%1\n", False)])
def test_pane_ids(pane_id, ok):
    if ok:
        assert check_pane_id(pane_id) == pane_id
    else:
        with pytest.raises(HubError) as caught:
            check_pane_id(pane_id)
        assert caught.value.code.value == "invalid_request"


def test_keys_map_to_tmux_names_and_only_from_the_allow_list():
    assert tmux_keys(["Escape", "Ctrl-C", "Shift-Tab", "PageDown", "7"]) == ["Escape", "C-c", "BTab", "NPage", "7"]
    assert len(tmux_keys(["Enter"] * MAX_KEYS)) == MAX_KEYS
    for keys in (["Enter"] * (MAX_KEYS + 1), [], ["C-c"], ["Escape", "ls\n"]):
        with pytest.raises(HubError):
            tmux_keys(keys)


def test_names_from_folders_and_sessions():
    assert default_name("/home/me/src/my api/", "claude") == "my-api"
    assert default_name("/", "codex") == "codex"
    assert as_name("..hidden", "x") == "hidden" and as_name("日本", "fallback") == "fallback"
    assert len(as_name("a" * 100, "x")) == 64


def test_a_healthy_peer_has_no_findings_and_rehook_leaves_it():
    assert diagnose(HEALTHY) == []
    assert plan_rehook(HEALTHY).action == "none"


@pytest.mark.parametrize("change, codes, action", [
    ({"transport_connected": False}, ["online_without_transport", "transport_down"], "restart_transport"),
    ({"status": "offline", "transport_connected": False}, ["transport_down"], "restart_transport"),
    ({"status": "offline", "transport_connected": False, "bridge_connected": False}, ["bridge_unavailable"], "none"),
    ({"status": "offline", "transport_connected": False, "pane_exists": False}, ["pane_missing"], "none"),
    ({"status": "offline", "transport_connected": False, "pane_dead": True, "pid_alive": False},
     ["pane_dead", "pid_dead"], "none"),
    ({"status": "offline", "transport_connected": False, "fingerprint_matches": False, "changed": ["pid"]},
     ["fingerprint_changed"], "none"),
    ({"stale_asks": 2}, ["stale_pending_asks"], "none"),
])
def test_contradictions_and_what_rehook_would_do(change, codes, action):
    facts = msgspec.structs.replace(HEALTHY, **change)
    assert [f.code for f in diagnose(facts)] == codes
    assert plan_rehook(facts).action == action


def test_a_peer_without_a_pane_is_only_checked_for_its_transport():
    facts = msgspec.structs.replace(HEALTHY, linked=False, transport_connected=False, pane_exists=None, pane_dead=None,
                                   pid_alive=None, fingerprint_matches=None)
    assert [f.code for f in diagnose(facts)] == ["online_without_transport"]
    assert plan_rehook(facts).reason == "the peer has no pane link"


def test_a_pane_link_survives_the_store_and_knows_its_pane():
    link = PaneLink("tmux-host-default", "%3", "claude", FINGERPRINT, 5)
    peer = PeerRecord("a" * 32, "api", "api", "agent", "d" * 64, 1, 2, pane=link)
    again = PeerRecord.from_store(peer.to_store())
    assert again == peer and again.pane.holds("tmux-host-default", "%3", 99)
    assert not again.pane.holds("tmux-host-default", "%3", 100)  # tmux reused the id for another process
    assert PeerRecord.from_store(replace(peer, pane=None).to_store()).pane is None


@pytest.mark.parametrize("change, departure", [
    ({}, None), ({"pid": 100, "started_at": 2000}, "pane_replaced"), ({"server_pid": 11}, "pane_replaced"),
    ({"command": "bash"}, "agent_exited"), ({"cwd": "/tmp"}, "pane_changed")])
def test_fingerprint_changes_and_why_a_transport_leaves(change, departure):
    current = {**FINGERPRINT, **change}
    pane = PaneInfo("%3", current["pid"], current["command"], current["cwd"], "api", "0", "w", False, None, 0.0,
                    current)
    check = PaneCheck(pane, changed_fields(FINGERPRINT, current))
    assert check.changed == [k for k in FINGERPRINT if k in change]
    assert check.departure == departure
    assert PaneCheck(None, list(FINGERPRINT)).departure == "pane_closed"
    assert PaneCheck(replace(pane, dead=True), []).departure == "pane_dead"
