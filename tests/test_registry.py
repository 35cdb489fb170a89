"""The peer registry, in process: frozen records, and indexes that follow the record `put` last.

A change to a peer is a new record; what the record it replaces had (a name, a token, a
session credential) and the new one has not must stop finding the peer, and putting the old
record back (the undo of a refused hello or link) must find it again exactly as before."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

from hub.core.ids import new_token, token_digest
from hub.core.peers import PeerRecord
from hub.core.presence import connected, entered, gone
from hub.runtime.registry import PeerRegistry


def record(name: str = "ann", token: str = "", **changes) -> PeerRecord:
    return PeerRecord(peer_id=f"id-{name}", name=name, circle="c", role="agent",
                      token_digest=token_digest(token or new_token()), created_at=1, last_seen=1, **changes)


def test_a_record_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        record().status = "online"  # type: ignore[misc]


def test_put_finds_the_peer_by_id_name_and_each_credential():
    registry, token, session = PeerRegistry(), new_token(), new_token()
    ann = registry.put(record(token=token, session_digest=token_digest(session)))
    assert registry.get(ann.peer_id) is ann
    assert registry.named("ann", "c") is ann
    assert registry.for_token(token) is ann
    assert registry.for_token(session) is ann
    assert registry.for_token(new_token()) is None
    assert registry.for_token("") is None


def test_a_new_token_retires_the_old_one_and_a_session_ending_retires_its_credential():
    registry, old, new, session = PeerRegistry(), new_token(), new_token(), new_token()
    ann = registry.put(record(token=old, session_digest=token_digest(session)))
    changed = registry.put(replace(ann, token_digest=token_digest(new), session_digest=""))
    assert registry.for_token(new) is changed
    assert registry.for_token(old) is None
    assert registry.for_token(session) is None
    assert not registry.knows(token_digest(old))


def test_a_renamed_peer_is_no_longer_found_by_its_old_name():
    registry = PeerRegistry()
    ann = registry.put(record())
    registry.put(replace(ann, name="bea"))
    assert registry.named("ann", "c") is None
    assert registry.named("bea", "c").peer_id == ann.peer_id


def test_putting_the_earlier_record_back_undoes_a_change_whole():
    registry, old, new = PeerRegistry(), new_token(), new_token()
    before = registry.put(record(token=old))
    registry.put(entered(replace(before, token_digest=token_digest(new)), connected(), node="n1", last_seen=9))
    registry.put(before)
    assert registry.get(before.peer_id) is before
    assert registry.for_token(old) is before
    assert registry.for_token(new) is None
    assert registry.get(before.peer_id).status == "offline"


def test_a_peer_that_changes_does_not_take_a_name_it_left_from_the_peer_that_holds_it_now():
    registry = PeerRegistry()
    ann = registry.put(record())
    renamed = registry.put(replace(ann, name="bea"))
    other = registry.put(replace(record("x"), name="ann", peer_id="id-other"))   # the name, free, is taken
    registry.put(replace(renamed, last_seen=5))
    registry.drop(renamed)
    assert registry.named("ann", "c") is other
    assert registry.named("bea", "c") is None


def test_drop_forgets_every_index():
    registry, token = PeerRegistry(), new_token()
    ann = registry.put(entered(record(token=token), gone("bye")))
    registry.drop(ann)
    assert registry.get(ann.peer_id) is None
    assert registry.named("ann", "c") is None
    assert registry.for_token(token) is None
    assert registry.by_name == {}
    assert not registry.knows(ann.token_digest)


def test_a_name_in_any_circle_finds_every_peer_called_so_and_follows_renames_and_drops():
    registry = PeerRegistry()
    ann = registry.put(record())
    other = registry.put(replace(record("x"), name="ann", peer_id="id-other", circle="d"))
    assert {p.peer_id for p in registry.with_name("ann")} == {ann.peer_id, other.peer_id}
    renamed = registry.put(replace(ann, name="bea"))
    assert registry.with_name("ann") == [other]
    assert registry.with_name("bea") == [renamed]
    registry.put(ann)   # the undo of the rename
    assert {p.peer_id for p in registry.with_name("ann")} == {ann.peer_id, other.peer_id}
    assert registry.with_name("bea") == []
    registry.drop(other)
    registry.drop(ann)
    assert registry.with_name("ann") == []
    assert registry._with_name == {}
