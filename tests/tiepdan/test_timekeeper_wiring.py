"""The timekeeper's wiring: its settings are checked (a lock TTL of at least three turns, no clock offset in
production); it runs supervised where the scheduler runs (embedded, control) under an in-process lock when
there is no Redis, follows the console's clock, and is stopped with its lock released at shutdown."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from schedules.timekeeper import Timekeeper
from signaling.leader import MemoryLeaderLock
from tiepdan.app import create_app


@pytest.mark.unit
def test_timekeeper_settings_need_a_lock_ttl_of_three_turns_and_no_clock_offset_in_production(
        make_settings: Callable[..., Any]) -> None:
    settings = make_settings()
    assert (settings.timekeeper_tick_s, settings.timekeeper_lock_ttl_s, settings.clock_offset_s) == (5.0, 30.0, 0.0)
    with pytest.raises(ValidationError, match="at least three times"):
        make_settings(timekeeper_tick_s=20)
    with pytest.raises(ValidationError, match="timekeeper_tick_s"):
        make_settings(timekeeper_tick_s=0)
    with pytest.raises(ValidationError, match="must be 0 in production"):
        make_settings(mode="production", clock_offset_s=3600)


@pytest.mark.integration
@pytest.mark.parametrize(("role", "keeping"), [("all", True), ("worker", False)])
async def test_the_timekeeper_runs_supervised_where_the_scheduler_runs_and_stops_with_the_app(
        make_settings: Callable[..., Any], role: str, keeping: bool) -> None:
    app = create_app(make_settings(process_role=role, clock_offset_s=86400.0))
    async with app.router.lifespan_context(app):
        supervisor = app.state.services.supervisor
        names = {s.name for s in supervisor.statuses()}
        assert ("timekeeper" in names) is keeping
        timekeeper: Timekeeper | None = getattr(app.state, "timekeeper", None)
        assert (timekeeper is not None) is keeping
        if timekeeper is not None:
            assert isinstance(timekeeper.lock, MemoryLeaderLock)  # no Redis: the process's own lock
            console = app.state.console
            assert console.clock() - time.time() == pytest.approx(86400.0, abs=5)  # TIEPDAN_CLOCK_OFFSET_S
            console.clock = lambda: 1_800_000_000.0  # a test's fake clock: the timekeeper reads the same
            report = await timekeeper.tick()
            assert report.leader and timekeeper.lock.held
            assert report.at == datetime.fromtimestamp(1_800_000_000.0, UTC)
    assert "timekeeper" not in {s.name for s in supervisor.statuses()}
    if timekeeper is not None:
        assert timekeeper.closed and timekeeper.lock.closed and not timekeeper.lock.held
