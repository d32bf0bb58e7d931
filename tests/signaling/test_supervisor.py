"""The supervisor (signaling/supervisor.py): crashed loops are logged once, counted, reported down and
restarted with backoff; one-shot failures are logged and counted; close() leaves nothing behind. Bus
consumers and the room server's loops keep consuming after a crash (memory bus and Redis).

Time is injected: a fake clock and a sleep that returns when the test lets it, so nothing here waits
for a real backoff.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from prometheus_client import CollectorRegistry

from evidence import Keyring
from signaling.bus import Bus
from signaling.errors import BusError, SupervisorClosed
from signaling.events import AnyEvent, SessionOpened, VenueInfo
from signaling.memory_bus import MemoryBus
from signaling.room import MemoryRoomStore, RoomOptions, RoomServer
from signaling.supervisor import Backoff, Supervisor
from signaling.tokens import TokenIssuer, TokenOptions, TokenVerifier
from tiepdan.logs import JsonFormatter

from ._bus_helpers import FAST, hands, ids

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ManualSleep:
    """The supervisor's sleep: records each pause; with ``hold`` it returns only on :meth:`release`."""

    def __init__(self, *, hold: bool = False) -> None:
        self.pauses: list[float] = []
        self.hold = hold
        self._waiting: list[asyncio.Future[None]] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)
        if not self.hold:
            return
        gate = asyncio.get_running_loop().create_future()
        self._waiting.append(gate)
        await gate

    def release(self) -> None:
        for gate in self._waiting:
            if not gate.done():
                gate.set_result(None)
        self._waiting.clear()


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait (polling the event loop) until ``condition()`` is true."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


def sample(registry: CollectorRegistry, name: str, task: str) -> float | None:
    return registry.get_sample_value(name, {"task": task})


async def forever() -> None:
    await asyncio.Event().wait()


def other_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


# -- the backoff schedule ---------------------------------------------------------------------------


def test_backoff_doubles_from_the_first_pause_up_to_the_cap() -> None:
    backoff = Backoff(initial_s=0.5, factor=2.0, max_s=4.0)
    assert [backoff.delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert backoff.delay(100_000) == 4.0  # no overflow however long the streak
    assert Backoff(initial_s=1.0, factor=1.0, max_s=1.0).delay(50) == 1.0
    with pytest.raises(ValueError):
        backoff.delay(0)
    for bad in ({"initial_s": 0.0}, {"initial_s": 5.0, "max_s": 1.0}, {"factor": 0.5}, {"reset_after_s": 0.0}):
        with pytest.raises(ValueError):
            Backoff(**bad)  # type: ignore[arg-type]


async def test_pauses_grow_while_a_loop_keeps_crashing_and_start_over_after_a_healthy_run(
        caplog: pytest.LogCaptureFixture) -> None:
    clock, sleep = Clock(), ManualSleep()
    supervisor = Supervisor(backoff=Backoff(initial_s=0.5, max_s=10.0, reset_after_s=60.0), sleep=sleep, clock=clock)
    runs = 0

    async def loop() -> None:
        nonlocal runs
        runs += 1
        if runs == 4:
            clock.now += 120.0  # this run was healthy for two minutes before it crashed
        if runs <= 4:
            raise ConnectionResetError("lost")
        await forever()

    with caplog.at_level(logging.INFO, logger="signaling.supervisor"):
        handle = supervisor.run("sweeper", loop)
        await until(lambda: runs == 5)
    assert sleep.pauses == [0.5, 1.0, 2.0, 0.5]
    assert (handle.crashes, handle.restarts, handle.state) == (4, 4, "running")
    crashes = [r for r in caplog.records if "crashed" in r.getMessage()]
    # one line per crash; the traceback with the first of each streak only
    assert [(r.levelname, r.exc_info is not None) for r in crashes] == [
        ("ERROR", True), ("WARNING", False), ("WARNING", False), ("ERROR", True)]
    await supervisor.close()
    assert handle.state == "ended"


# -- a crashed loop -----------------------------------------------------------------------------------


async def test_crashed_loop_is_logged_once_counted_reported_down_and_restarted(
        caplog: pytest.LogCaptureFixture) -> None:
    registry, clock, sleep = CollectorRegistry(), Clock(), ManualSleep(hold=True)
    supervisor = Supervisor(registry=registry, backoff=Backoff(initial_s=2.0), sleep=sleep, clock=clock)
    runs = 0

    async def loop() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("công dân Nguyễn Văn A, CCCD 001234567890")  # personal data in the text
        await forever()

    with caplog.at_level(logging.INFO, logger="signaling.supervisor"):
        handle = supervisor.run("room-server-consumer", loop)
        await until(lambda: sleep.pauses)
        assert handle.state == "restarting"
        assert supervisor.down() == {"room-server-consumer": "down: RuntimeError, restarting in 2.0 s"}
        clock.now += 1.5
        assert supervisor.down() == {"room-server-consumer": "down: RuntimeError, restarting in 0.5 s"}
        assert sample(registry, "tiepdan_task_up", "room-server-consumer") == 0.0
        assert sample(registry, "tiepdan_task_crashes_total", "room-server-consumer") == 1.0
        assert sample(registry, "tiepdan_task_restarts_total", "room-server-consumer") == 0.0

        sleep.release()
        await until(lambda: runs == 2)
    assert handle.state == "running"
    assert supervisor.down() == {}
    [status] = supervisor.statuses()
    assert (status.state, status.crashes, status.restarts, status.error) == ("running", 1, 1, "RuntimeError")
    assert sample(registry, "tiepdan_task_up", "room-server-consumer") == 1.0
    assert sample(registry, "tiepdan_task_restarts_total", "room-server-consumer") == 1.0

    [crash] = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert crash.levelname == "ERROR"
    assert crash.exc_info is not None and crash.exc_info[0] is RuntimeError
    line = JsonFormatter().format(crash)  # what production writes
    doc = json.loads(line)
    assert doc["task"] == "room-server-consumer" and doc["exc"] == "RuntimeError"
    assert "test_supervisor.py" in doc["msg"] and "in loop" in doc["msg"]  # where it was raised
    assert "Nguyễn" not in line and "001234567890" not in line

    await supervisor.close()
    assert sample(registry, "tiepdan_task_up", "room-server-consumer") is None  # gone with the task
    assert sample(registry, "tiepdan_task_crashes_total", "room-server-consumer") == 1.0


async def test_a_cancellation_nobody_asked_for_is_a_crash() -> None:
    supervisor = Supervisor(sleep=ManualSleep())
    runs = 0

    async def loop() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            cancelled_elsewhere = asyncio.get_running_loop().create_future()
            cancelled_elsewhere.cancel()
            await cancelled_elsewhere  # raises CancelledError although nobody cancelled this loop
        await forever()

    handle = supervisor.run("media-pump", loop)
    await until(lambda: runs == 2)
    assert (handle.crashes, handle.error, handle.state) == (1, "CancelledError", "running")
    await supervisor.close()


async def test_loop_that_returns_ends_without_restart_and_frees_its_name() -> None:
    sleep = ManualSleep()
    supervisor = Supervisor(sleep=sleep)

    async def done() -> None:
        return None

    handle = supervisor.run("outbox-relay", done)
    await until(lambda: handle.state == "ended")
    assert supervisor.statuses() == [] and sleep.pauses == [] and handle.crashes == 0
    again = supervisor.run("outbox-relay", forever)
    with pytest.raises(ValueError):
        supervisor.run("outbox-relay", forever)
    await supervisor.stop(again)
    await supervisor.stop(again)  # idempotent
    assert again.state == "ended" and supervisor.statuses() == []
    await supervisor.close()


async def test_stop_grants_a_running_loop_its_grace_but_cancels_one_waiting_to_restart() -> None:
    sleep = ManualSleep(hold=True)
    supervisor = Supervisor(sleep=sleep)
    closing = asyncio.Event()
    ended_by_itself = False

    async def polite() -> None:
        nonlocal ended_by_itself
        await closing.wait()
        await asyncio.sleep(0)  # finishing its batch
        ended_by_itself = True

    async def crashing() -> None:
        raise RuntimeError("boom")

    relay = supervisor.run("polite", polite)
    broken = supervisor.run("broken", crashing)
    await until(lambda: broken.state == "restarting")
    closing.set()
    await supervisor.stop(relay, grace_s=30.0)
    assert ended_by_itself
    async with asyncio.timeout(2):  # not 30 s: a loop waiting to restart is cancelled at once
        await supervisor.stop(broken, grace_s=30.0)
    assert broken.state == "ended" and broken.restarts == 0
    stubborn = supervisor.run("stubborn", forever)
    await supervisor.stop(stubborn, grace_s=0.01)  # did not end within its grace: cancelled
    assert stubborn.state == "ended"
    await supervisor.close()


async def test_close_after_crashes_leaves_no_task_behind_and_is_idempotent() -> None:
    registry = CollectorRegistry()
    supervisor = Supervisor(registry=registry, sleep=ManualSleep(hold=True))

    async def crashing() -> None:
        raise RuntimeError("boom")

    before = other_tasks()
    waiting = supervisor.run("room-server-consumer", crashing)
    running = supervisor.run("media-ticker", forever)
    supervisor.spawn("media-close-session", forever())
    await until(lambda: waiting.state == "restarting")
    await asyncio.gather(supervisor.close(), supervisor.close())
    await supervisor.close()
    assert other_tasks() - before == set()
    assert waiting.state == running.state == "ended"
    assert supervisor.closed and supervisor.statuses() == [] and supervisor.down() == {}
    assert sample(registry, "tiepdan_task_up", "media-ticker") is None
    with pytest.raises(SupervisorClosed):
        supervisor.run("late", forever)
    with pytest.raises(SupervisorClosed):
        supervisor.spawn("late", forever())  # closed unstarted: no "never awaited" warning


# -- one-shot tasks -------------------------------------------------------------------------------------


async def test_one_shot_failure_is_logged_and_counted_instead_of_dropped(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    supervisor = Supervisor(registry=registry)

    async def fails() -> None:
        raise KeyError("p-1234")

    async def works() -> None:
        return None

    with caplog.at_level(logging.INFO, logger="signaling.supervisor"):
        failed = supervisor.spawn("media-close-session", fails())
        fine = supervisor.spawn("media-close-session", works())
        cancelled = supervisor.spawn("media-close-session", forever())
        await asyncio.wait({failed, fine})
        cancelled.cancel()
        await asyncio.wait({cancelled})
        await asyncio.sleep(0)  # done-callbacks run on the next turn of the loop
    assert sample(registry, "tiepdan_task_crashes_total", "media-close-session") == 1.0
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "media-close-session" in record.getMessage() and "KeyError" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert getattr(record, "ctx", {}).get("task") == "media-close-session"
    supervisor.record_failure("sfu-transport-watchdog")
    assert sample(registry, "tiepdan_task_crashes_total", "sfu-transport-watchdog") == 1.0
    await supervisor.close()


# -- bus consumers under the supervisor -------------------------------------------------------------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "memory":
        made: Bus = MemoryBus(FAST)
    else:
        from signaling.redis_bus import RedisBus

        url: str = request.getfixturevalue("redis_base_url")
        made = await RedisBus.connect(url, prefix=request.getfixturevalue("redis_prefix"), options=FAST)
    yield made
    await made.close()


async def test_consumer_whose_handler_escapes_delivery_keeps_consuming_after_a_restart(bus: Bus) -> None:
    """Handler exceptions are retried by the bus itself; what ends a consumer loop is what escapes
    delivery, here a cancellation the handler ran into (a task it awaited was cancelled elsewhere)."""
    registry = CollectorRegistry()
    supervisor = Supervisor(registry=registry, sleep=ManualSleep())
    got: list[AnyEvent] = []
    calls = 0

    async def handler(event: AnyEvent) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            cancelled_elsewhere = asyncio.get_running_loop().create_future()
            cancelled_elsewhere.cancel()
            await cancelled_elsewhere
        got.append(event)

    await bus.create_group("g")
    handle = supervisor.run("test-consumer", lambda: bus.consume("g", "c1", handler))
    first, second, third = hands("r1", 3)
    await bus.publish(first)
    await until(lambda: handle.crashes == 1)
    await bus.publish(second)
    await bus.publish(third)
    await until(lambda: len(got) == 3)
    assert ids(got) == ids([first, second, third])  # the event held at the crash came again, first
    assert (handle.restarts, handle.state) == (1, "running")
    assert sample(registry, "tiepdan_task_crashes_total", "test-consumer") == 1.0
    assert sample(registry, "tiepdan_task_restarts_total", "test-consumer") == 1.0
    await supervisor.close()
    assert handle.state == "ended"


class RefusingBus(MemoryBus):
    """A memory bus whose first ``consume`` fails as Redis does when it refuses the group at start."""

    def __init__(self) -> None:
        super().__init__(FAST)
        self.refusals = 1

    async def consume(self, group: str, consumer: str, handler: object, *, from_start: bool = True) -> None:
        if self.refusals:
            self.refusals -= 1
            raise BusError(f"could not create the consumer group {group}")
        await super().consume(group, consumer, handler, from_start=from_start)  # type: ignore[arg-type]


def _room_server(bus: Bus, supervisor: Supervisor | None, registry: CollectorRegistry | None = None) -> RoomServer:
    keyring = Keyring.generate(dev=True)
    return RoomServer(options=RoomOptions(sweep_interval_s=0.05), issuer=TokenIssuer(keyring, TokenOptions()),
                      verifier=TokenVerifier(keyring, TokenOptions()), bus=bus, store=MemoryRoomStore(),
                      metrics=registry, supervisor=supervisor)


async def test_room_server_consumer_that_crashed_is_restarted_and_opens_rooms() -> None:
    bus = RefusingBus()
    registry = CollectorRegistry()
    supervisor = Supervisor(registry=registry, sleep=ManualSleep())
    server = _room_server(bus, supervisor)
    await server.start()
    assert {s.name for s in supervisor.statuses()} == {"room-server-consumer", "room-server-sweeper"}
    await until(lambda: sample(registry, "tiepdan_task_restarts_total", "room-server-consumer") == 1.0)
    await bus.publish(SessionOpened(session="s1", venues=(VenueInfo(venue="tinh", name="Tỉnh", main=True),)))
    await until(lambda: server.room("s1") is not None)
    assert sample(registry, "tiepdan_task_crashes_total", "room-server-consumer") == 1.0
    await server.close()
    assert supervisor.statuses() == []  # the server stopped its loops; the supervisor is not its to close
    assert not supervisor.closed
    await supervisor.close()
    await bus.close()


async def test_room_server_alone_supervises_its_loops_and_closing_it_leaves_no_task() -> None:
    bus = MemoryBus(FAST)
    registry = CollectorRegistry()
    before = other_tasks()
    server = _room_server(bus, None, registry)
    await server.start()
    assert sample(registry, "tiepdan_task_up", "room-server-consumer") == 1.0
    assert sample(registry, "tiepdan_task_up", "room-server-sweeper") == 1.0
    await server.close()
    await bus.close()
    await until(lambda: not (other_tasks() - before))


async def test_consumer_ends_quietly_when_its_bus_closes() -> None:
    bus = MemoryBus(FAST)
    supervisor = Supervisor(sleep=ManualSleep())
    server = _room_server(bus, supervisor)
    await server.start()
    await bus.close()  # shutdown order gone wrong: not a crash, nothing to restart
    await until(lambda: {s.name for s in supervisor.statuses()} == {"room-server-sweeper"})
    assert supervisor.down() == {}
    await server.close()
    await supervisor.close()


async def test_media_loops_are_supervised_and_sfu_task_failures_are_counted() -> None:
    from signaling.room.media import MediaOptions

    async def fails() -> None:
        raise RuntimeError("boom")

    bus = MemoryBus(FAST)
    registry = CollectorRegistry()
    supervisor = Supervisor(registry=registry, sleep=ManualSleep())
    keyring = Keyring.generate(dev=True)
    server = RoomServer(options=RoomOptions(), issuer=TokenIssuer(keyring, TokenOptions()),
                        verifier=TokenVerifier(keyring, TokenOptions()), bus=bus, store=MemoryRoomStore(),
                        metrics=registry, media=MediaOptions(), supervisor=supervisor)
    await server.start()
    assert {s.name for s in supervisor.statuses()} == {"room-server-consumer", "room-server-sweeper",
                                                       "media-pump", "media-ticker"}
    assert server.media is not None
    room = server.media.worker.create_room("r1")
    room._spawn(fails(), "publication-close")  # a task of the SFU fails: the SFU logs it, we count it
    await until(lambda: sample(registry, "tiepdan_task_crashes_total", "sfu-publication-close") == 1.0)
    await server.close()
    assert supervisor.statuses() == []
    await supervisor.close()
    await bus.close()
