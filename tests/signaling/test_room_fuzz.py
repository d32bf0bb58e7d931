"""Random input never crashes the room server and never disturbs the other peers (hypothesis)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling.events import VenueInfo
from signaling.grants import Role
from signaling.protocol import CLIENT_MESSAGE_TYPES, parse_client_message
from signaling.room import RoomOptions
from signaling.room.moderation import Identity, Room

from .test_room_server import MemoryTransport, attach, make_server

pytestmark = pytest.mark.unit

VENUES = (VenueInfo(venue="tinh", name="Tỉnh", main=True), VenueInfo(venue="a", name="Xã A"),
          VenueInfo(venue="b", name="Xã B"))
IDS = st.sampled_from(["chair", "pa", "pb", "sec", "ghost", "p-1", ""])
SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=12) | IDS
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
MESSAGES = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(CLIENT_MESSAGE_TYPES)) | st.text(max_size=10)},
    optional={"venue": st.sampled_from(["tinh", "a", "b", "nowhere"]) | SCALARS, "participant": IDS | SCALARS,
              "muted": st.booleans() | SCALARS, "protocol": st.integers(0, 3), "id": SCALARS, "token": SCALARS},
)
FRAMES = st.one_of(MESSAGES.map(json.dumps), JSON.map(json.dumps), st.text(max_size=40),
                   st.binary(max_size=40))


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["chair", "pa", "pb", "sec"]), MESSAGES), max_size=25))
def test_random_acts_keep_the_room_consistent(steps: list[tuple[str, dict[str, Any]]]) -> None:
    room = Room("r1", VENUES)
    room.join("chair", Identity("u:chair", ("chair",), "tinh"), 0)
    room.join("pa", Identity("u:a", ("venue",), "a"), 0)
    room.join("pb", Identity("u:b", ("venue",), "b"), 0)
    room.join("sec", Identity("u:sec", ("secretary",), None), 0)
    for now, (actor, raw) in enumerate(steps):
        try:
            message = parse_client_message(json.dumps(raw))
        except ValueError:
            continue
        if actor in room.members:
            room.act(actor, message, float(now))
        assert room.floor in {"tinh", "a", "b"}
        assert len(set(room.hands)) == len(room.hands) and set(room.hands) <= set(room.members)
        assert set(room.lobby) == {p for p, m in room.members.items() if m.status == "lobby"}
        assert room.members["chair"].status == "admitted"
        assert Room.restore(room.record(), 0).record() == room.record()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(FRAMES, min_size=1, max_size=15))
def test_random_frames_never_crash_the_server_or_disturb_other_peers(frames: list[str | bytes]) -> None:
    asyncio.run(_frames_scenario(frames))


async def _frames_scenario(frames: list[str | bytes]) -> None:
    server, issuer = await make_server(RoomOptions(join_timeout_s=5, close_timeout_s=0.2))
    observer, fuzzer = MemoryTransport(), MemoryTransport()
    tasks = [await attach(server, issuer, observer, Role.CHAIR, "tinh"),
             await attach(server, issuer, fuzzer, Role.VENUE, "a")]
    for frame in frames:
        key = "bytes" if isinstance(frame, bytes) else "text"
        fuzzer.inbound.put_nowait({"type": "websocket.receive", key: frame})
    fuzzer.push({"type": "ping", "id": "fuzz-end"})
    observer.push({"type": "ping", "id": "still-served"})
    async with asyncio.timeout(3):
        while not any(m.get("ref") == "still-served" for m in observer.sent):
            await asyncio.sleep(0.002)
        while fuzzer.closed_code is None and not any(m.get("ref") == "fuzz-end" for m in fuzzer.sent):
            await asyncio.sleep(0.002)
    assert observer.closed_code is None
    assert all(m["type"] != "error" or m["code"] != "internal" for m in fuzzer.sent)
    assert fuzzer.closed_code in (None, 1000, 4003)  # a random "leave" or "join" as another venue
    await server.close()
    await asyncio.gather(*tasks)
