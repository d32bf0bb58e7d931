"""Every private aiortc hook the SFU relies on, in one place, and the start-up self-test.

aiortc is pinned (``aiortc==1.16.0``); its internals change between minor releases (1.15 -> 1.16
changed ``decoder_worker`` and the video jitter buffer). :func:`selftest` checks each hook below and
raises :class:`~sfu.errors.AiortcHookMissing` naming every one that is missing; ``Worker.start`` calls
it so that an upgrade fails at start-up, not in the middle of a reception session.

Hooks (all per instance; nothing global is patched):

1. ``RTCRtpReceiver._RTCRtpReceiver__jitter_buffer`` is replaced by an :class:`_IngestTap` whose
   ``add(packet)`` hands each depayloaded RTP packet (after SRTP, NACK and RTX unwrap) to the SFU and
   returns ``(False, None)``: aiortc's jitter buffer, decoder queue and decoder are never used.
   Reading ``packet.extensions.audio_level`` there gives the RFC 6464 level without decoding.
2. ``RTCRtpReceiver._send_rtcp_pli(media_ssrc)`` sends a keyframe request to the publisher.
3. ``RTCRtpReceiver._send_rtcp`` is wrapped to drop REMB on all but one video receiver per publisher
   connection (Chromium applies each REMB to the whole transport; chromium-interop §3.3).
4. ``RTCRtpSender._send_keyframe`` is overridden so that a subscriber's PLI/FIR reaches the SFU (on
   the ``pack()`` path aiortc would ignore it).
5. ``RTCRtpReceiver._RTCRtpReceiver__remote_streams`` (SSRC → ``StreamStatistics``) is read for the
   loss and jitter of the media SSRC: aiortc's ``getStats()`` gives every SSRC of a receiver the same
   id, so the RTX stream's entry overwrites the media stream's.
6. Public behaviour relied on: ``RTCRtpSender`` calls ``encoder.pack(packet)`` for non-``Frame`` data.

One process-wide hook, only when ``Options.host_addresses`` is set: ``aioice.ice.get_host_addresses``
is replaced so that the SFU's ICE agents offer exactly the configured addresses (the public interface
of a multi-homed server, or ``127.0.0.1`` for a loopback-only demo or test, which aioice never offers
by itself; chromium-interop §1).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

import aioice.ice
import aiortc
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.opus import OpusEncoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket

from sfu.errors import AiortcHookMissing

#: The aiortc release the hooks were written and measured against.
AIORTC_VERSION = "1.16.0"

_JITTER_ATTR = "_RTCRtpReceiver__jitter_buffer"
_STREAMS_ATTR = "_RTCRtpReceiver__remote_streams"


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


def suppress_remb(receiver: RTCRtpReceiver) -> None:
    """Drop the REMB packets ``receiver`` would send (keep one REMB source per publisher connection)."""
    original = receiver._send_rtcp

    async def send_rtcp_without_remb(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            return
        await original(packet)

    receiver._send_rtcp = send_rtcp_without_remb  # type: ignore[method-assign]


def announce_host_addresses(addresses: tuple[str, ...]) -> None:
    """Make every ICE agent of this process offer exactly ``addresses`` as host candidates."""
    if not callable(getattr(aioice.ice, "get_host_addresses", None)):
        raise AiortcHookMissing("aioice.ice.get_host_addresses")
    chosen = list(addresses)
    v4 = [a for a in chosen if ":" not in a]
    v6 = [a for a in chosen if ":" in a]

    def configured(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return (v4 if use_ipv4 else []) + (v6 if use_ipv6 else [])

    aioice.ice.get_host_addresses = configured


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` when the remote subscriber sends PLI or FIR for ``sender``'s stream."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


def _source(obj: object) -> str | None:
    try:
        return inspect.getsource(cast(Any, obj))
    except (OSError, TypeError):
        return None  # no source shipped: the attribute checks still run


def selftest() -> None:
    """Check every private aiortc hook listed in the module docstring; raise ``AiortcHookMissing``.

    Cheap (no network): inspects classes and builds one detached ``RTCRtpReceiver``.
    """
    problems: list[str] = []

    def need(condition: bool, what: str) -> None:
        if not condition:
            problems.append(what)

    version = getattr(aiortc, "__version__", "?")
    try:
        dummy_transport = cast(RTCDtlsTransport, types.SimpleNamespace(state="new"))
        receiver = RTCRtpReceiver("video", dummy_transport)
        jitter = getattr(receiver, _JITTER_ATTR, None)
        need(callable(getattr(jitter, "add", None)), f"RTCRtpReceiver.{_JITTER_ATTR}.add")
        need(isinstance(getattr(receiver, _STREAMS_ATTR, None), dict), f"RTCRtpReceiver.{_STREAMS_ATTR}")
    except Exception as exc:  # any failure here means the constructor changed
        problems.append(f"RTCRtpReceiver(kind, transport) constructor ({type(exc).__name__})")

    handle = _source(RTCRtpReceiver._handle_rtp_packet)
    if handle is not None:
        need("__jitter_buffer.add(packet)" in handle, "RTCRtpReceiver._handle_rtp_packet feeds the buffer")
        need("packet._data" in handle, "RTCRtpReceiver._handle_rtp_packet sets packet._data (depayload)")
        need("encoded_frame is not None" in handle, "RTCRtpReceiver decodes only frames the buffer returns")

    pli = getattr(RTCRtpReceiver, "_send_rtcp_pli", None)
    need(
        callable(pli) and list(inspect.signature(pli).parameters) == ["self", "media_ssrc"],
        "RTCRtpReceiver._send_rtcp_pli(self, media_ssrc)",
    )
    need(callable(getattr(RTCRtpReceiver, "_send_rtcp", None)), "RTCRtpReceiver._send_rtcp")

    need(callable(getattr(RTCRtpSender, "_send_keyframe", None)), "RTCRtpSender._send_keyframe")
    rtcp = _source(getattr(RTCRtpSender, "_handle_rtcp_packet", None))
    if rtcp is not None:
        need("self._send_keyframe()" in rtcp, "RTCRtpSender._handle_rtcp_packet calls _send_keyframe")
    nxt = _source(getattr(RTCRtpSender, "_next_encoded_frame", None))
    need(nxt is None or ".pack(data)" in nxt, "RTCRtpSender._next_encoded_frame packs pre-encoded data")
    for encoder in (Vp8Encoder, H264Encoder, OpusEncoder):
        need(callable(getattr(encoder, "pack", None)), f"{encoder.__name__}.pack")
    need(hasattr(RtpPacket().extensions, "audio_level"), "RtpPacket.extensions.audio_level")
    from aiortc.rtcrtpreceiver import StreamStatistics

    need("packets_received" in vars(StreamStatistics(90000))
         and all(isinstance(getattr(StreamStatistics, a, None), property) for a in ("packets_lost", "jitter")),
         "StreamStatistics.packets_received/packets_lost/jitter")
    need(callable(getattr(aioice.ice, "get_host_addresses", None)), "aioice.ice.get_host_addresses")

    if problems:
        raise AiortcHookMissing(
            f"aiortc {version} lacks hooks the SFU needs (written for aiortc=={AIORTC_VERSION}): "
            + "; ".join(problems)
        )
