"""Every private aiortc/aioice hook of the SFU and of its test bots, in one place, and the start-up self-test.

aiortc is pinned (``aiortc==1.16.0``, ``aioice==0.13.0``); its internals change between minor releases
(1.15 -> 1.16 changed ``decoder_worker`` and the video jitter buffer). :func:`selftest` fails closed:
it raises :class:`~sfu.errors.AiortcVersionMismatch` unless the installed releases are the ones the hooks
were reviewed against (:data:`AIORTC_VERSION`, :data:`AIOICE_VERSION`, equal to the pins in
``pyproject.toml``), and :class:`~sfu.errors.AiortcHookMissing` naming every internal of :data:`PRIVATES`
that is missing, has other parameters or no longer does what a hook relies on. ``Worker.start`` calls
it, so an upgrade fails at start-up, not in the middle of a reception session. Nothing outside this
module touches an aiortc or aioice internal: the bots and the tests call the functions below.

Hooks of the SFU (all per instance):

1. ``RTCRtpReceiver._RTCRtpReceiver__jitter_buffer`` is replaced by an :class:`_IngestTap` whose
   ``add(packet)`` hands each depayloaded RTP packet (after SRTP, NACK and RTX unwrap; the payload is
   ``packet._data``) to the SFU and returns ``(False, None)``: aiortc's jitter buffer, decoder queue and
   decoder are never used. Reading ``packet.extensions.audio_level`` there gives the RFC 6464 level
   without decoding.
2. ``RTCRtpReceiver._send_rtcp_pli(media_ssrc)`` sends a keyframe request to the publisher.
3. ``RTCRtpReceiver._send_rtcp`` is wrapped to drop REMB on all but one video receiver per publisher
   connection (Chromium applies each REMB to the whole transport; chromium-interop §3.3), and the
   ``add`` of the one kept (``__remote_bitrate_estimator``) is wrapped per instance to throttle what it
   asks REMB to say (:func:`throttle_remb`).
4. ``RTCRtpSender._send_keyframe`` is overridden so that a subscriber's PLI/FIR reaches the SFU (on
   the ``pack()`` path aiortc would ignore it; ``_handle_rtcp_packet`` calls it).
5. ``RTCRtpReceiver._RTCRtpReceiver__remote_streams`` (SSRC → ``StreamStatistics``) is read for the
   loss and jitter of the media SSRC: aiortc's ``getStats()`` gives every SSRC of a receiver the same
   id, so the RTX stream's entry overwrites the media stream's.
6. Public behaviour relied on: ``RTCRtpSender._next_encoded_frame`` calls ``encoder.pack(packet)`` for
   non-``Frame`` data.
7. ``RTCRtpReceiver._handle_rtcp_packet`` is wrapped per receiver to hand each RTCP sender report (SSRC, NTP
   time, RTP timestamp) to the SFU before aiortc handles it (its RR still gets LSR/DLSR): aiortc parses SRs
   but exposes them only through ``getStats()`` as a datetime, without the RTP timestamp. The DTLS
   transport's router sends an SR to the receiver of its SSRC (``RtpRouter.route_rtcp``).

Hooks of RTP-level forwarding (``Options.rtp_forwarding``; all per instance):

8. ``RTCRtpSender.send(parameters)`` is wrapped to read what was negotiated for the subscriber's slot
   (:class:`SendParameters`: payload types, clock rate, header-extension ids, mid, and the sender's
   ``_ssrc``/``_rtx_ssrc``, which its RTCP and the subscriber's router use).
9. ``RTCRtpSender._retransmit(sequence_number)`` is overridden: a subscriber's NACK is answered by the
   SFU's own send history (aiortc's history stays empty: its send loop never gets a frame).
10. ``RTCRtpSender._send_rtcp(packets)`` is wrapped so that its sender report carries the SFU's (NTP, RTP)
    pair and counters; ``__lsr``/``__lsr_time`` are set from that report so the RTT estimate still works.
11. :func:`rtp_send` does what ``RTCDtlsTransport._send_rtp`` does on a UDP pair, without its coroutines:
    it follows the public state through ``statechange`` (which ``_set_state`` emits), protects with
    ``_tx_srtp`` and sends with the aioice ``Connection``'s ``_nominated`` pair's
    ``protocol.transport.sendto`` (``Connection.sendto`` and ``StunProtocol.send_data`` are checked to
    still do just that, on a host or a relayed pair); under a test's interception it runs ``_send_rtp``.
    With ``native`` on a UDP pair, protect and ``sendto`` are one call of ``sfu._native.Sender``
    (:func:`make_native_sender`), given the session's ``srtp_t`` (pylibsrtp's ``Session._srtp``, checked to
    be what its ``__process`` hands ``srtp_protect``); before each send it asks the socket's transport
    (asyncio's or uvloop's) ``is_closing()`` and ``get_write_buffer_size()``.

12. :func:`direct_receive` (``Options.direct_receive``) replaces the aioice ``Connection``'s
    ``data_received`` on the connection of a DTLS transport: once the transport is connected, an SRTP or
    SRTCP datagram is unprotected with ``_rx_srtp`` and handed to ``_handle_rtp_data`` or
    ``_handle_rtcp_data`` at once, which is what the transport's task does after reading the ``_queue``
    (``_recv_next``, checked); everything else still goes through the queue.

Socket options (``Options.receive_buffer_bytes``):

13. :func:`set_receive_buffer` reaches the UDP sockets of a peer connection's ICE agent through
    ``RTCIceGatherer._connection`` (the aioice ``Connection``), its ``_protocols`` and each
    ``StunProtocol.transport``, and sets ``SO_RCVBUF`` on them once gathering has bound them.

One process-wide hook, only when ``Options.host_addresses`` is set: ``aioice.ice.get_host_addresses``
is replaced so that the SFU's ICE agents offer exactly the configured addresses (the public interface
of a multi-homed server, or ``127.0.0.1`` for a loopback-only demo or test, which aioice never offers
by itself; chromium-interop §1).

Hooks for the bots and the tests (never called by the SFU): :func:`on_rtp_received` (the RTP packets a
receiver gets), :func:`intercept_rtp_send` (loss and stuck links), :func:`route_decoders` and
:func:`decoder_output` (a decoder trap that tells which track is being decoded),
:func:`nominated_local_candidate_type` (relay or host, read from aioice's nominated pair) and
:func:`receive_buffers`.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import importlib.metadata
import inspect
import logging
import socket
import time
import types
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import Any, Protocol, cast

import aioice.ice
import aiortc.rtcrtpreceiver
import pylibsrtp
from aiortc import MediaStreamTrack, RTCIceGatherer, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, clock
from aiortc.codecs import is_rtx
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rate import RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack, StreamStatistics
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtcpSenderInfo, RtcpSrPacket, RtpPacket, is_rtcp

from sfu import _tasks
from sfu import native as native_path
from sfu.errors import AiortcHookMissing, AiortcVersionMismatch

_logger = logging.getLogger("sfu.hooks")

#: The aiortc release the hooks were written and measured against (the pin in pyproject.toml).
AIORTC_VERSION = "1.16.0"
#: The aioice release under that aiortc (the pin in pyproject.toml; ``get_host_addresses`` is hooked).
AIOICE_VERSION = "0.13.0"

_JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"
_STREAMS_ATTR = "_RTCRtpReceiver__remote_streams"
_ESTIMATOR_ATTR = "_RTCRtpReceiver__remote_bitrate_estimator"
_LSR_ATTR = "_RTCRtpSender__lsr"
_LSR_TIME_ATTR = "_RTCRtpSender__lsr_time"
_MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
_ABS_SEND_TIME_URI = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
_AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"


@dataclass(frozen=True)
class Private:
    """One aiortc/aioice internal a hook relies on, and what :func:`selftest` checks of it.

    The attribute ``name`` of ``owner`` (a class or a module) must exist; with ``on_instance`` it is set
    by the constructor and looked up on a detached instance. ``params`` are a callable's parameter names
    (``self`` included for a method); ``kind`` the type the value must have. ``source`` are phrases the
    source of ``where`` (default: the attribute itself) must contain: what the hook relies on it doing.
    A ``dynamic`` attribute is created by aiortc's code at run time, so only that code can be checked.
    """

    owner: Any
    name: str
    params: tuple[str, ...] | None = None
    on_instance: bool = False
    kind: type | None = None
    source: tuple[str, ...] = ()
    where: tuple[Any, str] | None = None
    dynamic: bool = False

    @property
    def label(self) -> str:
        owner = self.owner.__name__ if isinstance(self.owner, type | types.ModuleType) else repr(self.owner)
        return f"{owner}.{self.name}"


_HANDLE_RTP = (RTCRtpReceiver, "_handle_rtp_packet")

#: Every aiortc/aioice internal touched by this module (by the SFU's hooks and by the bots' hooks).
PRIVATES: tuple[Private, ...] = (
    # ingest below the jitter buffer (install_ingest)
    Private(RTCRtpReceiver, _JITTER_ATTR, on_instance=True, kind=JitterBuffer, where=_HANDLE_RTP,
            source=("pli_flag, encoded_frame = self.__jitter_buffer.add(packet)", "if encoded_frame is not None")),
    Private(RtpPacket, "_data", dynamic=True, where=_HANDLE_RTP,
            source=("packet._data = depayload(codec, packet.payload)",)),
    Private(RTCRtpReceiver, "_handle_rtp_packet", params=("self", "packet", "arrival_time_ms")),
    # link statistics of the media SSRC (receive_statistics)
    Private(RTCRtpReceiver, _STREAMS_ATTR, on_instance=True, kind=dict, where=_HANDLE_RTP,
            source=("self.__remote_streams[packet.ssrc].add(packet)",)),
    Private(StreamStatistics, "packets_received", on_instance=True, kind=int),
    Private(StreamStatistics, "packets_lost", kind=property),
    Private(StreamStatistics, "jitter", kind=property),
    # keyframe requests to the publisher (send_pli) and REMB suppression (suppress_remb)
    Private(RTCRtpReceiver, "_send_rtcp_pli", params=("self", "media_ssrc")),
    Private(RTCRtpReceiver, "_send_rtcp", params=("self", "packet")),
    Private(RTCRtpReceiver, _ESTIMATOR_ATTR, on_instance=True, kind=RemoteBitrateEstimator, where=_HANDLE_RTP,
            source=("if self.__remote_bitrate_estimator is not None:",
                    "remb = self.__remote_bitrate_estimator.add(",
                    "if self.__rtcp_ssrc is not None and remb is not None:")),
    # the REMB throttle (throttle_remb): the estimator's add, called with keywords, returns what REMB says
    Private(RemoteBitrateEstimator, "add", params=("self", "arrival_time_ms", "abs_send_time", "payload_size", "ssrc"),
            source=("return target_bitrate, list(self.ssrcs.keys())",)),
    # the publishers' RTCP sender reports (on_sender_report): routed by SSRC to the receiver's handler
    Private(RTCRtpReceiver, "_handle_rtcp_packet", params=("self", "packet"),
            source=("if isinstance(packet, RtcpSrPacket):",)),
    Private(RtpRouter, "route_rtcp", params=("self", "packet"),
            source=("if isinstance(packet, RtcpSrPacket):", "add_recipient(self.ssrc_table.get(packet.ssrc))")),
    Private(RTCDtlsTransport, "_handle_rtcp_data", params=("self", "data"),
            source=("await recipient._handle_rtcp_packet(packet)",)),
    # keyframe requests from a subscriber (on_keyframe_request)
    Private(RTCRtpSender, "_send_keyframe", params=("self",)),
    Private(RTCRtpSender, "_handle_rtcp_packet", params=("self", "packet"), source=("self._send_keyframe()",)),
    # pre-encoded media are packed, never encoded (the forwarding path)
    Private(RTCRtpSender, "_next_encoded_frame", params=("self", "codec"), source=(".pack(data)",)),
    # the datagrams a DTLS transport sends (intercept_rtp_send)
    Private(RTCDtlsTransport, "_send_rtp", params=("self", "data")),
    # the decoder trap of the tests (route_decoders, decoder_output)
    Private(aiortc.rtcrtpreceiver, "get_decoder", params=("codec",)),
    Private(aiortc.rtcrtpreceiver, "decoder_worker", params=("loop", "input_q", "output_q", "decode_error"),
            source=("decoder = get_decoder(codec)",)),
    Private(RemoteStreamTrack, "_queue", on_instance=True, kind=asyncio.Queue, where=(RTCRtpReceiver, "receive"),
            source=("self._track._queue",)),
    # the ICE agent's sockets and nominated pair (set_receive_buffer, rtp_send, nominated_local_candidate_type)
    Private(RTCIceGatherer, "_connection", dynamic=True, where=(RTCIceGatherer, "__init__"),
            source=("self._connection = Connection(",)),
    Private(aioice.ice.Connection, "_protocols", dynamic=True, where=(aioice.ice.Connection, "__init__"),
            source=("self._protocols: list[StunProtocol] = []",)),
    # the fast path of rtp_send: the SRTP session, the nominated pair's socket (the state is public)
    Private(RTCDtlsTransport, "_set_state", params=("self", "state"), source=('self.emit("statechange")',)),
    Private(RTCDtlsTransport, "_tx_srtp", dynamic=True, where=(RTCDtlsTransport, "_send_rtp"),
            source=("data = self._tx_srtp.protect(data)", "await self.transport._send(data)")),
    Private(aioice.ice.Connection, "sendto", params=("self", "data", "component"),
            source=("active_pair = self._nominated.get(component)",
                    "await active_pair.protocol.send_data(data, active_pair.remote_addr)")),
    Private(aioice.ice.StunProtocol, "send_data", params=("self", "data", "addr"),
            source=("self.transport.sendto(data, addr)",)),
    Private(aioice.ice.Connection, "_nominated", dynamic=True, where=(aioice.ice.Connection, "__init__"),
            source=("self._nominated: dict[int, CandidatePair] = {}",)),
    Private(aioice.ice.StunProtocol, "transport", dynamic=True, where=(aioice.ice.StunProtocol, "connection_made"),
            source=("self.transport = ",)),
    # ... the native send path (sfu.native): libsrtp's protect through pylibsrtp's binding on the session's
    # srtp_t, and the asyncio datagram transport's write buffer and closing flag
    Private(pylibsrtp.Session, "_srtp", dynamic=True, where=(pylibsrtp.Session, "__init__"),
            source=('srtp = ffi.new("srtp_t *")', "self._srtp = ffi.gc(srtp")),
    Private(pylibsrtp.Session, "protect", params=("self", "packet"), source=("lib.srtp_protect",)),
    Private(pylibsrtp.Session, "_Session__process", params=("self", "data", "func", "trailer"),
            source=("func(self._srtp[0], self._cdata, len_p)",)),
    # the receive path direct_receive replaces: socket -> Connection.data_received -> _queue -> the DTLS
    # transport's task (_recv_next: unprotect, then _handle_rtp_data / _handle_rtcp_data)
    Private(aioice.ice.StunProtocol, "datagram_received", params=("self", "data", "addr"),
            source=("self.receiver.data_received(data, self.local_candidate.component)",)),
    Private(aioice.ice.Connection, "data_received", params=("self", "data", "component"),
            source=("self._queue.put_nowait((data, component))",)),
    Private(aioice.ice.Connection, "_queue", dynamic=True, where=(aioice.ice.Connection, "recvfrom"),
            source=("result = await self._queue.get()",)),
    Private(RTCDtlsTransport, "_recv_next", params=("self",),
            source=("elif first_byte > 127 and first_byte < 192 and self._rx_srtp:",
                    "arrival_time_ms = clock.current_ms()", "if is_rtcp(data):",
                    "data = self._rx_srtp.unprotect_rtcp(data)", "await self._handle_rtcp_data(data)",
                    "data = self._rx_srtp.unprotect(data)",
                    "await self._handle_rtp_data(data, arrival_time_ms=arrival_time_ms)",
                    "except pylibsrtp.Error as exc:")),
    Private(RTCDtlsTransport, "_rx_srtp", dynamic=True, where=(RTCDtlsTransport, "_recv_next"),
            source=("self._rx_srtp.unprotect(data)",)),
    Private(RTCDtlsTransport, "_handle_rtp_data", params=("self", "data", "arrival_time_ms")),
    # RTP-level forwarding: negotiated send parameters and SSRCs (on_send_parameters)
    Private(RTCRtpSender, "send", params=("self", "parameters"),
            source=("self.__mid = parameters.muxId", "self._run_rtp(parameters.codecs[0])")),
    Private(RTCRtpSender, "_ssrc", dynamic=True, where=(RTCRtpSender, "__init__"), source=("self._ssrc = random32()",)),
    Private(RTCRtpSender, "_rtx_ssrc", dynamic=True, where=(RTCRtpSender, "_retransmit"),
            source=("ssrc=self._rtx_ssrc",)),
    # ... a subscriber's NACK answered from the SFU's history (on_retransmit)
    Private(RTCRtpSender, "_retransmit", params=("self", "sequence_number"),
            where=(RTCRtpSender, "_handle_rtcp_packet"), source=("await self._retransmit(seq)",)),
    # ... the sender reports (on_sender_report_sent): built from __ntp_timestamp, sent through _send_rtcp
    Private(RTCRtpSender, "_send_rtcp", params=("self", "packets"), where=(RTCRtpSender, "_run_rtcp"),
            source=("self.__lsr = ((self.__ntp_timestamp) >> 16) & 0xFFFFFFFF", "await self._send_rtcp(packets)")),
    Private(RTCRtpSender, _LSR_ATTR, dynamic=True, where=(RTCRtpSender, "_handle_rtcp_packet"),
            source=("if self.__lsr == report.lsr and report.dlsr:",)),
    Private(RTCRtpSender, _LSR_TIME_ATTR, dynamic=True, where=(RTCRtpSender, "_handle_rtcp_packet"),
            source=("rtt = time.time() - self.__lsr_time - (report.dlsr / 65536)",)),
    # the host candidates of this process (announce_host_addresses)
    Private(aioice.ice, "get_host_addresses", params=("use_ipv4", "use_ipv6")),
)


# --- the SFU's hooks --------------------------------------------------------------------------------------


class IngestSink(Protocol):
    """What the receiver hook feeds: one call per RTP packet of the publisher's track."""

    def on_rtp(self, packet: RtpPacket, data: bytes) -> None: ...


class _IngestTap:
    """Stands in for aiortc's ``JitterBuffer``: forwards packets, never returns a frame to decode."""

    __slots__ = ("_sink",)

    def __init__(self, sink: IngestSink) -> None:
        self._sink = sink

    @property
    def capacity(self) -> int:
        return 0

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        # `_data` is the depayloaded payload that RTCRtpReceiver._handle_rtp_packet set just before
        self._sink.on_rtp(packet, getattr(packet, "_data", b""))
        return False, None


def install_ingest(receiver: RTCRtpReceiver, sink: IngestSink) -> None:
    """Route ``receiver``'s packets to ``sink`` instead of aiortc's jitter buffer and decoder."""
    if not hasattr(receiver, _JITTER_ATTR):
        raise AiortcHookMissing(f"RTCRtpReceiver has no {_JITTER_ATTR}")
    setattr(receiver, _JITTER_ATTR, _IngestTap(sink))


def receive_statistics(receiver: RTCRtpReceiver, ssrc: int | None) -> tuple[int, int, float] | None:
    """(packets received, packets lost, jitter in timestamp units) of ``ssrc`` as received by ``receiver``
    (retransmissions arrive on the RTX SSRC, so this is the loss on the link); None before any packet."""
    streams = getattr(receiver, _STREAMS_ATTR, None)
    if ssrc is None or not isinstance(streams, dict) or ssrc not in streams:
        return None
    stream = streams[ssrc]
    return int(stream.packets_received), int(stream.packets_lost), float(stream.jitter)


def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> Awaitable[None]:
    """Send an RTCP PLI for ``media_ssrc`` through ``receiver``."""
    return cast(Awaitable[None], receiver._send_rtcp_pli(media_ssrc))


def on_sender_report(receiver: RTCRtpReceiver, callback: Callable[[int, int, int], None]) -> None:
    """Call ``callback(ssrc, ntp_timestamp, rtp_timestamp)`` for every RTCP sender report ``receiver`` gets
    (``ntp_timestamp``: the 64-bit NTP time; any SSRC of the publisher, RTX included), before aiortc's own
    handling, which still runs."""
    original = receiver._handle_rtcp_packet

    async def handle_rtcp_packet(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket):
            info = packet.sender_info
            callback(packet.ssrc, info.ntp_timestamp, info.rtp_timestamp)
        await original(packet)

    receiver._handle_rtcp_packet = handle_rtcp_packet  # type: ignore[method-assign]


def suppress_remb(receiver: RTCRtpReceiver) -> None:
    """Drop the REMB packets ``receiver`` would send (keep one REMB source per publisher connection), and do
    not estimate what they would have said: aiortc's remote bitrate estimator costs ~3 us per packet."""
    setattr(receiver, _ESTIMATOR_ATTR, None)
    original = receiver._send_rtcp

    async def send_rtcp_without_remb(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            return
        await original(packet)

    receiver._send_rtcp = send_rtcp_without_remb  # type: ignore[method-assign]


#: REMB is sent at most this often while the estimate holds or rises (libwebrtc's receiver: 200 ms)
REMB_INTERVAL_MS = 200
#: an estimate below this share of the last one sent goes out at once (libwebrtc: 3 % lower)
REMB_DROP_NOW = 0.97


class RembThrottle:
    """What one video receiver tells its publisher in REMB, throttled as libwebrtc's receiver does.

    aiortc's remote bitrate estimator asks for a REMB every 500 ms, and on *every packet* while it sees
    the link over-used (a delay gradient above its threshold, which a bursty keyframe or a busy event
    loop produce as well as a congested uplink): some 200 REMB packets per second for one venue's
    camera, each built, protected and sent (``tests/sfu/test_remb_throttle.py``: 461 in 15 s of a
    congested uplink; in ``bench/peer.py``, where no uplink is over-used, none is held). A publisher only
    needs the latest estimate: a lower one at once (it must slow down), otherwise one per
    ``interval_ms``. :meth:`add` stands in for the estimator's own ``add``: the estimator still sees
    every packet (its state is the same either way), and a held estimate costs no packet, no SRTCP
    protect and no send."""

    __slots__ = ("interval_ms", "sent", "held", "last_bitrate", "_last_ms", "_estimate")

    def __init__(self, estimate: Callable[..., tuple[int, list[int]] | None],
                 interval_ms: int = REMB_INTERVAL_MS) -> None:
        self._estimate = estimate
        self.interval_ms = interval_ms
        #: REMB packets let through, and estimates held back (a newer one followed soon enough)
        self.sent = 0
        self.held = 0
        #: the last estimate sent (bits/s; None: none yet)
        self.last_bitrate: int | None = None
        self._last_ms = 0

    def __repr__(self) -> str:
        return f"<RembThrottle sent={self.sent} held={self.held} last={self.last_bitrate}>"

    def add(self, *, arrival_time_ms: int, abs_send_time: int, payload_size: int,
            ssrc: int) -> tuple[int, list[int]] | None:
        """The estimator's ``add``: what REMB should say now (bits/s, SSRCs), or None."""
        remb = self._estimate(arrival_time_ms=arrival_time_ms, abs_send_time=abs_send_time,
                              payload_size=payload_size, ssrc=ssrc)
        if remb is None or self.admit(remb[0], arrival_time_ms):
            return remb
        return None

    def admit(self, bitrate: int, now_ms: int) -> bool:
        """Whether an estimate of ``bitrate`` at ``now_ms`` (the arrival clock, ms) goes out now."""
        last = self.last_bitrate
        if (last is not None and now_ms - self._last_ms < self.interval_ms
                and bitrate >= last * REMB_DROP_NOW):
            self.held += 1
            return False
        self.last_bitrate = bitrate
        self._last_ms = now_ms
        self.sent += 1
        return True


def throttle_remb(receiver: RTCRtpReceiver, interval_ms: int = REMB_INTERVAL_MS) -> RembThrottle | None:
    """Throttle the REMB packets ``receiver`` sends (:class:`RembThrottle`); None when it estimates nothing
    (audio, or a second video track whose REMB :func:`suppress_remb` dropped)."""
    estimator = getattr(receiver, _ESTIMATOR_ATTR, None)
    if estimator is None:
        return None
    throttle = RembThrottle(estimator.add, interval_ms)
    estimator.add = throttle.add
    return throttle


def estimates_bitrate(receiver: RTCRtpReceiver) -> bool:
    """Whether ``receiver`` runs aiortc's remote bitrate estimator (a video receiver whose REMB is kept)."""
    return getattr(receiver, _ESTIMATOR_ATTR, None) is not None


def announce_host_addresses(addresses: tuple[str, ...]) -> Callable[[], None]:
    """Make every ICE agent of this process offer exactly ``addresses`` as host candidates.

    Returns a function that puts back what aioice used before (for tests; the SFU keeps its choice).
    """
    previous = getattr(aioice.ice, "get_host_addresses", None)
    if not callable(previous):
        raise AiortcHookMissing("aioice.ice.get_host_addresses")
    chosen = list(addresses)
    v4 = [a for a in chosen if ":" not in a]
    v6 = [a for a in chosen if ":" in a]

    def configured(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return (v4 if use_ipv4 else []) + (v6 if use_ipv6 else [])

    aioice.ice.get_host_addresses = configured

    def restore() -> None:
        aioice.ice.get_host_addresses = previous

    return restore


def _media_sockets(pc: RTCPeerConnection) -> list[socket.socket]:
    """The UDP sockets the ICE agents of ``pc`` have bound (one agent for all bundled m-lines)."""
    out: list[socket.socket] = []
    seen: set[int] = set()
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for dtls in transports:
        if dtls is None:
            continue
        connection = dtls.transport.iceGatherer._connection
        if id(connection) in seen:
            continue
        seen.add(id(connection))
        for protocol in connection._protocols:
            # a relayed candidate's protocol holds a TURN allocation, not a socket of its own: skipped
            transport = getattr(protocol, "transport", None)
            sock = transport.get_extra_info("socket") if isinstance(transport, asyncio.BaseTransport) else None
            if sock is not None and sock.type == socket.SOCK_DGRAM:
                out.append(sock)
    return out


def nominated_local_candidate_type(pc: RTCPeerConnection) -> str | None:
    """Type (``host``, ``relay``...) of the local candidate of the nominated ICE pair of ``pc``'s first
    (bundled) transport, None before nomination: aiortc has no ``getSelectedCandidatePair``."""
    transceivers = pc.getTransceivers()
    dtls = transceivers[0].receiver.transport if transceivers else None
    if dtls is None:
        return None
    pair = dtls.transport.iceGatherer._connection._nominated.get(1)
    return None if pair is None else str(pair.local_candidate.type)


def set_receive_buffer(pc: RTCPeerConnection, size: int) -> list[int]:
    """Ask for a ``size``-byte receive buffer (``SO_RCVBUF``) on every UDP socket the ICE agents of ``pc`` have
    bound (call it after gathering); returns what the kernel granted per socket (:func:`receive_buffers`)."""
    for sock in _media_sockets(pc):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return receive_buffers(pc)


def receive_buffers(pc: RTCPeerConnection) -> list[int]:
    """The receive buffer of each UDP socket of ``pc``'s ICE agents, in the unit asked for (Linux reports twice
    that, its bookkeeping overhead included, and caps it at ``net.core.rmem_max``)."""
    return [sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2 for sock in _media_sockets(pc)]


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` when the remote subscriber sends PLI or FIR for ``sender``'s stream."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


# --- RTP-level forwarding ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendParameters:
    """What was negotiated for one subscriber slot's sender (``None``: not negotiated)."""

    codec: str  # the primary codec's name: "VP8", "H264", "opus", ...
    payload_type: int
    clock_rate: int
    rtx_payload_type: int | None
    mid: str | None
    mid_id: int | None
    abs_send_time_id: int | None
    audio_level_id: int | None
    ssrc: int
    rtx_ssrc: int


def _send_parameters(sender: RTCRtpSender, parameters: RTCRtpSendParameters) -> SendParameters:
    primary = parameters.codecs[0]
    rtx = next((c.payloadType for c in parameters.codecs
                if is_rtx(c) and c.parameters.get("apt") == primary.payloadType), None)
    ids = {ext.uri: ext.id for ext in parameters.headerExtensions}
    return SendParameters(
        codec=primary.mimeType.split("/", 1)[-1],
        payload_type=int(primary.payloadType or 0),
        clock_rate=int(primary.clockRate or 0),
        rtx_payload_type=None if rtx is None else int(rtx),
        mid=parameters.muxId or None,
        mid_id=ids.get(_MID_URI),
        abs_send_time_id=ids.get(_ABS_SEND_TIME_URI),
        audio_level_id=ids.get(_AUDIO_LEVEL_URI),
        ssrc=int(sender._ssrc),
        rtx_ssrc=int(sender._rtx_ssrc),
    )


def on_send_parameters(sender: RTCRtpSender, callback: Callable[[SendParameters], None]) -> None:
    """Call ``callback`` with what was negotiated when aiortc starts ``sender`` (once per connection)."""
    original = sender.send

    async def send(parameters: RTCRtpSendParameters) -> None:
        await original(parameters)
        callback(_send_parameters(sender, parameters))

    sender.send = send  # type: ignore[method-assign]


def on_retransmit(sender: RTCRtpSender, callback: Callable[[int], None]) -> None:
    """Call ``callback(sequence_number)`` for every packet the subscriber NACKs, instead of aiortc's
    retransmission from its own (unused) history."""

    async def retransmit(sequence_number: int) -> None:
        callback(sequence_number)

    sender._retransmit = retransmit  # type: ignore[method-assign]


#: (64-bit NTP timestamp, RTP timestamp, packets sent, payload octets sent) of a sender report
SenderReportValues = tuple[int, int, int, int]


def on_sender_report_sent(sender: RTCRtpSender, values: Callable[[], SenderReportValues | None]) -> None:
    """Make ``sender``'s RTCP sender reports carry ``values()`` (when not None) instead of aiortc's counters
    of its own send loop; the report's time is kept for the round-trip estimate from the subscriber's RR."""
    original = sender._send_rtcp

    async def send_rtcp(packets: list[Any]) -> None:
        current = values()
        if current is not None:
            ntp, rtp_timestamp, count, octets = current
            for index, packet in enumerate(packets):
                if isinstance(packet, RtcpSrPacket) and packet.ssrc == sender._ssrc:
                    info = RtcpSenderInfo(ntp_timestamp=ntp, rtp_timestamp=rtp_timestamp,
                                          packet_count=count & 0xFFFFFFFF, octet_count=octets & 0xFFFFFFFF)
                    packets[index] = RtcpSrPacket(ssrc=packet.ssrc, sender_info=info, reports=packet.reports)
                    setattr(sender, _LSR_ATTR, (ntp >> 16) & 0xFFFFFFFF)
                    setattr(sender, _LSR_TIME_ATTR, time.time())
        await original(packets)

    sender._send_rtcp = send_rtcp  # type: ignore[method-assign]


class _Rest:
    """The rest of a send that suspended (a TURN relay's send awaits): awaiting it resumes the coroutine
    where it stopped, handing what it yields to the awaiting task and back (what ``yield from`` does)."""

    def __init__(self, send: Coroutine[Any, Any, None], pending: Any) -> None:
        self._send = send
        self._pending = pending

    def __await__(self) -> Generator[Any, Any, None]:
        send, pending = self._send, self._pending
        while True:
            try:
                value = yield pending
            except BaseException as exc:  # cancelled, or the awaited future failed: the send sees it
                try:
                    pending = send.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    pending = send.send(value)
                except StopIteration:
                    return


async def _finish(send: Coroutine[Any, Any, None], pending: Any) -> None:
    try:
        await _Rest(send, pending)
    except ConnectionError:  # the transport closed meanwhile
        pass


#: the tasks finishing a direct receive that suspended (:func:`direct_receive`)
_RECEIVING: set[asyncio.Task[Any]] = set()

#: sends of one transport left suspended (a TURN relay, a stuck link) beyond which packets are dropped
RTP_SEND_BACKLOG = 256


#: the attribute of a DTLS transport holding the native sender its slots share (:func:`rtp_send`), made for
#: one nominated pair and SRTP session. On the transport, not in a weak mapping: the sender leads back to
#: the transport, which would keep a mapping's entry alive for ever.
_NATIVE_ATTR = "tiepdan_native_sender"


def native_sender(transport: RTCDtlsTransport) -> native_path.SenderLike | None:
    """The native sender (``sfu.native``) the RTP sends through ``transport`` use now, with its counters;
    None when they take the Python path."""
    return cast("native_path.SenderLike | None", getattr(transport, _NATIVE_ATTR, None))


def native_sender_lookup(transport: RTCDtlsTransport) -> Callable[[], native_path.SenderLike | None]:
    """:func:`native_sender` of ``transport`` as a call without Python frames (for the per-packet path)."""
    lookup = functools.partial(getattr, transport, _NATIVE_ATTR, None)
    return cast("Callable[[], native_path.SenderLike | None]", lookup)


def make_native_sender(session: pylibsrtp.Session, udp: asyncio.DatagramTransport, address: tuple[Any, ...],
                       dtls: RTCDtlsTransport | None = None, pair: Any = None, nominated: dict[int, Any] | None = None
                       ) -> native_path.SenderLike | None:
    """``sfu.native.make_sender`` given the internal it needs, the session's ``srtp_t`` (None when the extension
    is not built or the pair is not one it takes).

    With ``dtls`` and its nominated ``pair`` the sender can also forward on its own (``sfu.native.forward``):
    it checks the ICE connection's ``_nominated`` pair and the transport's ``_tx_srtp`` before each send, and
    its ``connected`` flag follows the transport's ``statechange``. (``nominated``: those pairs, when ``dtls``
    is a test's stand-in.)"""
    if dtls is None:
        return native_path.make_sender(session, session._srtp[0], udp, address)
    if nominated is None:
        nominated = dtls.transport.iceGatherer._connection._nominated
    sender = native_path.make_sender(session, session._srtp[0], udp, address, dtls=dtls,
                                     nominated=nominated, pair=pair, connected=dtls.state == "connected")
    if sender is not None:
        def state_changed() -> None:
            sender.set_connected(dtls.state == "connected")

        dtls.on("statechange", state_changed)
    return sender


def rtp_send(transport: RTCDtlsTransport, *, native: bool = True) -> Callable[[bytes], bool | None]:
    """A function that sends one RTP packet (before SRTP) through ``transport`` now.

    It does what aiortc's ``_send_rtp`` does, without its four layers of coroutines: SRTP protect with the
    transport's session, then ``sendto`` on the nominated pair's transport (a UDP socket's, or for a relayed
    pair aioice's ``TurnTransport``, whose ``sendto`` queues the TURN send itself: aiortc's path calls the
    same). The pair is looked up on every call, so a re-nomination is followed. Under a test's
    :func:`intercept_rtp_send`, or with a pair of another kind, it runs ``_send_rtp`` itself: to its end
    when it does not suspend, else the rest is finished by a task, at most :data:`RTP_SEND_BACKLOG` at a
    time (beyond, packets are dropped). The DTLS transport's own byte counters (``getStats`` of the
    transport) do not count packets of the fast path. Returns True when the packet went, False when the link
    is stuck (the backlog is full) and None when the transport is not (or no longer) connected: both drop it.

    With ``native`` (and ``sfu._native`` built) a UDP pair's packets are protected and sent by one C call
    (``sfu.native``: the same session, socket and bytes on the wire); a datagram it cannot send at once goes
    through the asyncio transport's ``sendto`` as on the Python path."""
    backlog: set[asyncio.Task[None]] = set()
    nominated = transport.transport.iceGatherer._connection._nominated
    connected = transport.state == "connected"
    # the nominated pair last seen, its transport's sendto (None: another kind of pair) and remote address
    pair_seen: Any = None
    sendto: Callable[[bytes, Any], None] | None = None
    address: Any = None
    # the native sender of that pair and the SRTP session it was made for (sfu.native)
    fast: native_path.SenderLike | None = None
    srtp_seen: Any = None

    def state_changed() -> None:
        nonlocal connected
        connected = transport.state == "connected"

    transport.on("statechange", state_changed)

    def slow(data: bytes) -> bool | None:
        if len(backlog) >= RTP_SEND_BACKLOG:
            return False
        coro = transport._send_rtp(data)
        try:
            pending = coro.send(None)
        except StopIteration:
            return True
        except ConnectionError:
            return None
        task = asyncio.get_running_loop().create_task(_finish(coro, pending))
        backlog.add(task)
        task.add_done_callback(backlog.discard)
        return True

    def send(data: bytes) -> bool | None:
        nonlocal pair_seen, sendto, address, fast, srtp_seen
        if not connected:
            return None
        if _INTERCEPTED and transport in _INTERCEPTED:  # a test's loss or stuck link: aiortc's own path
            return slow(data)
        pair = nominated.get(1)
        srtp = transport._tx_srtp
        if pair is not pair_seen or srtp is not srtp_seen:
            pair_seen, srtp_seen, sendto, fast = pair, srtp, None, None
            if pair is not None and type(pair.protocol) is aioice.ice.StunProtocol:
                sendto, address = pair.protocol.transport.sendto, pair.remote_addr
                if native:  # one native sender per transport, shared by its slots
                    made = native_sender(transport)
                    if made is not None and made.pair is pair and made.session is srtp:
                        fast = made
                    else:
                        fast = make_native_sender(srtp, pair.protocol.transport, address, transport, pair)
                        if fast is not None:
                            setattr(transport, _NATIVE_ATTR, fast)
        if sendto is None or backlog:  # another kind of pair, or earlier sends still pending: keep the order
            return slow(data)
        if fast is not None:
            out = fast.send(data)
            if out is None:
                return True
            if out is False:  # the socket's transport is closing: so is the link
                return None
            data = cast(bytes, out)  # protected; the transport's buffer holds earlier datagrams: queue behind
        else:
            data = srtp.protect(data)
        sendto(data, address)
        return True

    return send


class DirectReceive:
    """The receive path of one DTLS transport installed by :func:`direct_receive`, and its counters (read by
    tests and diagnostics)."""

    __slots__ = ("handled", "queued", "refused", "failures", "suspended", "malformed", "_transport", "_queue",
                 "_enqueue", "_session", "_behind")

    def __init__(self, transport: RTCDtlsTransport, direct: bool) -> None:
        #: datagrams taken in the socket's callback (or behind a handling that suspended), refused ones included
        self.handled = 0
        #: datagrams left to aiortc's queue (DTLS, before connecting, after closing, behind queued ones)
        self.queued = 0
        #: datagrams dropped unhandled: empty ones, and those SRTP/SRTCP refused (forged, damaged, replayed)
        self.refused = 0
        #: datagrams whose handling raised: logged once per transport, dropped
        self.failures = 0
        #: handlings that suspended and were finished by a task
        self.suspended = 0
        #: datagrams aioice's STUN parsing or handling raised on (a malformed attribute): dropped
        self.malformed = 0
        self._transport = transport
        connection = transport.transport.iceGatherer._connection
        self._queue = connection._queue
        self._enqueue = connection.data_received
        #: the receive session once connected (None: not connected, or ``direct`` off)
        self._session: Any = None
        #: datagrams arriving behind a handling that suspended (None: none is suspended)
        self._behind: collections.deque[bytes] | None = None
        if direct:
            transport.on("statechange", self._state_changed)
            self._state_changed()
        connection.data_received = self.data_received  # type: ignore[method-assign]
        for protocol in connection._protocols:
            protocol.datagram_received = self._guarded(protocol)  # type: ignore[method-assign,assignment]

    def __repr__(self) -> str:
        return (f"<DirectReceive handled={self.handled} queued={self.queued} refused={self.refused} "
                f"failures={self.failures} suspended={self.suspended} malformed={self.malformed}>")

    def _guarded(self, protocol: Any) -> Callable[[bytes, Any], None]:
        """``protocol.datagram_received`` (a socket protocol of the ICE connection), dropping what it raises on.

        aioice 0.13 catches only ``ValueError`` from its STUN parser; a STUN-looking datagram with a
        truncated attribute raises ``struct.error``, which asyncio logs with a traceback per datagram: anyone
        able to send UDP to a media port could flood the log and the CPU.

        On aioice's plain UDP protocol (``StunProtocol``, not a TURN client's), an RTP or RTCP datagram
        (first byte 128-191, RFC 7983) goes straight to :meth:`data_received`: aioice would first try to
        parse it as STUN (a header unpacked, a ``ValueError`` raised and caught, ~1 us per datagram) and
        then do just that (a STUN message's first byte is 0-3)."""
        received: Callable[[bytes, Any], None] = protocol.datagram_received
        plain = type(protocol) is aioice.ice.StunProtocol
        data_received = self.data_received

        def datagram_received(data: bytes, addr: Any) -> None:
            if plain and data and 127 < data[0] < 192:
                data_received(data, protocol.local_candidate.component)
                return
            try:
                received(data, addr)
            except Exception as exc:
                self.malformed += 1
                if self.malformed == 1:
                    _logger.warning("a malformed datagram reached a media socket and was dropped (%s: %s); "
                                    "later ones are counted only", type(exc).__name__, exc)

        return datagram_received

    def _state_changed(self) -> None:
        transport = self._transport
        self._session = transport._rx_srtp if transport.state == "connected" else None

    def data_received(self, data: bytes, component: int) -> None:
        """What the ICE socket's protocol calls for every datagram that is not STUN."""
        if not data:
            self.refused += 1
            return
        if self._session is None or len(data) < 2 or not 127 < data[0] < 192 or self._queue.qsize():
            self.queued += 1
            self._enqueue(data, component)
            return
        if self._behind is not None:
            self._behind.append(data)
            return
        coro = self._handling(data)
        if coro is None:
            return
        try:
            pending = coro.send(None)
        except StopIteration:
            return
        except Exception as exc:
            self._failed(exc)
            return
        self.suspended += 1
        self._behind = collections.deque()
        _tasks.spawn(_RECEIVING, self._finish(coro, pending), name="direct-receive", owner="dtls transport")

    def _handling(self, data: bytes) -> Coroutine[Any, Any, None] | None:
        self.handled += 1
        transport = self._transport
        try:
            if is_rtcp(data):
                return transport._handle_rtcp_data(self._session.unprotect_rtcp(data))
            return transport._handle_rtp_data(self._session.unprotect(data), arrival_time_ms=clock.current_ms())
        except pylibsrtp.Error:
            self.refused += 1
            return None

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.failures == 1:
            _logger.error("RTP/RTCP handling failed on a DTLS transport; the datagram is dropped", exc_info=exc)

    async def _finish(self, coro: Coroutine[Any, Any, None], pending: Any) -> None:
        try:
            try:
                await _Rest(coro, pending)
            except Exception as exc:
                self._failed(exc)
            behind = self._behind
            while behind:
                data = behind.popleft()
                if self._session is None:
                    continue  # the transport closed meanwhile: dropped
                rest = self._handling(data)
                if rest is not None:
                    try:
                        await rest
                    except Exception as exc:
                        self._failed(exc)
        finally:
            self._behind = None


def direct_receive(transport: RTCDtlsTransport, *, direct: bool = True) -> DirectReceive:
    """Handle ``transport``'s SRTP and SRTCP datagrams in the socket's callback, as they arrive (with
    ``direct`` False, only drop empty datagrams and count what goes to aiortc's queue).

    In either case, an empty datagram is dropped (counted as refused): aiortc 1.16's transport task reads
    its first byte, and the ``IndexError`` ends the task and closes the transport, so one empty UDP
    datagram from anywhere would cut a venue's link. And a datagram aioice's socket protocol raises on (a
    STUN message with a truncated attribute) is dropped and counted (``malformed``) instead of reaching
    asyncio's exception handler, which logs a traceback per datagram.

    aiortc hands every datagram through the aioice ``Connection``'s queue to the DTLS transport's task,
    which unprotects it and awaits the RTP (or RTCP) handling: a queue entry, a future and a task step per
    packet. Once the transport is connected this does the same work at once: ``Connection.data_received``
    (what the ICE socket's protocol calls for every datagram that is not STUN) is replaced on this
    connection by :meth:`DirectReceive.data_received`, which unprotects the datagram with the transport's
    ``_rx_srtp`` and runs aiortc's own ``_handle_rtp_data`` or ``_handle_rtcp_data`` (routing, receiver
    statistics, NACK, RTX unwrap, the SFU's ingest). Anything else (DTLS; a datagram while the queue still
    holds earlier ones; before connecting or after closing) goes to the queue as before, so the
    transport's task reads in order. A handling that suspends (an RTCP send that waits) is finished by a
    task, and datagrams arriving meanwhile are handled after it, in order. A datagram SRTP refuses is
    dropped, as aiortc does; one whose handling raises is logged (once per transport) and dropped, where
    aiortc's task would end and close the transport. The transport's own receive counters (``getStats`` of
    the transport) do not count these datagrams: the returned :class:`DirectReceive` does."""
    return DirectReceive(transport, direct)


# --- hooks for the bots and the tests ---------------------------------------------------------------------

#: aiortc's own send of a DTLS transport: encrypts and sends one RTP or RTCP datagram
RtpSend = Callable[[bytes], Awaitable[None]]


def on_rtp_received(receiver: RTCRtpReceiver, callback: Callable[[RtpPacket], None]) -> None:
    """Call ``callback(packet)`` for every RTP packet routed to ``receiver``, before aiortc handles it
    (so also retransmissions, still on their RTX SSRC and payload type)."""
    original = receiver._handle_rtp_packet

    async def handle_rtp_packet(packet: RtpPacket, arrival_time_ms: int) -> None:
        callback(packet)
        await original(packet, arrival_time_ms=arrival_time_ms)

    receiver._handle_rtp_packet = handle_rtp_packet  # type: ignore[method-assign]


#: DTLS transports whose sends a test intercepts (:func:`rtp_send` then takes aiortc's path, which the
#: interception replaces)
_INTERCEPTED: weakref.WeakSet[RTCDtlsTransport] = weakref.WeakSet()


def intercept_rtp_send(transport: RTCDtlsTransport, handler: Callable[[bytes, RtpSend], Awaitable[None]]) -> None:
    """Hand every RTP/RTCP datagram ``transport`` is about to encrypt and send to ``handler(data, send)``;
    the handler sends it with ``send`` (aiortc's own), drops it, or holds it."""
    _INTERCEPTED.add(transport)
    if hasattr(transport, _NATIVE_ATTR):  # the slots' native forwarding stops: every send comes through here
        delattr(transport, _NATIVE_ATTR)
    original = transport._send_rtp

    async def send_rtp(data: bytes) -> None:
        await handler(data, original)

    transport._send_rtp = send_rtp  # type: ignore[method-assign]


def decoder_output(track: MediaStreamTrack) -> object:
    """What identifies a remote ``track`` to a :func:`route_decoders` factory (its decoder thread's queue)."""
    return cast(Any, track)._queue


def route_decoders(factory: Callable[[Any, object], Any]) -> Callable[[], None]:
    """Make aiortc's decoder threads take their decoders from ``factory(codec, output)``, where ``output``
    is :func:`decoder_output` of the track being decoded (None if it cannot be told).

    aiortc's ``decoder_worker`` looks ``get_decoder`` up at run time, once per codec. Returns a function
    that puts back the previous ``get_decoder``. For tests: the SFU's receivers never decode at all.
    """
    module: Any = aiortc.rtcrtpreceiver
    previous = module.get_decoder

    def get_decoder(codec: Any) -> Any:
        frame = inspect.currentframe()
        try:
            caller = frame.f_back if frame is not None else None  # decoder_worker(..., output_q, ...)
            output = caller.f_locals.get("output_q") if caller is not None else None
        finally:
            del frame
        return factory(codec, output)

    module.get_decoder = get_decoder

    def restore() -> None:
        module.get_decoder = previous

    return restore


# --- the self-test ----------------------------------------------------------------------------------------


def _installed_versions() -> dict[str, str | None]:
    """The installed aiortc and aioice releases (None when a distribution is not installed)."""
    found: dict[str, str | None] = {}
    for name in ("aiortc", "aioice"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def _detached_instances() -> tuple[dict[type, object], list[str]]:
    """One detached instance of each class whose constructor sets a hooked attribute, and the problems."""
    transport = cast(RTCDtlsTransport, types.SimpleNamespace(state="new"))
    recipes: dict[type, tuple[str, Callable[[], object]]] = {
        RTCRtpReceiver: ("RTCRtpReceiver(kind, transport)", lambda: RTCRtpReceiver("video", transport)),
        RemoteStreamTrack: ("RemoteStreamTrack(kind)", lambda: RemoteStreamTrack("video")),
        StreamStatistics: ("StreamStatistics(clockrate)", lambda: StreamStatistics(90000)),
    }
    built: dict[type, object] = {}
    problems: list[str] = []
    for cls, (call, make) in recipes.items():
        try:
            built[cls] = make()
        except Exception as exc:  # any failure here means the constructor changed
            problems.append(f"{call} raised {type(exc).__name__}")
    return built, problems


def _parameters(value: object) -> tuple[str, ...] | None:
    try:
        return tuple(inspect.signature(cast(Callable[..., Any], value)).parameters)
    except (TypeError, ValueError):
        return None


def _check(private: Private, instances: dict[type, object]) -> list[str]:
    label = private.label
    value: object = None
    problems: list[str] = []
    if not private.dynamic:
        holder = instances.get(private.owner) if private.on_instance else private.owner
        if holder is None:
            return [f"{label}: no detached {private.owner.__name__} to look at"]
        missing = object()
        value = inspect.getattr_static(holder, private.name, missing)  # no descriptor runs
        if value is missing:
            return [f"{label} is missing"]
        if private.params is not None:
            params = _parameters(value) if callable(value) else None
            if params != private.params:
                problems.append(f"{label} takes ({', '.join(params or ('?',))}), "
                                f"the hooks need ({', '.join(private.params)})")
        if private.kind is not None and not isinstance(value, private.kind):
            problems.append(f"{label} is a {type(value).__name__}, the hooks need a {private.kind.__name__}")
    if private.source:
        where = private.where
        code = getattr(where[0], where[1], None) if where is not None else value
        where_label = f"{where[0].__name__}.{where[1]}" if where is not None else label
        text = _source(code) if code is not None else None
        if text is None:
            problems.append(f"{label}: the source of {where_label} cannot be read to check it")
        else:
            lost = [phrase for phrase in private.source if phrase not in text]
            if lost:
                problems.append(f"{label}: {where_label} no longer does {' / '.join(repr(p) for p in lost)}")
    return problems


def _source(obj: object) -> str | None:
    try:
        return inspect.getsource(cast(Any, obj))
    except (OSError, TypeError):
        return None


def _public_problems() -> list[str]:
    """Public behaviour the forwarding path relies on (not private, but checked with the rest)."""
    problems = [f"{encoder.__name__}.pack" for encoder in (Vp8Encoder, H264Encoder, OpusEncoder)
                if not callable(getattr(encoder, "pack", None))]
    if not hasattr(RtpPacket().extensions, "audio_level"):
        problems.append("RtpPacket.extensions.audio_level")
    return problems


def _hook_problems() -> list[str]:
    """What is missing or changed among :data:`PRIVATES` (and the public behaviour relied on); [] if none."""
    instances, problems = _detached_instances()
    for private in PRIVATES:
        problems.extend(_check(private, instances))
    return problems + _public_problems()


def selftest() -> None:
    """Fail closed unless aiortc and aioice are the reviewed releases and every hook of :data:`PRIVATES`
    is in place: raise ``AiortcVersionMismatch`` or ``AiortcHookMissing``, naming what differs.

    Cheap (no network): compares versions, inspects classes and builds a few detached objects.
    """
    problems = _hook_problems()
    found = _installed_versions()
    expected = {"aiortc": AIORTC_VERSION, "aioice": AIOICE_VERSION}
    mismatched = [(f"{name} {found[name]} is installed" if found[name] else f"{name} is not installed")
                  + f", the hooks were reviewed for {name}=={version}"
                  for name, version in expected.items() if found[name] != version]
    if mismatched:
        hooks = "; ".join(problems) if problems else "every hook is still in place"
        raise AiortcVersionMismatch(
            "; ".join(mismatched) + f" (review sfu/hooks.py, then update the pins and the constants; {hooks})"
        )
    if problems:
        raise AiortcHookMissing(
            f"aiortc {found['aiortc']} lacks hooks the SFU needs (written for aiortc=={AIORTC_VERSION}): "
            + "; ".join(problems)
        )

