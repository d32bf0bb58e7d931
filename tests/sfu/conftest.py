"""Fixtures for the SFU tests: loopback-only ICE, a decoder guard, leak checks, a started worker."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aioice.ice
import aiortc.rtcrtpreceiver
import pytest

from sfu import Event, Options, Worker
from tests.fakes.media import BOT_QUEUES, DecodeErrors


@pytest.fixture(autouse=True)
def loopback_ice(monkeypatch: pytest.MonkeyPatch) -> None:
    """aioice never offers 127.0.0.1; tests stay on loopback (chromium-interop §1)."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


class DecoderGuard:
    """Replaces aiortc's ``get_decoder``: subscriber bots get real decoders, anyone else (the SFU) an error.

    aiortc's ``decoder_worker`` thread resolves ``get_decoder`` at run time and passes the track's
    queue as ``output_q``; bots register their track queues in ``BOT_QUEUES``.
    """

    def __init__(self) -> None:
        self.real = aiortc.rtcrtpreceiver.get_decoder
        self.bot_decoders = 0
        self.violations: list[str] = []

    def __call__(self, codec: Any) -> Any:
        caller = sys._getframe(1)
        queue = caller.f_locals.get("output_q")
        if queue is None or id(queue) not in BOT_QUEUES:
            self.violations.append(codec.name)
            raise AssertionError(f"a non-bot receiver tried to decode {codec.name}")
        self.bot_decoders += 1
        return self.real(codec)


@pytest.fixture
def decoder_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[DecoderGuard]:
    guard = DecoderGuard()
    monkeypatch.setattr(aiortc.rtcrtpreceiver, "get_decoder", guard)
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
    def of(self, kind: type) -> list[Any]:
        return [e for e in self if isinstance(e, kind)]


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
