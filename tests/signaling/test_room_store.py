"""The room-state store contract, on the memory store (the Redis store runs the same contract in
test_room_store_redis.py)."""

from __future__ import annotations

import pytest

from signaling.events import VenueInfo
from signaling.protocol import FloorGive, HandRaise, RoomLock
from signaling.room import MemoryRoomStore, Room, RoomRecord, RoomStore, StoreError
from signaling.room.moderation import Identity

pytestmark = pytest.mark.unit


def sample_record(room_id: str = "r1") -> RoomRecord:
    room = Room(room_id, (VenueInfo(venue="tinh", name="Tỉnh", main=True), VenueInfo(venue="a", name="Xã A")))
    room.join("chair", Identity("u:chair", ("chair",), "tinh", "Chủ trì"), 0)
    room.join("pa", Identity("u:a", ("venue",), "a"), 0)
    room.act("chair", FloorGive(venue="a"), 1)
    room.act("pa", HandRaise(), 2)
    room.act("chair", RoomLock(), 3)
    room.join("pb", Identity("u:b", ("venue",), "a"), 4)
    return room.record()


async def check_store_contract(store: RoomStore) -> None:
    assert await store.load_all() == []
    first, second = sample_record("r1"), sample_record("r2")
    await store.save(first)
    await store.save(second)
    assert sorted(await store.load_all(), key=lambda r: r.room) == [first, second]
    changed = first.model_copy(update={"floor": "tinh", "version": first.version + 1})
    await store.save(changed)
    assert {r.room: r for r in await store.load_all()}["r1"] == changed
    await store.delete("r2")
    await store.delete("r2")
    assert await store.load_all() == [changed]
    restored = Room.restore(changed, 50)
    assert restored.floor == "tinh" and restored.hands == ["pa"] and restored.locked and restored.lobby == ["pb"]
    await store.remember_disabled("user:1", 1000.0)
    await store.remember_disabled("user:2", 2000.0)
    await store.remember_disabled("user:2", 1500.0)  # disabled again: the later expiry stays
    assert await store.load_disabled(900.0) == {"user:1": 1000.0, "user:2": 2000.0}
    assert await store.load_disabled(1200.0) == {"user:2": 2000.0}  # user:1 forgotten after its time
    assert await store.load_disabled(900.0) == {"user:2": 2000.0}
    await store.remember_ended_session("5e55101a" * 4, 1000.0)
    await store.remember_ended_session("0ther5e5" * 4, 2000.0)
    await store.remember_ended_session("0ther5e5" * 4, 1500.0)  # told twice: the later expiry stays
    assert await store.load_ended_sessions(900.0) == {"5e55101a" * 4: 1000.0, "0ther5e5" * 4: 2000.0}
    assert await store.load_ended_sessions(1200.0) == {"0ther5e5" * 4: 2000.0}
    assert await store.load_disabled(900.0) == {"user:2": 2000.0}  # the two denylists are apart
    await store.close()
    await store.close()
    assert store.closed
    with pytest.raises(StoreError):
        await store.save(first)
    with pytest.raises(StoreError):
        await store.load_all()


async def test_memory_store_keeps_the_contract() -> None:
    await check_store_contract(MemoryRoomStore())


async def test_the_memory_store_is_the_embedded_modes_reader_of_the_room_summary() -> None:
    from signaling.room_state import RoomStateReader, RoomSummary

    store = MemoryRoomStore()
    assert isinstance(store, RoomStateReader)
    assert await store.room_summary("r1") is None
    record = sample_record("r1")
    await store.save(record)
    # admitted: the chair (tinh) and pa (a); pb of venue a waits in the lobby of the locked room
    assert await store.room_summary("r1") == RoomSummary(room="r1", connected_venues=("tinh", "a"),
                                                         version=record.version)
    await store.delete("r1")
    assert await store.room_summary("r1") is None
