"""A peer in its own process, for tests that stop it with SIGSTOP: connects with the SDK, says
`ready <peer_id>` on stdout, then receives and confirms deliveries until killed."""

from __future__ import annotations

import asyncio
import sys

from transports.client import HubClient
from transports.discovery import HubAddress


async def main(url: str, name: str, hub_token: str) -> None:
    async with HubClient(name, address=HubAddress(url), hub_token=hub_token) as client:
        print(f"ready {client.peer_id}", flush=True)
        while True:
            frame = await client.receive()
            print(f"got {frame['message_id']}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
