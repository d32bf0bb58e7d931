"""A peer connection closed while it gathers its ICE candidates leaves no socket open (sfu.transport).

aioice 0.13 binds the UDP socket of a gathering that runs on after its connection was closed and never
closes it: the garbage collector then raised ``ResourceWarning: unclosed transport`` in whatever test ran
next. The SFU's transports let a gathering in flight finish before they close, also when the negotiating
caller is cancelled. Sockets are counted in ``/proc`` (this process's UDP sockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sfu import ParticipantClosed, SfuError, TransportFailed, Worker
from sfu.participant import SUBSCRIBER
from sfu.transport import Transport

from .conftest import make_options

pytestmark = pytest.mark.integration


def loopback_udp_sockets() -> set[int]:
    """Local ports of this process's UDP sockets bound to 127.0.0.1."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        address, port = fields[1].split(":")
        if address == "0100007F" and fields[9] in inodes:
            ports.add(int(port, 16))
    return ports


async def gathering_started(transport: Transport) -> None:
    async with asyncio.timeout(5):
        while transport.pc.iceGatheringState != "gathering":
            await asyncio.sleep(0)


async def test_a_transport_closed_while_it_gathers_closes_the_socket_bound_after() -> None:
    before = loopback_udp_sockets()
    transport = Transport(role=SUBSCRIBER, label="r/p", options=make_options(), on_state=lambda t: None)
    transport.pc.addTransceiver("audio", direction="sendonly")
    offer = await transport.pc.createOffer()
    gathering = asyncio.create_task(transport.set_local_description(offer))
    await gathering_started(transport)
    await transport.close()
    await gathering
    assert transport.state == "closed"
    assert loopback_udp_sockets() - before == set()
    with pytest.raises(TransportFailed):  # a closed transport gathers no more
        await transport.set_local_description(offer)


async def test_a_participant_leaving_while_its_offer_is_made_leaves_no_socket_open() -> None:
    before = loopback_udp_sockets()
    async with Worker(make_options()) as worker:
        participant = worker.create_room("r1").join("p1")
        offering = asyncio.create_task(participant.subscriber_offer())
        async with asyncio.timeout(5):
            while participant.link_state(SUBSCRIBER) == "none":
                await asyncio.sleep(0)
        transport = participant._subscriber
        assert transport is not None
        await gathering_started(transport)
        await participant.close()
        try:
            await offering
        except (ParticipantClosed, SfuError):
            pass
        assert participant.link_state(SUBSCRIBER) == "closed"
    assert loopback_udp_sockets() - before == set()


async def test_a_cancelled_offer_closes_its_half_made_link_and_a_new_offer_may_come() -> None:
    before = loopback_udp_sockets()
    async with Worker(make_options()) as worker:
        participant = worker.create_room("r1").join("p1")
        offering = asyncio.create_task(participant.subscriber_offer())
        async with asyncio.timeout(5):
            while participant._subscriber is None:
                await asyncio.sleep(0)
        await gathering_started(participant._subscriber)
        offering.cancel()
        with pytest.raises(asyncio.CancelledError):
            await offering
        assert participant.link_state(SUBSCRIBER) == "closed"
        assert loopback_udp_sockets() - before == set()
        assert "m=audio" in await participant.subscriber_offer()  # the link is negotiated anew
    assert loopback_udp_sockets() - before == set()
