"""``sfu.native``: each forwarded RTP packet protected and sent by one C call.

Against pylibsrtp's own path on real loopback sockets (two sessions with one key write the same bytes),
every way a send can end (sent, queued behind asyncio's buffer, the transport closing, a socket error, an
SRTP refusal, bad input), and in a session between aiortc bots: media go through the native sender, and
with ``Options.native_forwarding`` off through the Python path.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import socket
import struct
import weakref
from collections.abc import AsyncIterator
from typing import Any, cast

import pylibsrtp
import pytest
from aiortc.rtp import RtpPacket

from sfu import Worker, hooks, native
from sfu.rtp_forward import SendHistory, SlotRewriter
from tests.fakes.media import ClipTrack, PublisherBot, SubscriberBot, ToneTrack, vp8_clip
from tests.sfu.conftest import DecoderGuard, make_options
from tests.sfu.helpers import watched

KEY = bytes(range(46))  # AES-256-GCM: 32-byte key + 12-byte salt; AES-128-CM: 16 + 14 (the first 30 used)
PROFILES = {"aes128cm": (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 30),
            "aes256gcm": (pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM, 44)}


@pytest.mark.unit
def test_the_extension_is_built() -> None:
    assert native.unavailable() is None  # make setup builds sfu/_native.c; the Python path is only a fallback


def session(profile: str = "aes256gcm") -> pylibsrtp.Session:
    kind, length = PROFILES[profile]
    policy = pylibsrtp.Policy(key=KEY[:length], ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=kind)
    return pylibsrtp.Session(policy)


def rtp(seq: int, size: int = 1100, ssrc: int = 0x1234ABCD, marker: bool = False) -> bytes:
    header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | 96, seq & 0xFFFF, seq * 3000 & 0xFFFFFFFF, ssrc)
    return header + bytes((seq + i) & 0xFF for i in range(size))


class Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams.put_nowait(data)


@pytest.fixture
async def link() -> AsyncIterator[tuple[asyncio.DatagramTransport, Inbox, tuple[str, int]]]:
    """A sending asyncio UDP transport (as aioice makes them) and a receiving one, on loopback."""
    loop = asyncio.get_running_loop()
    inbox = Inbox()
    receiver, _ = await loop.create_datagram_endpoint(lambda: inbox, local_addr=("127.0.0.1", 0))
    sender, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    address = receiver.get_extra_info("sockname")[:2]
    yield sender, inbox, address
    sender.close()
    receiver.close()


class HoldsDatagrams:
    """Make ``transport`` report datagrams in its write buffer (on loopback a UDP send never blocks), and
    count what is handed to its ``sendto`` meanwhile."""

    def __init__(self, transport: Any) -> None:
        self.transport, self.queued = transport, 0
        transport.get_write_buffer_size = lambda: 1200

        def sendto(data: bytes, addr: Any = None) -> None:
            self.queued += 1

        transport.sendto = sendto

    def release(self) -> None:
        del self.transport.get_write_buffer_size
        del self.transport.sendto


def sender_for(srtp: pylibsrtp.Session, transport: asyncio.DatagramTransport, address: tuple[str, int]
               ) -> native.SenderLike:
    made = hooks.make_native_sender(srtp, transport, address)
    assert made is not None
    return made


async def received(inbox: Inbox, count: int) -> list[bytes]:
    return [await asyncio.wait_for(inbox.datagrams.get(), 5) for _ in range(count)]


@pytest.mark.integration
@pytest.mark.parametrize("profile", sorted(PROFILES))
async def test_the_wire_carries_what_pylibsrtp_writes(profile: str, link: Any) -> None:
    transport, inbox, address = link
    fast = sender_for(session(profile), transport, address)
    reference = session(profile)
    # across the 16-bit wrap, so the rollover counter of both sessions moves; sizes from 12 bytes to the bound
    packets = [rtp(seq, size=(seq * 37) % 1300, marker=seq % 7 == 0) for seq in range(65_500, 65_600)]
    packets.append(rtp(65_600, size=1500 - 144 - 12))
    for packet in packets:
        assert fast.send(packet) is None
    expected = [reference.protect(p) for p in packets]
    wire = await received(inbox, len(packets))
    assert wire == expected
    assert (fast.sent, fast.octets, fast.handed_back, fast.errors) == (len(packets), sum(map(len, expected)), 0, 0)
    # and the receiving side's session unprotects it
    kind, length = PROFILES[profile]
    receiving = pylibsrtp.Session(pylibsrtp.Policy(key=KEY[:length], ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                                                   srtp_profile=kind))
    assert [receiving.unprotect(datagram) for datagram in wire] == packets


@pytest.mark.integration
async def test_datagrams_queued_by_asyncio_keep_their_order(link: Any) -> None:
    transport, inbox, address = link
    fast = sender_for(session(), transport, address)
    reference = session()
    holding = HoldsDatagrams(transport)  # the transport still holds a datagram the socket refused
    out = fast.send(rtp(1))
    assert out == reference.protect(rtp(1))  # handed back, protected, to be queued behind it
    assert (fast.sent, fast.handed_back) == (0, 1)
    holding.release()
    assert fast.send(rtp(2)) is None
    assert await received(inbox, 1) == [reference.protect(rtp(2))]


@pytest.mark.integration
async def test_nothing_is_sent_while_the_transport_closes(link: Any) -> None:
    transport, inbox, address = link
    fast = sender_for(session(), transport, address)
    transport.close()
    assert fast.send(rtp(1)) is False
    assert fast.sent == 0
    await asyncio.sleep(0)  # the socket itself is closed on the next loop turn
    assert hooks.make_native_sender(session(), transport, address) is None
    assert inbox.datagrams.empty()


@pytest.mark.integration
async def test_a_socket_error_costs_the_datagram_only(link: Any) -> None:
    transport, inbox, address = link
    fast = sender_for(session(), transport, ("255.255.255.255", address[1]))  # no SO_BROADCAST: EACCES
    assert fast.send(rtp(1)) is None
    assert (fast.sent, fast.errors, fast.last_errno) == (0, 1, errno.EACCES)
    good = sender_for(session(), transport, address)
    assert good.send(rtp(2)) is None
    assert len(await received(inbox, 1)) == 1


@pytest.mark.integration
async def test_refusals_raise_and_leave_the_session_usable(link: Any) -> None:
    transport, inbox, address = link
    srtp = session()
    fast = sender_for(srtp, transport, address)
    assert fast.send(rtp(10)) is None
    with pytest.raises(native.SrtpError):  # the same index twice: libsrtp's replay protection
        fast.send(rtp(10))
    with pytest.raises(ValueError, match="longer than"):
        fast.send(rtp(11, size=1500))
    with pytest.raises(TypeError):
        fast.send("not bytes")  # type: ignore[arg-type]
    assert fast.send(memoryview(rtp(11))) is None  # any buffer
    assert fast.send(rtp(12)) is None
    assert len(await received(inbox, 3)) == 3
    assert fast.sent == 3


@pytest.mark.integration
async def test_pairs_it_cannot_take_stay_on_the_python_path(link: Any) -> None:
    transport, _, address = link
    srtp = session()
    assert hooks.make_native_sender(srtp, transport, ("fe80::1%lo", address[1])) is None  # scoped IPv6
    assert hooks.make_native_sender(srtp, transport, ("not-an-address", address[1])) is None
    assert hooks.make_native_sender(srtp, transport, (address[0], 70_000)) is None
    assert hooks.make_native_sender(srtp, transport, (address[0],)) is None
    loop = asyncio.get_running_loop()
    connected, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=address)
    try:
        assert hooks.make_native_sender(srtp, connected, address) is None  # asyncio would send() on it
    finally:
        connected.close()


@pytest.mark.integration
async def test_ipv6(link: Any) -> None:
    if not socket.has_ipv6 or not os.path.exists("/proc/net/if_inet6"):
        pytest.skip("no IPv6 on this machine")
    loop = asyncio.get_running_loop()
    inbox = Inbox()
    receiver, _ = await loop.create_datagram_endpoint(lambda: inbox, local_addr=("::1", 0))
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("::1", 0))
    try:
        fast = sender_for(session(), transport, receiver.get_extra_info("sockname")[:2])
        assert fast.send(rtp(5)) is None
        assert await received(inbox, 1) == [session().protect(rtp(5))]
    finally:
        transport.close()
        receiver.close()


class Dtls:
    """A stand-in for what the native path reads of a DTLS transport: its state and send session."""

    state = "connected"

    def __init__(self, session: pylibsrtp.Session) -> None:
        self._tx_srtp = session

    def on(self, event: str, handler: Any) -> None:
        assert event == "statechange"

    def renew_session(self, session: pylibsrtp.Session) -> None:
        self._tx_srtp = session


def fused(link: Any, *, history: bool = True) -> tuple[Any, ...]:
    """A C rewriter and its Python twin, a sender that can forward (stand-in DTLS state), a history."""
    transport, inbox, address = link
    arguments: dict[str, Any] = {"ssrc": 0x0A0B0C0D, "payload_type": 96, "clock_rate": 90000, "codec": "VP8",
                                 "mid": "1", "mid_id": 1, "abs_send_time_id": 3, "initial_sequence_number": 500,
                                 "initial_timestamp": 1000}
    c, python = native.make_rewriter(**arguments), SlotRewriter(**arguments)
    for rewriter in (c, python):
        rewriter.set_source("A")
    srtp, pair = session(), object()
    dtls, nominated = Dtls(srtp), {1: pair}
    sender = hooks.make_native_sender(srtp, transport, address, cast(Any, dtls), pair, nominated)
    assert sender is not None
    ring = SendHistory(16) if history else None
    forward = native.forward_function(c)
    assert forward is not None and native.forward_function(python) is None
    return forward, c, python, sender, dtls, nominated, ring, inbox


KEY_PAYLOAD = b"\x90\x80\x80\x05" + b"\x10\x02\x00\x9d\x01\x2a" + bytes(200)


@pytest.mark.integration
async def test_forward_rewrites_protects_sends_and_remembers(link: Any) -> None:
    forward, c, python, sender, _, _, ring, inbox = fused(link)
    reference, expected = session(), []
    for seq in range(40):
        payload = KEY_PAYLOAD if seq == 0 else bytes([0x80, 0x80, 0x80, 5 + seq]) + bytes(100 + seq)
        incoming = RtpPacket(payload_type=100, marker=seq % 4 == 3, sequence_number=7000 + seq,
                             timestamp=90_000 + 3000 * (seq // 4), ssrc=0x77, payload=payload)
        plain = python.rewrite(incoming, "A", 1_790_000_000.0 + seq / 100)
        assert plain is not None
        expected.append(plain)
        assert forward(c, sender, incoming, "A", 1_790_000_000.0 + seq / 100, *ring.rings()) == len(payload)
    assert await received(inbox, 40) == [reference.protect(p) for p in expected]
    assert sender.forwarded == sender.sent == 40
    for plain in expected[-16:]:  # the history answers a NACK with the very packet sent
        assert ring.get(struct.unpack_from("!H", plain, 2)[0]) == plain
    assert (c.packets_sent, c.octets_sent) == (python.packets_sent, python.octets_sent)


@pytest.mark.integration
async def test_forward_leaves_a_stale_sender_to_the_python_path(link: Any) -> None:
    forward, c, python, sender, dtls, nominated, ring, inbox = fused(link)
    now = 1_790_000_000.0

    def packet_(seq: int) -> RtpPacket:
        return RtpPacket(payload_type=100, sequence_number=seq, timestamp=5, ssrc=0x77,
                         payload=KEY_PAYLOAD if seq == 1 else b"\x00\x01\x02")

    def both(seq: int, source: str = "A") -> tuple[int | bytes | None, bytes | None]:
        return forward(c, sender, packet_(seq), source, now, *ring.rings()), python.rewrite(packet_(seq), source, now)

    out, plain = both(1)
    assert out == len(KEY_PAYLOAD) and plain is not None
    nominated[1] = object()  # ICE nominated another pair
    out, plain = both(2)
    assert out == plain and isinstance(out, bytes)  # rewritten, not sent: the Python path sends it
    nominated[1] = sender.pair
    sender.set_connected(False)
    out, plain = both(3)
    assert out == plain and isinstance(out, bytes)
    sender.set_connected(True)
    dtls.renew_session(session())  # another send session
    out, plain = both(4)
    assert out == plain and isinstance(out, bytes)
    assert both(5, "B") == (None, None)  # another source: dropped by both
    assert sender.forwarded == 1 and len(await received(inbox, 1)) == 1
    assert ring.get(503) is None  # what the Python path sends, it remembers itself


@pytest.mark.integration
async def test_forward_queues_behind_asyncio_and_stops_while_closing(link: Any) -> None:
    transport, inbox, address = link
    forward, c, _, sender, _, _, _, _ = fused(link, history=False)
    now = 1_790_000_000.0
    first = RtpPacket(payload_type=100, sequence_number=1, timestamp=5, ssrc=0x77, payload=KEY_PAYLOAD)
    holding = HoldsDatagrams(transport)
    assert forward(c, sender, first, "A", now, None, None) == len(KEY_PAYLOAD)
    assert holding.queued == 1 and sender.handed_back == 1  # queued behind it, through the transport's sendto
    holding.release()
    transport.close()
    later = RtpPacket(payload_type=100, sequence_number=2, timestamp=5, ssrc=0x77, payload=b"\x00\x01")
    assert forward(c, sender, later, "A", now, None, None) == -1
    with pytest.raises(TypeError):
        forward(c, sender, later, "A", now, [0], [b"", b""])  # rings of two sizes
    with pytest.raises(TypeError):
        forward(c, sender, later, "A", now, [0, 0, 0], [b"", b"", b""])  # not a power of two
    with pytest.raises(TypeError):
        forward(SlotRewriter(ssrc=1, payload_type=96, clock_rate=90000, codec="VP8"), sender, later, "A", now, None,
                None)
    with pytest.raises(TypeError):
        forward(c, sender, later, "A", now)  # type: ignore[call-arg]


def venue() -> PublisherBot:
    return PublisherBot([ClipTrack(vp8_clip(colour="red", seconds=10.0), "red"), ToneTrack()])


async def forward_once(on: bool) -> list[weakref.ref[Any]]:
    """One venue publishing, one subscribed, until media flow; weak references to what must be freed."""
    async with Worker(make_options(native_forwarding=on)) as worker:
        room = worker.create_room("r1")
        pub_bot, sub_bot = venue(), SubscriberBot()
        try:
            _, viewer = await watched(room, pub_bot, sub_bot)
            assert viewer._subscriber is not None
            dtls = viewer._subscriber.pc.getTransceivers()[0].sender.transport
            fast = hooks.native_sender(dtls)
            if not on:
                assert fast is None
                return []
            assert fast is not None
            rewritten = sum(slot.rewriter.packets_sent for slot in (*viewer.video_slots, *viewer.audio_slots)
                            if slot.rewriter is not None)
            assert fast.sent >= rewritten >= 100  # every forwarded packet (and the NACK answers) went natively
            assert fast.forwarded >= rewritten - 5  # all of it in one C call (but the first few, before the sender)
            assert fast.handed_back == fast.errors == 0
            return [weakref.ref(dtls), weakref.ref(fast)]
        finally:
            await sub_bot.close()
            await pub_bot.close()


@pytest.mark.media
@pytest.mark.parametrize("on", [True, False], ids=["native", "python"])
async def test_a_session_forwards_through_the_native_sender(on: bool, decoder_guard: DecoderGuard) -> None:
    gone = await forward_once(on)
    gc.collect()  # the sender and what it holds are freed with the link
    assert [ref() for ref in gone] == [None] * len(gone)


@pytest.mark.unit
def test_the_setting_reaches_the_sfu() -> None:
    from tiepdan.room_wiring import media_options
    from tiepdan.settings import Settings

    assert media_options(Settings()).sfu.native_forwarding is True
    assert media_options(Settings(media_native_forwarding=False)).sfu.native_forwarding is False


@pytest.mark.integration
def test_on_uvloop_as_the_app_runs() -> None:
    import uvloop  # uvicorn[standard]'s loop: the app's media runs on it

    async def run() -> None:
        loop = asyncio.get_running_loop()
        assert type(loop).__module__.startswith("uvloop")
        inbox = Inbox()
        receiver, _ = await loop.create_datagram_endpoint(lambda: inbox, local_addr=("127.0.0.1", 0))
        transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
        try:
            fast = sender_for(session(), transport, receiver.get_extra_info("sockname")[:2])
            reference = session()
            assert [fast.send(rtp(seq)) for seq in range(50)] == [None] * 50
            assert await received(inbox, 50) == [reference.protect(rtp(seq)) for seq in range(50)]
            transport.close()
            assert fast.send(rtp(50)) is False
        finally:
            transport.close()
            receiver.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())
