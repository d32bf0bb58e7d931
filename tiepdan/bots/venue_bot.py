"""A venue as the room server sees it: a ``/ws`` client that publishes and subscribes over WebRTC.

:class:`VenueBot` joins a room with a token (``Authorization: Bearer``), publishes pre-encoded media
(by default a solid-colour VP8 clip and an Opus clip, see :mod:`tiepdan.bots.media`: cheap, and the colour
tells whose frames a slot shows; the demo gives it its pre-rendered loops, high and low layer) and
subscribes with the server's fixed slots, decoding what it receives. With a ``palette`` (venue → the
YUV colour at the centre of its picture) it counts the decoded frames per source venue (:attr:`frames_from`).
It follows the protocol of ``docs/protocol.md`` only: ``media.publish`` → ``media.publish_answer``,
``media.subscribe`` → ``media.subscriber_offer`` → ``media.answer``, ``media.slots``. A dropped
socket is resumed with :meth:`VenueBot.reconnect`, which publishes and subscribes again, as a venue's
page would. Used by the room-server media tests, the demo and the console's tests.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import websockets
from aiortc.mediastreams import MediaStreamTrack

from .media import Clip, ClipTrack, PublisherBot, Received, SubscriberBot, ToneTrack, opus_clip, vp8_clip

__all__ = ["Message", "RequestRefused", "VenueBot", "until", "nearest_venue"]

Message = dict[str, Any]

#: squared YUV distance beyond which a decoded colour is nobody's (a partly decoded or foreign frame)
_PALETTE_MATCH = 3 * 24**2


def nearest_venue(palette: Mapping[str, tuple[int, int, int]], yuv: tuple[int, int, int]) -> str | None:
    """The venue whose palette colour is nearest to ``yuv``, None when none is close."""
    best, distance = None, _PALETTE_MATCH + 1
    for venue, colour in palette.items():
        d = sum((a - b) ** 2 for a, b in zip(colour, yuv, strict=True))
        if d < distance:
            best, distance = venue, d
    return best if distance <= _PALETTE_MATCH else None


class RequestRefused(Exception):
    def __init__(self, message: Message) -> None:
        super().__init__(f"{message.get('code')}: {message.get('detail')}")
        self.message = message
        self.code = str(message.get("code"))


class VenueBot:
    """One venue's page: a WebSocket, a publisher and a subscriber connection (see the module docstring)."""

    def __init__(self, url: str, token: str, *, colour: str | None = "grey", video: bool = True,
                 audio: bool = True, tone: bool = False, name: str = "bot", camera: Clip | None = None,
                 camera_low: Clip | None = None, mic: Clip | None = None,
                 palette: Mapping[str, tuple[int, int, int]] | None = None, history: bool = True,
                 unmute: bool = True) -> None:
        self.url = url
        self.token = token
        self.colour = colour
        #: pre-encoded clips to send instead of the solid colour / the default tone (``camera_low``: a 2nd layer)
        self.camera = camera
        self.camera_low = camera_low
        self.mic = mic
        self.palette = dict(palette or {})
        #: decoded video frames per source venue (with a ``palette``)
        self.frames_from: Counter[str] = Counter()
        #: False: the subscriber keeps counts only (long runs)
        self.history = history
        self.with_video = video
        self.with_audio = audio
        #: a live-encoded tone instead of the pre-encoded clip: its packets carry RFC 6464 levels (speaking)
        self.tone = tone
        #: after publishing, turn its own microphone on (``mic.set``), as an operator would; the server
        #: keeps a venue muted until then (or until it gets the floor), and the SFU enforces it
        self.unmute = unmute
        self.name = name
        self.ws: websockets.ClientConnection | None = None
        self.welcome: Message = {}
        self.messages: list[Message] = []
        self.publisher: PublisherBot | None = None
        self.subscriber: SubscriberBot | None = None
        self.slots: dict[str, Message] = {}  # slot → {"slot","kind","mid"}
        self.sources: dict[str, str | None] = {}  # slot → venue (from media.slots)
        self.publishing = False
        self.subscribed = False
        self.offers = 0  # media.subscriber_offer received
        self._arrived = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        self._seq = 0

    # -- socket -----------------------------------------------------------------------------------

    @property
    def participant(self) -> str:
        return str(self.welcome["you"]["participant"])

    @property
    def venue(self) -> str | None:
        venue = self.welcome["you"]["venue"]
        return None if venue is None else str(venue)

    async def connect(self, *, resume: str | None = None) -> Message:
        self.ws = await websockets.connect(self.url, additional_headers={"Authorization": f"Bearer {self.token}"},
                                           max_size=None, open_timeout=5)
        self._reader = asyncio.create_task(self._read(self.ws), name=f"venue-bot-{self.name}")
        since = len(self.messages)
        join: Message = {"type": "join", "protocol": 1}
        if resume is not None:
            join["resume"] = resume
        await self.send(join)
        self.welcome = await self.wait_for(lambda m: m["type"] == "welcome", since=since)
        return self.welcome

    async def _read(self, ws: websockets.ClientConnection) -> None:
        try:
            async for data in ws:
                message: Message = json.loads(data)
                if message["type"] == "media.slots":
                    self.sources = {s["slot"]: s["venue"] for s in message["slots"]}
                async with self._arrived:
                    self.messages.append(message)
                    self._arrived.notify_all()
        except websockets.ConnectionClosed:
            pass
        finally:
            async with self._arrived:
                self._arrived.notify_all()

    async def send(self, message: Message) -> None:
        assert self.ws is not None
        await self.ws.send(json.dumps(message))

    async def wait_for(self, predicate: Callable[[Message], bool], *, since: int = 0,
                       timeout: float = 10.0) -> Message:
        async with asyncio.timeout(timeout), self._arrived:
            while True:
                for message in self.messages[since:]:
                    if predicate(message):
                        return message
                since = len(self.messages)
                if self._reader is None or self._reader.done():
                    raise ConnectionError("the socket is closed")
                await self._arrived.wait()

    async def request(self, message: Message, reply: str, timeout: float = 10.0) -> Message:
        """Send ``message`` with a fresh id; the reply of type ``reply``, or :class:`RequestRefused`."""
        self._seq += 1
        ref = f"{self.name}-{self._seq}"
        since = len(self.messages)
        await self.send({**message, "id": ref})
        answer = await self.wait_for(lambda m: m["type"] == reply or (m["type"] == "error" and m.get("ref") == ref),
                                     since=since, timeout=timeout)
        if answer["type"] == "error":
            raise RequestRefused(answer)
        return answer

    def of_type(self, type_: str, since: int = 0) -> list[Message]:
        return [m for m in self.messages[since:] if m["type"] == type_]

    # -- media ------------------------------------------------------------------------------------

    async def publish(self) -> Message:
        tracks: list[MediaStreamTrack] = []
        if self.with_audio:
            mic: MediaStreamTrack = ToneTrack() if self.tone else ClipTrack(self.mic or opus_clip())
            mic.name = "mic"  # type: ignore[attr-defined]
            tracks.append(mic)
        if self.with_video:
            tracks.append(ClipTrack(self.camera or vp8_clip(colour=self.colour), name="camera"))
            if self.camera_low is not None:
                tracks.append(ClipTrack(self.camera_low, name="camera-low"))
        bot = PublisherBot(tracks)
        try:
            offer = await bot.offer()
            names = {str(t.mid): str(getattr(t.sender.track, "name", "")) for t in bot.pc.getTransceivers()}
            answer = await self.request({"type": "media.publish", "sdp": offer, "tracks": names},
                                        "media.publish_answer")
            await bot.accept(answer["sdp"])
        except BaseException:
            await bot.close()  # a refused publish leaves the previous publisher (if any) as it was
            raise
        if self.publisher is not None:
            await self.publisher.close()
        self.publisher = bot
        self.publishing = True
        if self.with_audio and self.unmute:
            await self.send({"type": "mic.set", "muted": False})
        return answer

    async def subscribe(self, video_slots: int | None = None, audio_slots: int | None = None) -> Message:
        message: Message = {"type": "media.subscribe"}
        if video_slots is not None:
            message["video_slots"] = video_slots
        if audio_slots is not None:
            message["audio_slots"] = audio_slots
        since = len(self.messages)
        offer = await self.request(message, "media.subscriber_offer")
        self.offers += 1
        self.slots = {s["slot"]: s for s in offer["slots"]}
        bot = SubscriberBot(history=self.history, on_video=self._count_source if self.palette else None)
        self.subscriber = bot
        await self.send({"type": "media.answer", "sdp": await bot.answer(offer["sdp"])})
        await self.wait_for(lambda m: m["type"] == "media.slots", since=since)
        self.subscribed = True
        return offer

    def _count_source(self, mid: str, yuv: tuple[int, int, int]) -> None:
        venue = nearest_venue(self.palette, yuv)
        if venue is not None:
            self.frames_from[venue] += 1

    def received(self, slot: str) -> Received | None:
        """What the subscriber decoded on ``slot`` (None before its first frame)."""
        if self.subscriber is None or slot not in self.slots:
            return None
        return self.subscriber.received.get(str(self.slots[slot]["mid"]))

    def slot_of(self, venue: str, kind: str = "video") -> str | None:
        return next((s for s, v in self.sources.items() if v == venue and s.startswith(kind)), None)

    def colours_since(self, slot: str, since: float) -> list[str]:
        """Colour names of the video frames decoded on ``slot`` since ``since`` (``time.monotonic()``)."""
        received = self.received(slot)
        return [] if received is None else received.colours_since(since)

    def colours_anywhere_since(self, since: float) -> set[str]:
        """Colour names decoded on any video slot since ``since``."""
        return {c for slot in self.slots if slot.startswith("video") for c in self.colours_since(slot, since)}

    async def close_media(self) -> None:
        publisher, subscriber = self.publisher, self.subscriber
        self.publisher = self.subscriber = None
        try:
            if publisher is not None:
                await publisher.close()
        finally:  # each peer connection closes (its UDP sockets with it), whatever the other did
            if subscriber is not None:
                await subscriber.close()

    async def drop(self) -> None:
        """The network drops the socket: no ``leave``, no close frame (the server keeps the place)."""
        assert self.ws is not None
        self.ws.transport.abort()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    async def reconnect(self) -> Message:
        """Resume on a new socket; publish and subscribe again as before (fresh connections)."""
        resume = str(self.welcome["resume_token"])
        publishing, subscribed = self.publishing, self.subscribed
        counts = {"video_slots": sum(1 for s in self.slots if s.startswith("video")),
                  "audio_slots": sum(1 for s in self.slots if s.startswith("audio"))}
        await self.close_media()
        self.publishing = self.subscribed = False
        welcome = await self.connect(resume=resume)
        if publishing:
            await self.publish()
        if subscribed:
            await self.subscribe(**counts)
        return welcome

    async def close(self, *, leave: bool = True) -> None:
        try:
            if self.ws is not None:
                if leave:
                    try:
                        await self.send({"type": "leave"})
                    except websockets.ConnectionClosed:
                        pass
                await self.ws.close()
            if self._reader is not None:
                await asyncio.gather(self._reader, return_exceptions=True)
        finally:  # the media closes even when the socket's end fails or is cancelled
            await self.close_media()


async def until(predicate: Callable[[], bool], timeout: float = 8.0, what: str = "condition") -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start
