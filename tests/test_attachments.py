"""Attachments end to end: real hub processes, the real store, files on a real disk, SIGKILL,
and two hub nodes on one shared store. Upload bodies are written by hand, byte for byte, so
that odd names reach the hub exactly as a hostile client would send them."""

from __future__ import annotations

import asyncio
import hashlib
import os
import select
import socket
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import orjson
import pytest

from tests.support import HubProcess, eventually, recv, recv_until, repowire, send, wait_until
from transports.pane_text import frame_delivery

BOUNDARY = b"rw-test-boundary-7f3a"
SECURITY_HEADERS = {"x-content-type-options": "nosniff", "content-security-policy": "default-src 'none'; sandbox",
                    "cross-origin-resource-policy": "same-origin", "cache-control": "private, no-store"}


def multipart(data: bytes, filename: bytes | None = b"report.bin", content_type: bytes = b"application/octet-stream",
              name: bytes = b"file", extra_parts: bytes = b"") -> bytes:
    disposition = b'form-data; name="' + name + b'"' + (b'; filename="' + filename + b'"' if filename is not None else b"")
    return (extra_parts + b"--" + BOUNDARY + b"\r\nContent-Disposition: " + disposition + b"\r\nContent-Type: "
            + content_type + b"\r\n\r\n" + data + b"\r\n--" + BOUNDARY + b"--\r\n")


def post_upload(hub: HubProcess, body: bytes, token: str = "hub",
                content_type: str = f"multipart/form-data; boundary={BOUNDARY.decode()}") -> httpx.Response:
    with hub.http(token) as client:
        return client.post("/attachments", content=body, headers={"content-type": content_type})


def upload(hub: HubProcess, data: bytes, filename: bytes = b"report.bin", token: str = "hub",
           content_type: bytes = b"application/octet-stream") -> dict:
    response = post_upload(hub, multipart(data, filename, content_type), token)
    assert response.status_code == 201, response.text
    return response.json()


def refused(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    return body["error"]


def files_on_disk(hub: HubProcess, node: str = "node-1") -> list[str]:
    folder = hub.home / "attachments" / node
    return sorted(os.listdir(folder)) if folder.exists() else []


def download(hub: HubProcess, attachment_id: str, token: str = "hub") -> httpx.Response:
    return hub.get(f"/attachments/{attachment_id}", token=token)


def brief(created: dict) -> dict:
    return {k: created[k] for k in ("id", "filename", "size", "content_type", "sha256")}


def disposition_name(header: str) -> str:
    """The exact name from `filename*=UTF-8''…` (RFC 5987)."""
    encoded = header.split("filename*=UTF-8''", 1)[1]
    return unquote(encoded, encoding="utf-8", errors="strict")


# ---- upload, carry, download ------------------------------------------------------------------

async def test_a_file_travels_with_a_notify_and_only_its_recipients_may_download_it(hub):
    data = os.urandom(700 * 1024)  # several writes of the streaming upload
    async with hub.client("alice") as alice, hub.client("bob") as bob, hub.client("carol") as carol:
        created = upload(hub, data, b"build.log", alice.token, b"text/plain")
        assert created == {"id": created["id"], "filename": "build.log", "size": len(data), "content_type": "text/plain",
                           "sha256": hashlib.sha256(data).hexdigest(), "expires_at": created["expires_at"]}
        assert files_on_disk(hub) == [created["id"]]
        accepted = await alice.notify("bob", "the log from last night", attachments=[created["id"]])
        delivery = await bob.receive(10)
        assert delivery == {"type": "deliver", "kind": "notify", "seq": 1, "message_id": accepted["message_id"],
                            "text": "the log from last night", "sent_at": delivery["sent_at"],
                            "from": {"peer_id": alice.peer_id, "name": "alice", "circle": "default"},
                            "attachments": [brief(created)]}
        for token in (bob.token, alice.token, "hub"):  # a recipient, the uploader, a person
            got = download(hub, created["id"], token)
            assert got.status_code == 200 and got.content == data
            assert {k: got.headers[k] for k in SECURITY_HEADERS} == SECURITY_HEADERS
            assert got.headers["content-type"] == "text/plain; charset=utf-8"
            assert got.headers["content-disposition"] == "attachment; filename=\"build.log\"; filename*=UTF-8''build.log"
            assert got.headers["x-repowire-sha256"] == created["sha256"]
        refused(download(hub, created["id"], carol.token), 403, "forbidden")
        refused(download(hub, created["id"], None), 401, "unauthorized")
        refused(download(hub, "0" * 32, bob.token), 404, "attachment_not_found")
        refused(download(hub, "not-an-id", bob.token), 404, "attachment_not_found")


async def test_asks_and_replies_carry_attachments_both_ways(hub):
    async with hub.client("alice") as alice, hub.client("bob") as bob:
        question = upload(hub, b"def f(): pass\n", b"patch.diff", alice.token, b"text/x-diff")
        answer = upload(hub, b"LGTM with one nit", b"review.txt", bob.token, b"text/plain")
        asked = await alice.ask("bob", "review this?", attachments=[question["id"]])
        delivery = await bob.receive(10)
        assert delivery["kind"] == "ask" and delivery["attachments"] == [brief(question)]
        assert download(hub, question["id"], bob.token).content == b"def f(): pass\n"
        refused(download(hub, answer["id"], alice.token), 403, "forbidden")  # not sent to alice yet
        closed = await bob.ack(asked["correlation_id"], attachments=[answer["id"]])
        assert closed["ask_state"] == "replied"
        reply = await alice.receive(10)
        assert reply["kind"] == "reply" and reply["correlation_id"] == asked["correlation_id"]
        assert reply["attachments"] == [brief(answer)] and "text" not in reply
        assert download(hub, answer["id"], alice.token).content == b"LGTM with one nit"
        view = hub.get(f"/asks/{asked['correlation_id']}").json()
        assert view["result"]["attachments"] == [brief(answer)]
        chosen = upload(hub, b"option b, measured", b"numbers.csv", bob.token, b"text/csv")
        choice = await alice.ask("bob", "a or b?", question={"kind": "choice", "prompt": "a or b?", "options": [
            {"id": "a", "title": "A"}, {"id": "b", "title": "B"}]})
        await bob.receive(10)
        answered = hub.post("/answer", {"correlation_id": choice["correlation_id"], "option_id": "b",
                                        "attachments": [chosen["id"]]}, token=bob.token)
        assert answered.status_code == 200, answered.text
        notice = await alice.receive(10)
        assert notice["kind"] == "answer" and notice["option_id"] == "b" and notice["attachments"] == [brief(chosen)]
        assert download(hub, chosen["id"], alice.token).content == b"option b, measured"


async def test_a_message_may_carry_only_attachments_its_sender_uploaded(hub):
    async with hub.client("alice") as alice, hub.client("bob") as bob, hub.client("carol") as carol:
        mine = upload(hub, b"alice's", b"a.txt", alice.token)
        theirs = upload(hub, b"carol's", b"c.txt", carol.token)
        for ids in ([theirs["id"]], ["f" * 32], [mine["id"], theirs["id"]]):
            response = hub.post("/messages", {"to": "bob", "text": "x", "attachments": ids}, token=alice.token)
            error = refused(response, 404, "attachment_not_found")
            assert error["details"] == {"id": ids[-1]}
        ws = await hub.raw(hub_token=False)
        await send(ws, {"type": "hello", "name": "alice", "token": alice.token})
        await recv_until(ws, "welcome")
        await send(ws, {"type": "notify", "id": "n1", "to": "bob", "text": "x", "attachments": [theirs["id"]]})
        error = await recv(ws)
        assert error == {"type": "error", "ref": "n1", "error": {
            "code": "attachment_not_found", "details": {"id": theirs["id"]}, "message": error["error"]["message"]}}
        await ws.close()
        too_many = hub.post("/messages", {"to": "bob", "text": "x", "attachments": [mine["id"]] * 17}, token=alice.token)
        refused(too_many, 422, "invalid_request")
        sixteen = hub.post("/messages", {"to": "bob", "text": "x", "attachments": [mine["id"]] * 16}, token=alice.token)
        assert sixteen.status_code == 202
        delivery = await bob.receive(10)  # the refused ones were never delivered
        assert delivery["message_id"] == sixteen.json()["message_id"] and delivery["attachments"] == [brief(mine)]
        refused(download(hub, theirs["id"], bob.token), 403, "forbidden")


# ---- limits ----------------------------------------------------------------------------------

async def test_each_limit_takes_its_limit_and_refuses_one_byte_more_leaving_nothing(start_hub):
    hub = start_hub("--attachment-max-bytes", "1000", "--attachment-peer-quota", "1500",
                    "--attachment-hub-quota", "2500")
    async with hub.client("alice") as alice, hub.client("bob") as bob:
        error = refused(post_upload(hub, multipart(b"a" * 1001), alice.token), 413, "attachment_too_large")
        assert error["details"] == {"limit": 1000, "received": 1001}
        big = os.urandom(3 * 1024 * 1024)  # far over: refused while it streams, the answer still arrives
        refused(post_upload(hub, multipart(big), bob.token), 413, "attachment_too_large")
        first = upload(hub, b"a" * 1000, token=alice.token)                  # the file limit
        second = upload(hub, b"b" * 500, token=alice.token)                  # alice's total: 1500
        error = refused(post_upload(hub, multipart(b"c"), alice.token), 507, "attachment_quota_exceeded")
        assert error["details"] == {"scope": "peer", "limit": 1500}
        third = upload(hub, b"d" * 1000, token=bob.token)                    # the hub's total: 2500
        error = refused(post_upload(hub, multipart(b"e"), bob.token), 507, "attachment_quota_exceeded")
        assert error["details"] == {"scope": "hub", "limit": 2500}
        assert files_on_disk(hub) == sorted([first["id"], second["id"], third["id"]])


async def test_bad_uploads_get_a_code_and_leave_nothing(hub):
    good = multipart(b"x")
    cases = [
        (good, "application/json", 415, "unsupported_media_type"),
        (good, "multipart/form-data", 415, "unsupported_media_type"),                     # no boundary
        (multipart(b"x", filename=None, name=b"notes"), None, 422, "invalid_request"),    # no file part
        (multipart(b"x", extra_parts=good[:-len(b"--" + BOUNDARY + b"--\r\n")] ), None, 422, "invalid_request"),
        (good[:-8], None, 422, "invalid_request"),                                        # cut short
        (b"garbage with no boundary at all", None, 422, "invalid_request"),
    ]
    for body, content_type, status, code in cases:
        response = post_upload(hub, body, content_type=content_type or f"multipart/form-data; boundary={BOUNDARY.decode()}")
        refused(response, status, code)
    with hub.http(None) as client:
        refused(client.post("/attachments", content=good, headers={
            "content-type": f"multipart/form-data; boundary={BOUNDARY.decode()}"}), 401, "unauthorized")
    assert files_on_disk(hub) == []


# ---- names and types -------------------------------------------------------------------------

ODD_NAMES = [
    (b"../../../../../../tmp/rw-escape.txt", "rw-escape.txt"),
    (b"/etc/passwd", "passwd"),
    (b"..\\..\\windows\\win.ini", "win.ini"),
    (b"..", "attachment"),
    (b"", "attachment"),
    (b"a\x01b\x1b[31mc.txt", "ab[31mc.txt"),
    (b"nul\x00byte.txt\x00.sh", "nulbyte.txt.sh"),
    (b"\xff\xfe\xfd.bin", "\ufffd\ufffd\ufffd.bin"),
    ("r\u00e9sum\u00e9 \u202eexe.pdf".encode(), "r\u00e9sum\u00e9 exe.pdf"),
    (b"x" * 400 + b".log", "x" * 251 + ".log"),
    (b"quote\"semi;percent%.txt", None),  # python-multipart stops at the quote; whatever is kept is clean
]


async def test_odd_and_hostile_names_never_write_or_read_outside_the_store(hub, tmp_path):
    escape = Path("/tmp/rw-escape.txt")
    assert not escape.exists()
    created = []
    for raw, expected in ODD_NAMES:
        data = b"content of " + raw[:20]
        made = upload(hub, data, raw)
        if expected is not None:
            assert made["filename"] == expected, raw
        assert "/" not in made["filename"] and "\\" not in made["filename"] and "\x00" not in made["filename"]
        got = download(hub, made["id"])
        assert got.content == data
        header = got.headers["content-disposition"]
        header.encode("ascii")  # a header browsers and proxies read the same way
        assert header.startswith('attachment; filename="') and disposition_name(header) == made["filename"]
        created.append(made["id"])
    assert files_on_disk(hub) == sorted(created) and not escape.exists()
    assert sorted(p.name for p in (hub.home / "attachments").iterdir()) == ["node-1"]
    with hub.http() as client:
        for path in ("/attachments/..%2F..%2Fhub.token", "/attachments/%2e%2e", "/attachments/.."):
            response = client.get(path)
            assert response.status_code == 404 and response.json()["error"]["code"] in ("not_found",
                                                                                       "attachment_not_found")
            assert "hub.token" not in response.text


async def test_html_and_svg_are_served_as_downloads_never_as_pages(hub):
    cases = [(b"page.html", b"text/html", b"<script>alert(1)</script>"),
             (b"logo.svg", b"image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
             (b"feed.xml", b"application/xhtml+xml", b"<html xmlns='http://www.w3.org/1999/xhtml'/>"),
             (b"notes.txt", b"text/html; charset=utf-8", b"<b>not bold</b>"),
             (b"shot.png", b"image/png", b"\x89PNG\r\n\x1a\n")]
    for filename, declared, data in cases:
        made = upload(hub, data, filename, content_type=declared)
        got = download(hub, made["id"])
        expected_type = "image/png" if declared == b"image/png" else "application/octet-stream"
        assert got.headers["content-type"] == expected_type, filename
        assert got.headers["content-disposition"].startswith("attachment;")
        assert {k: got.headers[k] for k in SECURITY_HEADERS} == SECURITY_HEADERS
        assert got.content == data


# ---- retention -------------------------------------------------------------------------------

async def test_expired_attachments_go_unless_a_pending_message_still_carries_them(start_hub):
    hub = start_hub("--attachment-ttl", "1", "--attachment-sweep", "0.2")
    async with hub.client("bob") as bob:
        bob_token = bob.token
    async with hub.client("alice") as alice:
        carried = upload(hub, b"for bob, who is away", b"carried.txt", alice.token)
        await alice.notify("bob", "when you are back", attachments=[carried["id"]])  # waits in bob's inbox
        loose = upload(hub, b"sent to nobody", b"loose.txt", alice.token)
        # the loose one expired after the carried one, so once it is gone the sweep has passed both
        await eventually(lambda: asyncio.to_thread(lambda: download(hub, loose["id"]).status_code == 404), 15,
                         "the loose attachment to expire")
        assert files_on_disk(hub) == [carried["id"]]
        assert download(hub, carried["id"]).content == b"for bob, who is away"
    async with hub.client("bob", token=bob_token) as bob:
        delivery = await bob.receive(10)
        assert delivery["attachments"] == [brief(carried)]
        assert download(hub, carried["id"], bob.token).status_code == 200
        await eventually(lambda: asyncio.to_thread(lambda: download(hub, carried["id"]).status_code == 404), 15,
                         "the received attachment to expire")
    assert files_on_disk(hub) == []


async def test_an_open_ask_keeps_its_attachment_until_it_closes(start_hub):
    hub = start_hub("--attachment-ttl", "1", "--attachment-sweep", "0.2")
    async with hub.client("alice") as alice, hub.client("bob") as bob:
        asked_with = upload(hub, b"question material", b"q.txt", alice.token)
        asked = await alice.ask("bob", "thoughts?", attachments=[asked_with["id"]], timeout_s=60)
        await bob.receive(10)  # received: no longer in the inbox, but the ask is open
        loose = upload(hub, b"x", b"loose.txt", alice.token)
        await eventually(lambda: asyncio.to_thread(lambda: download(hub, loose["id"]).status_code == 404), 15,
                         "the loose attachment to expire")
        assert download(hub, asked_with["id"], bob.token).status_code == 200
        await bob.ack(asked["correlation_id"], "done")
        await eventually(lambda: asyncio.to_thread(lambda: download(hub, asked_with["id"]).status_code == 404), 15,
                         "the closed ask's attachment to expire")


async def test_a_crash_halfway_leaves_nothing_the_sweep_cannot_find(start_hub):
    hub = start_hub("--attachment-hub-quota", "700100")
    async with hub.client("alice") as alice, hub.client("bob") as bob:
        alice_token, bob_token = alice.token, bob.token
    kept = upload(hub, b"k" * 60, b"kept.txt", alice_token)
    carried = hub.post("/messages", {"to": "bob", "text": "kept for you", "attachments": [kept["id"]]},
                       token=alice_token)
    assert carried.status_code == 202   # accepted: the message and bob's right to the file are durable
    lost = upload(hub, b"l" * 40, b"lost.txt", alice_token)   # the hub holds 100 bytes
    refused(post_upload(hub, multipart(b"z" * 700_001), alice_token), 507, "attachment_quota_exceeded")
    # an upload that is halfway through when the hub dies
    whole = multipart(b"h" * 600_000)
    host, port = urlsplit(hub.url).hostname, urlsplit(hub.url).port
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(f"POST /attachments HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {hub.token}\r\n"
                    f"Content-Type: multipart/form-data; boundary={BOUNDARY.decode()}\r\n"
                    f"Content-Length: {len(whole)}\r\n\r\n".encode() + whole[:300_000])
        wait_until(lambda: any(n.endswith(".part") and (hub.home / "attachments" / "node-1" / n).stat().st_size
                               for n in files_on_disk(hub)), 10, "the upload's .part file to be written")
        hub.kill()
    folder = hub.home / "attachments" / "node-1"
    (folder / lost["id"]).unlink()                   # metadata left without its file
    stray = "ab" * 16
    (folder / stray).write_bytes(b"renamed, never committed")  # a file left without its metadata
    assert len([n for n in files_on_disk(hub) if n.endswith(".part")]) == 1
    hub.restart()
    assert files_on_disk(hub) == [kept["id"]]        # the start-up sweep ran before the hub served
    refused(download(hub, lost["id"]), 404, "attachment_not_found")
    assert download(hub, kept["id"]).content == b"k" * 60
    upload(hub, b"y" * 700_040, b"again.txt", alice_token)  # exactly the limit: the lost 40 bytes were given back
    async with hub.client("bob", token=bob_token) as bob:
        delivery = await bob.receive(10)
        assert delivery["message_id"] == carried.json()["message_id"] and delivery["attachments"] == [brief(kept)]
        assert download(hub, kept["id"], bob.token).content == b"k" * 60


# ---- several hub nodes ---------------------------------------------------------------------

async def test_a_file_uploaded_on_one_node_downloads_through_another(shared_store, start_hub):
    first = start_hub("--redis-url", shared_store, "--node", "n1")
    async with first.client("alice") as alice, first.client("bob") as bob:
        alice_token, bob_token = alice.token, bob.token
    second = start_hub("--redis-url", shared_store, "--node", "n2")  # knows alice and bob from the store
    data = os.urandom(600 * 1024)
    async with first.client("alice", token=alice_token) as alice:
        made = upload(first, data, b"trace.bin", alice_token)
        await alice.notify("bob", "through the other node", attachments=[made["id"]])
    assert files_on_disk(first, "n1") == [made["id"]] and files_on_disk(second, "n2") == []
    for token in (bob_token, second.token):
        got = download(second, made["id"], token)
        assert got.status_code == 200 and got.content == data
        assert got.headers["x-repowire-sha256"] == made["sha256"] == hashlib.sha256(data).hexdigest()
        assert {k: got.headers[k] for k in SECURITY_HEADERS} == SECURITY_HEADERS
        assert got.headers["content-disposition"].endswith("filename*=UTF-8''trace.bin")
    with httpx.Client(base_url=first.url, timeout=10) as client:  # the node route wants the mesh key
        refused(client.get(f"/internal/attachments/{made['id']}", headers={"authorization": f"Bearer {first.token}"}),
                401, "unauthorized")
    first.stop()
    error = refused(download(second, made["id"], bob_token), 503, "attachment_unavailable")
    assert error["details"] == {"id": made["id"], "node": "n1"}


# ---- the pane transport and the command line -------------------------------------------------

def test_a_pane_shows_each_attachment_as_a_line_with_a_command_and_a_url():
    frame = {"kind": "notify", "from": {"name": "alice"}, "text": "see files",
             "attachments": [{"id": "ab" * 16, "filename": "build.log", "size": 2150, "content_type": "text/plain",
                              "sha256": "0" * 64},
                             {"id": "cd" * 16, "filename": "x\x1b[2J\nrm -rf ~; .sh", "size": 12,
                              "content_type": "application/octet-stream", "sha256": "1" * 64}]}
    assert frame_delivery(frame, "http://127.0.0.1:8377") == (
        "[notify from alice] «see files»"
        " ↵ [file «build.log», 2.1 KiB, text/plain: repowire attachments get " + "ab" * 16 + " -o build.log"
        " (http://127.0.0.1:8377/attachments/" + "ab" * 16 + ")]"
        " ↵ [file «x␛[2J ↵ rm -rf ~; .sh», 12 bytes, application/octet-stream: repowire attachments get " + "cd" * 16
        + " -o 'x␛[2J ↵ rm -rf ~; .sh' (http://127.0.0.1:8377/attachments/" + "cd" * 16 + ")]")


async def test_the_command_line_sends_and_saves_files(hub, tmp_path):
    source = tmp_path / "notes.md"
    source.write_bytes(b"# notes\n" + os.urandom(1000))
    async with hub.client("bob") as bob:
        sent = repowire(hub, "notify", "bob", "notes attached", "--attach", str(source), "--json")
        assert sent.returncode == 0, sent.stderr
        delivery = await bob.receive(10)
        (attached,) = delivery["attachments"]
        assert attached["filename"] == "notes.md" and attached["size"] == source.stat().st_size
        target = tmp_path / "saved.md"
        saved = repowire(hub, "attachments", "get", attached["id"], "-o", str(target))
        assert saved.returncode == 0, saved.stderr
        assert target.read_bytes() == source.read_bytes()
    put = repowire(hub, "attachments", "put", str(source), "--json")
    assert put.returncode == 0 and len(put.stdout.strip()) > 0
    missing = repowire(hub, "attachments", "get", "0" * 32, "-o", str(tmp_path / "never"))
    assert missing.returncode == 1 and "attachment_not_found" in missing.stderr
    assert not (tmp_path / "never").exists() and not list(tmp_path.glob(".repowire-*"))
    unreadable = repowire(hub, "notify", "bob", "x", "--attach", str(tmp_path / "absent.txt"))
    assert unreadable.returncode == 2 and "cannot read" in unreadable.stderr


@pytest.mark.parametrize("flag", ["--attachment-max-bytes", "--attachment-ttl"])
def test_serve_refuses_a_limit_that_is_not_above_zero(start_hub, flag):
    hub = start_hub(flag, "0", expect_ready=False)
    assert hub.process.wait(20) == 2
    assert f"{flag} takes a number above 0" in hub.log()


def _held_upload(hub: HubProcess, body: bytes, sent: int, token: str) -> socket.socket:
    """An upload whose request promises all of `body` but sends only its first `sent` bytes."""
    host, port = hub.url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=15)
    sock.sendall(b"POST /attachments HTTP/1.1\r\nHost: %s:%s\r\nAuthorization: Bearer %s\r\n"
                 b"Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                 % (host.encode(), port.encode(), token.encode(), BOUNDARY, len(body)) + body[:sent])
    return sock


def _response(sock: socket.socket) -> tuple[int, dict]:
    raw = b""
    while chunk := sock.recv(65536):
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(body)


def test_parallel_uploads_share_one_quota_while_they_are_in_flight(start_hub):
    """F8: parallel uploads each got the whole quota while in flight (16 MiB on disk against 2 MiB);
    now the bytes in flight are counted together, and the one that passes the quota is refused
    while it is still arriving."""
    hub = start_hub("--attachment-max-bytes", "100000", "--attachment-peer-quota", "100000")
    token = hub.post("/peers", {"name": "uploader"}).json()["token"]
    body = multipart(b"x" * 90_000)
    first = _held_upload(hub, body, 60_000, token)
    wait_until(lambda: any(p.suffix == ".part" for p in (hub.home / "attachments").rglob("*")), 10,
               "the first upload to begin")
    second = _held_upload(hub, body, 60_000, token)
    with first, second:
        readable, _, _ = select.select([first, second], [], [], 15)
        assert len(readable) == 1, "exactly one of the two is answered while both are still arriving"
        refused_one = readable[0]
        other = second if refused_one is first else first
        status, refusal = _response(refused_one)
        assert status == 507 and refusal["error"]["code"] == "attachment_quota_exceeded"
        other.sendall(body[60_000:])
        status, created = _response(other)
        assert status == 201 and created["size"] == 90_000
    assert files_on_disk(hub) == [created["id"]]
    # at the limit: what is left of the quota can still be uploaded, one byte more cannot
    assert post_upload(hub, multipart(b"y" * 10_001), token).json()["error"]["code"] == "attachment_quota_exceeded"
    assert post_upload(hub, multipart(b"y" * 10_000), token).status_code == 201


async def test_frames_behind_one_whose_attachments_are_looked_up_keep_their_order(hub):
    """A notify that carries an attachment waits for the lookup; the frames the socket sent
    after it wait behind it and are answered in the order sent: both notifies reach bob in
    frame order, and the ping and the bad frame behind them are answered."""
    async with hub.client("bob") as bob:
        ws, welcome = await hub.raw_peer("alice")
        created = upload(hub, b"first\n", b"first.txt", welcome["token"], b"text/plain")
        await send(ws, {"type": "notify", "id": "a", "to": "bob", "text": "with the file", "attachments": [created["id"]]})
        await send(ws, {"type": "notify", "id": "b", "to": "bob", "text": "right after"})
        await send(ws, {"type": "ping", "id": "p"})
        await send(ws, {"type": "no_such_frame", "id": "x"})
        answers = [await recv(ws) for _ in range(4)]
        assert [(f["type"], f["ref"]) for f in answers if f["type"] == "accepted"] == [("accepted", "a"), ("accepted", "b")]
        assert {"type": "pong", "ref": "p"} in answers
        assert [(f["error"]["code"], f.get("ref")) for f in answers if f["type"] == "error"] == [("unknown_type", "x")]
        first, second = await bob.receive(10), await bob.receive(10)
        assert (first["text"], first["seq"], [a["id"] for a in first["attachments"]]) == ("with the file", 1, [created["id"]])
        assert (second["text"], second["seq"], "attachments" in second) == ("right after", 2, False)
        await ws.close()
