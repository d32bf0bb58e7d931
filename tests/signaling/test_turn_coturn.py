"""TURN for venues behind UDP-blocking firewalls, against a real coturn (Debian's ``turnserver``).

coturn runs on loopback with ``use-auth-secret``: it recomputes each TURN REST credential the room server
hands a venue (``media.ice_servers``, :mod:`signaling.room.ice`) from its own copy of the secret and
refuses a wrong one or one past its expiry. The venues here are aiortc peers whose ICE is relay-only
(``iceTransportPolicy: relay``, as a browser behind such a firewall ends up): every packet between them
and the SFU goes through coturn, over UDP or TCP to coturn.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import pytest
from aioice import stun, turn
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from sfu import hooks
from signaling.grants import Role
from signaling.room.ice import turn_credentials
from signaling.room.media import MediaOptions
from tests.fakes.venue_bot import RequestRefused, VenueBot, until
from tiepdan import room_wiring
from tiepdan.bots.media import ClipTrack, centre_yuv, nearest_colour, opus_clip, vp8_clip
from tiepdan.settings import Settings

from .room_harness import ROOM, Harness, running_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
REALM = "tiepdan.test"
SECRET = "turn-test-" + secrets.token_hex(8)
CONNECT_TIMEOUT_S = 4.0


def _free_port() -> int:
    """A port free for both UDP and TCP on loopback (coturn listens on both)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


@dataclass
class Coturn:
    """A running ``turnserver`` on 127.0.0.1 (listening and relaying), with its log."""

    port: int
    secret: str
    log: Path
    process: subprocess.Popen[bytes]

    def url(self, transport: str) -> str:
        return f"turn:127.0.0.1:{self.port}?transport={transport}"

    def log_lines(self, user: str) -> list[str]:
        """The log lines naming TURN user ``user`` (coturn writes ``user <name>``)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in text.splitlines() if f"user <{user}>" in line]

    def allocated(self, user: str) -> bool:
        return any(re.search(r"ALLOCATE processed, success", line) for line in self.log_lines(user))

    def refused(self, user: str) -> bool:
        return any("error 401" in line for line in self.log_lines(user))


def start_coturn(directory: Path, secret: str, *, config: Path | None = None) -> Coturn:
    """Start coturn on loopback with its files under ``directory``: with a config of its own (no TLS, no
    CLI, loopback peers allowed: the SFU is on 127.0.0.1 here, which ``deploy/coturn`` denies), or with
    ``config`` and only the addresses, ports, secret and files overridden on the command line."""
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = directory / "turnserver.log"
    files = [f"--log-file={log}", "--simple-log", "--no-stdout-log", "--verbose",
             f"--pidfile={directory / 'turnserver.pid'}", f"--userdb={directory / 'turndb'}"]
    if config is None:
        config = directory / "turnserver.conf"
        config.write_text("\n".join((
            "listening-ip=127.0.0.1", "relay-ip=127.0.0.1", f"listening-port={port}",
            "fingerprint", "use-auth-secret", f"static-auth-secret={secret}", f"realm={REALM}",
            "no-tls", "no-dtls", "no-cli", "no-multicast-peers", "allow-loopback-peers",
        )) + "\n")
        args = [TURNSERVER, "-c", str(config), *files]
    else:
        args = [TURNSERVER, "-c", str(config), "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
                f"--listening-port={port}", f"--tls-listening-port={_free_port()}", f"--static-auth-secret={secret}",
                *files]
    process = subprocess.Popen(args, cwd=directory, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 15
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"turnserver exited with {process.returncode}: "
                               f"{log.read_text(errors='replace')[-2000:] if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline:
                stop_coturn(process)
                raise RuntimeError("turnserver did not listen within 15 s") from None
            time.sleep(0.05)
    return Coturn(port, secret, log, process)


def stop_coturn(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def running_coturn(directory: Path, *, config: Path | None = None) -> Iterator[Coturn]:
    if not Path(TURNSERVER).exists():
        pytest.fail("coturn's turnserver is missing: apt-get install -y coturn")
    server = start_coturn(directory, SECRET, config=config)
    try:
        yield server
    finally:
        stop_coturn(server.process)
    assert server.process.returncode is not None, "coturn still runs"


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    with running_coturn(tmp_path_factory.mktemp("coturn")) as server:
        yield server


def media_options(settings: Settings) -> MediaOptions:
    """The room server's media settings made from ``TIEPDAN_ICE_SERVERS`` / ``TIEPDAN_TURN_SECRET`` by the
    composition root, with the SFU's connect timeout and the media ticks shortened for the tests."""
    made = room_wiring.media_options(settings)
    return replace(made, sfu=replace(made.sfu, connect_timeout=CONNECT_TIMEOUT_S), stats_interval_s=0.5, tick_s=0.1)


def turn_settings(make_settings: Callable[..., Settings], coturn: Coturn, transport: str,
                  secret: str = SECRET) -> Settings:
    """STUN and TURN on the test's coturn, the TURN secret, the SFU's host candidate on loopback."""
    settings = make_settings(ice_servers=f"stun:127.0.0.1:{coturn.port},{coturn.url(transport)}", turn_secret=secret,
                             media_host_addresses="127.0.0.1")
    assert isinstance(settings, Settings)
    return settings


@pytest.fixture(autouse=True)
def loopback_ice() -> Iterator[None]:
    restore = hooks.announce_host_addresses(("127.0.0.1",))
    yield
    restore()


# --- a relay-only venue ------------------------------------------------------------------------------------


def relay_only(ice_servers: list[dict[str, Any]]) -> RTCConfiguration:
    """The configuration a venue behind a UDP-blocking firewall uses: the TURN servers the room server
    handed it, and no host or server-reflexive candidates at all."""
    servers = [RTCIceServer(urls=[u for u in s["urls"] if u.startswith(("turn:", "turns:"))],
                            username=s.get("username"), credential=s.get("credential"))
               for s in ice_servers if any(u.startswith(("turn:", "turns:")) for u in s["urls"])]
    return RTCConfiguration(iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy.RELAY,
                            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


def candidate_types(sdp: str) -> list[str]:
    return re.findall(r"^a=candidate:\S+ \d+ \S+ \d+ \S+ \d+ typ (\w+)", sdp, flags=re.MULTILINE)


def selected_local_type(pc: RTCPeerConnection) -> str | None:
    """Type of the local candidate of the nominated ICE pair (the bundled transport)."""
    return hooks.nominated_local_candidate_type(pc)


@dataclass
class RelayVenue:
    """One venue's page over the real ``/ws``, its media through TURN only."""

    bot: VenueBot
    pcs: list[RTCPeerConnection] = field(default_factory=list)
    frames: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    colours: list[str] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def ice_servers(self) -> list[dict[str, Any]]:
        message = await self.bot.wait_for(lambda m: m["type"] == "media.ice_servers")
        servers: list[dict[str, Any]] = message["ice_servers"]
        return servers

    async def turn_user(self) -> str:
        return next(str(s["username"]) for s in await self.ice_servers() if s.get("username"))

    async def publish(self, colour: str) -> RTCPeerConnection:
        pc = RTCPeerConnection(relay_only(await self.ice_servers()))
        self.pcs.append(pc)
        mic, camera = ClipTrack(opus_clip(), name="mic"), ClipTrack(vp8_clip(colour=colour), name="camera")
        for track in (mic, camera):
            transceiver = pc.addTransceiver(track, direction="sendonly")
            hooks.on_keyframe_request(transceiver.sender, track.request_keyframe)
        await pc.setLocalDescription(await pc.createOffer())
        names = {str(t.mid): str(getattr(t.sender.track, "name", "")) for t in pc.getTransceivers()}
        answer = await self.bot.request({"type": "media.publish", "sdp": pc.localDescription.sdp, "tracks": names},
                                        "media.publish_answer")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        await self.bot.send({"type": "mic.set", "muted": False})
        return pc

    async def subscribe(self) -> RTCPeerConnection:
        offer = await self.bot.request({"type": "media.subscribe"}, "media.subscriber_offer")
        pc = RTCPeerConnection(relay_only(await self.ice_servers()))
        self.pcs.append(pc)
        pc.on("track", self._on_track)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.bot.send({"type": "media.answer", "sdp": pc.localDescription.sdp})
        return pc

    def _on_track(self, track: MediaStreamTrack) -> None:
        task = asyncio.get_running_loop().create_task(self._count(track))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _count(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames[track.kind] += 1
                if isinstance(frame, av.VideoFrame):
                    self.colours.append(nearest_colour(centre_yuv(frame)))
        except MediaStreamError:
            pass

    async def close(self) -> None:
        for pc in self.pcs:
            await pc.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.bot.close()


@pytest.fixture
async def venues() -> AsyncIterator[Callable[..., Any]]:
    made: list[RelayVenue] = []

    async def join(h: Harness, role: Role, venue: str, *, now: float | None = None) -> RelayVenue:
        token = h.issuer.issue(f"user:{role.value}:{venue}", roles=[role], room=ROOM, venue=venue, now=now)
        relay = RelayVenue(VenueBot(h.url, token, name=f"{role.value}-{venue}"))
        made.append(relay)
        await relay.bot.connect()
        return relay

    yield join
    await asyncio.gather(*(v.close() for v in made), return_exceptions=True)


# --- the tests -----------------------------------------------------------------------------------------------


@pytest.mark.media
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_relay_only_venues_exchange_media_through_coturn_with_the_credentials_the_room_gave_them(
        coturn: Coturn, venues: Callable[..., Any], transport: str, make_settings: Callable[..., Settings]) -> None:
    async with running_server(media=media_options(turn_settings(make_settings, coturn, transport))) as h:
        chair: RelayVenue = await venues(h, Role.CHAIR, "tinh")
        venue: RelayVenue = await venues(h, Role.VENUE, "tien-du")
        chair_user, venue_user = await chair.turn_user(), await venue.turn_user()
        assert chair_user.endswith(f":{chair.bot.participant}") and venue_user.endswith(f":{venue.bot.participant}")

        publisher = await chair.publish("red")
        subscriber = await venue.subscribe()
        for pc in (publisher, subscriber):
            sdp = pc.localDescription.sdp
            assert candidate_types(sdp) and set(candidate_types(sdp)) == {"relay"}, sdp  # nothing but coturn
        # the main venue holds the floor: the other venue receives its picture and its sound, through coturn
        await until(lambda: venue.frames["video"] >= 30 and venue.frames["audio"] >= 50, timeout=20,
                    what=f"frames through TURN/{transport}: {venue.frames}")
        assert venue.colours.count("red") >= 25, venue.colours[-10:]
        assert publisher.connectionState == subscriber.connectionState == "connected"
        assert selected_local_type(publisher) == selected_local_type(subscriber) == "relay"
        await until(lambda: coturn.allocated(chair_user) and coturn.allocated(venue_user), timeout=5,
                    what="coturn logged both allocations")
        assert not chair.bot.of_type("media.link") or all(
            m["state"] != "lost" for m in chair.bot.of_type("media.link"))


async def refused_publish(coturn: Coturn, relay: RelayVenue) -> float:
    """Publish relay-only with credentials coturn refuses: the page is told at once why (seconds taken)."""
    user = await relay.turn_user()
    start = time.monotonic()
    with pytest.raises(RequestRefused) as refused:
        await relay.publish("red")  # no relay candidate could be gathered: the offer carries none
    elapsed = time.monotonic() - start
    assert refused.value.code == "invalid_sdp", refused.value.message
    assert "no ICE candidate" in str(refused.value.message.get("detail")), refused.value.message
    assert candidate_types(relay.pcs[-1].localDescription.sdp) == []
    await until(lambda: coturn.refused(user), timeout=5, what="coturn logged the refusal")
    assert not coturn.allocated(user)  # refused by coturn's check of the credential, not lost on the way
    return elapsed


@pytest.mark.media
async def test_a_turn_secret_coturn_does_not_share_is_refused_and_the_venue_learns_it_in_bounded_time(
        coturn: Coturn, venues: Callable[..., Any], make_settings: Callable[..., Settings]) -> None:
    wrong = turn_settings(make_settings, coturn, "udp", secret="not-the-" + SECRET)
    async with running_server(media=media_options(wrong)) as h:
        chair: RelayVenue = await venues(h, Role.CHAIR, "tinh")
        assert await refused_publish(coturn, chair) < CONNECT_TIMEOUT_S  # aioice's own bound is 5 s per server
        # a relay-only subscriber answers without candidates: refused the same way, nothing connects
        venue: RelayVenue = await venues(h, Role.VENUE, "tien-du")
        since = len(venue.bot.messages)
        subscriber = await venue.subscribe()
        assert candidate_types(subscriber.localDescription.sdp) == []
        error = await venue.bot.wait_for(lambda m: m["type"] == "error", since=since, timeout=CONNECT_TIMEOUT_S)
        assert error["code"] == "invalid_sdp", error
        assert coturn.refused(await venue.turn_user())


@pytest.mark.media
async def test_an_expired_turn_credential_is_refused(coturn: Coturn, venues: Callable[..., Any],
                                                    make_settings: Callable[..., Settings]) -> None:
    # the room server's clock runs two hours behind coturn's: what it mints for an hour expired an hour ago
    def behind() -> float:
        return time.time() - 7200

    async with running_server(media=media_options(turn_settings(make_settings, coturn, "udp")), clock=behind) as h:
        chair: RelayVenue = await venues(h, Role.CHAIR, "tinh", now=behind())
        user = await chair.turn_user()
        assert int(user.split(":")[0]) < time.time() - 3000
        await refused_publish(coturn, chair)


REPO = Path(__file__).resolve().parents[2]
ROLLCALL_JS = REPO / "room_console" / "static" / "live-rollcall.js"
DEPLOY_CONF = REPO / "deploy" / "coturn" / "turnserver.conf"


async def relay_candidates(turn_url: str, username: str, credential: str) -> list[str]:
    """What a relay-only aiortc peer gathers from ``turn_url`` with these credentials (``typ relay`` lines)."""
    servers = [{"urls": [turn_url], "username": username, "credential": credential}]
    pc = RTCPeerConnection(relay_only(servers))
    try:
        pc.addTransceiver("audio", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        return candidate_types(pc.localDescription.sdp)
    finally:
        await pc.close()


@pytest.mark.media
async def test_coturn_keeps_an_allocation_made_in_time_after_its_credential_expires(coturn: Coturn) -> None:
    """Why a TTL of an hour does not cut a venue off mid-session: the credential is checked when allocating;
    the allocation's refreshes go on after the expiry. A new allocation with it is refused."""
    user, credential, expiry = turn_credentials(SECRET, "p-refresh", now=time.time(), ttl_s=1)
    server = ("127.0.0.1", coturn.port)
    _, client = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: turn.TurnClientUdpProtocol(server, username=user, password=credential, lifetime=600,
                                           channel_refresh_time=500), remote_addr=server)
    try:
        await client.connect()
        while time.time() <= expiry + 1:  # coturn reads its own clock: let the expiry pass for it
            await asyncio.sleep(0.1)
        refresh = stun.Message(message_method=stun.Method.REFRESH, message_class=stun.Class.REQUEST)
        refresh.attributes["LIFETIME"] = 600
        response, _ = await client.request_with_retry(refresh)
        assert response.attributes["LIFETIME"] == 600
        assert await relay_candidates(coturn.url("udp"), user, credential) == []
    finally:
        await client.delete()


@pytest.mark.media
async def test_the_deploy_example_of_coturn_accepts_what_the_room_server_mints_and_nothing_else(
        tmp_path: Path) -> None:
    """``deploy/coturn/turnserver.conf`` as shipped (only addresses, ports, secret and files overridden):
    its ``use-auth-secret`` scheme and realm take the room server's TURN REST credentials."""
    with running_coturn(tmp_path / "deploy-coturn", config=DEPLOY_CONF) as server:
        now = time.time()
        valid = turn_credentials(SECRET, "p-deploy-1", now=now, ttl_s=3600)
        wrong = turn_credentials("not-the-" + SECRET, "p-deploy-2", now=now, ttl_s=3600)
        expired = turn_credentials(SECRET, "p-deploy-3", now=now - 7200, ttl_s=3600)
        for transport in ("udp", "tcp"):
            assert await relay_candidates(server.url(transport), *valid[:2]) == ["relay"], server.log_lines(valid[0])
            assert await relay_candidates(server.url(transport), *wrong[:2]) == []
            assert await relay_candidates(server.url(transport), *expired[:2]) == []
        assert server.allocated(valid[0]) and not server.allocated(wrong[0]) and not server.allocated(expired[0])
        assert server.refused(wrong[0]) and server.refused(expired[0])
        assert "Default realm: tiepdan.example.gov.vn" in server.log.read_text(errors="replace")


@pytest.mark.browser
def test_the_readiness_check_in_chromium_reaches_coturn_only_with_valid_credentials(
        coturn: Coturn, browser: Browser) -> None:
    """The venue page's TURN probe (relay-only gathering in Chromium) against coturn: reachable with what
    the room mints, unreachable with a wrong secret or an expired credential."""
    now = time.time()
    minted = {
        "valid": turn_credentials(SECRET, "p-browser-1", now=now, ttl_s=600),
        "wrong_secret": turn_credentials("not-the-" + SECRET, "p-browser-2", now=now, ttl_s=600),
        "expired": turn_credentials(SECRET, "p-browser-3", now=now - 7200, ttl_s=3600),
    }
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content('<div id="live" data-config=\'{"room": "r"}\' data-messages="{}"></div>')
        page.add_script_tag(path=str(ROLLCALL_JS))
        verdicts = {}
        for name, (username, credential, _) in minted.items():
            for transport in ("udp", "tcp"):
                servers = [{"urls": [coturn.url(transport)], "username": username, "credential": credential}]
                verdicts[(name, transport)] = page.evaluate(
                    "servers => window.TiepdanRollCall.turnReachability(servers)", servers)
    finally:
        context.close()
    assert verdicts == {(name, transport): "reachable" if name == "valid" else "unreachable"
                        for name in minted for transport in ("udp", "tcp")}, verdicts
    assert coturn.allocated(minted["valid"][0])
    assert coturn.refused(minted["wrong_secret"][0]) and not coturn.allocated(minted["wrong_secret"][0])
    assert coturn.refused(minted["expired"][0]) and not coturn.allocated(minted["expired"][0])
