"""Pure SDP helpers: parse and validate offers, choose codecs, munge answers.

No I/O and no peer connections here; ``Participant`` drives them. Rules that come from interop work:

- Codec preferences must be set on transceivers created *before* ``setRemoteDescription``: aiortc
  ignores preferences set afterwards (chromium-interop §3.4). :func:`codec_preferences` builds them.
- A forwarder cannot translate, so a room forwards exactly one video codec (VP8 by default, H.264 when
  the room is configured for it) plus Opus; RTX is always kept (NACK recovery with Chromium's FID).
- The answer to a publisher carries ``useinbandfec=1`` on Opus and Chromium's start/min bitrate hints
  on video (:func:`munge_publisher_answer`); aiortc itself ignores these parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from aiortc import RTCRtpSender
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.sdp import MediaDescription, SessionDescription

from sfu.errors import InvalidSdp, UnsupportedCodec

#: Video codecs a room may forward (aiortc can re-packetize both).
VIDEO_CODECS = ("VP8", "H264")
AUDIO_CODEC = "OPUS"


@dataclass(frozen=True, slots=True)
class OfferedMedia:
    """One audio/video m-line of an offer, as the SFU needs it."""

    index: int
    kind: str
    mid: str
    direction: str
    codecs: tuple[str, ...]
    primary_ssrc: int | None
    track_id: str | None


def parse_description(text: str) -> SessionDescription:
    """Parse ``text`` and check what aiortc would otherwise fail on deep inside.

    Raises :class:`InvalidSdp` for garbage, no media, or a media section without ICE credentials,
    DTLS fingerprint, ``a=mid`` or ``a=rtcp-mux``.
    """
    if not isinstance(text, str) or not text.startswith("v=0"):
        raise InvalidSdp("not a session description (must start with v=0)")
    try:
        description = SessionDescription.parse(text)
    except Exception as exc:  # aiortc's parser raises whatever it trips on (even StopIteration)
        raise InvalidSdp(f"unparsable session description: {type(exc).__name__}") from exc
    media = [m for m in description.media if m.kind in ("audio", "video")]
    if not media:
        raise InvalidSdp("no audio or video media section")
    for m in media:
        where = f"m-line {description.media.index(m)} ({m.kind})"
        if m.ice is None or not m.ice.usernameFragment or not m.ice.password:
            raise InvalidSdp(f"{where}: ICE username fragment or password missing")
        if m.dtls is None or not m.dtls.fingerprints:
            raise InvalidSdp(f"{where}: DTLS fingerprint missing")
        if not m.rtp.muxId:
            raise InvalidSdp(f"{where}: a=mid missing")
        if not m.rtcp_mux:
            raise InvalidSdp(f"{where}: a=rtcp-mux missing")
    if all(m.ice_candidates_complete for m in media) and not any(m.ice_candidates for m in media):
        # aiortc would answer without any candidate of its own and fail at once
        raise InvalidSdp("gathering is complete (a=end-of-candidates) but there is no ICE candidate")
    return description


def primary_ssrc(media: MediaDescription) -> int | None:
    """The media SSRC (not RTX): first item of the FID group, else the first ``a=ssrc``."""
    for group in media.ssrc_group:
        if group.semantic == "FID" and group.items:
            return int(group.items[0])
    if media.ssrc:
        return int(media.ssrc[0].ssrc)
    return None


def summarize(description: SessionDescription) -> list[OfferedMedia]:
    """The audio/video m-lines of ``description`` in order."""
    result = []
    for index, m in enumerate(description.media):
        if m.kind not in ("audio", "video"):
            continue
        result.append(
            OfferedMedia(
                index=index,
                kind=m.kind,
                mid=m.rtp.muxId,
                direction=m.direction or "sendrecv",
                codecs=tuple(c.name.upper() for c in m.rtp.codecs),
                primary_ssrc=primary_ssrc(m),
                track_id=description.webrtc_track_id(m),
            )
        )
    return result


def forwarded_codec(kind: str, video_codec: str) -> str:
    """The one codec name a room forwards for ``kind``."""
    return video_codec.upper() if kind == "video" else AUDIO_CODEC


def codec_preferences(kind: str, video_codec: str) -> list[RTCRtpCodecCapability]:
    """Capabilities to pass to ``setCodecPreferences``: the room's codec for ``kind`` plus RTX for video."""
    wanted = forwarded_codec(kind, video_codec)
    caps = RTCRtpSender.getCapabilities(kind).codecs
    chosen = [c for c in caps if c.name.upper() == wanted]
    if not chosen:
        raise UnsupportedCodec(f"aiortc cannot forward {kind} codec {wanted}")
    if kind == "video":
        chosen += [c for c in caps if c.name.lower() == "rtx"]
    return chosen


def check_offered_codecs(media: list[OfferedMedia], video_codec: str) -> None:
    """Raise :class:`UnsupportedCodec` unless every m-line offers the codec the room forwards."""
    for m in media:
        wanted = forwarded_codec(m.kind, video_codec)
        if wanted not in m.codecs:
            offered = ", ".join(c for c in m.codecs if c != "RTX") or "nothing"
            raise UnsupportedCodec(
                f"m-line {m.index} ({m.kind}) offers {offered}; this room forwards {wanted}"
            )


_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([^/\s]+)/", re.IGNORECASE)


def _payload_types(lines: list[str], codec: str) -> set[str]:
    found = set()
    for line in lines:
        m = _RTPMAP.match(line)
        if m and m.group(2).upper() == codec.upper():
            found.add(m.group(1))
    return found


def add_fmtp(sdp: str, codec: str, params: Mapping[str, str | int]) -> str:
    """Add ``params`` to the ``a=fmtp`` line of every payload type of ``codec`` (kept if already set)."""
    if not params:
        return sdp
    eol = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(eol)
    pts = _payload_types(lines, codec)
    out: list[str] = []
    seen: set[str] = set()
    for line in lines:
        if line.startswith("a=fmtp:"):
            pt, _, rest = line[len("a=fmtp:") :].partition(" ")
            if pt in pts:
                seen.add(pt)
                present = {kv.split("=", 1)[0].strip() for kv in rest.split(";") if kv.strip()}
                extra = [f"{k}={v}" for k, v in params.items() if k not in present]
                if extra:
                    line = f"a=fmtp:{pt} " + ";".join(([rest] if rest else []) + extra)
        out.append(line)
    # payload types without an fmtp line get one right after their rtpmap
    result: list[str] = []
    for line in out:
        result.append(line)
        m = _RTPMAP.match(line)
        if m and m.group(1) in pts and m.group(1) not in seen:
            result.append(f"a=fmtp:{m.group(1)} " + ";".join(f"{k}={v}" for k, v in params.items()))
    return eol.join(result)


def fmtp_of(sdp: str, codec: str) -> dict[str, str]:
    """Merged fmtp parameters of ``codec`` in ``sdp`` (for tests and diagnostics)."""
    pts = _payload_types(sdp.splitlines(), codec)
    params: dict[str, str] = {}
    for line in sdp.splitlines():
        if line.startswith("a=fmtp:"):
            pt, _, rest = line[len("a=fmtp:") :].partition(" ")
            if pt in pts:
                for kv in rest.split(";"):
                    if "=" in kv:
                        k, v = kv.split("=", 1)
                        params[k.strip()] = v.strip()
    return params


def munge_publisher_answer(
    sdp: str,
    *,
    video_codec: str,
    opus_inband_fec: bool,
    start_bitrate_kbps: int | None,
    min_bitrate_kbps: int | None,
    max_bitrate_kbps: int | None = None,
) -> str:
    """The answer sent to a publisher: Opus FEC and Chromium bitrate hints added (chromium-interop §3.2).

    ``max_bitrate_kbps`` caps each video layer of this publisher (``x-google-max-bitrate``, which Chromium
    applies as its encoder's ceiling, whatever the page asks); the start and minimum hints never exceed it.
    """
    if opus_inband_fec:
        sdp = add_fmtp(sdp, "opus", {"useinbandfec": 1})
    hints: dict[str, str | int] = {}
    if max_bitrate_kbps:
        start_bitrate_kbps = min(start_bitrate_kbps, max_bitrate_kbps) if start_bitrate_kbps else None
        min_bitrate_kbps = min(min_bitrate_kbps, max_bitrate_kbps) if min_bitrate_kbps else None
    if start_bitrate_kbps:
        hints["x-google-start-bitrate"] = start_bitrate_kbps
    if min_bitrate_kbps:
        hints["x-google-min-bitrate"] = min_bitrate_kbps
    if max_bitrate_kbps:
        hints["x-google-max-bitrate"] = max_bitrate_kbps
    return add_fmtp(sdp, video_codec, hints)


def munge_subscriber_offer(sdp: str, *, opus_inband_fec: bool) -> str:
    """The offer sent to a subscriber: tells its Opus decoder that FEC may be present."""
    if opus_inband_fec:
        sdp = add_fmtp(sdp, "opus", {"useinbandfec": 1})
    return sdp
