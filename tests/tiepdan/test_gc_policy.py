"""The garbage-collector policy (tiepdan.gc_policy): the start's heap is frozen, what comes later stays
collectable, and stopping gives the frozen objects back. The pause it saves is measured in bench/peer.py."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from tiepdan.gc_policy import Refreezer, freeze_startup_heap, thaw


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.mark.unit
def test_the_start_is_frozen_and_what_comes_later_is_still_collected() -> None:
    before = _cycle()  # a cycle made before the freeze, still alive (the collector has not run)
    kept = before()
    try:
        frozen = freeze_startup_heap()
        assert frozen > 1000 and gc.get_freeze_count() == frozen
        later = _cycle()
        gc.collect()
        assert later() is None  # a cycle made after the start is freed as before
        del kept
        gc.collect()
        assert before() is not None  # a frozen cycle is out of the collector's reach…
    finally:
        thaw()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert before() is None  # …until the app stops and gives it back


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.unit
def test_the_links_graph_is_frozen_once_they_settle_and_freed_once_they_close() -> None:
    changes, clock = [0], _Clock()
    refreezer = Refreezer(lambda: changes[0], settle=10.0, clock=clock)
    try:
        freeze_startup_heap()
        link = _cycle()  # what a venue's peer connection makes: a graph with cycles, alive while it is up
        alive = link()
        changes[0] += 1  # it connected
        assert refreezer.tick() is None  # not settled yet
        clock.now += 9.9
        assert refreezer.tick() is None
        clock.now += 0.2
        done = refreezer.tick()
        assert done is not None and done.frozen == gc.get_freeze_count() > 1000
        assert refreezer.tick() is None  # nothing moved since: nothing more to do
        clock.now += 60
        assert refreezer.tick() is None
        del alive  # the venue leaves: its graph is garbage, but frozen
        gc.collect()
        assert link() is not None
        changes[0] += 1  # its peer connection closed
        clock.now += 5
        assert refreezer.tick() is None
        changes[0] += 2  # a venue reconnects meanwhile: the settling starts again
        clock.now += 5
        assert refreezer.tick() is None and link() is not None
        clock.now += 9.9
        assert refreezer.tick() is None  # ten seconds from the last change, not the first
        clock.now += 0.1
        again = refreezer.tick()
        assert again is not None and again.collected >= 2
        assert link() is None  # freed by the full collection before the freeze
        assert gc.get_freeze_count() == again.frozen
        assert refreezer.refreezes == [done, again]
    finally:
        thaw()


@pytest.mark.unit
async def test_it_polls_until_cancelled() -> None:
    changes = [0]
    refreezer = Refreezer(lambda: changes[0], settle=0.0, poll=0.01)
    changes[0] = 1
    task = asyncio.create_task(refreezer.run())
    try:
        while not refreezer.refreezes:
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        thaw()
    assert len(refreezer.refreezes) == 1


@pytest.mark.unit
def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Refreezer(lambda: 0, settle=-1)
    with pytest.raises(ValueError):
        Refreezer(lambda: 0, poll=0)


@pytest.mark.media
async def test_the_media_processes_counter_moves_with_links() -> None:
    import sfu
    from tests.fakes.media import PublisherBot, ToneTrack
    from tests.sfu.conftest import make_options
    from tests.sfu.helpers import publish

    before = sfu.link_changes()
    async with sfu.Worker(make_options()) as worker:
        room = worker.create_room("r1")
        bot = PublisherBot([ToneTrack()])
        try:
            await publish(room, "venue-a", bot)
            assert sfu.link_changes() >= before + 1  # connected
            connected = sfu.link_changes()
        finally:
            await bot.close()
        await room.close()
    assert sfu.link_changes() >= connected + 1  # closed


@pytest.mark.integration
async def test_the_app_freezes_its_start_and_refreezes_the_links(make_settings) -> None:  # type: ignore[no-untyped-def]
    from tiepdan.app import create_app

    app = create_app(make_settings(gc_refreeze_settle_s=0.5))
    async with app.router.lifespan_context(app):
        refreezer = app.state.refreezer
        assert isinstance(refreezer, Refreezer) and refreezer.settle == 0.5
        assert gc.get_freeze_count() > 1000
    assert gc.get_freeze_count() == 0  # given back when the app stops
