"""The accounts repository on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from room_console import accounts
from room_console.errors import InvalidCredentials, InvitationInvalid, LoginRateLimited, UsernameTaken, UserNotFound
from room_console.options import ConsoleOptions
from signaling.grants import Role
from tiepdan.db import make_engine, prepare_database

from ._helpers import PASSWORD, outbox_texts

pytestmark = pytest.mark.integration

OPTIONS = ConsoleOptions()
NOW = 1_795_000_000.0


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    await prepare_database(eng)
    yield eng
    await eng.dispose()


async def _add(engine: AsyncEngine, username: str = "chutri") -> accounts.User:
    return await accounts.add_user(engine, username=username, display_name="Trần Văn Chủ", roles=["chair"],
                                   password=PASSWORD, options=OPTIONS, now=NOW, venue="main")


async def test_login_opens_a_session_that_only_its_hash_finds(engine: AsyncEngine) -> None:
    user = await _add(engine)
    result = await accounts.login(engine, username="chutri", password=PASSWORD, client_ip="10.0.0.1",
                                  options=OPTIONS, now=NOW)
    async with engine.begin() as conn:
        found = await accounts.session_user(conn, result.session_id, now=NOW + 1, options=OPTIONS)
        assert found is not None and found.id == user.id and found.roles == (Role.CHAIR,)
        assert await accounts.session_user(conn, accounts.secret_hash(result.session_id), now=NOW,
                                           options=OPTIONS) is None


async def test_duplicate_username_is_refused_and_the_first_account_is_untouched(engine: AsyncEngine) -> None:
    first = await _add(engine)
    with pytest.raises(UsernameTaken):
        await _add(engine, "ChuTri")
    async with engine.connect() as conn:
        assert [u.id for u in await accounts.list_users(conn)] == [first.id]


async def test_disable_deletes_sessions_and_writes_one_outbox_event_in_the_same_transaction(
    engine: AsyncEngine,
) -> None:
    user = await _add(engine)
    session = (await accounts.login(engine, username="chutri", password=PASSWORD, client_ip="10.0.0.1",
                                    options=OPTIONS, now=NOW)).session_id
    async with engine.begin() as conn:
        await accounts.disable_user(conn, user.id, now=NOW)
        await accounts.disable_user(conn, user.id, now=NOW)  # idempotent: no second event
    async with engine.begin() as conn:
        assert await accounts.count_sessions(conn, user.id) == 0
        assert await accounts.session_user(conn, session, now=NOW, options=OPTIONS) is None
    events = [r for r in await outbox_texts(engine) if "account.user_disabled" in r]
    assert len(events) == 1 and user.id in events[0]
    with pytest.raises(InvalidCredentials):
        await accounts.login(engine, username="chutri", password=PASSWORD, client_ip="10.0.0.2",
                             options=OPTIONS, now=NOW)


async def test_disable_rolls_back_with_its_transaction(engine: AsyncEngine) -> None:
    user = await _add(engine)
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await accounts.disable_user(conn, user.id, now=NOW)
            raise RuntimeError("the caller's transaction fails")
    async with engine.connect() as conn:
        found = await accounts.get_user(conn, user.id)
    assert found is not None and not found.disabled
    assert not [r for r in await outbox_texts(engine) if "account.user_disabled" in r]


async def test_disabling_an_unknown_user_is_a_typed_error(engine: AsyncEngine) -> None:
    with pytest.raises(UserNotFound):
        async with engine.begin() as conn:
            await accounts.disable_user(conn, "nobody", now=NOW)


async def test_throttle_counts_in_the_database_across_engines_and_spares_other_addresses(
    engine: AsyncEngine, database_url: str,
) -> None:
    await _add(engine)
    other = make_engine(database_url)  # another process would have its own engine
    try:
        for i in range(OPTIONS.login_free_failures):
            with pytest.raises(InvalidCredentials):
                await accounts.login(engine if i % 2 else other, username="chutri", password="sai-mat-khau-roi",
                                     client_ip="10.0.0.1", options=OPTIONS, now=NOW + i)
        last = NOW + OPTIONS.login_free_failures - 1
        with pytest.raises(LoginRateLimited) as limited:  # the right password waits too from that address
            await accounts.login(engine, username="chutri", password=PASSWORD, client_ip="10.0.0.1",
                                 options=OPTIONS, now=last + 1)
        assert limited.value.retry_after == 1  # 2 s after the last failure, 1 s of it gone
        elsewhere = await accounts.login(other, username="chutri", password=PASSWORD, client_ip="10.0.0.9",
                                         options=OPTIONS, now=last + 1)
        assert elsewhere.user.username == "chutri"
        again = await accounts.login(other, username="chutri", password=PASSWORD, client_ip="10.0.0.1",
                                     options=OPTIONS, now=last + 2)
        assert again.user.username == "chutri"
    finally:
        await other.dispose()


async def test_a_success_from_the_address_starts_its_backoff_over(engine: AsyncEngine) -> None:
    await _add(engine)
    now = NOW
    for _ in range(OPTIONS.login_free_failures):
        with pytest.raises(InvalidCredentials):
            await accounts.login(engine, username="chutri", password="sai-mat-khau-roi", client_ip="10.0.0.1",
                                 options=OPTIONS, now=now)
    now += 2
    await accounts.login(engine, username="chutri", password=PASSWORD, client_ip="10.0.0.1", options=OPTIONS, now=now)
    for _ in range(OPTIONS.login_free_failures):  # free again, with no wait in between
        with pytest.raises(InvalidCredentials):
            await accounts.login(engine, username="chutri", password="sai-mat-khau-roi", client_ip="10.0.0.1",
                                 options=OPTIONS, now=now)


async def test_parallel_wrong_guesses_cannot_slip_past_the_limit(engine: AsyncEngine) -> None:
    await _add(engine)

    async def guess(i: int) -> str:
        try:
            await accounts.login(engine, username="chutri", password=f"sai-mat-khau-{i}", client_ip="10.0.0.1",
                                 options=OPTIONS, now=NOW)
        except (InvalidCredentials, LoginRateLimited) as exc:
            return type(exc).__name__
        return "ok"

    results = await asyncio.gather(*(guess(i) for i in range(12)))
    assert results.count("InvalidCredentials") <= OPTIONS.login_free_failures
    assert results.count("LoginRateLimited") >= 12 - OPTIONS.login_free_failures


async def test_invitation_is_single_use_even_when_two_accept_at_once(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        token = await accounts.create_invitation(
            conn, username="diemcau", display_name="Phạm Văn Điểm", role=Role.VENUE, venue="tien-du", unit=None,
            created_by=None, now=NOW, ttl_s=3600)
    outcomes = await asyncio.gather(
        *(accounts.accept_invitation(engine, token, password=PASSWORD, options=OPTIONS, now=NOW + 1)
          for _ in range(2)), return_exceptions=True)
    made = [o for o in outcomes if isinstance(o, accounts.User)]
    assert len(made) == 1 and made[0].venue == "tien-du" and made[0].roles == (Role.VENUE,)
    assert all(isinstance(o, (InvitationInvalid, UsernameTaken)) for o in outcomes if o is not made[0])
    with pytest.raises(InvitationInvalid):
        await accounts.accept_invitation(engine, token, password=PASSWORD, options=OPTIONS, now=NOW + 2)


async def test_setup_invitation_exists_only_while_there_is_no_account(engine: AsyncEngine) -> None:
    first = await accounts.create_setup_invitation(engine, now=NOW, ttl_s=600)
    second = await accounts.create_setup_invitation(engine, now=NOW, ttl_s=600)
    assert first and second and first != second
    with pytest.raises(InvitationInvalid):  # only the link printed last works
        await accounts.accept_invitation(engine, first, password=PASSWORD, options=OPTIONS, now=NOW)
    admin = await accounts.accept_invitation(engine, second, password=PASSWORD, options=OPTIONS, now=NOW)
    assert admin.roles == (Role.ADMIN,) and admin.username == "admin"
    assert await accounts.create_setup_invitation(engine, now=NOW, ttl_s=600) is None
