"""`repowire attachments put | get`: upload a file, or save one a message carried.

`get` streams the file to a temporary name beside the target, checks it against the SHA-256
the hub reports, and only then puts it in place: a failed or altered download leaves nothing.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile

from hub.cli.client_commands import emit, hub_session, refusal, upload
from hub.cli.failures import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, CommandFailed
from transports.pane_text import human_size


def put(args) -> int:
    body = upload(args.file, args.home)
    emit(body, args.json, f"{body['id']}  {body['filename']}  {human_size(body['size'])}  {body['content_type']}\n"
                           f"send it: repowire notify PEER 'text' --attach … or with \"attachments\": [\"{body['id']}\"]")
    return EXIT_OK


def get(args) -> int:
    with hub_session(args.home) as client, client.stream("GET", f"/attachments/{args.id}") as response:
        if response.status_code != 200:
            response.read()
            raise refusal(response)
        expected = response.headers.get("x-repowire-sha256", "")
        if args.output == "-":
            _copy(response, sys.stdout.buffer, expected)
            return EXIT_OK
        saved = _save(response, args.output, expected)
    sys.stderr.write(f"saved {human_size(saved)} to {args.output}\n")
    return EXIT_OK


def _save(response, output: str, expected: str) -> int:
    folder = os.path.dirname(os.path.abspath(output))
    try:
        handle, partial = tempfile.mkstemp(prefix=".repowire-", suffix=".part", dir=folder)
    except OSError as exc:
        raise CommandFailed(EXIT_USAGE, f"cannot write in {folder}: {exc.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as file:
            size = _copy(response, file, expected)
        os.replace(partial, output)
        return size
    except BaseException:
        os.unlink(partial)
        raise


def _copy(response, file, expected: str) -> int:
    digest = hashlib.sha256()
    size = 0
    for chunk in response.iter_bytes():
        digest.update(chunk)
        file.write(chunk)
        size += len(chunk)
    if expected and digest.hexdigest() != expected:
        raise CommandFailed(EXIT_REFUSED, f"the download's SHA-256 is {digest.hexdigest()}, not {expected} as the hub "
                                          "said; nothing was saved")
    return size
