"""The media bots live in :mod:`tiepdan.bots.media` (shared by the tests, the benchmarks and ``tiepdan demo``)."""

from tiepdan.bots.media import (
    AUDIO_CLOCK,
    BOT_QUEUES,
    COLOURS,
    VIDEO_CLOCK,
    Clip,
    ClipTrack,
    DecodeErrors,
    PublisherBot,
    Received,
    RtpArrival,
    SubscriberBot,
    ToneTrack,
    centre_yuv,
    h264_clip,
    nearest_colour,
    opus_clip,
    random_rtp_loss,
    textured_vp8_clip,
    vp8_clip,
)

__all__ = [
    "AUDIO_CLOCK", "BOT_QUEUES", "COLOURS", "VIDEO_CLOCK", "Clip", "ClipTrack", "DecodeErrors", "PublisherBot",
    "Received", "RtpArrival", "SubscriberBot", "ToneTrack", "centre_yuv", "h264_clip", "nearest_colour", "opus_clip",
    "random_rtp_loss", "textured_vp8_clip", "vp8_clip",
]
