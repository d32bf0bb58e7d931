"""``Options.host_addresses``: the SFU's ICE agents offer exactly the configured addresses."""

from __future__ import annotations

import aioice.ice
import pytest
from pydantic import ValidationError

import sfu
from sfu.hooks import announce_host_addresses
from tiepdan.room_wiring import media_options
from tiepdan.settings import Settings

pytestmark = pytest.mark.unit


def test_announced_addresses_replace_what_aioice_finds_until_restored() -> None:
    before = aioice.ice.get_host_addresses
    restore = announce_host_addresses(("127.0.0.1", "::1", "192.0.2.7"))
    try:
        assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1", "192.0.2.7"]
        assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1", "192.0.2.7", "::1"]
        assert aioice.ice.get_host_addresses(False, True) == ["::1"]
    finally:
        restore()
    assert aioice.ice.get_host_addresses is before


async def test_a_worker_with_host_addresses_announces_them_at_start() -> None:
    restore = announce_host_addresses(("203.0.113.9",))  # what aioice would find on this host
    try:
        async with sfu.Worker(sfu.Options(host_addresses=("127.0.0.1",))):
            assert aioice.ice.get_host_addresses(True, False) == ["127.0.0.1"]
    finally:
        restore()


async def test_a_worker_without_host_addresses_leaves_aioice_alone() -> None:
    found = aioice.ice.get_host_addresses
    async with sfu.Worker(sfu.Options()):
        assert aioice.ice.get_host_addresses is found


def test_settings_take_a_comma_list_of_ip_addresses_and_refuse_anything_else() -> None:
    settings = Settings(media_host_addresses=" 127.0.0.1, ::1 ")
    assert media_options(settings).sfu.host_addresses == ("127.0.0.1", "::1")
    assert media_options(Settings()).sfu.host_addresses == ()
    with pytest.raises(ValidationError, match="not an IP address"):
        Settings(media_host_addresses="127.0.0.1,sfu.example")
