"""Fixtures for the SFU tests: loopback-only ICE, a decoder guard, leak checks, a started worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiortc.codecs
import pytest

from sfu import Event, Options, Worker, hooks
from tests.fakes.media import BOT_QUEUES, DecodeErrors


@pytest.fixture(autouse=True)
def loopback_ice() -> Iterator[None]:
    """aioice never offers 127.0.0.1; tests stay on loopback (chromium-interop §1)."""
    restore = hooks.announce_host_addresses(("127.0.0.1",))
    yield
    restore()


class DecoderGuard:
    """Decoder factory for aiortc's decoder threads: subscriber bots get real decoders, anyone else (the
    SFU) an error. Bots register their tracks' decoder outputs in ``BOT_QUEUES``."""

    def __init__(self) -> None:
        self.bot_decoders = 0
        self.violations: list[str] = []

    def __call__(self, codec: Any, output: object) -> Any:
        if output is None or id(output) not in BOT_QUEUES:
            self.violations.append(codec.name)
            raise AssertionError(f"a non-bot receiver tried to decode {codec.name}")
        self.bot_decoders += 1
        return aiortc.codecs.get_decoder(codec)

    @classmethod
    @contextlib.contextmanager
    def installed(cls) -> Iterator[DecoderGuard]:
        """The guard, routing every decoder thread's decoders while the block runs."""
        guard = cls()
        restore = hooks.route_decoders(guard)
        try:
            yield guard
        finally:
            restore()


@pytest.fixture
def decoder_guard() -> Iterator[DecoderGuard]:
    with DecoderGuard.installed() as guard:
        yield guard
    assert guard.violations == [], "the SFU decoded media"


@pytest.fixture
def decode_errors() -> Iterator[DecodeErrors]:
    handler = DecodeErrors()
    logger = logging.getLogger("aiortc.rtcrtpreceiver")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def _media_threads() -> set[threading.Thread]:
    # the loop's default executor threads (asyncio_N) belong to the loop and end with it
    return {t for t in threading.enumerate() if not t.name.startswith("asyncio_")}


@pytest.fixture
async def no_leaks() -> AsyncIterator[None]:
    """After the test: no task, no decoder thread, no peer connection left behind."""
    threads_before = _media_threads()
    current = asyncio.current_task()
    tasks_before = {t for t in asyncio.all_tasks() if t is not current}
    yield
    deadline = asyncio.get_running_loop().time() + 5.0
    while True:
        tasks = {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and t not in tasks_before}
        threads = _media_threads() - threads_before
        if not tasks and not threads:
            return
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    pytest.fail(f"left behind: tasks={[t.get_coro() for t in tasks]} threads={[t.name for t in threads]}")


class Events(list[Event]):
    """The worker's events in order; ``times`` holds the ``time.monotonic()`` of each, taken when the SFU
    emitted it (the listener runs synchronously on the SFU's loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, event: Event) -> None:
        self.times.append(time.monotonic())
        super().append(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self if isinstance(e, kind)]

    def timed(self, kind: type, since: int = 0) -> list[tuple[float, Any]]:
        """(time, event) of the events of ``kind`` from ``self[since]`` on."""
        return [(t, e) for t, e in zip(self.times[since:], self[since:], strict=True) if isinstance(e, kind)]


@pytest.fixture
def events() -> Events:
    return Events()


def make_options(**overrides: Any) -> Options:
    base: dict[str, Any] = {"connect_timeout": 8.0, "video_slots": 2, "audio_slots": 2}
    base.update(overrides)
    return Options(**base)


@pytest.fixture
def options() -> Options:
    return make_options()


@pytest.fixture
async def worker(options: Options, events: Events, no_leaks: None) -> AsyncIterator[Worker]:
    w = Worker(options, listener=events.append)
    await w.start()
    yield w
    await w.close()
