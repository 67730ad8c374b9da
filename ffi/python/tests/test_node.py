import os

import pytest

import meshlink


@pytest.fixture
def pair():
    with meshlink.Node() as a, meshlink.Node() as b:
        yield a, b


def test_two_nodes_connect_send_and_read_quality(pair):
    a, b = pair
    info = a.connect_to_peer("127.0.0.1", b.port, expected_key=b.peer_id)
    assert info.peer_id == b.peer_id
    a.send_message(b.peer_id, b"hello")
    got = None
    for e in b.events(timeout=5):
        if e.kind == "message":
            got = e
            break
    assert got is not None and got.data == b"hello" and got.peer_id == a.peer_id
    q = a.get_connection_quality(b.peer_id)
    assert 0.0 <= q.loss <= 1.0
    assert [p.peer_id for p in a.get_connected_peers()] == [b.peer_id]
    assert a.get_node(b.peer_id).peer_id == b.peer_id
    a.update_threat_score(b.peer_id, 0.1)
    assert a.get_node(b.peer_id).threat_score == pytest.approx(0.1)


def test_a_request_nobody_serves_is_no_responders(pair):
    a, b = pair
    a.connect_to_peer("127.0.0.1", b.port)
    with pytest.raises(meshlink.NoRespondersError) as e:
        a.request(b.peer_id, "svc.none", b"x", timeout=5)
    assert e.value.code == 9


def test_bad_arguments_raise_clear_exceptions(pair):
    a, _ = pair
    with pytest.raises(TypeError):
        a.send_message(123, b"x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        a.send_message("abcd", b"x")
    with pytest.raises(meshlink.UnknownPeerError):
        a.send_message("00" * 32, b"x")
    with pytest.raises(meshlink.InvalidArgumentError):
        a.update_threat_score("00" * 32, 2.0)


def test_the_timeout_error_is_a_builtin_timeout_error():
    assert issubclass(meshlink.MeshlinkTimeoutError, TimeoutError)
    assert issubclass(meshlink.MeshlinkTimeoutError, meshlink.MeshlinkError)


@pytest.mark.skipif("MESHLINK_DAEMON_URL" not in os.environ, reason="needs the daemon the script starts")
def test_against_the_daemon_request_is_echoed():
    host, port = os.environ["MESHLINK_DAEMON_URL"].removeprefix("tcp://").rsplit(":", 1)
    with meshlink.Node() as n:
        peer = n.connect_to_peer(host, int(port))
        assert n.request(peer.peer_id, "svc.echo", b"ping", timeout=5) == b"ping"
        n.send_message(peer.peer_id, "hi")
        n.disconnect_peer(peer.peer_id)
        with pytest.raises(meshlink.UnknownPeerError):
            n.send_message(peer.peer_id, "gone")
