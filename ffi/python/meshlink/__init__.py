"""meshlink: ctypes bindings over the managed C ABI (libmeshlink). MESHLINK_LIB overrides
the library path."""
from __future__ import annotations

import ctypes as C
import os
import pathlib
from dataclasses import dataclass
from typing import Iterator, Optional

__all__ = ["Node", "PeerInfo", "Quality", "Event", "MeshlinkError", "MeshlinkTimeoutError"]


def _load() -> C.CDLL:
    path = os.environ.get("MESHLINK_LIB")
    if not path:
        found = sorted(pathlib.Path(__file__).parent.glob("libmeshlink*.so"))
        if not found:
            raise ImportError("libmeshlink not bundled: pip install ./ffi/python, or set MESHLINK_LIB")
        path = str(found[0])
    return C.CDLL(path)


_lib = _load()


class _PeerId(C.Structure):
    _fields_ = [("bytes", C.c_uint8 * 32)]


class _Quality(C.Structure):
    _fields_ = [("has_rtt", C.c_uint8), ("rtt_us", C.c_uint64), ("jitter_us", C.c_uint64), ("loss", C.c_float),
                ("bw_in_bps", C.c_uint64), ("bw_out_bps", C.c_uint64), ("score", C.c_float),
                ("reserved", C.c_uint8 * 32)]


class _PeerInfo(C.Structure):
    _fields_ = [("peer", _PeerId), ("addr", C.c_char * 64), ("name", C.c_char * 64), ("transport", C.c_uint32),
                ("threat", C.c_float), ("connected_ms", C.c_uint64), ("quality", _Quality),
                ("reserved", C.c_uint8 * 32)]


class _Config(C.Structure):
    _fields_ = [("tcp_port", C.c_uint16), ("listen_any", C.c_uint8), ("event_capacity", C.c_uint32),
                ("reserved", C.c_uint8 * 32)]


class _Event(C.Structure):
    _fields_ = [("kind", C.c_int), ("peer", _PeerId), ("data_len", C.c_size_t), ("request_id", C.c_uint64),
                ("sub_id", C.c_uint64), ("dropped", C.c_uint64), ("subject", C.c_char * 256),
                ("quality", _Quality), ("reserved", C.c_uint8 * 32)]


_lib.meshlink_result_message.restype = C.c_char_p
_lib.meshlink_result_message.argtypes = [C.c_uint32]
_P = C.c_void_p


class MeshlinkError(Exception):
    """A failed call; `.code` is the C ABI's MeshlinkResult."""

    code = 15

    def __init__(self, code: int, what: str = "") -> None:
        msg = (_lib.meshlink_result_message(code) or b"").decode()
        super().__init__(f"{what}: {msg}" if what else msg)
        self.code = code


class InvalidArgumentError(MeshlinkError, ValueError): code = 1
class BufferTooSmallError(MeshlinkError): code = 2
class WouldBlockError(MeshlinkError): code = 3
class MeshlinkTimeoutError(MeshlinkError, TimeoutError): code = 4
class UnknownPeerError(MeshlinkError): code = 5
class RefusedError(MeshlinkError): code = 6
class LimitError(MeshlinkError): code = 7
class NoRespondersError(MeshlinkError): code = 9
class CancelledError(MeshlinkError): code = 10
class RemoteError(MeshlinkError): code = 11
class ConnectionError_(MeshlinkError, ConnectionError): code = 12
class ClosedError(MeshlinkError): code = 13

_BY_CODE = {c.code: c for c in [InvalidArgumentError, BufferTooSmallError, WouldBlockError, MeshlinkTimeoutError,
                                UnknownPeerError, RefusedError, LimitError, NoRespondersError, CancelledError,
                                RemoteError, ConnectionError_, ClosedError]}


def _check(code: int, what: str) -> None:
    if code != 0:
        raise _BY_CODE.get(code, MeshlinkError)(code, what)


@dataclass(frozen=True)
class Quality:
    rtt_ms: Optional[float]
    jitter_ms: float
    loss: float
    bandwidth_in_bps: int
    bandwidth_out_bps: int
    score: float


@dataclass(frozen=True)
class PeerInfo:
    peer_id: str
    address: str
    name: str
    threat_score: float
    quality: Quality


@dataclass(frozen=True)
class Event:
    kind: str
    peer_id: Optional[str]
    data: bytes
    subject: str = ""
    request_id: int = 0
    dropped: int = 0


_KINDS = {1: "connected", 2: "disconnected", 3: "message", 4: "quality", 5: "request", 6: "publication", 7: "lagged"}


def _quality(q: _Quality) -> Quality:
    return Quality(q.rtt_us / 1000 if q.has_rtt else None, q.jitter_us / 1000, q.loss, q.bw_in_bps, q.bw_out_bps,
                   q.score)


def _peer(p: _PeerInfo) -> PeerInfo:
    return PeerInfo(bytes(p.peer.bytes).hex(), p.addr.decode(), p.name.decode(errors="replace"), p.threat,
                    _quality(p.quality))


def _pid(peer_id: str) -> _PeerId:
    if not isinstance(peer_id, str):
        raise TypeError(f"peer_id must be a hex str, not {type(peer_id).__name__}")
    raw = bytes.fromhex(peer_id)
    if len(raw) != 32:
        raise ValueError("peer_id must be 64 hex characters")
    return _PeerId((C.c_uint8 * 32)(*raw))


def _data(data: bytes | str) -> bytes:
    if isinstance(data, str):
        return data.encode()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes or str, not {type(data).__name__}")
    return bytes(data)


class Node:
    """A meshlink node running on its own driver thread. Use as a context manager."""

    def __init__(self, port: int = 0, event_capacity: int = 1024) -> None:
        cfg = _Config(tcp_port=port, event_capacity=event_capacity)
        h = _P()
        _check(_lib.meshlink_node_new(C.byref(cfg), C.byref(h)), "Node")
        self._h: Optional[int] = h.value

    def __enter__(self) -> "Node":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._h is not None:
            _lib.meshlink_node_free(_P(self._h))
            self._h = None

    def _node(self) -> _P:
        if self._h is None:
            raise ClosedError(13, "node closed")
        return _P(self._h)

    @property
    def peer_id(self) -> str:
        p = _PeerId()
        _check(_lib.meshlink_node_peer_id(self._node(), C.byref(p)), "peer_id")
        return bytes(p.bytes).hex()

    @property
    def port(self) -> int:
        v = C.c_uint16()
        _check(_lib.meshlink_node_tcp_port(self._node(), C.byref(v)), "port")
        return v.value

    def connect_to_peer(self, host: str, port: int, expected_key: Optional[str] = None) -> PeerInfo:
        if not isinstance(port, int):
            raise TypeError("port must be an int")
        info = _PeerInfo()
        exp = C.byref(_pid(expected_key)) if expected_key else None
        url = f"tcp://{host}:{port}".encode()
        _check(_lib.meshlink_node_connect(self._node(), url, exp, C.byref(info)), "connect_to_peer")
        return _peer(info)

    def disconnect_peer(self, peer_id: str) -> None:
        _check(_lib.meshlink_node_disconnect(self._node(), C.byref(_pid(peer_id))), "disconnect_peer")

    def get_connected_peers(self) -> list[PeerInfo]:
        n = C.c_size_t()
        arr = (_PeerInfo * 256)()
        _check(_lib.meshlink_node_peers(self._node(), arr, 256, C.byref(n)), "get_connected_peers")
        return [_peer(arr[i]) for i in range(n.value)]

    def get_all_nodes(self) -> list[PeerInfo]:
        return self.get_connected_peers()

    def get_node(self, peer_id: str) -> PeerInfo:
        info = _PeerInfo()
        _check(_lib.meshlink_node_get_peer(self._node(), C.byref(_pid(peer_id)), C.byref(info)), "get_node")
        return _peer(info)

    def get_connection_quality(self, peer_id: str) -> Quality:
        q = _Quality()
        _check(_lib.meshlink_node_quality(self._node(), C.byref(_pid(peer_id)), C.byref(q)), "quality")
        return _quality(q)

    def update_threat_score(self, peer_id: str, score: float) -> None:
        _check(_lib.meshlink_node_set_threat_score(self._node(), C.byref(_pid(peer_id)), C.c_float(score)),
               "update_threat_score")

    def send_message(self, peer_id: str, data: bytes | str) -> None:
        b = _data(data)
        _check(_lib.meshlink_node_send(self._node(), C.byref(_pid(peer_id)), b, C.c_size_t(len(b))), "send_message")

    def request(self, peer_id: str, subject: str, body: bytes | str = b"", timeout: float = 5.0,
                max_answer: int = 1 << 20) -> bytes:
        b = _data(body)
        out = C.create_string_buffer(max_answer)
        n = C.c_size_t()
        _check(_lib.meshlink_node_request(self._node(), C.byref(_pid(peer_id)), subject.encode(), b,
                                          C.c_size_t(len(b)), C.c_uint32(max(1, int(timeout * 1000))), out,
                                          C.c_size_t(max_answer), C.byref(n)), "request")
        return out.raw[: n.value]

    def events(self, timeout: Optional[float] = None) -> Iterator[Event]:
        """Yields events as they come; stops after `timeout` seconds without one."""
        while True:
            ev = self.poll_event(timeout if timeout is not None else 1.0)
            if ev is None:
                if timeout is not None:
                    return
                continue
            yield ev

    def poll_event(self, timeout: float = 0.0) -> Optional[Event]:
        ev = _Event()
        buf = C.create_string_buffer(64 * 1024)
        r = _lib.meshlink_node_poll_event(self._node(), C.c_uint32(int(timeout * 1000)), C.byref(ev), buf,
                                          C.c_size_t(len(buf)))
        if r == 2:
            buf = C.create_string_buffer(ev.data_len)
            r = _lib.meshlink_node_poll_event(self._node(), 0, C.byref(ev), buf, C.c_size_t(len(buf)))
        if r == 3:
            return None
        _check(r, "poll_event")
        peer = bytes(ev.peer.bytes).hex() if ev.kind != 7 else None
        return Event(_KINDS.get(ev.kind, "unknown"), peer, buf.raw[: ev.data_len], ev.subject.decode(),
                     ev.request_id, ev.dropped)
