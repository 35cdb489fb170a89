"""Pure rules of hub.core: admission, addressing, rate limits, ids. No loop, no store."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from hub.core.errors import HubError
from hub.core.ids import MonotonicIds, is_hex128, new_token, token_digest, token_matches
from hub.core.peers import Admission, PeerRecord, admit, parse_address, resolve
from hub.core.ratelimit import TokenBucket
from hub.runtime.registry import PeerRegistry
from schemas.errors import ErrorCode


def peer(name, circle="default", pid=None):
    return PeerRecord(peer_id=pid or f"{abs(hash((name, circle))):032x}"[:32], name=name, circle=circle,
                      role="agent", token_digest=token_digest(name + circle), created_at=0, last_seen=0)


def codes(fn):
    with pytest.raises(HubError) as caught:
        fn()
    return caught.value.code


class TestAdmission:
    def test_new_name_with_hub_token_is_new(self):
        assert admit(name="a", circle="c", token_peer=None, token_given=False, holds_hub_token=True,
                     same_name=None, is_live=False) is Admission.NEW

    def test_no_credentials_is_unauthorized(self):
        assert codes(lambda: admit(name="a", circle="c", token_peer=None, token_given=False,
                                   holds_hub_token=False, same_name=None, is_live=False)) is ErrorCode.UNAUTHORIZED

    def test_bad_peer_token_is_unauthorized_even_with_hub_token(self):
        assert codes(lambda: admit(name="a", circle="c", token_peer=None, token_given=True,
                                   holds_hub_token=True, same_name=None, is_live=False)) is ErrorCode.UNAUTHORIZED

    def test_peer_token_resumes_its_own_identity(self):
        a = peer("a", "c")
        assert admit(name="a", circle="c", token_peer=a, token_given=True, holds_hub_token=False,
                     same_name=a, is_live=True) is Admission.RESUME

    def test_peer_token_cannot_claim_another_name(self):
        a = peer("a", "c")
        assert codes(lambda: admit(name="b", circle="c", token_peer=a, token_given=True, holds_hub_token=False,
                                   same_name=None, is_live=False)) is ErrorCode.FORBIDDEN

    def test_live_name_is_taken(self):
        a = peer("a", "c")
        assert codes(lambda: admit(name="a", circle="c", token_peer=None, token_given=False, holds_hub_token=True,
                                   same_name=a, is_live=True)) is ErrorCode.NAME_TAKEN

    def test_offline_name_is_reclaimed_not_duplicated(self):
        a = peer("a", "c")
        assert admit(name="a", circle="c", token_peer=None, token_given=False, holds_hub_token=True,
                     same_name=a, is_live=False) is Admission.RECLAIM


class TestAddressing:
    peers = (peer("bob", "red"), peer("bob", "blue"), peer("ann", "red"), peer("cy", "blue"))
    by_id = MappingProxyType({p.peer_id: p for p in peers})

    def find(self, to, sender=None):
        return resolve(parse_address(to), sender=sender, peers=self.peers, by_id=self.by_id)

    def test_by_id(self):
        assert self.find(self.peers[2].peer_id) == [self.peers[2]]

    def test_unknown_id(self):
        assert codes(lambda: self.find("f" * 32)) is ErrorCode.PEER_NOT_FOUND

    def test_name_in_one_circle(self):
        assert self.find("ann") == [self.peers[2]]

    def test_name_in_two_circles_is_ambiguous_for_an_outsider(self):
        with pytest.raises(HubError) as caught:
            self.find("bob", sender=peer("zed", "green"))
        assert caught.value.code is ErrorCode.AMBIGUOUS_PEER
        assert caught.value.details == {"candidates": ["bob@blue", "bob@red"]}

    def test_name_prefers_the_senders_circle(self):
        assert self.find("bob", sender=self.peers[2]) == [self.peers[0]]

    def test_name_at_circle(self):
        assert self.find("bob@blue") == [self.peers[1]]

    def test_unknown_name(self):
        assert codes(lambda: self.find("nobody")) is ErrorCode.PEER_NOT_FOUND
        assert codes(lambda: self.find("ann@blue")) is ErrorCode.PEER_NOT_FOUND

    def test_broadcast_excludes_the_sender(self):
        assert self.find("*", sender=self.peers[2]) == [self.peers[0]]
        assert [p.name for p in self.find("*@blue", sender=self.peers[2])] == ["bob", "cy"]

    def test_broadcast_to_nobody(self):
        assert codes(lambda: self.find("*@empty")) is ErrorCode.NO_RECIPIENTS

    @pytest.mark.parametrize("raw", ["@", "bob@", "@red"])
    def test_malformed(self, raw):
        assert codes(lambda: parse_address(raw)) is ErrorCode.INVALID_FRAME


class TestAddressingByIndex(TestAddressing):
    """The same answers from the registry's indexes as from a scan of every peer (the hub's
    way: a name costs a lookup however many peers there are)."""

    def find(self, to, sender=None):
        registry = PeerRegistry()
        for known in self.peers:
            registry.put(known)
        return resolve(parse_address(to), sender=sender, peers=self.peers, by_id=registry.by_id,
                       by_name=registry.by_name, with_name=registry.with_name)


def test_token_bucket_at_limit_and_over():
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.1) is True  # one token back after 1/rate seconds
    assert bucket.take(0.1) is False


def test_ids():
    mint = MonotonicIds()
    mid = mint.next(1_700_000_000_000)
    assert is_hex128(mid) and mid.startswith(f"{1_700_000_000_000:012x}")
    assert mint.next(1) != mint.next(1)
    token = new_token()
    assert len(token) >= 43 and token_matches(token, token_digest(token))
    assert not token_matches(token + "x", token_digest(token))


def test_monotonic_ids_sort_in_minting_order_within_a_millisecond_and_after_a_clock_step_back():

    mint = MonotonicIds()
    ids = [mint.next(1000) for _ in range(100)] + [mint.next(999)] + [mint.next(1001)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(is_hex128(i) for i in ids)
