"""The bots of ``bench/peer.py``: tagged pre-encoded publishers, counting subscribers, and the two signalling
clients (tiepdan's media node over JSON lines, Janus VideoRoom over its HTTP API).

**Frame identity end to end.** Forwarders may rewrite SSRC, sequence numbers, timestamps and (ours) the VP8
payload descriptor, but neither decodes nor touches the codec payload. So each pre-encoded VP8 frame and
each Opus packet gets :data:`TAG` appended (``magic, venue, track, serial``, 11 bytes). VP8 frames end in
the last RTP packet of the frame (marker bit), whichever way a forwarder re-packetizes them; an Opus
packet is one RTP packet. The tag is read back from the *tail* of an RTP packet (publisher: plain RTP just
before SRTP; subscriber: depayloaded payload after SRTP, NACK and RTX unwrap), so:

- the publisher's send time of a frame = when its packet carrying the tag went to the socket (first send;
  a retransmission keeps the first time),
- the subscriber's arrival = when the packet carrying the tag arrived (first copy; RTX duplicates ignored),

both on ``time.monotonic()`` (CLOCK_MONOTONIC, system-wide: bots and servers are processes on one machine).
Trailing bytes are harmless to a VP8 or Opus decoder and nobody here decodes. A payload that merely *ends*
like a tag would need the 4-byte magic at the right place: about 2**-32 per packet.

Keys are packed into one int (:func:`frame_key`) so that tens of thousands of frames per run cost little.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from array import array
from collections.abc import Sequence
from typing import Any

from bench._common import LineClient, clips

MAGIC = b"TpD\x01"
#: magic, venue index, track code, frame serial
TAG = struct.Struct(">4sHBI")
TRACKS = ("high", "low", "mic")


def encode_tag(venue: int, track: int, serial: int) -> bytes:
    """The bytes appended to one frame of ``venue``'s track ``track`` (index in :data:`TRACKS`)."""
    return TAG.pack(MAGIC, venue, track, serial & 0xFFFFFFFF)


def decode_tag(payload: bytes) -> tuple[int, int, int] | None:
    """``(venue, track, serial)`` if ``payload`` ends with a tag, else None."""
    if len(payload) < TAG.size or payload[-TAG.size:-TAG.size + 4] != MAGIC:
        return None
    _, venue, track, serial = TAG.unpack_from(payload, len(payload) - TAG.size)
    return int(venue), int(track), int(serial)


def frame_key(venue: int, track: int, serial: int) -> int:
    """One int for (venue, track, serial): cheap to store and to send between processes."""
    return (venue << 40) | (track << 32) | serial


def split_key(key: int) -> tuple[int, int, int]:
    return key >> 40, (key >> 32) & 0xFF, key & 0xFFFFFFFF


def key_of_tail(payload: bytes) -> int | None:
    """:func:`frame_key` of the tag at the end of ``payload`` (None without a tag)."""
    tag = decode_tag(payload)
    return None if tag is None else frame_key(*tag)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values``, nearest-rank on the sorted values (NaN when empty)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1)) if q < 1 else len(ordered) - 1
    return float(ordered[rank])


def quantiles(values: Sequence[float], qs: Sequence[float] = (0.5, 0.99, 0.999)) -> list[float]:
    ordered = sorted(values)
    return [percentile(ordered, q) for q in qs]


# --- plans (the clips are bench/_common.py's; the layout is bench/sfu.py's) --------------------------------

def mesh_plan(venues: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every venue publishes 720p + Opus and receives every other venue's 720p and Opus."""
    ids = [f"venue-{i}" for i in range(venues)]
    subs = [{"id": v, "video": [f"{o}/high" for o in ids if o != v], "audio": [f"{o}/mic" for o in ids if o != v]}
            for v in ids]
    return {"publishers": ids, "tracks": ["high", "mic"]}, {"subscribers": subs, "tracks": ["high", "mic"]}


def layout_plan(venues: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """``bench/sfu.py``'s layout: each venue receives 2 others in 720p, the next 6 in 180p, 8 microphones."""
    ids = [f"venue-{i}" for i in range(venues)]
    subs = []
    for i, v in enumerate(ids):
        others = [ids[(i + k) % venues] for k in range(1, venues)]
        subs.append({"id": v, "video": [f"{o}/high" for o in others[:2]] + [f"{o}/low" for o in others[2:8]],
                     "audio": [f"{o}/mic" for o in others[:8]]})
    tracks = ["high", "low", "mic"]
    return {"publishers": ids, "tracks": tracks}, {"subscribers": subs, "tracks": tracks}



def venue_index(name: str) -> int:
    """``venue-3`` -> 3."""
    return int(name.rsplit("-", 1)[1])


def source_of(pub_id: str) -> tuple[int, int]:
    """``venue-3/low`` -> (3, track code of ``low``)."""
    venue, track = pub_id.split("/")
    return venue_index(venue), TRACKS.index(track)


# --- bots (aiortc imported lazily: the pure helpers above are unit-tested without media) ------------------


async def _wait(evt: Any, limit: float = 600.0) -> None:
    deadline = time.monotonic() + limit
    while not evt.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


class ArrivalLog:
    """One subscriber's sink below aiortc's jitter buffer: counts packets, notes each tagged frame's arrival."""

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.recording = False
        self.keys = array("q")
        self.times = array("d")
        self._seen: set[int] = set()

    def on_rtp(self, packet: Any, data: bytes) -> None:
        self.packets += 1
        self.bytes += len(data)
        if not self.recording:
            return
        key = key_of_tail(data)
        if key is not None and key not in self._seen:
            self._seen.add(key)
            self.keys.append(key)
            self.times.append(time.monotonic())


class SendLog:
    """A publisher's sent frames: the time the packet carrying a frame's tag was handed to the socket."""

    def __init__(self) -> None:
        self.recording = False
        self.keys = array("q")
        self.times = array("d")
        self._seen: set[int] = set()

    async def on_send(self, data: bytes, send: Any) -> None:
        await send(data)
        if self.recording:
            key = key_of_tail(data)
            if key is not None and key not in self._seen:
                self._seen.add(key)
                self.keys.append(key)
                self.times.append(time.monotonic())


def tagged_track(clip: Any, name: str, venue: int) -> Any:
    """A :class:`tiepdan.bots.media.ClipTrack` whose every frame ends with :func:`encode_tag`."""
    from tiepdan.bots.media import ClipTrack

    class TaggedClipTrack(ClipTrack):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(clip, name, loop_to=1)
            self.serials = itertools.count()
            self.code = TRACKS.index(name)

        async def recv(self) -> Any:
            import av

            packet = await super().recv()
            data = bytes(packet) + encode_tag(venue, self.code, next(self.serials))
            tagged = av.Packet(data)
            tagged.pts, tagged.time_base = packet.pts, packet.time_base
            return tagged

    return TaggedClipTrack()


# --- signalling -------------------------------------------------------------------------------------------


class OurSignal:
    """tiepdan's media node in ``bench/peer.py``'s server process: JSON lines over loopback TCP."""

    def __init__(self, port: int) -> None:
        self.call = LineClient(port)

    async def publish(self, venue: str, sdp: str, tracks: Sequence[str]) -> str:
        names = {str(i): t for i, t in enumerate(tracks)}
        return str((await self.call(op="publish", id=venue, sdp=sdp, names=names))["sdp"])

    async def subscribe(self, sub: dict[str, Any], tracks: Sequence[str], answer: Any) -> None:
        offer = await self.call(op="subscribe", id=sub["id"], video=len(sub["video"]), audio=len(sub["audio"]))
        sdp = await answer(offer["sdp"])
        await self.call(op="answer", id=sub["id"], sdp=sdp)
        for kind in ("video", "audio"):
            for i, pub in enumerate(sub[kind]):
                await self.call(op="source", id=sub["id"], kind=kind, slot=i, pub=pub)

    async def close(self) -> None:
        self.call.close()


class JanusSignal:
    """Janus VideoRoom over the HTTP API: one session per bot process, one handle per peer connection,
    events by long poll (which also keeps the session alive)."""

    ROOM = 1234

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}/janus"
        self.http: Any = None
        self.session = 0
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.tx = itertools.count(1)
        self.poller: asyncio.Task[None] | None = None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(self.base + path, json=body) as resp:
            data: dict[str, Any] = await resp.json(content_type=None)
        if data.get("janus") == "error":
            raise RuntimeError(f"janus: {data.get('error')}")
        return data

    async def start(self) -> None:
        import aiohttp

        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=90))
        self.session = int((await self._post("", {"janus": "create", "transaction": "c"}))["data"]["id"])
        self.poller = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            try:
                async with self.http.get(f"{self.base}/{self.session}?maxev=20") as resp:
                    data = await resp.json(content_type=None)
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(0.2)
                continue
            for event in data if isinstance(data, list) else [data]:
                fut = self.pending.pop(str(event.get("transaction")), None)
                if fut is not None and not fut.done():
                    fut.set_result(event)

    async def attach(self) -> int:
        data = await self._post(f"/{self.session}", {"janus": "attach", "plugin": "janus.plugin.videoroom",
                                                     "transaction": f"a{next(self.tx)}"})
        return int(data["data"]["id"])

    async def message(self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None) -> dict[str, Any]:
        tx = f"m{next(self.tx)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[tx] = fut
        msg: dict[str, Any] = {"janus": "message", "transaction": tx, "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        data = await self._post(f"/{self.session}/{handle}", msg)
        if data.get("janus") == "success":  # synchronous answer
            self.pending.pop(tx, None)
            return data
        event = await asyncio.wait_for(fut, 60)
        plugin = event.get("plugindata", {}).get("data", {})
        if "error" in plugin:
            raise RuntimeError(f"videoroom: {plugin['error']}")
        return event

    async def create_room(self, publishers: int) -> None:
        handle = await self.attach()
        await self.message(handle, {"request": "create", "room": self.ROOM, "publishers": publishers,
                                    "bitrate": 0, "fir_freq": 0, "videocodec": "vp8", "audiocodec": "opus",
                                    "notify_joining": False, "record": False, "permanent": False})

    async def publish(self, venue: str, sdp: str, tracks: Sequence[str]) -> str:
        handle = await self.attach()
        event = await self.message(
            handle, {"request": "joinandconfigure", "room": self.ROOM, "ptype": "publisher",
                     "id": 1000 + venue_index(venue), "display": venue, "audio": True, "video": True},
            {"type": "offer", "sdp": sdp, "trickle": False})
        return str(event["jsep"]["sdp"])

    async def subscribe(self, sub: dict[str, Any], tracks: Sequence[str], answer: Any) -> None:
        handle = await self.attach()
        streams = [{"feed": 1000 + source_of(p)[0], "mid": str(tracks.index(p.split("/")[1]))}
                   for p in sub["video"] + sub["audio"]]
        event = await self.message(handle, {"request": "join", "room": self.ROOM, "ptype": "subscriber",
                                            "streams": streams})
        sdp = await answer(event["jsep"]["sdp"])
        await self.message(handle, {"request": "start"}, {"type": "answer", "sdp": sdp, "trickle": False})

    async def close(self) -> None:
        if self.poller is not None:
            self.poller.cancel()
            await asyncio.gather(self.poller, return_exceptions=True)
        if self.http is not None:
            await self.http.close()


# --- the bot processes ------------------------------------------------------------------------------------


def bots_main(role: str, server: str, port: int, host: str, plan: dict[str, Any], events: dict[str, Any],
              out: Any) -> None:
    """Entry of a bot process (``role`` ``pub`` or ``sub``) for ``server`` ``ours`` or ``janus``; its ICE
    agents offer ``host`` only."""
    asyncio.run(_bots(role, server, port, host, plan, events, out))


async def _bots(role: str, server: str, port: int, host: str, plan: dict[str, Any], events: dict[str, Any],
                out: Any) -> None:
    from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from sfu import hooks

    hooks.announce_host_addresses((host,))
    signal: OurSignal | JanusSignal = OurSignal(port) if server == "ours" else JanusSignal(port)
    if isinstance(signal, JanusSignal):
        await signal.start()
    pcs: list[Any] = []
    bots: list[Any] = []
    sends: list[SendLog] = []
    arrivals: dict[str, ArrivalLog] = {}
    tracks: list[str] = plan["tracks"]
    try:
        if role == "pub":
            from tiepdan.bots.media import PublisherBot

            media = clips()
            if isinstance(signal, JanusSignal):
                await signal.create_room(len(plan["publishers"]) + 2)
            for venue in plan["publishers"]:
                index = venue_index(venue)
                bot = PublisherBot([tagged_track(media[name], name, index) for name in tracks])
                bots.append(bot)
                await bot.accept(await signal.publish(venue, await bot.offer(), tracks))
                sent = SendLog()
                sends.append(sent)
                hooks.intercept_rtp_send(bot.pc.getTransceivers()[0].sender.transport, sent.on_send)
            await asyncio.sleep(1.0)
        else:
            for sub in plan["subscribers"]:
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
                pcs.append(pc)
                log = ArrivalLog()
                arrivals[sub["id"]] = log

                async def answer(offer: str, pc: Any = pc, log: ArrivalLog = log) -> str:
                    await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
                    for t in pc.getTransceivers():
                        hooks.install_ingest(t.receiver, log)  # below the jitter buffer; never decode
                    await pc.setLocalDescription(await pc.createAnswer())
                    return str(pc.localDescription.sdp)

                await signal.subscribe(sub, tracks, answer)
        out.put(("ready", role, None))
        if role == "sub":
            await _wait(events["arm"])
            for a in arrivals.values():
                a.recording = True
            await _wait(events["start"])
            p0, t0 = sum(a.packets for a in arrivals.values()), time.monotonic()
            await _wait(events["stop"])
            p1, t1 = sum(a.packets for a in arrivals.values()), time.monotonic()
            await asyncio.sleep(1.0)  # frames sent just before the stop are still on their way
            for a in arrivals.values():
                a.recording = False
            result: dict[str, Any] = {
                "role": role,
                "subs": {k: (a.keys.tobytes(), a.times.tobytes()) for k, a in arrivals.items()},
                "pps": (p1 - p0) / max(t1 - t0, 1e-9),
            }
        else:
            await _wait(events["start"])
            for s in sends:
                s.recording = True
            await _wait(events["stop"])
            for s in sends:
                s.recording = False
            keys, times = array("q"), array("d")
            for s in sends:
                keys.extend(s.keys)
                times.extend(s.times)
            result = {"role": role, "sends": (keys.tobytes(), times.tobytes())}
        out.put(("result", role, result))
        await _wait(events["quit"], 120)
    finally:
        for bot in bots:
            await bot.close()
        for pc in pcs:
            await pc.close()
        await signal.close()
