"""The key layout keeps every multi-key command in one hash slot, so the store may be a
Redis/Valkey cluster: each script and each multi-key command the hub builds is checked with the
cluster's own slot function (CRC16 of the hash tag)."""

from __future__ import annotations

from redis.crc import key_slot

from hub.core.jobs import work_id_of_fire
from hub.core.peers import PeerRecord
from hub.store import scripts
from hub.store.asks import AskStore
from hub.store.attachments import AttachmentStore
from hub.store.jobs import JobStore
from hub.store.questions import QuestionStore
from hub.store.schedules import ScheduleStore
from hub.store.state import StoreState

PEER, OTHER, MESSAGE, QUESTION, SCHEDULE = "a1" * 16, "b2" * 16, "c3" * 16, "d4" * 16, "e5" * 16


def command_keys(cmd: tuple) -> list:
    """The keys a command touches (for the commands the hub sends with more than one key)."""
    name = cmd[0]
    if name == "EVALSHA":
        return list(cmd[3:3 + cmd[2]])
    if name == "DEL":
        return list(cmd[1:])
    return [cmd[1]]


def built_commands() -> list[tuple]:
    state = StoreState(None, None, mesh_node="n1")
    peer = PeerRecord(peer_id=PEER, name="bob", circle="default", role="agent", token_digest="x" * 64,
                      created_at=1, last_seen=1, node="n1")
    record = {"asker": PEER, "correlation_id": MESSAGE, "recipient": OTHER, "created_at": "1", "deadline": "2",
              "state": "pending"}
    return [
        state.enqueue_cmd(PEER, MESSAGE, b"{}", 1, MESSAGE, "notify"),
        state.enqueue_cmd(PEER, MESSAGE, b"{}", 1, MESSAGE, "ask", index_score=1),
        *state.presence_cmds(peer), *state.delete_peer_cmds(peer),
        state.confirm_upto_cmd(PEER, 3), state.expire_head_cmd(PEER, 1),
        state.unannounced_trace_cmd(MESSAGE, [{"stage": "accepted"}]),
        *AskStore.create_cmds(record, 60),
        AskStore.close_cmd(PEER, MESSAGE, state="acked", closed_at=1, result={}, closer=OTHER, mesh_node="n1"),
        QuestionStore.create_cmd(QUESTION, "h", {}, 1, 2, [{"stage": "accepted"}], {"stage": "joined"}, 60, None),
        QuestionStore.decide_cmd(QUESTION, None, {"decision": "deny", "answered_by": "timeout", "decided_at": 1,
                                                  "reason": "timeout"}, {"stage": "expired"}),
        ScheduleStore.claim_send_cmd(SCHEDULE, 1, 2, b"{}", 1, "n1"),
        ScheduleStore.finish_cmd(SCHEDULE, b"{}", {}, "fired"),
        AttachmentStore.grant_cmd("f6" * 16, [PEER], [f"inbox|{PEER}|{MESSAGE}"]),
        JobStore.claim_cmd(MESSAGE, "n1", "i", 1, {}), JobStore.cancel_cmd(f"cal-{MESSAGE}", 1, {}),
        JobStore.finish_cmd(MESSAGE, "n1", "i", 1, "succeeded", "", 1, {}, {"result": "{}"}),
        JobStore.lose_cmd(MESSAGE, "n1", "i", 1, 1, {}, "node_gone"),
        JobStore.adopt_cmd(MESSAGE, "n1", "i", 1, "n2", "j", 1, {}),
        JobStore.delete_cmds(f"cal-{MESSAGE}", PEER)[0],
        JobStore.fire_cmds(f"cal-{MESSAGE}", PEER, 1, 2, work_id_of_fire(f"cal-{MESSAGE}", 1), {}, 1, {}, {})[1],
    ]


def test_every_multi_key_command_stays_in_one_slot():
    commands = built_commands()
    multi = [cmd for cmd in commands if len(command_keys(cmd)) > 1]
    assert len(multi) >= 9
    for cmd in multi:
        slots = {key_slot(key.encode() if isinstance(key, str) else key) for key in command_keys(cmd)}
        assert len(slots) == 1, (cmd[0], command_keys(cmd))


def test_per_peer_keys_share_the_peers_tag_and_different_peers_spread():
    state = StoreState(None, None)
    peer_slot = key_slot(state.enqueue_cmd(PEER, MESSAGE, b"{}", 1, MESSAGE, "notify")[3].encode())
    other_slot = key_slot(state.enqueue_cmd(OTHER, MESSAGE, b"{}", 1, MESSAGE, "notify")[3].encode())
    assert peer_slot != other_slot


def test_the_cluster_variants_of_the_publishing_scripts_publish_nothing_and_end_alike():
    """A script may touch its own slot only on a cluster, and a channel has a slot of its own:
    the cluster variant of each script that publishes returns the publish instead
    (hub.store.cluster_writer sends it), and is otherwise the same script."""
    for name in ("ENQUEUE", "CLOSE_ASK", "SET_PRESENCE"):
        plain, variant = scripts.ALL[name], scripts.ALL[f"{name}_CLUSTER"]
        assert "'PUBLISH'" in plain and "PUBLISH'" not in variant.replace("'publish'", "")
        assert "return {'publish', " in variant
        assert scripts.CLUSTER_VARIANT[scripts.SHA[name]] == scripts.SHA[f"{name}_CLUSTER"]
        head = plain.split("if wake" if name != "SET_PRESENCE" else "if bus")[0]
        assert variant.startswith(head)
