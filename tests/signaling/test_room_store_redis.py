"""The Redis room-state store keeps the same contract as the memory store, under its key prefix."""

from __future__ import annotations

import pytest
import websockets
from redis.asyncio import Redis

from signaling.room import RedisRoomStore, StoreError
from signaling.room_state import RedisRoomStateReader, RoomStateError, RoomSummary

from .test_room_store import check_store_contract, sample_record

pytestmark = pytest.mark.integration


async def test_redis_store_keeps_the_contract(redis_base_url: str, redis_prefix: str) -> None:
    await check_store_contract(RedisRoomStore.connect(redis_base_url, redis_prefix))


async def test_redis_store_keeps_keys_under_its_prefix_and_reports_a_malformed_record(
        redis_base_url: str, redis_prefix: str) -> None:
    store = RedisRoomStore.connect(redis_base_url, redis_prefix)
    await store.save(sample_record("r1"))
    client = Redis.from_url(redis_base_url)
    try:
        keys = sorted(k.decode() for k in await client.keys(f"{redis_prefix}*"))
        assert keys == [f"{redis_prefix}room-summary:r1", f"{redis_prefix}room:r1", f"{redis_prefix}rooms"]
        await store.remember_disabled("user:9", 4102444800.0)
        await store.remember_ended_session("5e55101a" * 4, 4102444800.0)
        keys = sorted(k.decode() for k in await client.keys(f"{redis_prefix}*"))
        assert keys == [f"{redis_prefix}disabled-accounts", f"{redis_prefix}ended-login-sessions",
                        f"{redis_prefix}room-summary:r1", f"{redis_prefix}room:r1", f"{redis_prefix}rooms"]
        await client.delete(f"{redis_prefix}disabled-accounts", f"{redis_prefix}ended-login-sessions")
        keys = sorted(k.decode() for k in await client.keys(f"{redis_prefix}*"))
        assert keys == [f"{redis_prefix}room-summary:r1", f"{redis_prefix}room:r1", f"{redis_prefix}rooms"]
        await client.set(f"{redis_prefix}room:r1", "{broken")
        with pytest.raises(StoreError):
            await store.load_all()
    finally:
        await client.aclose()
        await store.close()


async def test_redis_outage_is_a_store_error() -> None:
    store = RedisRoomStore.connect("redis://127.0.0.1:1/0", "nowhere:")
    try:
        with pytest.raises(StoreError):
            await store.save(sample_record("r1"))
    finally:
        await store.close()


async def test_a_disabled_account_stays_refused_after_the_node_restarts(redis_base_url: str, redis_prefix: str) -> None:
    from evidence import Keyring
    from signaling.events import UserDisabled
    from signaling.grants import Role

    from .room_harness import running_server
    from .test_room_ws import refused

    keyring = Keyring.generate(dev=True)
    async with running_server(store=RedisRoomStore.connect(redis_base_url, redis_prefix), keyring=keyring) as h:
        token = h.token(Role.VENUE, venue="tien-du", sub="user:42")
        await h.bus.publish(UserDisabled(user="user:42"))
        assert await refused(h, token) == (403, "account_disabled")
    # a new process: the memory of the old one is gone, the store remembers
    async with running_server(store=RedisRoomStore.connect(redis_base_url, redis_prefix), keyring=keyring) as h:
        assert await refused(h, token) == (403, "account_disabled")
        other = h.token(Role.VENUE, venue="tien-du", sub="user:43")
        async with websockets.connect(h.url, additional_headers={"Authorization": f"Bearer {other}"},
                                      open_timeout=5):
            pass  # another account of the same venue is let in


async def test_the_room_summary_is_readable_from_redis_without_the_room_server(
        redis_base_url: str, redis_prefix: str) -> None:
    """What a control process reads (:mod:`signaling.room_state`): written with each record, gone with the room."""
    store = RedisRoomStore.connect(redis_base_url, redis_prefix)
    client = Redis.from_url(redis_base_url)
    reader = RedisRoomStateReader(client, redis_prefix)
    try:
        assert await reader.room_summary("r1") is None
        record = sample_record("r1")
        await store.save(record)
        # admitted: the chair (tinh) and pa (a); pb of venue a waits in the lobby of the locked room
        assert await reader.room_summary("r1") == RoomSummary(room="r1", connected_venues=("tinh", "a"),
                                                              version=record.version)
        await store.delete("r1")
        assert await reader.room_summary("r1") is None
        await client.set(f"{redis_prefix}room-summary:r1", "{broken")
        with pytest.raises(RoomStateError):
            await reader.room_summary("r1")
    finally:
        await client.delete(f"{redis_prefix}room-summary:r1")
        await client.aclose()
        await store.close()
    unreachable = Redis.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(RoomStateError):
            await RedisRoomStateReader(unreachable, "nowhere:").room_summary("r1")
    finally:
        await unreachable.aclose()
