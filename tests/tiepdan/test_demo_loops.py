"""The demo's pre-rendered loops: rendered once, read back as they are, re-rendered when the picture changes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import av
import pytest

from tiepdan.bots.loops import FPS, KEYFRAME_EVERY, PALETTE, LoopSpec, render_tone, render_venue_loop
from tiepdan.bots.venue_bot import nearest_venue

pytestmark = pytest.mark.media

SPEC = LoopSpec("xa-tien-du", "Xã Tiên Du", PALETTE[1], seconds=1.0, high=(320, 180), low=(160, 90))


def test_a_longer_loop_has_a_keyframe_every_two_seconds(tmp_path: Path) -> None:
    # a bot replays encoded frames and cannot answer a keyframe request: the recorder's cut and a layer
    # switch wait for the loop's next keyframe
    longer = render_venue_loop(tmp_path, dataclasses.replace(SPEC, seconds=4.0))
    for layer in (longer.high, longer.low):
        assert [i for i, key in enumerate(layer.keyframes) if key] == [0, round(KEYFRAME_EVERY * FPS)]


def test_a_loop_is_rendered_once_with_both_layers_and_read_back_from_the_cache(tmp_path: Path) -> None:
    first = render_venue_loop(tmp_path, SPEC)
    assert first.rendered
    assert (first.high.width, first.high.height, first.low.width, first.low.height) == (320, 180, 160, 90)
    assert len(first.high.frames) == len(first.low.frames) == 15
    assert first.high.keyframes[0] and not any(first.high.keyframes[1:])  # one keyframe: the loop's start
    files = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert len(files) == 2

    again = render_venue_loop(tmp_path, SPEC)
    assert not again.rendered
    assert again.high.frames == first.high.frames and again.low.frames == first.low.frames
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == files

    renamed = render_venue_loop(tmp_path, LoopSpec(SPEC.venue, "Xã Tiên Du mới", SPEC.rgb, seconds=1.0,
                                                   high=SPEC.high, low=SPEC.low))
    assert renamed.rendered and len(list(tmp_path.iterdir())) == 4


def test_the_decoded_centre_of_a_loop_names_its_venue(tmp_path: Path) -> None:
    loop = render_venue_loop(tmp_path, SPEC)
    other = render_venue_loop(tmp_path, LoopSpec("xa-que-vo", "Xã Quế Võ", PALETTE[2], seconds=1.0,
                                                 high=SPEC.high, low=SPEC.low))
    palette = {"xa-tien-du": loop.centre_yuv, "xa-que-vo": other.centre_yuv}
    high = next(p for p in tmp_path.iterdir() if p.name.startswith("xa-tien-du") and p.name.endswith(".high.ivf"))
    with av.open(str(high)) as container:
        frames = list(container.decode(video=0))
    from tiepdan.bots.media import centre_yuv

    assert len(frames) == 15
    assert {nearest_venue(palette, centre_yuv(f)) for f in frames} == {"xa-tien-du"}
    assert nearest_venue(palette, (16, 128, 128)) is None  # black is nobody's


def test_the_tone_is_twenty_millisecond_opus_packets_cached_once(tmp_path: Path) -> None:
    tone = render_tone(tmp_path, seconds=1.0)
    assert tone.codec == "opus" and tone.rate == 50.0 and 49 <= len(tone.frames) <= 51
    assert render_tone(tmp_path, seconds=1.0).frames == tone.frames
    assert len(list(tmp_path.iterdir())) == 1
