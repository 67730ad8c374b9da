"""The asyncio API: the same calls as `meshlink.Node`, awaitable; every blocking call runs
in a worker thread (`asyncio.to_thread`), never in the event loop."""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Optional

from . import Event, Node as _SyncNode, PeerInfo, Quality


class Node:
    def __init__(self, port: int = 0, event_capacity: int = 1024) -> None:
        self._n = _SyncNode(port, event_capacity)

    async def __aenter__(self) -> "Node":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self._n.close)

    @property
    def peer_id(self) -> str:
        return self._n.peer_id

    @property
    def port(self) -> int:
        return self._n.port

    async def connect_to_peer(self, host: str, port: int, expected_key: Optional[str] = None) -> PeerInfo:
        return await asyncio.to_thread(self._n.connect_to_peer, host, port, expected_key)

    async def send_message(self, peer_id: str, data: bytes | str) -> None:
        await asyncio.to_thread(self._n.send_message, peer_id, data)

    async def request(self, peer_id: str, subject: str, body: bytes | str = b"", timeout: float = 5.0) -> bytes:
        return await asyncio.to_thread(self._n.request, peer_id, subject, body, timeout)

    async def get_connection_quality(self, peer_id: str) -> Quality:
        return await asyncio.to_thread(self._n.get_connection_quality, peer_id)

    async def events(self, timeout: Optional[float] = None) -> AsyncIterator[Event]:
        while True:
            ev = await asyncio.to_thread(self._n.poll_event, timeout if timeout is not None else 0.5)
            if ev is None:
                if timeout is not None:
                    return
                continue
            yield ev
