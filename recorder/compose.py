"""Replay: one MP4 (H.264 + AAC, fast start) per segment, composed from its venues' recorded files.

Runs in the worker role (or ``tiepdan compose``), never in a media process: it is CPU-heavy and the
caller nices it. Theory of operation:

1. The segment's report (from its signed manifest unless given) names every file; each is checked against
   the report (present, size, SHA-256) before anything is decoded, so an altered input fails at once.
2. ``recorder.layout`` decides the tiles (speaking venue large, the others small) and, from the speaker
   timeline, who is large at each output tick.
3. One process per venue (``recorder._venue_reader``) decodes that venue's files (decrypting confidential
   ones with ``evidence.stream``), and streams per chunk of ticks its pictures already scaled to its tile
   (only the frames shown: every VP8 frame is decoded, one in two is scaled at 15 fps) and its sound as
   PCM on the session clock.
4. This process pastes the pictures (a neutral card where a venue has no media), blits the pre-rendered
   names and clock (``recorder.overlay``; the whole composite costs ~1 ms a frame, so it stays in Pillow
   on YUV 4:2:0 planes: no colour conversion between decoder and encoder), mixes the venues' sound
   (libavfilter ``amix``); an encoder thread (``_Encoder``) encodes H.264 and AAC and muxes meanwhile;
   the output is a temporary file renamed over ``out`` only when complete.

Where the time goes (9 venues of VP8 720p30, 15 fps out; ~0.75 CPU-s per case-second in all on the shared
2-core machine): VP8 decoding ~0.3 (it cannot be skipped: every frame is a reference), x264 ~0.15,
scaling ~0.06, the rest (audio, pipes, Pillow, starting the processes) ~0.1–0.2; see ``bench/README.md``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import multiprocessing
import os
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import av
from av.filter import Graph

from evidence import DataKey, Keyring

from ._venue_reader import Picture, SourceFile, VenueJob, run_venue_reader
from .errors import ComposeFailed
from .layout import FloorPlan, Layout, Rect, floor_schedule, grid_layout
from .model import SegmentReport
from .overlay import Clock, Overlay, Planes, render_card, render_label

__all__ = ["ComposeOptions", "ComposeResult", "compose_segment"]

log = logging.getLogger(__name__)

_SAMPLE_RATE = 48000


@dataclass(frozen=True)
class ComposeOptions:
    """``fps``: output frame rate; ``preset``/``crf``: libx264's speed and quality; ``interpolation``:
    libswscale's filter for scaling each venue into its tile; ``min_hold``/``min_span``: see
    ``recorder.layout``; ``stale_s``: a venue whose last picture is older than this shows its card.

    The defaults are the ones measured best for 9 venues of VP8 720p30 on 2 cores (``bench/recorder.py``,
    ``bench/README.md``, 2026-12-06):

    * ``fps=15``: half of the cameras' 30, so every second decoded frame is shown (even motion); 12 would
      save a fifth of the scaling and encoding but show frames 2 and 3 apart in turn (judder).
    * ``preset="veryfast"``: ``superfast`` saves ~0.05 CPU-s per case-second (of ~0.76) but writes 2.3×
      the bytes at the same ``crf`` (and ``ultrafast`` 3×); with the decoders and scalers made cheaper the
      work already fits 2× real time on 2 free cores (up to 2.6×) without giving that up.
    * ``interpolation="AREA"``: for the 5× reduction to a small tile as sharp as ``BILINEAR`` (SSIM
      against Lanczos 0.989 vs 0.991), better for the large tile (0.998 vs 0.997), and cheaper: with the
      reader's one reused scaler 0.41 ms a small tile and 0.82 ms the large (``BILINEAR`` 0.61 and 0.91;
      ``BILINEAR`` with a new scaler per frame, as before: 1.1–1.4 and 1.5–1.6 ms)."""

    width: int = 1280
    height: int = 720
    fps: int = 15
    preset: str = "veryfast"
    crf: int = 26
    audio_bitrate: int = 96_000
    min_hold: float = 2.0
    min_span: float = 1.0
    stale_s: float = 2.0
    chunk_s: float = 1.0
    interpolation: str = "AREA"
    verify_inputs: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.fps <= 60:
            raise ValueError(f"fps must be 1..60, not {self.fps}")


@dataclass(frozen=True)
class ComposeResult:
    path: Path
    duration: float
    frames: int
    size: int
    fps: int
    width: int
    height: int
    venues: tuple[str, ...] = field(default=())


def _check_inputs(session_dir: Path, report: SegmentReport, *, verify: bool) -> None:
    root = session_dir.resolve()
    for track in report.files:
        path = (session_dir / track.path).resolve()
        if not path.is_relative_to(root):
            raise ComposeFailed(f"input {track.path!r} lies outside the session directory")
        if not path.is_file():
            raise ComposeFailed(f"input {track.path} of venue {track.venue} is missing")
        if not verify:
            continue
        size = path.stat().st_size
        if size != track.size:
            raise ComposeFailed(f"input {track.path} was altered: {size} bytes, the manifest says {track.size}")
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        if digest.hexdigest() != track.sha256:
            raise ComposeFailed(f"input {track.path} was altered: its SHA-256 differs from the manifest")


def _venue_order(report: SegmentReport) -> list[str]:
    with_files = {f.venue for f in report.files}
    order = [v for v in report.venue_names if v in with_files]
    for track in sorted(report.files, key=lambda f: f.t0):
        if track.venue not in order:
            order.append(track.venue)
    return order


def _boxes(venue: str, order: Sequence[str], layout: Layout, plan: FloorPlan, fps: int, start: float,
           ticks: int) -> tuple[tuple[int, int, int], ...]:
    boxes: list[tuple[int, int, int]] = []
    for time, floor in zip(plan.times, plan.venues, strict=True):
        tick = max(0, math.ceil((time - start) * fps - 1e-6))
        if tick >= ticks:
            break
        rect = layout.rects(order, floor).get(venue)
        box = (tick, rect.w, rect.h) if rect else (tick, 0, 0)
        if boxes and boxes[-1][0] == tick:
            boxes[-1] = box
        elif not boxes or boxes[-1][1:] != box[1:]:
            boxes.append(box)
    return tuple(boxes)


class _Overlays:
    """Every label and card of the replay, rendered before the first frame."""

    def __init__(self, layout: Layout, names: Mapping[str, str], epoch: float) -> None:
        large, small = layout.large, (layout.small[0] if layout.small else layout.large)
        self.large_label_h = max(16, large.h // 18 // 2 * 2)
        self.small_label_h = max(12, small.h // 7 // 2 * 2)
        self.labels: dict[tuple[str, int, int], Overlay] = {}
        self.cards: dict[tuple[str, int, int], Overlay] = {}
        for venue, name in names.items():
            for rect, label_h in ((large, self.large_label_h), (small, self.small_label_h)):
                self.labels[(venue, rect.w, rect.h)] = render_label(name, label_h, rect.w - 8)
                self.cards[(venue, rect.w, rect.h)] = render_card(name, rect.w, rect.h)
        self.clock = Clock(self.large_label_h, epoch)

    def label(self, venue: str, rect: Rect) -> Overlay:
        return self.labels[(venue, rect.w, rect.h)]

    def card(self, venue: str, rect: Rect) -> Overlay:
        return self.cards[(venue, rect.w, rect.h)]


class _Mixer:
    """Sums the venues' PCM (libavfilter ``amix`` without normalisation) into float mono for AAC."""

    def __init__(self, inputs: int) -> None:
        self.graph = Graph()
        tb = Fraction(1, _SAMPLE_RATE)
        self.sources = [self.graph.add_abuffer(format="s16", sample_rate=_SAMPLE_RATE, layout="mono", time_base=tb)
                        for _ in range(inputs)]
        tail = self.graph.add("aformat", sample_fmts="fltp", sample_rates=str(_SAMPLE_RATE), channel_layouts="mono")
        if inputs > 1:
            mix = self.graph.add("amix", inputs=str(inputs), normalize="0", duration="longest",
                                 dropout_transition="0")
            for index, source in enumerate(self.sources):
                source.link_to(mix, 0, index)
            mix.link_to(tail)
        else:
            self.sources[0].link_to(tail)
        self.sink = self.graph.add("abuffersink")
        tail.link_to(self.sink)
        self.graph.configure()

    def mix(self, pcms: Sequence[bytes], pts: int) -> list[av.AudioFrame]:
        for source, pcm in zip(self.sources, pcms, strict=True):
            frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
            frame.planes[0].update(pcm)
            frame.sample_rate = _SAMPLE_RATE
            frame.time_base = Fraction(1, _SAMPLE_RATE)
            frame.pts = pts
            source.push(frame)
        return self._pull()

    def _pull(self) -> list[av.AudioFrame]:
        out: list[av.AudioFrame] = []
        while True:
            try:
                frame = self.sink.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return out
            if isinstance(frame, av.AudioFrame):
                out.append(frame)


class _Readers:
    """The venue reader processes, stopped for sure on close."""

    def __init__(self, jobs: Sequence[VenueJob]) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process that may run threads
        self.conns: list[Connection] = []
        self.procs: list[BaseProcess] = []
        self.venues = [job.venue for job in jobs]
        try:
            for job in jobs:
                parent, child = context.Pipe(duplex=False)
                proc = context.Process(target=run_venue_reader, args=(job, child), daemon=True,
                                       name=f"compose-{job.venue}")
                proc.start()
                child.close()
                self.conns.append(parent)
                self.procs.append(proc)
        except BaseException:
            self.close()
            raise

    def receive(self, index: int, chunk: int) -> tuple[list[Picture | None], bytes]:
        venue = self.venues[index]
        try:
            message: tuple[Any, ...] = self.conns[index].recv()
        except EOFError:
            code = self.procs[index].exitcode
            raise ComposeFailed(f"the decoder of venue {venue} ended unexpectedly (exit code {code})") from None
        if message[0] == "error":
            raise ComposeFailed(f"venue {venue}: {message[1]}")
        if message[0] != "chunk" or message[1] != chunk:
            raise ComposeFailed(f"venue {venue}: decoder out of step ({message[0]} for chunk {chunk})")
        return message[2], message[3]

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            proc.close()
        self.conns, self.procs = [], []


def _data_keys(report: SegmentReport, keyring: Keyring, venue: str) -> tuple[DataKey, ...]:
    encrypted = [f for f in report.files if f.venue == venue and f.encrypted]
    if not encrypted:
        return ()
    kids = {f.kid for f in encrypted}
    if None in kids:
        return tuple(keyring.data_keys())
    try:
        return tuple(keyring.data_key(kid) for kid in sorted(k for k in kids if k is not None))
    except Exception as exc:
        raise ComposeFailed(f"confidential input of venue {venue} cannot be opened: {exc}") from exc


def compose_segment(session_dir: Path, segment: str, out: Path, *, keyring: Keyring,
                    progress: Callable[[float], None] | None = None, venue_names: Mapping[str, str] | None = None,
                    report: SegmentReport | None = None, options: ComposeOptions | None = None) -> ComposeResult:
    """Compose the replay of ``segment`` of the session in ``session_dir`` into ``out`` (MP4).

    ``report`` None: loaded (signature verified) from the segment's manifest. ``venue_names`` add to or
    override the report's names. ``progress`` is called with 0.0 … 1.0 as output time advances (from the
    calling thread; an exception it raises stops the work, cleans up and propagates: a way to cancel). The
    venue decoders are ``spawn``ed processes: the caller's ``__main__`` must be importable (a script guarded
    by ``if __name__ == "__main__"``, a module run with ``-m``, pytest, uvicorn). Raises
    ``ComposeFailed`` for a missing, altered, undecodable or undecryptable input or an unwritable output;
    ``out`` is then left as it was."""
    options = options or ComposeOptions()
    if report is None:
        from .manifest import load_segment

        try:
            report = load_segment(session_dir, segment, keyring)
        except Exception as exc:
            raise ComposeFailed(f"segment {segment}: its manifest cannot be read: {exc}") from exc
    if report.segment != segment:
        raise ComposeFailed(f"the report is of segment {report.segment}, not {segment}")
    if not report.files:
        raise ComposeFailed(f"segment {segment} has no media file")
    if report.duration <= 0:
        raise ComposeFailed(f"segment {segment} has no duration ({report.media_t0}…{report.media_t1})")
    _check_inputs(session_dir, report, verify=options.verify_inputs)

    order = _venue_order(report)
    names = {venue: (venue_names or {}).get(venue) or report.venue_names.get(venue) or venue for venue in order}
    layout = grid_layout(len(order), options.width, options.height)
    shown = order[:layout.capacity]
    if len(shown) < len(order):
        log.warning("compose: segment %s has %d venues, %d shown (all heard)", segment, len(order), len(shown))
    start, fps = report.media_t0, options.fps
    ticks = max(1, round(report.duration * fps))
    chunk_ticks = max(1, round(options.chunk_s * fps))
    plan = floor_schedule(shown, report.speakers, start, report.media_t1, min_hold=options.min_hold,
                          min_span=options.min_span)
    overlays = _Overlays(layout, {v: names[v] for v in shown}, report.session_epoch)

    jobs = []
    for venue in order:
        files = tuple(
            SourceFile(path=str(session_dir / f.path), name=f.path, t0=f.t0, encrypted=f.encrypted,
                       recovered=f.recovered)
            for f in sorted(report.files, key=lambda f: f.t0) if f.venue == venue
        )
        gaps = tuple((g.start, math.inf if g.end is None else g.end) for g in report.gaps if g.venue == venue)
        jobs.append(VenueJob(venue=venue, files=files, start=start, fps=fps, ticks=ticks, chunk_ticks=chunk_ticks,
                             boxes=_boxes(venue, shown, layout, plan, fps, start, ticks), gaps=gaps,
                             data_keys=_data_keys(report, keyring, venue), sample_rate=_SAMPLE_RATE,
                             stale_s=options.stale_s, interpolation=options.interpolation))

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    readers: _Readers | None = None
    try:
        readers = _Readers(jobs)
        frames = _render(readers, tmp, order, shown, layout, plan, overlays, options, start, ticks, chunk_ticks,
                         progress)
        os.replace(tmp, out)
    except ComposeFailed:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise ComposeFailed(f"segment {segment}: composing failed: {exc}") from exc
    finally:
        if readers is not None:
            readers.close()
        tmp.unlink(missing_ok=True)
    if progress is not None:
        progress(1.0)
    log.info("compose: segment %s → %s (%d frames, %.1f s)", segment, out.name, frames, ticks / fps)
    return ComposeResult(path=out, duration=ticks / fps, frames=frames, size=out.stat().st_size, fps=fps,
                         width=layout.width, height=layout.height, venues=tuple(order))


class _Encoder:
    """Encodes and muxes in a thread of its own, so that the next frame is composed while x264 works on
    this one (PyAV releases the GIL inside the codec). ``put`` hands over a frame (or the audio frames of a
    chunk) and blocks while ``depth`` items wait; the thread's failure is raised in the caller at the next
    ``put`` or at ``finish``."""

    def __init__(self, container: Any, video: Any, audio: Any, depth: int = 8) -> None:
        self.container, self.video, self.audio = container, video, audio
        self.items: queue.Queue[tuple[Any, Any] | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="compose-encoder", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while (item := self.items.get()) is not None:
                stream, frame = item
                for packet in stream.encode(frame):
                    self.container.mux(packet)
        except BaseException as exc:  # handed to the compositor's thread
            self.error = exc

    def put(self, stream: Any, frame: Any) -> None:
        self._send((stream, frame))

    def _send(self, item: tuple[Any, Any] | None) -> None:
        while True:
            if self.error is not None:
                raise self.error
            try:
                self.items.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        """Flush both encoders and wait for the last packet to be muxed."""
        self._send((self.video, None))
        self._send((self.audio, None))
        self._send(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def abandon(self) -> None:
        """Stop without flushing (a failure or a cancellation): the thread ends after its current item."""
        if not self.thread.is_alive():
            return
        while True:
            try:
                self.items.get_nowait()
            except queue.Empty:
                break
        self.items.put(None)
        self.thread.join()


def _render(readers: _Readers, tmp: Path, order: Sequence[str], shown: Sequence[str], layout: Layout,
            plan: FloorPlan, overlays: _Overlays, options: ComposeOptions, start: float, ticks: int,
            chunk_ticks: int, progress: Callable[[float], None] | None) -> int:
    fps = options.fps
    container = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
    encoder: _Encoder | None = None
    try:
        video = container.add_stream("libx264", rate=fps, options={"preset": options.preset,
                                                                     "crf": str(options.crf)})
        video.width, video.height, video.pix_fmt = layout.width, layout.height, "yuv420p"
        video.codec_context.gop_size = fps * 4
        video.codec_context.time_base = Fraction(1, fps)
        audio = container.add_stream("aac", rate=_SAMPLE_RATE, layout="mono")
        audio.codec_context.bit_rate = options.audio_bitrate
        mixer = _Mixer(len(order))
        background = Planes.blank(layout.width, layout.height)
        written = 0
        chunks = math.ceil(ticks / chunk_ticks)
        encoder = _Encoder(container, video, audio)
        for chunk in range(chunks):
            received = [readers.receive(index, chunk) for index in range(len(order))]
            first = chunk * chunk_ticks
            for offset in range(min(chunk_ticks, ticks - first)):
                tick = first + offset
                t = start + tick / fps
                canvas = background.copy()
                rects = layout.rects(shown, plan.at(t + 1e-6))
                for index, venue in enumerate(shown):
                    rect = rects[venue]
                    picture = received[index][0][offset]
                    if picture is None:
                        overlays.card(venue, rect).blit(canvas, rect.x, rect.y)
                    else:
                        _paste(canvas, picture, rect)
                    label = overlays.label(venue, rect)
                    label_h = label.size[1]
                    label.blit(canvas, rect.x + 4, rect.y + rect.h - label_h - 4)
                overlays.clock.at(t).blit(canvas, layout.large.x + 8, layout.large.y + 8)
                frame = canvas.to_frame()
                frame.pts = tick
                frame.time_base = Fraction(1, fps)
                encoder.put(video, frame)
                written += 1
            pcm_start = first * _SAMPLE_RATE // fps
            for mixed in mixer.mix([pcm for _, pcm in received], pcm_start):
                encoder.put(audio, mixed)
            if progress is not None:
                progress(min(0.999, (chunk + 1) / chunks))
        encoder.finish()
    finally:
        if encoder is not None:
            encoder.abandon()
        container.close()
    return written


def _paste(canvas: Planes, picture: Picture, rect: Rect) -> None:
    w, h, y, u, v = picture
    if w > rect.w or h > rect.h:
        raise ComposeFailed(f"a {w}×{h} picture does not fit its {rect.w}×{rect.h} tile")
    # A picture of another aspect ratio is centred on the canvas's black background.
    canvas.paste(Planes.from_bytes(w, h, y, u, v), rect.x + (rect.w - w) // 4 * 2, rect.y + (rect.h - h) // 4 * 2)
