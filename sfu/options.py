"""Frozen configuration of the SFU, passed down from the composition root (never read from the env)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IceServer:
    """A STUN or TURN server for every peer connection (``urls`` like ``turn:host:443?transport=tcp``)."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class Options:
    """Media-plane settings.

    Times are in seconds, bitrates in kbit/s. The defaults suit 9-16 venues on a 2-core box.
    """

    #: STUN/TURN servers. Empty means host candidates only (aiortc's Google STUN default is never used).
    ice_servers: tuple[IceServer, ...] = ()
    #: Host addresses the ICE agents offer (process-wide); empty: every address aioice finds (never
    #: loopback). ``("127.0.0.1",)`` for a loopback-only demo or test; the public address on a
    #: multi-homed server.
    host_addresses: tuple[str, ...] = ()
    #: Video codec of a room unless ``Worker.create_room`` says otherwise: ``"VP8"`` or ``"H264"``.
    #: A forwarder cannot translate, so every publisher and subscriber of a room uses this codec.
    video_codec: str = "VP8"
    #: A peer connection not connected after this long is closed and reported as ``IceTimeout``.
    connect_timeout: float = 15.0
    #: At most one keyframe request (PLI) per publication per this interval; later ones are deferred.
    keyframe_min_interval: float = 0.5
    #: A sink still waiting for a keyframe after this long triggers another request.
    keyframe_retry_after: float = 2.0
    #: How long a video frame with a missing packet waits for its NACK retransmission before it is
    #: declared lost (the stream then waits for a keyframe, which is requested).
    video_loss_wait: float = 0.25
    #: Bounded queue length, in frames, of each subscriber slot and recorder tap.
    video_queue_frames: int = 60
    audio_queue_frames: int = 50
    #: Fixed slots offered to each subscriber (``Participant.subscriber_offer``).
    video_slots: int = 8
    audio_slots: int = 8
    #: Munged into the answer to publishers (Chromium ramps up slowly without transport-cc).
    start_bitrate_kbps: int | None = 1500
    min_bitrate_kbps: int | None = 500
    #: Negotiate Opus in-band FEC (``useinbandfec=1``) so that lossy venue links stay intelligible.
    opus_inband_fec: bool = True
    #: Audio level (RFC 6464, -dBov, 0 loudest .. 127 silence) below which a venue counts as speaking.
    speaking_threshold: int = 50
    #: Interval of ``AudioLevel`` events per audio publication; ``None`` disables them.
    audio_level_interval: float | None = 0.5
    #: Interval of ``StatsReport`` events per room; ``None`` disables them (stats stay pullable).
    stats_interval: float | None = None
    #: Run ``sfu.selftest()`` in ``Worker.start`` (fail fast if an aiortc hook is missing).
    selftest: bool = True
    #: Forward subscriber slots at the RTP level (``sfu.rtp_forward``: per-slot header rewrite, NACK history,
    #: own sender reports; the default) instead of re-packetizing assembled frames through aiortc's sender
    #: (False). Recorder taps get frames either way.
    rtp_forwarding: bool = True
    #: Receive buffer asked for on every media socket (``SO_RCVBUF``, bytes; None: what aioice sets, 256 KiB,
    #: about 220 full-size packets of a keyframe burst). More absorbs bigger bursts, but on an overloaded
    #: node it turns loss into seconds of delay (``bench/README.md``: 2 MiB held 4-7 s of media at nine
    #: venues on a saturated machine). The kernel grants at most ``net.core.rmem_max`` (warned at start).
    receive_buffer_bytes: int | None = None
    #: Handle received SRTP/SRTCP in the socket's callback (``hooks.direct_receive``; the default) instead of
    #: through aioice's queue and the DTLS transport's task: same handling, less work per packet. Empty
    #: datagrams (which would close an aiortc transport) are dropped either way.
    direct_receive: bool = True
    #: Rewrite, protect and send each forwarded RTP packet in C (``sfu.native``, the extension built from
    #: ``sfu/_native.c``; the default): the slot's header rewrite (``sfu.rtp_forward.SlotRewriter`` in C),
    #: then SRTP protect + ``sendto`` in one call. Same state machine, same session, same socket, same bytes on
    #: the wire. Without the extension (or False) the Python path is used.
    native_forwarding: bool = True
    #: REMB (the uplink estimate told to a publisher) is sent at most once per this many ms while the
    #: estimate holds or rises; a drop of 3 % or more goes out at once (``hooks.throttle_remb``, as
    #: libwebrtc's receiver does). 0: every estimate aiortc asks for, which is one per packet while it sees
    #: the link over-used.
    remb_interval_ms: int = 200
