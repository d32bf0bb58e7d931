"""The live room with media: venues publish and subscribe through ``/ws`` and a real SFU (aiortc peers).

Every venue is a :class:`~tests.fakes.venue_bot.VenueBot` sending a solid colour, so a decoded frame
tells whose media a slot shows. The server side never decodes: aiortc's decoder factory is trapped
for everyone but the bots' own receivers.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from prometheus_client import CollectorRegistry

import sfu
from sfu import hooks
from signaling.grants import Role
from signaling.room import RoomOptions
from signaling.room.media import MediaOptions
from tests.fakes.venue_bot import RequestRefused, VenueBot, until
from tests.sfu.conftest import DecoderGuard
from tests.sfu.helpers import landed
from tiepdan.bots.media import nearest_colour, vp8_clip

from .room_harness import FAST, ROOM, Harness, running_server

pytestmark = pytest.mark.media

COLOURS = {"tinh": "red", "tien-du": "green", "que-vo": "blue"}
MEDIA = MediaOptions(sfu=sfu.Options(connect_timeout=8.0), stats_interval_s=0.5, link_lost_after_s=1.0,
                     tick_s=0.1, ice_urls=("stun:stun.tiepdan.test:3478", "turn:turn.tiepdan.test:3478"),
                     turn_secret="test-secret")


@pytest.fixture(autouse=True)
def loopback_ice() -> Iterator[None]:
    restore = hooks.announce_host_addresses(("127.0.0.1",))
    yield
    restore()


@pytest.fixture(autouse=True)
def decoder_guard() -> Iterator[DecoderGuard]:
    with DecoderGuard.installed() as guard:
        yield guard
    assert guard.violations == [], "the room server decoded media"


class Venues:
    def __init__(self, h: Harness) -> None:
        self.h = h
        self.bots: list[VenueBot] = []

    async def join(self, role: Role, venue: str | None, *, sub: str | None = None, tone: bool = False,
                   layers: bool = False, unmute: bool = True) -> VenueBot:
        colour = COLOURS.get(venue or "", "grey")
        bot = VenueBot(self.h.url, self.h.token(role, venue=venue, sub=sub), colour=colour,
                       name=f"{role.value}-{venue}", tone=tone, unmute=unmute,
                       camera=vp8_clip(640, 360, colour=colour, bitrate=400_000) if layers else None,
                       camera_low=vp8_clip(320, 180, colour=colour) if layers else None)
        self.bots.append(bot)
        await bot.connect()
        return bot

    async def close(self) -> None:
        await asyncio.gather(*(b.close() for b in self.bots), return_exceptions=True)


@pytest.fixture
async def venues_factory() -> AsyncIterator[list[Venues]]:
    made: list[Venues] = []
    yield made
    for v in made:
        await v.close()


def sfu_slot(h: Harness, bot: VenueBot, slot: str) -> sfu.Subscription:
    """The SFU's subscriber slot behind ``bot``'s ``slot``."""
    room = h.server.media.sfu_room(ROOM) if h.server.media else None
    assert room is not None
    participant = next(p for p in room.participants if p.id.startswith(bot.participant))
    return next(s for s in participant.slots if f"{s.kind}-{s.index}" == slot)


def frames_sent_after(bot: VenueBot, slot: str, packets: int) -> list[str]:
    """Colour names of the frames ``bot`` decoded on ``slot`` from the SFU's ``packets``-th packet on."""
    got = bot.received(slot)
    if got is None or not got.rtp:
        return []
    origin = got.rtp[0].timestamp  # the bot's receiver counts its frame timestamps from there
    arrived = {(a.timestamp - origin) % 2**32 for a in got.rtp}
    assert set(got.pts) <= arrived, "decoded frames do not map onto the packets that arrived"
    late = {(a.timestamp - origin) % 2**32 for a in got.rtp[packets:]}
    return [nearest_colour(c) for pts, c in zip(got.pts, got.colours, strict=True) if pts in late]


def sees(bot: VenueBot, venue: str, since: float) -> bool:
    slot = bot.slot_of(venue)
    return slot is not None and COLOURS[venue] in bot.colours_since(slot, since)


async def test_venues_see_each_other_the_floor_moves_large_slots_and_a_closed_segment_is_withheld(
        venues_factory: list[Venues], decoder_guard: DecoderGuard) -> None:
    async with running_server(media=MEDIA) as h:
        v = Venues(h)
        venues_factory.append(v)
        chair = await v.join(Role.CHAIR, "tinh")
        b = await v.join(Role.VENUE, "tien-du")
        c = await v.join(Role.VENUE, "que-vo")
        ice = chair.of_type("media.ice_servers")[0]["ice_servers"]
        assert ice[1]["username"].endswith(f":{chair.participant}") and ice[1]["credential"]
        bots = (chair, b, c)
        for bot in bots:
            await bot.publish()
        for bot in bots:
            await bot.subscribe()
        start = time.monotonic()
        for bot in bots:
            for other in COLOURS:
                if other != bot.venue:
                    await until(functools.partial(sees, bot, other, start), what=f"{bot.name} sees {other}")
        # the main venue holds the floor at the start: the others show it large
        assert b.sources["video-0"] == c.sources["video-0"] == "tinh"
        assert c.received(c.slot_of("tien-du", "audio") or "")  # audio flows too
        assert decoder_guard.bot_decoders > 0

        offers = [bot.offers for bot in bots]
        given = time.monotonic()
        await chair.send({"type": "floor.give", "venue": "tien-du"})
        await until(lambda: c.sources.get("video-0") == "tien-du" and chair.sources.get("video-0") == "tien-du")
        await until(lambda: "green" in c.colours_since("video-0", given + 0.05), what="c shows the floor large")
        await until(lambda: "green" in chair.colours_since("video-0", given + 0.05), what="chair shows the floor")
        assert c.sources["video-1"] == "tinh" and b.sources["video-0"] == "tinh"  # the holder sees the chair
        slots_msg = c.of_type("media.slots")[-1]["slots"]
        assert {"slot": "video-0", "kind": "video", "venue": "tien-du", "role": "floor", "layer": "high"} in slots_msg
        assert [bot.offers for bot in bots] == offers  # no renegotiation
        assert all(not bot.of_type("media.subscriber_offer")[1:] for bot in bots)

        # closed segment for que-vo: tien-du (a third venue) no longer receives it; the chair does
        await chair.send({"type": "closed_segment.start", "venue": "que-vo"})
        await until(lambda: "que-vo" not in b.sources.values(), what="que-vo leaves tien-du's slots")
        # que-vo's frames the SFU sent before may still land; from now on, none may be sent to tien-du
        video_slots = [name for name in b.slots if name.startswith("video")]
        sent = {name: (await sfu_slot(h, b, name).stats()).packets for name in video_slots}
        chair_sees = chair.received(chair.slot_of("que-vo") or "")
        assert chair_sees is not None
        shown = chair_sees.frames
        await until(lambda: chair_sees.frames >= shown + 15, what="the chair sees que-vo on")
        assert all("blue" not in frames_sent_after(b, name, sent[name]) for name in video_slots)
        room = h.server.media.sfu_room(ROOM) if h.server.media else None
        assert room is not None
        camera = next(p for p in room.publications if p.participant_id.startswith(c.participant) and p.kind == "video")
        assert camera.allowed is not None and not camera.allows(next(
            p.id for p in room.participants if p.id.startswith(b.participant)))

        await chair.send({"type": "closed_segment.end"})
        ended = time.monotonic()
        await until(lambda: sees(b, "que-vo", ended), what="que-vo back at tien-du")


async def test_large_slots_get_the_high_layer_small_slots_the_low_one_and_switch_with_the_floor(
        venues_factory: list[Venues]) -> None:
    async with running_server(media=MEDIA) as h:
        v = Venues(h)
        venues_factory.append(v)
        chair = await v.join(Role.CHAIR, "tinh", layers=True)
        b = await v.join(Role.VENUE, "tien-du", layers=True)
        c = await v.join(Role.VENUE, "que-vo", layers=True)
        answers = {bot.venue: (await bot.publish())["sdp"] for bot in (chair, b, c)}
        assert "x-google-max-bitrate=1500" in answers["tinh"]  # the default cap of a venue's video layer
        assert "x-google-max-bitrate=600" in answers["que-vo"]  # the session's cap for a weak link
        await c.subscribe(video_slots=2, audio_slots=1)

        def sizes_since(bot: VenueBot, slot: str, since: float) -> set[tuple[int, int]]:
            got = bot.received(slot)
            assert got is not None
            return {size for t, size in zip(got.times, got.frame_sizes, strict=True) if t >= since}

        start = time.monotonic()
        # the chair's venue holds the floor: large, high layer; tien-du small, low layer
        await until(lambda: c.sources.get("video-0") == "tinh" and c.sources.get("video-1") == "tien-du")
        slots = {s["slot"]: s for s in c.of_type("media.slots")[-1]["slots"]}
        assert (slots["video-0"]["role"], slots["video-0"]["layer"]) == ("floor", "high")
        assert (slots["video-1"]["role"], slots["video-1"]["layer"]) == ("other", "low")
        await until(lambda: (640, 360) in sizes_since(c, "video-0", start), what="high layer in the large slot")
        await until(lambda: (320, 180) in sizes_since(c, "video-1", start), what="low layer in the small slot")

        offers = c.offers
        given = time.monotonic()
        await chair.send({"type": "floor.give", "venue": "tien-du"})
        await until(lambda: c.sources.get("video-0") == "tien-du" and c.sources.get("video-1") == "tinh")
        slots = {s["slot"]: s for s in c.of_type("media.slots")[-1]["slots"]}
        assert (slots["video-0"]["role"], slots["video-0"]["layer"]) == ("floor", "high")
        assert (slots["video-1"]["role"], slots["video-1"]["layer"]) == ("chair", "high")
        await until(lambda: "green" in c.colours_since("video-0", given + 0.05) and
                    (640, 360) in sizes_since(c, "video-0", given + 0.3), what="tien-du large in high")
        assert c.offers == offers and len(c.of_type("media.subscriber_offer")) == 1  # no renegotiation


async def test_a_muted_microphone_is_not_forwarded_whatever_its_client_sends(venues_factory: list[Venues]) -> None:
    async with running_server(media=MEDIA) as h:
        v = Venues(h)
        venues_factory.append(v)
        chair = await v.join(Role.CHAIR, "tinh")
        b = await v.join(Role.VENUE, "tien-du")
        quiet = await v.join(Role.VENUE, "que-vo", unmute=False)  # never turns its microphone on
        for bot in (b, quiet):
            await bot.publish()
        await chair.subscribe(video_slots=1, audio_slots=2)

        def audio_packets(venue: str) -> int:
            slot = chair.slot_of(venue, "audio")
            got = chair.received(slot) if slot is not None else None
            return 0 if got is None else len(got.rtp)

        room = h.server.media.sfu_room(ROOM) if h.server.media else None
        assert room is not None

        def mic_of(bot: VenueBot) -> sfu.Publication:
            return next(p for p in room.publications if p.participant_id.startswith(bot.participant)
                        and p.kind == "audio")

        await until(lambda: audio_packets("tien-du") > 10, what="tien-du's audio reaches the chair")
        await until(lambda: mic_of(quiet).packets_muted >= 25, what="half a second of que-vo's microphone")
        assert audio_packets("que-vo") == 0  # joined muted and still muted: its packets are dropped

        await chair.send({"type": "mic.mute", "participant": b.participant})
        await b.wait_for(lambda m: m["type"] == "mic.changed" and m["participant"] == b.participant and m["muted"])
        mic = mic_of(b)
        assert mic.muted
        slot = chair.slot_of("tien-du", "audio")
        got = chair.received(slot) if slot is not None else None
        # packets forwarded before the mute may still be on their way: wait until all have landed
        muted_at = 0 if slot is None or got is None else await landed(sfu_slot(h, chair, slot), got)
        await b.send({"type": "mic.set", "muted": False})  # refused: forced by the chair
        await b.wait_for(lambda m: m["type"] == "error")
        dropped = mic.packets_muted
        await until(lambda: mic.packets_muted >= dropped + 50, what="a second more of tien-du's microphone")
        assert audio_packets("tien-du") == muted_at  # the bot keeps sending, nothing is forwarded
        assert mic.muted

        await chair.send({"type": "mic.unmute_request", "participant": b.participant})
        await b.wait_for(lambda m: m["type"] == "mic.unmute_requested")
        await b.send({"type": "mic.set", "muted": False})
        await until(lambda: audio_packets("tien-du") > muted_at + 10, what="tien-du heard again")


async def test_a_venue_that_reconnects_gets_its_media_back_without_anyone_acting(
        venues_factory: list[Venues]) -> None:
    async with running_server(RoomOptions(reconnect_grace_s=15.0, sweep_interval_s=0.05, join_timeout_s=2.0,
                                          close_timeout_s=1.0), media=MEDIA) as h:
        v = Venues(h)
        venues_factory.append(v)
        chair = await v.join(Role.CHAIR, "tinh")
        b = await v.join(Role.VENUE, "tien-du")
        for bot in (chair, b):
            await bot.publish()
            await bot.subscribe()
        start = time.monotonic()
        await until(lambda: sees(chair, "tien-du", start) and sees(b, "tinh", start))
        before = dict(b.sources)
        old_participant = b.participant

        await b.drop()
        await b.close_media()  # the page lost everything: socket and peer connections
        await until(lambda: "room.venue_link_lost" in h.bus.types(), what="VenueLinkLost")
        lost = [e for e in h.bus.published if e.type == "room.venue_link_lost"]
        assert [getattr(e, "venue", None) for e in lost] == ["tien-du"]
        await chair.wait_for(lambda m: m["type"] == "media.link" and m["venue"] == "tien-du"
                             and m["state"] == "lost")

        await b.reconnect()
        assert b.welcome["resumed"] is True and b.participant == old_participant
        back = time.monotonic()
        await until(lambda: sees(chair, "tien-du", back), what="the chair sees tien-du again")
        await until(lambda: sees(b, "tinh", back), what="tien-du sees the chair again")
        assert b.sources == before
        await until(lambda: "room.venue_link_restored" in h.bus.types(), what="VenueLinkRestored")
        room = h.server.media.sfu_room(ROOM) if h.server.media else None
        assert room is not None
        assert len([p for p in room.participants if p.id.startswith(old_participant)]) == 1  # the old one closed
        assert not chair.of_type("presence.left")


async def test_bad_media_requests_get_typed_errors_and_the_connection_stays(venues_factory: list[Venues]) -> None:
    async with running_server(media=MEDIA) as h:
        v = Venues(h)
        venues_factory.append(v)
        b = await v.join(Role.VENUE, "tien-du")
        with pytest.raises(RequestRefused) as refused:
            await b.request({"type": "media.publish", "sdp": "v=0\r\nthis is not sdp\r\n"}, "media.publish_answer")
        assert refused.value.code == "invalid_sdp"
        with pytest.raises(RequestRefused) as refused:
            await b.request({"type": "media.answer", "sdp": "v=0\r\n"}, "media.never")
        assert refused.value.code == "media_state"
        with pytest.raises(RequestRefused) as refused:
            await b.request({"type": "media.ice", "role": "publisher", "candidate": "candidate:x"}, "media.never")
        assert refused.value.code in ("media_state", "invalid_candidate")
        await b.request({"type": "ping"}, "pong")  # still connected

        secretary = await v.join(Role.SECRETARY, None)
        with pytest.raises(RequestRefused) as refused:
            await secretary.request({"type": "media.publish", "sdp": "v=0\r\n"}, "media.publish_answer")
        assert refused.value.code == "forbidden"

        await b.publish()
        with pytest.raises(RequestRefused) as refused:
            await b.publish()  # the same connection, its link is up
        assert refused.value.code == "already_publishing"
        twin = await v.join(Role.VENUE, "tien-du", sub="user:venue:tien-du:2")
        with pytest.raises(RequestRefused) as refused:
            await twin.publish()  # another connection of the same venue
        assert refused.value.code == "already_publishing"

        chair = await v.join(Role.CHAIR, "tinh")
        await chair.send({"type": "room.lock"})
        await chair.wait_for(lambda m: m["type"] == "room.lock_changed")
        waiting = await v.join(Role.VENUE, "que-vo")
        assert waiting.welcome["status"] == "lobby" and not waiting.of_type("media.ice_servers")
        with pytest.raises(RequestRefused) as refused:
            await waiting.request({"type": "media.subscribe"}, "media.subscriber_offer")
        assert refused.value.code == "in_lobby"
        await chair.send({"type": "lobby.admit", "participant": waiting.participant})
        await waiting.wait_for(lambda m: m["type"] == "media.ice_servers")  # media once admitted


async def test_a_node_without_media_says_so() -> None:
    async with running_server(FAST) as h:
        bot = VenueBot(h.url, h.token(Role.VENUE, venue="tien-du"), name="no-media")
        await bot.connect()
        try:
            with pytest.raises(RequestRefused) as refused:
                await bot.request({"type": "media.subscribe"}, "media.subscriber_offer")
            assert refused.value.code == "media_unavailable"
        finally:
            await bot.close()


async def test_the_join_reply_tells_each_venue_that_may_publish_its_own_cap() -> None:
    """``welcome.max_kbps``: the session's cap for the venue, else the server's default; null for a
    connection that cannot publish and on a node without media."""
    async with running_server(media=MediaOptions(venue_max_kbps=1200)) as h:
        chair = await h.connect(h.token(Role.CHAIR, venue="tinh"))
        capped = await h.connect(h.token(Role.VENUE, venue="que-vo"))
        secretary = await h.connect(h.token(Role.SECRETARY))
        try:
            assert chair.welcome["max_kbps"] == 1200  # no cap in the session: the server's default
            assert capped.welcome["max_kbps"] == 600  # the session's cap for its weak link
            assert secretary.welcome["max_kbps"] is None  # no venue, no publish grant
        finally:
            for client in (chair, capped, secretary):
                await client.close()
    async with running_server(FAST) as h:
        venue = await h.connect(h.token(Role.VENUE, venue="que-vo"))
        try:
            assert venue.welcome["max_kbps"] is None  # nothing to publish to on this node
        finally:
            await venue.close()


async def test_stats_and_the_active_speaker_reach_the_room_and_a_venue_gone_for_good_frees_its_media(
        venues_factory: list[Venues]) -> None:
    registry = CollectorRegistry()
    async with running_server(media=MEDIA, metrics=registry) as h:
        v = Venues(h)
        venues_factory.append(v)
        chair = await v.join(Role.CHAIR, "tinh", tone=True)  # speaks: its packets carry audio levels
        b = await v.join(Role.VENUE, "tien-du")
        for bot in (chair, b):
            await bot.publish()
            await bot.subscribe()
        start = time.monotonic()
        await until(lambda: sees(chair, "tien-du", start))

        def healthy(m: dict[str, object]) -> bool:
            return m["type"] == "media.stats" and any(
                e["venue"] == "tien-du" and e["direction"] == "publication" and e["kind"] == "video"
                and e["bitrate_bps"] > 0 and e["fps"] > 0 for e in m["entries"])  # type: ignore[attr-defined]

        stats = await chair.wait_for(healthy)
        sub = [e for e in stats["entries"] if e["direction"] == "subscription" and e["venue"] == "tinh"]
        assert sub and {"loss", "rtt_ms", "jitter_ms", "keyframe_requests"} <= set(sub[0])
        assert not b.of_type("media.stats")  # moderators only
        labels = {"room": ROOM, "venue": "tien-du", "kind": "video", "direction": "publication"}
        assert (registry.get_sample_value("tiepdan_media_bitrate_bps", labels) or 0) > 0
        assert (registry.get_sample_value("tiepdan_media_packets", labels) or 0) > 0
        assert registry.get_sample_value("tiepdan_media_peer_connections") == 4
        await b.wait_for(lambda m: m["type"] == "media.active_speaker" and m["venue"] == "tinh")
        speakers = [e for e in h.bus.published if e.type == "room.active_speaker_changed"]
        assert [getattr(e, "venue", None) for e in speakers][:1] == ["tinh"]

        media = h.server.media
        assert media is not None
        await b.drop()
        await b.close_media()
        await chair.wait_for(lambda m: m["type"] == "presence.left" and m["reason"] == "timeout")
        await until(lambda: media.peer_connections == 2, what="tien-du's connections closed")
        room = media.sfu_room(ROOM)
        assert room is not None and [p.id.split(".")[0] for p in room.participants] == [chair.participant]
        await until(lambda: "tien-du" not in chair.sources.values())
        # at the next stats round the gone venue's series disappear
        await until(lambda: registry.get_sample_value("tiepdan_media_bitrate_bps", labels) is None,
                    what="tien-du's series removed")
