"""Tokens die with the console login session they were minted for: ``LoginSessionEnded`` on the bus ends
the session's connections (4006) and refuses its tokens, resume tokens and refreshes; nodes sharing a
Redis room store (another node of the consumer group, a restarted node) learn it from the store."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from signaling.events import LoginSessionEnded, UserDisabled
from signaling.grants import Role
from signaling.room import RedisRoomStore

from .room_harness import ROOM, Harness, running_server
from .test_room_ws import refused

pytestmark = pytest.mark.integration  # a real uvicorn server on loopback


def _sid() -> str:
    return secrets.token_hex(16)


def _venue_token(h: Harness, sid: str | None, *, sub: str = "user:7") -> str:
    return h.issuer.issue(sub, roles=[Role.VENUE], room=ROOM, venue="tien-du", sid=sid)


async def test_an_ended_login_session_closes_its_connection_and_refuses_its_tokens() -> None:
    async with running_server() as h:
        ended, other = _sid(), _sid()
        chair = await h.connect(h.token(Role.CHAIR, venue="tinh"))
        venue = await h.connect(_venue_token(h, ended), venue="tien-du")
        resume = venue.welcome["resume_token"]
        await chair.expect("presence.joined")
        bystander = await h.connect(_venue_token(h, other, sub="user:8"), venue="tien-du")

        await h.bus.publish(LoginSessionEnded(user="user:7", sid=ended))
        assert await venue.closed_with() == 4006
        left = await chair.expect("presence.left", participant=venue.participant)
        assert left["reason"] == "left"  # gone at once, not kept for a resume
        assert await refused(h, _venue_token(h, ended)) == (401, "token_revoked")

        # the same official signed in again (another login session): let in, but the old session's resume
        # token takes nothing back
        again = await h.connect(_venue_token(h, other), venue="tien-du", resume=resume)
        assert again.welcome["resumed"] is False
        assert (await again.expect("error"))["code"] == "resume_failed"
        await again.send({"type": "refresh", "id": "r1", "token": _venue_token(h, ended)})
        answer = await again.expect("error")
        assert (answer["code"], answer["detail"], answer["ref"]) == ("token_invalid", "token_revoked", "r1")
        await again.send({"type": "refresh", "id": "r2", "token": _venue_token(h, other)})
        await again.expect("token.refreshed")
        await bystander.send({"type": "ping", "id": "p"})
        assert (await bystander.expect("pong"))["ref"] == "p"  # other sessions go on
        for client in (chair, again, bystander):
            await client.close()


async def _closed_within(client_closed: asyncio.Task[int | None], deadline: float) -> int | None:
    async with asyncio.timeout(deadline):
        return await client_closed


async def _handshake(h: Harness, token: str) -> tuple[int, str]:
    """HTTP status and refusal code of a ``/ws`` handshake with ``token`` (101 and "" when accepted)."""
    try:
        async with websockets.connect(h.url, additional_headers={"Authorization": f"Bearer {token}"},
                                      open_timeout=5):
            return 101, ""
    except InvalidStatus as exc:
        return exc.response.status_code, json.loads(exc.response.body or b"{}").get("code", "")


async def _until_refused(h: Harness, token: str, expected: tuple[int, str], deadline: float) -> float:
    """Seconds until ``/ws`` refuses ``token`` with ``expected`` (polling; fails at ``deadline``)."""
    start = time.monotonic()
    while (seen := await _handshake(h, token)) != expected:
        if time.monotonic() - start > deadline:
            raise AssertionError(f"{seen} instead of {expected} after {deadline} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_nodes_sharing_the_redis_store_learn_what_another_node_consumed(
        redis_base_url: str, redis_prefix: str) -> None:
    """Two nodes of one consumer group: only the first gets the account events (its own bus here); the
    second closes its connections and refuses the tokens from the store's denylists, and so does a node
    started later."""
    ended = _sid()

    def store() -> RedisRoomStore:
        return RedisRoomStore.connect(redis_base_url, redis_prefix)

    async with running_server(store=store()) as first, \
            running_server(store=store(), keyring=first.keyring) as second:
        on_second = await second.connect(_venue_token(second, ended), venue="tien-du")
        disabled = await second.connect(_venue_token(second, _sid(), sub="user:9"), venue="tien-du")
        session_closed = asyncio.create_task(on_second.closed_with(timeout=10))
        account_closed = asyncio.create_task(disabled.closed_with(timeout=10))

        await first.bus.publish(LoginSessionEnded(user="user:7", sid=ended))
        await first.bus.publish(UserDisabled(user="user:9"))
        assert await _closed_within(session_closed, 5) == 4006
        assert await _closed_within(account_closed, 5) == 4005
        assert await _until_refused(second, _venue_token(second, ended), (401, "token_revoked"), 5) < 5
        assert await refused(second, _venue_token(second, None, sub="user:9")) == (403, "account_disabled")

    async with running_server(store=store(), keyring=first.keyring) as restarted:
        assert await refused(restarted, _venue_token(restarted, ended)) == (401, "token_revoked")
        assert await refused(restarted, _venue_token(restarted, None, sub="user:9")) == (403, "account_disabled")
        fresh = await restarted.connect(_venue_token(restarted, _sid()), venue="tien-du")
        assert fresh.welcome["status"] == "admitted"
        await fresh.close()
