import asyncio

import meshlink
import meshlink.aio


def test_aio_connect_send_and_receive() -> None:
    async def main() -> None:
        async with meshlink.aio.Node() as a, meshlink.aio.Node() as b:
            await a.connect_to_peer("127.0.0.1", b.port)
            await a.send_message(b.peer_id, b"async hi")
            got = None
            async for e in b.events(timeout=5):
                if e.kind == "message":
                    got = e.data
                    break
            assert got == b"async hi"
            q = await a.get_connection_quality(b.peer_id)
            assert 0.0 <= q.loss <= 1.0

    asyncio.run(main())


def test_a_node_keeps_working_after_a_peer_is_killed() -> None:
    with meshlink.Node() as a, meshlink.Node() as c:
        b = meshlink.Node()
        a.connect_to_peer("127.0.0.1", b.port)
        b_id = b.peer_id
        b.close()
        peer = a.connect_to_peer("127.0.0.1", c.port)
        a.send_message(peer.peer_id, b"still here")
        assert any(e.kind == "message" and e.data == b"still here" for e in c.events(timeout=3))
        assert b_id != peer.peer_id
