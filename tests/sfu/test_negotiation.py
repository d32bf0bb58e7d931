"""SDP helpers (the aiortc hook self-test is in test_hooks.py)."""

from __future__ import annotations

import pytest
from aiortc import RTCRtpSender

import sfu
from sfu import InvalidSdp, UnsupportedCodec
from sfu.negotiation import (
    add_fmtp,
    check_offered_codecs,
    codec_preferences,
    fmtp_of,
    munge_publisher_answer,
    parse_description,
    summarize,
)

pytestmark = pytest.mark.unit

OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102",
        "c=IN IP4 0.0.0.0",
        "a=mid:0",
        "a=sendonly",
        "a=rtcp-mux",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:abcdefghijklmnopqrstuv",
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
        "a=setup:actpass",
        "a=rtpmap:96 VP8/90000",
        "a=rtpmap:97 rtx/90000",
        "a=fmtp:97 apt=96",
        "a=rtpmap:102 H264/90000",
        "a=fmtp:102 packetization-mode=1;profile-level-id=42001f",
        "a=ssrc-group:FID 1111 2222",
        "a=ssrc:1111 cname:x",
        "a=ssrc:2222 cname:x",
        "a=msid:stream cam",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=mid:1",
        "a=sendonly",
        "a=rtcp-mux",
        "a=ice-ufrag:abcd",
        "a=ice-pwd:abcdefghijklmnopqrstuv",
        "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
        "a=setup:actpass",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10",
        "a=ssrc:3333 cname:x",
        "",
    ]
)


def test_offer_is_summarised_with_primary_ssrc_and_codecs() -> None:
    video, audio = summarize(parse_description(OFFER))
    assert (video.kind, video.mid, video.direction, video.primary_ssrc) == ("video", "0", "sendonly", 1111)
    assert video.codecs == ("VP8", "RTX", "H264") and audio.codecs == ("OPUS",)
    assert audio.primary_ssrc == 3333
    check_offered_codecs([video, audio], "VP8")
    check_offered_codecs([video, audio], "H264")


@pytest.mark.parametrize(
    "broken",
    [
        "",
        "nonsense",
        "v=0\r\n",
        OFFER.replace("a=rtcp-mux\r\n", ""),
        OFFER.replace("a=mid:0\r\n", ""),
        OFFER.replace("a=fingerprint", "a=x"),
    ],
)
def test_broken_descriptions_are_invalid_sdp(broken: str) -> None:
    with pytest.raises(InvalidSdp):
        parse_description(broken)


def test_complete_gathering_without_candidates_is_invalid() -> None:
    no_candidates = OFFER.replace("a=setup:actpass", "a=setup:actpass\r\na=end-of-candidates")
    with pytest.raises(InvalidSdp, match="no ICE candidate"):
        parse_description(no_candidates)
    with_one = no_candidates.replace(
        "a=end-of-candidates",
        "a=candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host\r\na=end-of-candidates",
        1,
    )
    parse_description(with_one)
    parse_description(OFFER)  # trickle still to come: fine


def test_unsupported_codecs_are_named() -> None:
    media = summarize(
        parse_description(OFFER.replace("VP8/90000", "VP9/90000").replace("H264/90000", "AV1/90000"))
    )
    with pytest.raises(UnsupportedCodec, match="VP9, AV1"):
        check_offered_codecs(media, "VP8")


def test_codec_preferences_keep_one_codec_and_rtx() -> None:
    assert [c.name for c in codec_preferences("video", "VP8")] == ["VP8", "rtx"]
    assert {c.name for c in codec_preferences("video", "H264")} == {"H264", "rtx"}
    assert [c.name for c in codec_preferences("audio", "VP8")] == ["opus"]
    assert all(c in RTCRtpSender.getCapabilities("video").codecs for c in codec_preferences("video", "VP8"))


def test_publisher_answer_gets_opus_fec_and_bitrate_hints() -> None:
    answer = munge_publisher_answer(
        OFFER, video_codec="VP8", opus_inband_fec=True, start_bitrate_kbps=1500, min_bitrate_kbps=500
    )
    assert fmtp_of(answer, "opus") == {"minptime": "10", "useinbandfec": "1"}
    assert fmtp_of(answer, "VP8") == {"x-google-start-bitrate": "1500", "x-google-min-bitrate": "500"}
    assert fmtp_of(answer, "H264")["packetization-mode"] == "1" and "x-google-start-bitrate" not in fmtp_of(
        answer, "H264"
    )
    assert answer.count("a=fmtp:96 ") == 1 and answer.endswith("\r\n")
    parse_description(answer)  # still valid
    assert add_fmtp(answer, "opus", {"useinbandfec": 1}) == answer  # idempotent


def test_a_venue_cap_becomes_chromiums_max_bitrate_and_bounds_the_start_and_min_hints() -> None:
    answer = munge_publisher_answer(OFFER, video_codec="VP8", opus_inband_fec=False, start_bitrate_kbps=1500,
                                    min_bitrate_kbps=500, max_bitrate_kbps=400)
    assert fmtp_of(answer, "VP8") == {"x-google-start-bitrate": "400", "x-google-min-bitrate": "400",
                                      "x-google-max-bitrate": "400"}
    roomy = munge_publisher_answer(OFFER, video_codec="VP8", opus_inband_fec=False, start_bitrate_kbps=1500,
                                   min_bitrate_kbps=500, max_bitrate_kbps=2500)
    assert fmtp_of(roomy, "VP8") == {"x-google-start-bitrate": "1500", "x-google-min-bitrate": "500",
                                     "x-google-max-bitrate": "2500"}
    parse_description(answer)


def test_public_names_are_sorted() -> None:
    assert sfu.__all__ == sorted(sfu.__all__)
    assert all(hasattr(sfu, name) for name in sfu.__all__)
