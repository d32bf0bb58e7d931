"""The chair's «Điểm cầu đã kết nối lại» over HTTP (``POST /api/sessions/{id}/queue/venues/{venue}/back``): the
chair puts a venue marked lost back in the call order (audited with the chair's id, the paused case stays
paused), and everyone else, a missing CSRF token and every bad input get a clear refusal that changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from complaints.tables import audit_events
from room_console.context import ConsoleContext
from room_console.i18n import catalogue
from schedules.link_loss import LinkOutcome, LinkState

from ..schedules.conftest import FakeClock
from .test_queue_api import ROOM, app, clock, prepare, signed
from .test_queue_links_api import link

__all__ = ["app", "clock"]  # the fixtures, shared with the queue API's tests

BACK = f"/api/sessions/{ROOM}/queue/venues/{{venue}}/back"


async def venue_link_rows(ctx: ConsoleContext) -> list[tuple[str, dict[str, Any]]]:
    async with ctx.engine.connect() as conn:
        rows = (await conn.execute(select(audit_events.c.actor, audit_events.c.detail)
                                   .where(audit_events.c.action == "queue.venue_link")
                                   .order_by(audit_events.c.id))).all()
    return [(r[0], dict(r[1])) for r in rows]


@pytest.mark.integration
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the service runs on both in tests/schedules
async def test_the_chair_says_a_lost_venue_is_back_and_others_are_refused(app: FastAPI, clock: FakeClock) -> None:
    ctx: ConsoleContext = app.state.console
    await prepare(ctx, clock, ["xa-tien-du", "phuong-que-vo"])
    chair = await signed(app, "chutri")
    assert (await chair.post(f"/api/sessions/{ROOM}/queue/call-next")).status_code == 200
    assert await link(ctx, clock, "xa-tien-du", LinkState.LOST) is LinkOutcome.PAUSED
    shown = (await chair.get(f"/api/sessions/{ROOM}/queue")).json()
    assert [v["venue"] for v in shown["unavailable_venues"]] == ["xa-tien-du"]

    for username in ("thuky", "diemcau"):  # the secretary runs the queue; a venue operator does not
        other = await signed(app, username)
        refused = await other.post(BACK.format(venue="xa-tien-du"), {"expected_version": shown["version"]})
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "forbidden" and "chủ trì" in refused.json()["message"]
    no_csrf = await chair.http.post(BACK.format(venue="xa-tien-du"), json={})
    assert no_csrf.status_code == 403
    stale = await chair.post(BACK.format(venue="xa-tien-du"), {"expected_version": shown["version"] - 1})
    assert stale.status_code == 409 and stale.json()["error"] == "stale_version"
    assert stale.json()["current_version"] == shown["version"]
    assert await venue_link_rows(ctx) == [(await venue_link_rows(ctx))[0]]  # only the link watch's row so far

    done = await chair.post(BACK.format(venue="xa-tien-du"), {"expected_version": shown["version"]})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["outcome"] == "available" and body["unavailable_venues"] == []
    assert body["paused"] is True and body["actions"]["resume"]  # the chair resumes the case separately
    assert body["version"] == shown["version"] + 1 and done.headers["cache-control"] == "no-store"
    actor, detail = (await venue_link_rows(ctx))[-1]
    assert actor.startswith("user:") and actor != "service:schedules-link-watch"
    assert (detail["venue"], detail["outcome"], detail["by"]) == ("xa-tien-du", "available", "chair")

    again = await chair.post(BACK.format(venue="xa-tien-du"))
    assert again.status_code == 409 and again.json()["error"] == "venue_not_lost"
    assert "Xã Tiên Du" in again.json()["message"]


@pytest.mark.integration
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_bad_requests_get_a_reason_and_change_nothing(app: FastAPI, clock: FakeClock) -> None:
    ctx: ConsoleContext = app.state.console
    await prepare(ctx, clock, ["xa-tien-du"])
    chair = await signed(app, "chutri")
    assert await link(ctx, clock, "phuong-que-vo", LinkState.LOST) is LinkOutcome.UNAVAILABLE
    version = (await chair.get(f"/api/sessions/{ROOM}/queue")).json()["version"]
    cases: list[tuple[str, Any, int, str]] = [
        (BACK.format(venue="Xa-Tien-Du"), None, 422, "bad_venue"),
        (BACK.format(venue="xa-gia-binh"), None, 404, "unknown_venue"),
        (BACK.format(venue="xa-tien-du"), None, 409, "venue_not_lost"),
        ("/api/sessions/phien-khong-co/queue/venues/xa-tien-du/back", None, 404, "unknown_session"),
        ("/api/sessions/PHIEN/queue/venues/xa-tien-du/back", None, 404, "unknown_session"),
    ]
    for url, body, status, code in cases:
        answer = await chair.post(url, body)
        assert (answer.status_code, answer.json()["error"]) == (status, code), url
        assert answer.json()["message"].strip()
    for body in ({"expected_version": "một"}, {"expected_version": -1}, {"venue": "xa-tien-du"}):
        answer = await chair.post(BACK.format(venue="phuong-que-vo"), body)
        assert answer.status_code == 422, body
    raw = await chair.http.post(BACK.format(venue="phuong-que-vo"), content=b"{not json",
                                headers={"x-csrf-token": chair.csrf, "content-type": "application/json"})
    assert raw.status_code == 422
    shown = (await chair.get(f"/api/sessions/{ROOM}/queue")).json()
    assert shown["version"] == version and [v["venue"] for v in shown["unavailable_venues"]] == ["phuong-que-vo"]
    anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    async with anonymous:
        assert (await anonymous.post(BACK.format(venue="phuong-que-vo"), json={})).status_code in (401, 403)


@pytest.mark.unit
def test_the_button_and_its_texts_are_in_the_catalogue_with_diacritics() -> None:
    texts = catalogue()
    assert texts.t("live.queue.venue_back") == "Điểm cầu đã kết nối lại"
    assert "{venue}" in texts.t("live.queue.venue_back_title") and "Tiếp tục" in texts.t("live.queue.venue_back_title")
    done = texts.t("live.queue.venue_back_done", venue="Xã Tiên Du")
    assert done == "Đã xác nhận điểm cầu Xã Tiên Du đã kết nối lại."
