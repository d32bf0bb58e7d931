"""``hooks.direct_receive`` on a stand-in DTLS transport: what is handled at once, what goes to the queue,
and the order of datagrams behind a handling that suspends."""

from __future__ import annotations

import asyncio
import logging
import struct
from types import SimpleNamespace
from typing import Any

import pylibsrtp
import pytest
from pyee.asyncio import AsyncIOEventEmitter

from sfu import hooks

pytestmark = pytest.mark.unit

FORGED = b"\x80\x60forged"
TRUNCATED = b"\x00\x01\x00\x04stun"


def rtp(n: int) -> bytes:
    return bytes([0x80, 0x60]) + n.to_bytes(2, "big") + bytes(8)


def rtcp(n: int) -> bytes:
    return bytes([0x80, 0xC9]) + n.to_bytes(2, "big") + bytes(4)


class Session:
    """Unprotects by returning the datagram; refuses :data:`FORGED` as libsrtp refuses a bad tag."""

    def unprotect(self, data: bytes) -> bytes:
        if data == FORGED:
            raise pylibsrtp.Error("srtp_unprotect returned error 7 (authentication failure)")
        return data

    unprotect_rtcp = unprotect


class Protocol:
    """An ICE socket's protocol: hands what is not STUN to the connection; raises on a truncated attribute
    (:data:`TRUNCATED`), as aioice's STUN parser does."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if data == TRUNCATED:
            raise struct.error("unpack requires a buffer of 8 bytes")
        self.connection.data_received(data, 1)


class Connection:
    """aioice's ``Connection`` as the hook sees it; with ``stun``, its socket protocol is aioice's own
    ``StunProtocol`` (which answers STUN requests through :meth:`request_received`)."""

    def __init__(self, stun: bool = False) -> None:
        self._queue: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue()
        self.requests: list[Any] = []
        self.protocol: Any = Protocol(self)
        if stun:
            import aioice.ice

            self.protocol = aioice.ice.StunProtocol(self)  # type: ignore[arg-type]
            self.protocol.local_candidate = SimpleNamespace(component=1)
        self._protocols = [self.protocol]

    def request_received(self, message: Any, addr: Any, protocol: Any) -> None:
        self.requests.append(message)

    def data_received(self, data: bytes, component: int) -> None:
        self._queue.put_nowait((data, component))

    def queued(self) -> list[bytes]:
        out = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            assert item is not None
            out.append(item[0])
        return out


class Dtls(AsyncIOEventEmitter):  # type: ignore[misc]
    """What ``direct_receive`` uses of an ``RTCDtlsTransport``."""

    def __init__(self, stun: bool = False) -> None:
        super().__init__()
        self.state = "new"
        self._rx_srtp: Session | None = None
        self.connection = Connection(stun)
        self.transport = SimpleNamespace(iceGatherer=SimpleNamespace(_connection=self.connection))
        self.seen: list[tuple[str, bytes]] = []
        self.gates: dict[bytes, asyncio.Future[None]] = {}
        self.broken: set[bytes] = set()

    def connect(self) -> None:
        self._rx_srtp = Session()
        self.state = "connected"
        self.emit("statechange")

    def close(self) -> None:
        self.state = "closed"
        self.emit("statechange")

    async def _handle_rtp_data(self, data: bytes, arrival_time_ms: int) -> None:
        assert isinstance(arrival_time_ms, int)
        await self._handle("rtp", data)

    async def _handle_rtcp_data(self, data: bytes) -> None:
        await self._handle("rtcp", data)

    async def _handle(self, kind: str, data: bytes) -> None:
        self.seen.append((kind, data))
        if data in self.gates:
            await self.gates[data]
        if data in self.broken:
            raise RuntimeError("handling bug")

    def deliver(self, data: bytes) -> None:
        """A datagram arriving at the ICE socket (asyncio calls its protocol)."""
        self.connection.protocol.datagram_received(data, ("192.0.2.1", 5000))


def install(dtls: Dtls, direct: bool = True) -> hooks.DirectReceive:
    return hooks.direct_receive(dtls, direct=direct)  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_before_connecting_everything_is_queued_then_media_is_handled_at_once() -> None:
    dtls = Dtls()
    counts = install(dtls)
    dtls.deliver(rtp(1))  # before the handshake ends
    assert dtls.seen == [] and dtls.connection.queued() == [rtp(1)]
    dtls.connect()
    dtls.deliver(rtp(2))
    dtls.deliver(rtcp(3))
    assert dtls.seen == [("rtp", rtp(2)), ("rtcp", rtcp(3))]
    dtls.deliver(b"\x16\xfe\xfd" + bytes(10))  # DTLS (an alert, a retransmitted flight): aiortc's task
    assert dtls.connection.queued() == [b"\x16\xfe\xfd" + bytes(10)]
    dtls.close()
    dtls.deliver(rtp(4))
    assert dtls.connection.queued() == [rtp(4)]
    assert (counts.handled, counts.queued, counts.refused, counts.suspended) == (2, 3, 0, 0)


async def test_datagrams_behind_queued_ones_are_queued_too() -> None:
    dtls = Dtls()
    install(dtls)
    dtls.deliver(rtp(1))
    dtls.connect()
    dtls.deliver(rtp(2))  # rtp(1) is still in the queue: rtp(2) must not overtake it
    assert dtls.seen == [] and dtls.connection.queued() == [rtp(1), rtp(2)]
    dtls.deliver(rtp(3))  # the queue drained: direct again
    assert dtls.seen == [("rtp", rtp(3))]


async def test_datagrams_behind_a_suspended_handling_keep_their_order() -> None:
    dtls = Dtls()
    counts = install(dtls)
    dtls.connect()
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    dtls.gates[rtcp(1)] = gate  # an RTCP handling that waits (a send that suspends)
    dtls.deliver(rtcp(1))
    dtls.deliver(rtp(2))
    dtls.deliver(rtp(3))
    await settle()
    assert dtls.seen == [("rtcp", rtcp(1))] and counts.suspended == 1
    gate.set_result(None)
    await settle()
    assert dtls.seen == [("rtcp", rtcp(1)), ("rtp", rtp(2)), ("rtp", rtp(3))]
    dtls.deliver(rtp(4))  # nothing behind any more: at once
    assert dtls.seen[-1] == ("rtp", rtp(4))
    assert dtls.connection.queued() == []


async def test_a_transport_closing_behind_a_suspended_handling_drops_the_rest() -> None:
    dtls = Dtls()
    install(dtls)
    dtls.connect()
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    dtls.gates[rtp(1)] = gate
    dtls.deliver(rtp(1))
    dtls.deliver(rtp(2))
    dtls.close()
    gate.set_result(None)
    await settle()
    assert dtls.seen == [("rtp", rtp(1))]


async def test_refused_failed_and_empty_datagrams_are_dropped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="sfu.hooks")
    dtls = Dtls()
    counts = install(dtls)
    dtls.connect()
    dtls.broken = {rtp(2), rtp(3)}
    for data in (FORGED, rtp(2), b"", rtp(3), rtp(4)):
        dtls.deliver(data)
    assert [d for _, d in dtls.seen] == [rtp(2), rtp(3), rtp(4)]
    assert (counts.refused, counts.failures) == (2, 2)
    assert dtls.connection.queued() == []
    failures = [r for r in caplog.records if "handling failed" in r.getMessage()]
    assert len(failures) == 1  # once per transport


async def test_a_failure_after_suspending_is_counted_and_the_rest_still_handled() -> None:
    dtls = Dtls()
    counts = install(dtls)
    dtls.connect()
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    dtls.gates[rtp(1)] = gate
    dtls.broken = {rtp(1)}
    dtls.deliver(rtp(1))
    dtls.deliver(rtp(2))
    gate.set_result(None)
    await settle()
    assert [d for _, d in dtls.seen] == [rtp(1), rtp(2)] and counts.failures == 1


async def test_what_the_socket_protocol_raises_on_is_dropped_counted_and_warned_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="sfu.hooks")
    for direct in (True, False):
        caplog.clear()
        dtls = Dtls()
        counts = install(dtls, direct=direct)
        dtls.connect()
        for _ in range(3):
            dtls.deliver(TRUNCATED)  # would raise into asyncio's exception handler
        dtls.deliver(rtp(1))
        assert counts.malformed == 3
        warned = [r for r in caplog.records if "malformed datagram" in r.getMessage()]
        assert len(warned) == 1
        assert (dtls.seen == [("rtp", rtp(1))]) is direct


async def test_off_only_drops_empty_datagrams() -> None:
    dtls = Dtls()
    counts = install(dtls, direct=False)
    dtls.connect()
    for data in (rtp(1), b"", rtcp(2)):
        dtls.deliver(data)
    assert dtls.seen == [] and dtls.connection.queued() == [rtp(1), rtcp(2)]
    assert (counts.handled, counts.queued, counts.refused) == (0, 2, 1)


def test_the_stand_in_has_what_the_hook_uses() -> None:
    # the stand-in follows the real transport's method signatures (hooks.PRIVATES checks aiortc's)
    import inspect

    from aiortc.rtcdtlstransport import RTCDtlsTransport

    for name in ("_handle_rtp_data", "_handle_rtcp_data"):
        real: Any = inspect.signature(getattr(RTCDtlsTransport, name))
        ours: Any = inspect.signature(getattr(Dtls, name))
        assert list(real.parameters) == list(ours.parameters), name


async def test_rtp_and_rtcp_skip_aiostun_parsing_on_a_plain_udp_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    # aioice's StunProtocol parses every datagram as STUN first; RTP and RTCP (first byte 128-191) cannot be
    # STUN, so the hook hands them to the connection at once. STUN still reaches aioice's own handling.
    import aioice.stun

    parsed: list[bytes] = []
    real_parse = aioice.stun.parse_message

    def counting_parse(data: bytes) -> Any:
        parsed.append(data)
        return real_parse(data)

    monkeypatch.setattr(aioice.stun, "parse_message", counting_parse)
    dtls = Dtls(stun=True)
    counts = install(dtls)
    dtls.connect()
    request = aioice.stun.Message(aioice.stun.Method.BINDING, aioice.stun.Class.REQUEST)
    dtls_record = b"\x17\xfe\xfd" + bytes(10)
    for data in (rtp(1), rtcp(2), FORGED, bytes(request), b"", dtls_record):
        dtls.deliver(data)
    assert dtls.seen == [("rtp", rtp(1)), ("rtcp", rtcp(2))]
    assert parsed == [bytes(request), b"", dtls_record]  # what may be STUN, and only that
    assert len(dtls.connection.requests) == 1
    assert dtls.connection.queued() == [dtls_record]  # DTLS: the transport's task
    assert (counts.handled, counts.refused, counts.malformed) == (3, 2, 0)
