"""The yardstick for attachments: a bare uvicorn app that writes a request body to a file and
serves it back, with nothing else: no multipart parsing, no hash, no limits, no store, no
permissions. Whatever the hub's upload and download cost beyond this is the price of those.
Run: python -m bench.file_server FOLDER (prints "ready PORT" when listening).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import sys
from pathlib import Path

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route


def build(folder: Path) -> Starlette:
    async def upload(request: Request) -> JSONResponse:
        name = secrets.token_hex(16)
        async with await anyio.open_file(folder / name, "wb") as file:
            async for chunk in request.stream():
                await file.write(chunk)
        return JSONResponse({"id": name}, status_code=201)

    async def download(request: Request) -> FileResponse:
        return FileResponse(folder / request.path_params["name"], media_type="application/octet-stream")

    return Starlette(routes=[Route("/attachments", upload, methods=["POST"]),
                             Route("/attachments/{name}", download, methods=["GET"])])


async def main(folder: Path) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the hub's listener (no 40 ms Nagle stalls)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(build(folder), http="h11", log_level="warning", access_log=False))
    print(f"ready {sock.getsockname()[1]}", flush=True)
    await server.serve(sockets=[sock])


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
