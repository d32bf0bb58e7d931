"""Replay composition: synthetic venue files of distinct solid colours, composed and decoded back."""

from __future__ import annotations

import array
import hashlib
import json
import math
import subprocess
import threading
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image

from evidence import EncryptingWriter, Keyring
from recorder import ComposeFailed, Gap, SegmentReport, SpeakerSpan, TrackFile
from recorder.compose import ComposeOptions, compose_segment
from recorder.layout import Rect, floor_schedule, grid_layout
from recorder.overlay import Clock, render_card, render_label

RED, GREEN, BLUE = (220, 30, 30), (30, 200, 40), (30, 40, 220)
CARD = (58, 63, 68)
EPOCH = 1_796_515_200.0  # 2026-12-06 00:00:00 UTC = 07:00:00 in Hà Nội
OPTIONS = ComposeOptions(width=640, height=360, fps=15, preset="ultrafast")


def write_venue(path: Path, colour: tuple[int, int, int], *, seconds: float, gap: tuple[float, float] | None = None,
                tone_hz: float = 440.0, writer: EncryptingWriter | None = None) -> None:
    """A WebM of one venue: VP8 320×180 at 15 fps of one colour and an Opus tone (nothing during ``gap``)."""
    fps, rate = 15, 48000
    target = writer if writer is not None else str(path)
    container = av.open(target, "w", format="webm")
    video = container.add_stream("libvpx", rate=fps, options={"deadline": "realtime", "cpu-used": "8"})
    video.width, video.height, video.pix_fmt = 320, 180, "yuv420p"
    audio = container.add_stream("libopus", rate=rate, layout="mono")
    picture = av.VideoFrame.from_image(Image.new("RGB", (320, 180), colour)).reformat(format="yuv420p")

    def silent(t: float) -> bool:
        return gap is not None and gap[0] <= t < gap[1]

    frames, step = round(seconds * fps), 960
    for i in range(frames):
        if silent(i / fps):
            continue
        picture.pts, picture.time_base = i, Fraction(1, fps)
        for packet in video.encode(picture):
            container.mux(packet)
    for k in range(round(seconds * rate / step)):
        if silent(k * step / rate):
            continue
        sound = av.AudioFrame(format="s16", layout="mono", samples=step)
        samples = array.array("h", (int(8000 * math.sin(2 * math.pi * tone_hz * (k * step + n) / rate))
                                    for n in range(step)))
        sound.planes[0].update(samples.tobytes())
        sound.pts, sound.sample_rate, sound.time_base = k * step, rate, Fraction(1, rate)
        for packet in audio.encode(sound):
            container.mux(packet)
    for stream in (video, audio):
        for packet in stream.encode(None):
            container.mux(packet)
    container.close()
    if writer is not None:
        writer.close()


def track(session_dir: Path, rel: str, venue: str, seconds: float, *, encrypted: bool = False,
          kid: str | None = None) -> TrackFile:
    data = (session_dir / rel).read_bytes()
    return TrackFile(path=rel, venue=venue, kinds=("video", "audio"), codecs=("vp8", "opus"),
                     sha256=hashlib.sha256(data).hexdigest(), size=len(data), t0=0.0, duration=seconds,
                     encrypted=encrypted, kid=kid)


def report(files: tuple[TrackFile, ...], seconds: float, *, speakers: tuple[SpeakerSpan, ...] = (),
           gaps: tuple[Gap, ...] = ()) -> SegmentReport:
    return SegmentReport(session="phien-1", segment="c1-vv1", case="vv1", confidential=False, session_epoch=EPOCH,
                         opened_at=EPOCH, closed_at=EPOCH + seconds, media_t0=0.0, media_t1=seconds, files=files,
                         speakers=speakers, gaps=gaps,
                         venue_names={"a": "Trụ sở Tiếp công dân tỉnh", "b": "Xã Tiên Du", "c": "Phường Võ Cường"})


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return Keyring.generate(dev=True)


@pytest.fixture(scope="module")
def three_venues(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SegmentReport]:
    """Venues a (red), b (green), c (blue, no media from 2.0 to 4.0 s), 6 s; a speaks, then b from 3 s."""
    session_dir = tmp_path_factory.mktemp("phien-1")
    (session_dir / "media" / "c1-vv1").mkdir(parents=True)
    seconds = 6.0
    files = []
    for venue, colour, gap in (("a", RED, None), ("b", GREEN, None), ("c", BLUE, (2.0, 4.0))):
        rel = f"media/c1-vv1/{venue}-0.webm"
        write_venue(session_dir / rel, colour, seconds=seconds, gap=gap, tone_hz=300 + 200 * len(files))
        files.append(track(session_dir, rel, venue, seconds))
    speakers = (SpeakerSpan("a", 0.0, 3.0), SpeakerSpan("b", 3.0, 6.0))
    gaps = (Gap("c", 2.0, 4.0, "link_lost"),)
    return session_dir, report(tuple(files), seconds, speakers=speakers, gaps=gaps)


@pytest.fixture(scope="module")
def composed(three_venues: tuple[Path, SegmentReport], keyring: Keyring,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[float]]:
    session_dir, rep = three_venues
    out = tmp_path_factory.mktemp("out") / "c1-vv1.mp4"
    seen: list[float] = []
    result = compose_segment(session_dir, "c1-vv1", out, keyring=keyring, report=rep, progress=seen.append,
                             options=OPTIONS)
    assert result.path == out and result.size == out.stat().st_size and result.frames == 90
    return out, seen


def decoded(path: Path) -> list[tuple[float, Image.Image]]:
    with av.open(str(path)) as container:
        return [(float(frame.time), frame.to_image()) for frame in container.decode(video=0)]


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(int(p) - c) <= tolerance for p, c in zip(pixel[:3], colour, strict=True))


def centre(rect: Rect) -> tuple[int, int]:
    return rect.x + rect.w // 2, rect.y + rect.h // 3  # above the name label


@pytest.mark.media
def test_large_tile_turns_to_the_new_speaker_within_a_second(composed: tuple[Path, list[float]]) -> None:
    out, _ = composed
    layout = grid_layout(3, 640, 360)
    frames = decoded(out)
    large = centre(layout.large)
    before = [img for t, img in frames if 1.0 <= t < 3.0]
    assert before and all(near(img.getpixel(large), RED) for img in before)
    turned = [t for t, img in frames if t >= 3.0 and near(img.getpixel(large), GREEN)]
    assert turned and turned[0] - 3.0 <= 1.0
    assert all(near(img.getpixel(large), GREEN) for t, img in frames if t >= turned[0])
    # the former speaker moved to a small tile: a is red in the first small tile after the change
    first_small = centre(layout.small[0])
    assert near(frames[-1][1].getpixel(first_small), RED)


@pytest.mark.media
def test_composite_is_h264_and_aac_and_lasts_as_long_as_the_segment(composed: tuple[Path, list[float]]) -> None:
    out, seen = composed
    probe = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(out)],
        check=True, capture_output=True, text=True).stdout)
    codecs = sorted(s["codec_name"] for s in probe["streams"])
    assert codecs == ["aac", "h264"]
    assert abs(float(probe["format"]["duration"]) - 6.0) <= 1.0
    for stream in probe["streams"]:
        assert abs(float(stream["duration"]) - 6.0) <= 1.0
    assert out.read_bytes()[4:8] == b"ftyp" and out.read_bytes().find(b"moov") < out.read_bytes().find(b"mdat")
    assert seen == sorted(seen) and seen[-1] == 1.0 and 0.0 <= seen[0] < 1.0


@pytest.mark.media
def test_composite_audio_mixes_the_venues(composed: tuple[Path, list[float]]) -> None:
    out, _ = composed
    with av.open(str(out)) as container:
        samples = 0
        peak = 0.0
        for frame in container.decode(audio=0):
            data = array.array("f", bytes(frame.planes[0])[:frame.samples * 4])
            samples += frame.samples
            peak = max(peak, max((abs(x) for x in data), default=0.0))
    assert abs(samples / 48000 - 6.0) <= 0.2
    assert peak > 0.3  # three tones of 8000/32768 each, summed


@pytest.mark.media
def test_venue_in_a_gap_shows_its_card(composed: tuple[Path, list[float]]) -> None:
    out, _ = composed
    layout = grid_layout(3, 640, 360)
    frames = decoded(out)
    # after the change at 3 s: b large, a in small[0], c in small[1]
    c_tile = centre(layout.small[1])
    at = {round(t * 15): img for t, img in frames}
    assert near(at[round(3.5 * 15)].getpixel(c_tile), CARD, 12)
    assert near(at[round(5.0 * 15)].getpixel(c_tile), BLUE)
    # before the change c is in small[1] too (a large, b small[0]): blue before its gap
    assert near(at[round(1.0 * 15)].getpixel(c_tile), BLUE)


@pytest.mark.media
def test_missing_input_fails_clearly_and_writes_nothing(three_venues: tuple[Path, SegmentReport],
                                                       keyring: Keyring, tmp_path: Path) -> None:
    session_dir, rep = three_venues
    gone = TrackFile.from_json({**rep.files[0].to_json(), "path": "media/c1-vv1/a-9.webm"})
    bad = SegmentReport.from_json({**rep.to_json(), "files": [gone.to_json(), *[f.to_json() for f in rep.files[1:]]]})
    out = tmp_path / "x.mp4"
    with pytest.raises(ComposeFailed, match=r"a-9\.webm of venue a is missing"):
        compose_segment(session_dir, "c1-vv1", out, keyring=keyring, report=bad, options=OPTIONS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.media
def test_altered_input_fails_clearly_and_keeps_the_previous_output(three_venues: tuple[Path, SegmentReport],
                                                                  keyring: Keyring, tmp_path: Path) -> None:
    session_dir, rep = three_venues
    copy_dir = tmp_path / "phien"
    (copy_dir / "media" / "c1-vv1").mkdir(parents=True)
    for f in rep.files:
        (copy_dir / f.path).write_bytes((session_dir / f.path).read_bytes())
    target = copy_dir / rep.files[1].path
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    out = tmp_path / "old.mp4"
    out.write_bytes(b"previous replay")
    with pytest.raises(ComposeFailed, match=r"b-0\.webm was altered"):
        compose_segment(copy_dir, "c1-vv1", out, keyring=keyring, report=rep, options=OPTIONS)
    assert out.read_bytes() == b"previous replay"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.mp4", "phien"]



class Cancelled(Exception):
    pass


@pytest.mark.media
def test_progress_may_cancel_and_leaves_no_decoder_or_file(three_venues: tuple[Path, SegmentReport],
                                                          keyring: Keyring, tmp_path: Path) -> None:
    import multiprocessing

    session_dir, rep = three_venues

    def cancel(fraction: float) -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        compose_segment(session_dir, "c1-vv1", tmp_path / "o.mp4", keyring=keyring, report=rep, progress=cancel,
                        options=OPTIONS)
    assert list(tmp_path.iterdir()) == [] and multiprocessing.active_children() == []
    assert not [t for t in threading.enumerate() if t.name == "compose-encoder"]  # the encoder thread ended


@pytest.mark.media
def test_undecodable_input_fails_with_the_venue_named(keyring: Keyring, tmp_path: Path) -> None:
    (tmp_path / "media" / "s").mkdir(parents=True)
    rel = "media/s/a-0.webm"
    (tmp_path / rel).write_bytes(b"\x1a\x45\xdf\xa3 not really a matroska file" * 10)
    rep = report((track(tmp_path, rel, "a", 2.0),), 2.0)
    with pytest.raises(ComposeFailed, match="venue a"):
        compose_segment(tmp_path, "c1-vv1", tmp_path / "o.mp4", keyring=keyring, report=rep, options=OPTIONS)
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.media
def test_confidential_input_is_decrypted_on_the_fly(keyring: Keyring, tmp_path: Path) -> None:
    rel = "media/c1-vv1/a-0.webm.enc"
    (tmp_path / "media" / "c1-vv1").mkdir(parents=True)
    raw = (tmp_path / rel).open("wb")
    writer = EncryptingWriter(raw, keyring, aad=rel.encode())
    write_venue(tmp_path / rel, RED, seconds=2.0, writer=writer)
    assert b"\x1a\x45\xdf\xa3" not in (tmp_path / rel).read_bytes()
    rep = report((track(tmp_path, rel, "a", 2.0, encrypted=True, kid=writer.kid),), 2.0)
    out = tmp_path / "o.mp4"
    compose_segment(tmp_path, "c1-vv1", out, keyring=keyring, report=rep, options=OPTIONS)
    frames = decoded(out)
    assert len(frames) == 30 and near(frames[-1][1].getpixel(centre(grid_layout(1, 640, 360).large)), RED)
    other = Keyring.generate(dev=True)
    with pytest.raises(ComposeFailed, match="cannot be opened"):
        compose_segment(tmp_path, "c1-vv1", tmp_path / "p.mp4", keyring=other, report=rep, options=OPTIONS)


@pytest.mark.unit
def test_vietnamese_names_render_with_their_diacritics() -> None:
    one, two = render_label("Xã Tiên Du", 32, 600), render_label("Xa Tien Du", 32, 600)
    assert not one.is_blank() and one.planes.y.tobytes() != two.planes.y.tobytes()
    tofu = render_label("\ue000", 32, 600)  # a code point the font lacks: its "missing glyph" box
    for letter in "ễọửĐặ":
        assert render_label(letter, 32, 600).planes.y.tobytes() != tofu.planes.y.tobytes()
    card = render_card("Phường Võ Cường", 256, 144)
    assert card.size == (256, 144) and card.planes.y.getextrema()[1] > 150  # light text on grey


@pytest.mark.unit
def test_clock_shows_local_time_and_is_rebuilt_only_each_second() -> None:
    clock = Clock(32, EPOCH)
    assert clock.text(3661.5) == "06/12/2026 08:01:01"
    first = clock.at(1.1)
    assert clock.at(1.9) is first and clock.at(2.0) is not first


@pytest.mark.unit
def test_floor_schedule_holds_and_ignores_short_turns() -> None:
    spans = [SpeakerSpan("a", 0, 10), SpeakerSpan("b", 10, 10.4), SpeakerSpan("a", 10.4, 20),
             SpeakerSpan("c", 20, 21.5), SpeakerSpan("b", 21.5, 30), SpeakerSpan(None, 30, 35)]
    plan = floor_schedule(["a", "b", "c"], spans, 0.0, 35.0, min_hold=2.0, min_span=1.0)
    assert plan.times == (0.0, 20.0, 22.0) and plan.venues == ("a", "c", "b")
    assert plan.at(34.0) == "b"  # nobody speaking: the last speaker stays large
    assert floor_schedule(["x", "y"], [], 0.0, 5.0).venues == ("x",)


@pytest.mark.unit
def test_grid_has_room_for_nine_venues_in_even_tiles() -> None:
    layout = grid_layout(9)
    assert layout.large == Rect(0, 0, 1024, 576) and len(layout.small) == 9 and layout.capacity >= 9
    rects = layout.rects([str(i) for i in range(9)], "4")
    assert rects["4"] == layout.large and len(set(rects.values())) == 9
    sixteen = grid_layout(16)
    assert sixteen.capacity >= 16
    for rect in sixteen.small:
        assert rect.x % 2 == rect.y % 2 == rect.w % 2 == rect.h % 2 == 0
        assert rect.x + rect.w <= 1280 and rect.y + rect.h <= 720
    with pytest.raises(ValueError):
        grid_layout(4, 641, 360)


@pytest.mark.system
def test_cli_composes_a_segment_from_its_signed_manifest(three_venues: tuple[Path, SegmentReport], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from recorder.manifest import write_segment_manifest
    from tiepdan.cli import main

    source_dir, rep = three_venues
    session_dir = tmp_path / "recordings" / rep.session
    (session_dir / "media" / "c1-vv1").mkdir(parents=True)
    for f in rep.files:
        (session_dir / f.path).write_bytes((source_dir / f.path).read_bytes())
    monkeypatch.setenv("TIEPDAN_DATA_DIR", str(tmp_path / "data"))
    keys = tmp_path / "data" / "keys" / "keyring.json"
    keys.parent.mkdir(parents=True)
    ring = Keyring.generate(dev=True, path=keys)
    ring.save()
    write_segment_manifest(session_dir, rep, ring)
    out = tmp_path / "xem-lai.mp4"
    assert main(["compose", str(session_dir), "c1-vv1", "-o", str(out), "--nice", "0"]) == 0
    captured = capsys.readouterr()
    assert "100.0 %" in captured.err and f"đã ghi {out}" in captured.out
    assert len(decoded(out)) == 90
    assert main(["compose", str(session_dir), "c9-khong-co", "-o", str(tmp_path / "y.mp4"), "--nice", "0"]) == 1
    assert "không dựng được bản xem lại" in capsys.readouterr().err and not (tmp_path / "y.mp4").exists()
