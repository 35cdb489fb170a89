"""The group-commit writer against a real embedded store."""

from __future__ import annotations

import asyncio

import pytest

from hub.core.errors import HubError
from hub.store import scripts
from hub.store.connect import open_client
from hub.store.embedded import EmbeddedStore
from hub.store.resp import pack
from hub.store.writer import GroupCommitWriter
from schemas.errors import ErrorCode
from tests.support import eventually


@pytest.fixture
async def store(tmp_path):
    embedded = EmbeddedStore(tmp_path / "home")
    await asyncio.to_thread(embedded.start)
    yield embedded
    await asyncio.to_thread(embedded.stop)


@pytest.fixture
async def writer(store):
    client = open_client(store.url, per_reply_timeout=False)
    w = GroupCommitWriter(client, timeout_s=2)
    w.start()
    yield w
    await w.close()
    await client.aclose()


async def test_pipelined_batches_are_applied_and_answered_in_submission_order(writer):
    futures = [writer.submit([("RPUSH", "order", str(i)), ("LLEN", "order")]) for i in range(200)]
    results = await asyncio.gather(*futures)
    assert [r[1] for r in results] == list(range(1, 201))
    (items,) = await writer.write(("LRANGE", "order", 0, -1))
    assert items == [str(i).encode() for i in range(200)]


async def test_an_error_reply_fails_only_its_own_command(writer):
    ok, bad, after = await writer.write(("SET", "k", "v"), ("INCR", "k"), ("GET", "k"))
    assert ok == b"OK" and isinstance(bad, Exception) and after == b"v"


async def test_background_writes_go_out_on_their_own(writer):
    writer.submit([("SET", "bg", "1")], wait=False)
    await eventually(lambda: writer.write(("GET", "bg")), 5, "the background write")


async def test_scripts_are_loaded_on_the_writers_connection(writer):
    (seq,) = await writer.write(("EVALSHA", scripts.SHA["ENQUEUE"], 2, "p", "i", "m", "x", 1, "t", "k"))
    assert seq == -1  # no such peer: the script ran and said so


async def test_a_dead_store_fails_writes_and_a_restarted_one_is_used_again(store, writer):
    await writer.write(("SET", "before", "1"))
    await asyncio.to_thread(store.stop)
    with pytest.raises(HubError) as down:
        await writer.write(("SET", "during", "1"))
    assert down.value.code is ErrorCode.STORE_UNAVAILABLE
    await asyncio.to_thread(store.start)
    before, during = await writer.write(("GET", "before"), ("GET", "during"))
    assert before == b"1" and during is None  # the append-only file kept the accepted write
    (seq,) = await writer.write(("EVALSHA", scripts.SHA["ENQUEUE"], 2, "p", "i", "m", "x", 1, "t", "k"))
    assert seq == -1  # scripts loaded again on the new connection


def test_resp_encoding():
    assert pack([("SET", "k", b"\x00v"), ("EXPIRE", "k", 10)]) == (
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\x00v\r\n*3\r\n$6\r\nEXPIRE\r\n$1\r\nk\r\n$2\r\n10\r\n")
    with pytest.raises(TypeError):
        pack([("SET", "k", None)])
