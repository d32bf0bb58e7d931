"""Wiring of the room server into the app: settings → :class:`RoomOptions`, the room-state store
(Redis when configured, so rooms survive a restart), the :class:`RoomServer` on
``app.state.room_server`` (roles ``all`` and ``media``) with its media plane: the SFU worker (its
aiortc self-test runs at start-up), the clients' STUN/TURN servers and TURN secret. In the embedded
mode (no Redis) the in-memory room store is also the console's reader of the rooms' state
(``ConsoleContext.room_states``); with Redis the console reads what the store writes there. The room
server records (:mod:`signaling.room.recording`) into ``TIEPDAN_RECORDING_DIR`` unless
``TIEPDAN_RECORDING_ENABLED=false``."""

from __future__ import annotations

import os
import socket
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from fastapi import FastAPI

import sfu
from evidence import Keyring
from signaling.room import MemoryRoomStore, RedisRoomStore, RoomOptions, RoomServer, RoomStore
from signaling.room.ice import parse_ice_urls
from signaling.room.media import MediaOptions
from signaling.room.recording import AlarmCallback, RecorderFactory, RecorderPort, SegmentClosedCallback

from .settings import Settings

if TYPE_CHECKING:
    from .app import Services

__all__ = ["room_options", "media_options", "recorder_factory", "wire_room_server"]


def room_options(settings: Settings) -> RoomOptions:
    return RoomOptions(
        max_frame_bytes=settings.ws_max_frame_bytes,
        rate_per_s=settings.ws_rate_per_s,
        rate_burst=settings.ws_rate_burst,
        flood_close_after=settings.ws_rate_burst,
        reconnect_grace_s=settings.ws_reconnect_grace_s,
        node=f"{socket.gethostname()}-{os.getpid()}",
    )


def media_options(settings: Settings) -> MediaOptions:
    """Clients get every STUN/TURN URL (TURN with REST credentials); the SFU itself only STUN."""
    urls = parse_ice_urls(settings.ice_servers)
    stun = tuple(u for u in urls if u.startswith(("stun:", "stuns:")))
    hosts = tuple(a.strip() for a in settings.media_host_addresses.split(",") if a.strip())
    return MediaOptions(sfu=sfu.Options(ice_servers=(sfu.IceServer(urls=stun),) if stun else (), host_addresses=hosts,
                                         rtp_forwarding=settings.media_rtp_forwarding,
                                         direct_receive=settings.media_direct_receive,
                                         native_forwarding=settings.media_native_forwarding,
                                         remb_interval_ms=settings.media_remb_interval_ms,
                                         receive_buffer_bytes=settings.media_receive_buffer_bytes or None),
                        ice_urls=urls, turn_secret=settings.turn_secret, turn_ttl_s=settings.turn_ttl_s,
                        venue_max_kbps=settings.media_venue_max_kbps,
                        link_lost_after_s=settings.media_link_lost_after_s)


def recorder_factory(settings: Settings, keyring: Keyring) -> RecorderFactory | None:
    """The recorder of a media process (``TIEPDAN_RECORDING_DIR``, signed with the keyring's keys); None
    when ``TIEPDAN_RECORDING_ENABLED=false``."""
    options = settings.recorder_options
    if not options.enabled:
        return None
    from recorder.recorder import Recorder  # loads PyAV: only where a room server records

    def build(on_segment_closed: SegmentClosedCallback, on_alarm: AlarmCallback) -> RecorderPort:
        return Recorder(options, keyring, on_segment_closed=on_segment_closed, on_alarm=on_alarm)

    return build


async def wire_room_server(app: FastAPI, services: Services, stack: AsyncExitStack) -> RoomServer | None:
    """Build and start the room server for the roles that serve the live room; closed by ``stack``."""
    settings = services.settings
    if settings.process_role not in ("all", "media"):
        return None
    store: RoomStore
    if settings.redis_url:
        store = RedisRoomStore.connect(settings.redis_url, settings.redis_prefix)
    else:
        store = memory = MemoryRoomStore()
        console = getattr(app.state, "console", None)
        if console is not None and console.room_states is None:
            console.room_states = memory  # the console reads the rooms' state from the same store
    server = RoomServer(options=room_options(settings), issuer=services.issuer, verifier=services.verifier,
                        bus=services.bus, store=store, metrics=services.metrics,
                        media=media_options(settings), supervisor=services.supervisor,
                        recorder=recorder_factory(settings, services.keyring))
    stack.push_async_callback(server.close)
    await server.start()
    app.state.room_server = server
    return server
