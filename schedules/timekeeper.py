"""The timekeeper: the background loop that opens and closes reception sessions on time.

Theory of operation
-------------------
One :class:`Timekeeper` per process (roles ``all`` and ``control``), run by the process supervisor
(:meth:`Timekeeper.run` is the supervised loop, ``timekeeper`` in ``/metrics`` and ``/healthz``). Every
``tick_s`` seconds of the injected sleep it:

1. takes or renews its leader lock (:mod:`signaling.leader`: Redis when configured, else the
   process's own table). A process that does not hold the lock does nothing else this turn;
2. reads the injected clock and compares it with the previous turn: a reading earlier than the last
   one, or later by more than :attr:`TimekeeperOptions.jump_after_s` beyond the tick, is a clock jump,
   logged (``clock_jump``) and counted (``tiepdan_timekeeper_clock_jumps_total{direction}``);
3. lists the sessions the clock may concern (published, open or in progress, on or before today in
   Vietnam) with whether a case is being heard, and asks the pure policy (:func:`schedules.timekeeping.due`)
   what is due for each;
4. for ``open`` and ``close`` — only while the lock is still :attr:`~signaling.leader.LeaderLock.held`,
   checked before each action, so a holder that lost its lock stops at once — calls the service function
   (:func:`schedules.sessions.open_session` / :func:`~schedules.sessions.close_session`) in its own
   transaction with the version it read as ``expected_version``, as the actor :data:`TIMEKEEPER_ACTOR`
   with the grant ``call_queue``. A refusal is not a crash: another actor got there first
   (``stale_version``, ``illegal_transition``), a case was called meanwhile (``case_in_progress``: the
   close waits), or the clock is refused by the state machine (``clock_went_backwards``,
   ``not_session_day``): each is logged with the session id and counted in
   ``tiepdan_timekeeper_refusals_total{code}``, and the next turn decides again;
5. logs once per session and state what it does not do by itself (``missed``, ``not_started``,
   ``hold_for_case``, ``clock_behind``) and counts it in ``tiepdan_timekeeper_verdicts_total{verdict}``.

Everything it knows is read again from the database each turn, so a restart (or another process taking
the lock over) carries on where the last holder stopped; acting twice is impossible because each
transition is taken on the row with its version. A database error ends the turn with an exception: the
supervisor logs it, turns ``/healthz`` degraded and restarts the loop with backoff.

:meth:`close` (idempotent) stops acting, and releases the lock; the composition root stops the
supervised task first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from signaling.grants import Grant
from signaling.leader import LeaderLock

from ._clock import local_day
from ._service import Clock, now_of
from .errors import SchedulesError
from .session_state import SessionAction, SessionState
from .sessions import close_session, get_session, open_session
from .tables import reception_sessions, session_queues
from .timekeeping import Due, Verdict, due

__all__ = ["TIMEKEEPER_ACTOR", "TickReport", "Timekeeper", "TimekeeperMetrics", "TimekeeperOptions"]

log = logging.getLogger("schedules.timekeeper")

#: Who the audit log and the events name for a transition made on time.
TIMEKEEPER_ACTOR = "service:timekeeper"
_GRANTS = frozenset({Grant.CALL_QUEUE})
_CANDIDATE_STATES = (SessionState.PUBLISHED.value, SessionState.OPEN.value, SessionState.IN_PROGRESS.value)
_REPORTED = frozenset({Verdict.MISSED, Verdict.NOT_STARTED, Verdict.HOLD_FOR_CASE, Verdict.CLOCK_BEHIND})
#: Another actor was first, or a case was called meanwhile: the next turn decides again.
_EXPECTED_REFUSALS = frozenset({"stale_version", "illegal_transition", "case_in_progress"})

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class TimekeeperOptions:
    """``tick_s``: seconds between turns; ``jump_after_s``: a reading later than the previous turn by
    more than the tick plus this is a forward clock jump. The lock's TTL must cover three turns."""

    tick_s: float = 5.0
    jump_after_s: float = 300.0

    def __post_init__(self) -> None:
        if not 0.01 <= self.tick_s <= 300:
            raise ValueError("tick_s must be between 0.01 and 300 seconds")
        if self.jump_after_s <= 0:
            raise ValueError("jump_after_s must be positive")


@dataclass
class TickReport:
    """What one turn did: the clock reading it acted on (as leader), the sessions opened and closed, the
    refusals by code and the verdict for each session considered."""

    leader: bool
    at: datetime | None = None
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    clock_jump: str | None = None


class TimekeeperMetrics:
    """The timekeeper's series in ``registry`` (one per registry: a restarted timekeeper reuses them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.transitions = Counter("tiepdan_timekeeper_transitions", "Sessions opened or closed on time",
                                   ["action"], registry=registry)
        self.refusals = Counter("tiepdan_timekeeper_refusals", "Transitions on time the scheduler refused "
                                "(another actor first, clock refused, a case called meanwhile)", ["code"],
                                registry=registry)
        self.verdicts = Counter("tiepdan_timekeeper_verdicts", "Sessions the timekeeper reported without acting "
                                "(missed, not started, held for a case, clock behind)", ["verdict"],
                                registry=registry)
        self.clock_jumps = Counter("tiepdan_timekeeper_clock_jumps", "Clock jumps the timekeeper saw",
                                   ["direction"], registry=registry)
        self.leader = Gauge("tiepdan_timekeeper_leader", "1 while this process holds the timekeeper's leader lock",
                            registry=registry)


class Timekeeper:
    """See the module docstring. ``notify`` wakes the outbox relay after a commit."""

    def __init__(self, engine: AsyncEngine, lock: LeaderLock, *, clock: Clock,
                 options: TimekeeperOptions | None = None, sleep: Sleep = asyncio.sleep,
                 metrics: TimekeeperMetrics | None = None, notify: Callable[[], None] | None = None) -> None:
        self.options = options or TimekeeperOptions()
        if lock.ttl_s < 3 * self.options.tick_s:
            raise ValueError("the leader lock's TTL must cover at least three turns of the timekeeper")
        self._engine = engine
        self._lock = lock
        self._clock = clock
        self._sleep = sleep
        self._notify = notify
        self._last_now: datetime | None = None
        self._reported: set[tuple[str, int, Verdict]] = set()
        self._closed = False
        self._metrics = metrics

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def lock(self) -> LeaderLock:
        return self._lock

    async def run(self) -> None:
        """The supervised loop: a turn every ``tick_s`` until closed."""
        while not self._closed:
            await self.tick()
            await self._sleep(self.options.tick_s)

    async def tick(self) -> TickReport:
        """One turn (see the module docstring)."""
        if self._closed:
            return TickReport(leader=False)
        leader = await self._lock.acquire()
        if self._metrics is not None:
            self._metrics.leader.set(1.0 if leader else 0.0)
        if not leader:
            self._last_now = None  # another holder's turns are not ours to compare
            return TickReport(leader=False)
        now = now_of(self._clock)
        report = TickReport(leader=True, at=now, clock_jump=self._check_jump(now))
        for session_id in await self._candidates(now):
            if self._closed or not self._lock.held:
                break
            await self._consider(session_id, now, report)
        return report

    def _check_jump(self, now: datetime) -> str | None:
        last, self._last_now = self._last_now, now
        if last is None:
            return None
        if now < last:
            direction = "backwards"
        elif now - last > timedelta(seconds=self.options.tick_s + self.options.jump_after_s):
            direction = "forwards"
        else:
            return None
        log.warning("clock jump %s by %.0f s", direction, abs((now - last).total_seconds()),
                    extra={"ctx": {"code": "clock_jump", "direction": direction}})
        if self._metrics is not None:
            self._metrics.clock_jumps.labels(direction).inc()
        return direction

    async def _candidates(self, now: datetime) -> list[str]:
        today = local_day(now)
        async with self._engine.connect() as conn:
            ids = (await conn.execute(
                select(reception_sessions.c.id)
                .where(reception_sessions.c.state.in_(_CANDIDATE_STATES), reception_sessions.c.day <= today)
                .order_by(reception_sessions.c.day, reception_sessions.c.id))).scalars().all()
        return [str(i) for i in ids]

    async def _consider(self, session_id: str, now: datetime, report: TickReport) -> None:
        try:
            async with self._engine.connect() as conn:
                record = await get_session(conn, session_id)
                current = await conn.scalar(select(session_queues.c.current_ticket_no)
                                            .where(session_queues.c.session_id == session_id))
            verdict = due(record.session, record.hours, now, case_in_progress=current is not None)
        except SchedulesError as exc:  # gone meanwhile, or hours written by hand that make no sense
            self._refused(session_id, "read", exc, report)
            return
        report.verdicts[session_id] = verdict.verdict
        if not verdict.acts:
            self._report(session_id, record.version, record.state, verdict)
            return
        if not self._lock.held:  # lost while reading: another holder may act now
            return
        await self._act(session_id, record.version, verdict, report)

    def _refused(self, session_id: str, what: str, exc: SchedulesError, report: TickReport) -> None:
        report.refused[session_id] = exc.code
        level = logging.INFO if exc.code in _EXPECTED_REFUSALS else logging.WARNING
        log.log(level, "session %s: %s on time refused (%s)", session_id, what, exc.code,
                extra={"ctx": {"session": session_id, "action": what, "code": exc.code}})
        if self._metrics is not None:
            self._metrics.refusals.labels(exc.code).inc()

    def _report(self, session_id: str, version: int, state: SessionState, verdict: Due) -> None:
        if verdict.verdict not in _REPORTED or (session_id, version, verdict.verdict) in self._reported:
            return
        self._reported.add((session_id, version, verdict.verdict))
        level = logging.INFO if verdict.verdict is Verdict.HOLD_FOR_CASE else logging.WARNING
        log.log(level, "session %s: %s", session_id, verdict.verdict.value,
                extra={"ctx": {"session": session_id, "state": state.value, "code": verdict.verdict.value}})
        if self._metrics is not None:
            self._metrics.verdicts.labels(verdict.verdict.value).inc()

    async def _act(self, session_id: str, version: int, verdict: Due, report: TickReport) -> None:
        action = verdict.action
        service = open_session if action is SessionAction.OPEN else close_session
        try:
            async with self._engine.begin() as conn:
                record = await service(conn, session_id, expected_version=version, actor=TIMEKEEPER_ACTOR,
                                       grants=_GRANTS, clock=self._clock)
        except SchedulesError as exc:
            self._refused(session_id, verdict.verdict.value, exc, report)
            return
        if self._notify is not None:
            self._notify()
        (report.opened if action is SessionAction.OPEN else report.closed).append(session_id)
        log.info("session %s %s on time", session_id, "opened" if action is SessionAction.OPEN else "closed",
                 extra={"ctx": {"session": session_id, "version": record.version,
                                "code": f"timekeeper_{verdict.verdict.value}"}})
        if self._metrics is not None:
            self._metrics.transitions.labels(verdict.verdict.value).inc()

    async def close(self) -> None:
        """Stop acting and release the leader lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._metrics is not None:
            self._metrics.leader.set(0.0)
        await self._lock.close()
