"""Fixtures shared by the recorder's tests: an injected media clock, a development keyring, the reports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from evidence import Keyring
from tests.recorder._sources import Calls, MediaClock, install_media_clock


@pytest.fixture
def clock() -> Iterator[MediaClock]:
    media_clock = MediaClock()
    with install_media_clock(media_clock):
        yield media_clock


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate(dev=True)


@pytest.fixture
def calls() -> Calls:
    return Calls()
