"""The garbage-collector policy (tiepdan.gc_policy): the start's heap is frozen, what comes later stays
collectable, and stopping gives the frozen objects back. The pause it saves is measured in bench/peer.py."""

from __future__ import annotations

import gc
import weakref

import pytest

from tiepdan.gc_policy import freeze_startup_heap, thaw

pytestmark = pytest.mark.unit


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


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
