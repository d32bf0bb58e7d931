"""The link watch's wiring: the link-lost threshold is the legal 5 s by default, everywhere it is set; the
watch runs under the supervisor where the scheduler runs (embedded, control) and not on a media node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from schedules import LINK_LOSS_PAUSE_AFTER
from signaling.room.media import MediaOptions
from tiepdan.app import create_app
from tiepdan.room_wiring import media_options


@pytest.mark.unit
def test_the_link_lost_threshold_is_the_legal_five_seconds_unless_a_test_lowers_it(
    make_settings: Callable[..., Any],
) -> None:
    legal = LINK_LOSS_PAUSE_AFTER.total_seconds()
    assert legal == 5.0
    assert MediaOptions().link_lost_after_s == legal
    assert make_settings().media_link_lost_after_s == legal
    assert media_options(make_settings()).link_lost_after_s == legal
    assert media_options(make_settings(media_link_lost_after_s=1.0)).link_lost_after_s == 1.0
    for bad in (0.1, 0, -5, 61):
        with pytest.raises(ValidationError, match="media_link_lost_after_s"):
            make_settings(media_link_lost_after_s=bad)


@pytest.mark.integration
@pytest.mark.parametrize(("role", "watching"), [("all", True), ("control", True), ("worker", False)])
async def test_the_link_watch_runs_supervised_where_the_scheduler_runs(
    make_settings: Callable[..., Any], role: str, watching: bool,
) -> None:
    app = create_app(make_settings(process_role=role))
    async with app.router.lifespan_context(app):
        supervisor = app.state.services.supervisor
        names = {s.name for s in supervisor.statuses()}
        assert ("schedules-link-watch" in names) is watching
        if watching:
            (status,) = [s for s in supervisor.statuses() if s.name == "schedules-link-watch"]
            assert status.state == "running" and status.crashes == 0
    assert "schedules-link-watch" not in {s.name for s in supervisor.statuses()}
