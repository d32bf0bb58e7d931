"""Venues as data (SQLite and PostgreSQL): the Bắc Ninh sample, create, update with a version, deactivate,
delete only what no session used, grants and bad input."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from schedules import (
    SAMPLE_VENUES,
    ConcurrentChange,
    InvalidArgument,
    NotPermitted,
    UnknownVenue,
    VenueChoice,
    VenueDraft,
    VenueExists,
    VenueInUse,
    VenueLevel,
    create_venue,
    delete_venue,
    get_venue,
    install_sample_venues,
    list_venues,
    update_venue,
)

from .conftest import ACTOR, ADMIN, CHAIR, DESK, FakeClock, audit_actions, plan

pytestmark = pytest.mark.integration


async def test_sample_is_the_main_venue_and_eight_communes_of_bac_ninh_with_new_and_old_codes(
    engine: AsyncEngine, clock: FakeClock,
) -> None:
    async with engine.begin() as conn:
        created = await install_sample_venues(conn, actor=ACTOR, grants=ADMIN, clock=clock)
    assert len(created) == 9 and created == tuple(v.id for v in SAMPLE_VENUES)
    async with engine.connect() as conn:
        listed = await list_venues(conn)
    assert listed[0].id == "tru-so-tinh" and listed[0].level is VenueLevel.MAIN
    assert (listed[0].admin_code, listed[0].old_admin_codes) == ("24", ("24", "27"))  # Bắc Giang 24 + Bắc Ninh 27
    communes = listed[1:]
    assert len(communes) == 8 and all(v.level in (VenueLevel.COMMUNE, VenueLevel.WARD) for v in communes)
    for venue in communes:
        assert venue.admin_code is not None and len(venue.admin_code) == 5 and venue.admin_code.startswith("09")
        assert len(venue.old_admin_codes) >= 3  # each was merged from at least three former units
    tien_du = next(v for v in listed if v.id == "xa-tien-du")
    assert (tien_du.name, tien_du.admin_code) == ("Xã Tiên Du", "09319")
    assert set(tien_du.old_admin_codes) == {"09319", "09322", "09328"}  # thị trấn Lim, xã Phú Lâm, xã Nội Duệ
    async with engine.begin() as conn:  # a table that holds venues is left alone
        assert await install_sample_venues(conn, actor=ACTOR, grants=ADMIN, clock=clock) == ()


async def test_a_venue_is_created_edited_with_its_version_and_a_stale_edit_is_refused(
    engine: AsyncEngine, clock: FakeClock,
) -> None:
    draft = VenueDraft("xa-tan-chi", "  Xã   Tân Chi ", VenueLevel.COMMUNE, "09343", ("09343", "09352"))
    async with engine.begin() as conn:
        venue = await create_venue(conn, draft, actor=ACTOR, grants=ADMIN, clock=clock)
    assert (venue.name, venue.version, venue.max_kbps, venue.active) == ("Xã Tân Chi", 1, None, True)
    with pytest.raises(VenueExists):
        async with engine.begin() as conn:
            await create_venue(conn, draft, actor=ACTOR, grants=ADMIN, clock=clock)
    clock.advance(minutes=5)
    async with engine.begin() as conn:
        edited = await update_venue(conn, "xa-tan-chi", expected_version=1, changes={"max_kbps": 600},
                                    actor=ACTOR, grants=ADMIN, clock=clock)
    assert (edited.max_kbps, edited.version, edited.updated_at) == (600, 2, clock.now)
    async with engine.begin() as conn:  # the same value again changes nothing
        same = await update_venue(conn, "xa-tan-chi", expected_version=2, changes={"max_kbps": 600},
                                  actor=ACTOR, grants=ADMIN, clock=clock)
    assert same.version == 2
    with pytest.raises(ConcurrentChange) as stale:
        async with engine.begin() as conn:
            await update_venue(conn, "xa-tan-chi", expected_version=1, changes={"name": "Xã Lạc Vệ"},
                               actor=ACTOR, grants=ADMIN, clock=clock)
    assert (stale.value.current, stale.value.expected) == (2, 1)
    async with engine.connect() as conn:
        assert (await get_venue(conn, "xa-tan-chi")).name == "Xã Tân Chi"
    assert [a for a, _, _ in await audit_actions(engine)] == ["venue.created", "venue.updated"]


async def test_a_venue_a_session_used_is_deactivated_not_deleted_and_is_then_not_offered(
    engine: AsyncEngine, clock: FakeClock,
) -> None:
    async with engine.begin() as conn:
        await install_sample_venues(conn, actor=ACTOR, grants=ADMIN, clock=clock)
        await plan(conn, clock, "phien-thu", date(2026, 12, 20),
                   venues=[VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du")])
    with pytest.raises(VenueInUse, match="ngừng hoạt động"):
        async with engine.begin() as conn:
            await delete_venue(conn, "xa-tien-du", actor=ACTOR, grants=ADMIN, clock=clock)
    async with engine.begin() as conn:
        await update_venue(conn, "xa-tien-du", expected_version=1, changes={"active": False}, actor=ACTOR,
                           grants=ADMIN, clock=clock)
        await delete_venue(conn, "xa-luong-tai", actor=ACTOR, grants=ADMIN, clock=clock)
    async with engine.connect() as conn:
        active = {v.id for v in await list_venues(conn, active_only=True)}
        with pytest.raises(UnknownVenue):
            await get_venue(conn, "xa-luong-tai")
    assert "xa-tien-du" not in active and "tru-so-tinh" in active
    with pytest.raises(InvalidArgument, match="ngừng hoạt động"):
        async with engine.begin() as conn:
            await plan(conn, clock, "phien-khac", date(2026, 12, 21),
                       venues=[VenueChoice("tru-so-tinh"), VenueChoice("xa-tien-du")])


@pytest.mark.parametrize("grants", [CHAIR, DESK])
async def test_only_the_manage_grant_changes_venues(engine: AsyncEngine, clock: FakeClock,
                                                     grants: frozenset[object]) -> None:
    with pytest.raises(NotPermitted):
        async with engine.begin() as conn:
            await create_venue(conn, VenueDraft("xa-a", "Xã A"), actor=ACTOR, grants=grants,  # type: ignore[arg-type]
                               clock=clock)
    async with engine.connect() as conn:
        assert await list_venues(conn) == ()


@pytest.mark.parametrize(("draft", "code"), [
    (VenueDraft("Xã A", "Xã A"), "bad_venue_id"),
    (VenueDraft("xa-a", "   "), "bad_venue_name"),
    (VenueDraft("xa-a", "Xã\x07A"), "bad_venue_name"),
    (VenueDraft("xa-a", "Xã A", admin_code="9319"), "bad_admin_code"),
    (VenueDraft("xa-a", "Xã A", old_admin_codes=("0931x",)), "bad_admin_code"),
    (VenueDraft("xa-a", "Xã A", max_kbps=50), "bad_max_kbps"),
    (VenueDraft("xa-a", "Xã A", max_kbps=True), "bad_max_kbps"),  # type: ignore[arg-type]
])
async def test_bad_venue_input_is_refused_with_its_code(engine: AsyncEngine, clock: FakeClock, draft: VenueDraft,
                                                        code: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        async with engine.begin() as conn:
            await create_venue(conn, draft, actor=ACTOR, grants=ADMIN, clock=clock)
    assert refused.value.code == code
