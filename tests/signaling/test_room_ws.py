"""The /ws endpoint over a real uvicorn on loopback with the ``websockets`` client: authentication
before accept, bad input, limits, moderation across peers, reconnect, refresh, bus-driven closes."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import jwt
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from evidence import Keyring
from signaling.events import (
    CaseCalled,
    CaseClosed,
    CasePaused,
    CaseRecalled,
    CaseResumed,
    SessionClosed,
    UserDisabled,
)
from signaling.grants import Role
from signaling.room import RoomOptions
from signaling.tokens import TokenIssuer, TokenOptions

from .room_harness import FAST, ROOM, Harness, running_server

pytestmark = pytest.mark.integration  # a real uvicorn server on loopback


async def refused(h: Harness, token: str | None, *, url: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(url or h.url, additional_headers=headers, open_timeout=5):
            pass
    body = json.loads(info.value.response.body or b"{}")
    return info.value.response.status_code, body.get("code", "")


def _b64(doc: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


async def test_forged_expired_and_misdirected_tokens_are_refused_before_accept() -> None:
    async with running_server() as h:
        good = h.token(Role.VENUE, venue="tien-du")
        header, payload, signature = good.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        other = Keyring.generate(dev=True)
        cases = {
            "expired": (h.issuer.issue("u:1", roles=[Role.VENUE], room=ROOM, venue="tien-du", ttl_s=60,
                                       now=time.time() - 3600), 401, "token_expired"),
            "other keyring": (TokenIssuer(other, TokenOptions()).issue("u:1", roles=[Role.CHAIR], room=ROOM),
                              401, "token_unknown_key"),
            "other key, real kid": (jwt.encode(claims, other.active_signing.private_pem(), algorithm="EdDSA",
                                               headers={"kid": h.keyring.active_signing.kid}), 401, "token_signature"),
            "tampered payload": (".".join([header, _b64({**claims, "roles": ["chair"]}), signature]), 401,
                                 "token_signature"),
            "alg none": (".".join([_b64({"alg": "none", "kid": h.keyring.active_signing.kid}), payload, ""]), 401,
                         "token_algorithm"),
            "wrong audience": (TokenIssuer(h.keyring, TokenOptions(audience="other")).issue(
                "u:1", roles=[Role.VENUE], room=ROOM, venue="tien-du"), 401, "token_audience"),
            "wrong room": (h.token(Role.VENUE, venue="tien-du", room="another-session"), 403, "wrong_room"),
            "no room claim": (h.token(Role.CHAIR, room=None), 403, "wrong_room"),
            "venue not in room": (h.token(Role.VENUE, venue="bac-ninh"), 403, "venue_not_in_room"),
            "venue role without venue": (h.token(Role.VENUE), 403, "forbidden"),
            "no subscribe grant": (h.token(Role.DISPLAY), 403, "forbidden"),
            "resume token as access": (h.issuer.issue("u:1", roles=[Role.VENUE], room=ROOM, venue="tien-du",
                                                      kind="resume", participant="p-1"), 401, "token_kind"),
            "garbage": ("not-a-jwt", 401, "token_malformed"),
        }
        for name, (token, status, code) in cases.items():
            assert await refused(h, token) == (status, code), name
        assert await refused(h, None) == (401, "token_missing")
        assert await refused(h, good, url=f"ws://127.0.0.1:{h.port}/ws?room=unknown-room") == (403, "wrong_room")
        unknown = h.token(Role.CHAIR, room="unknown-room")
        assert await refused(h, unknown, url=f"ws://127.0.0.1:{h.port}/ws?room=unknown-room") == (404, "room_unknown")
        assert h.server.room(ROOM) is not None and not h.server.room(ROOM).members  # type: ignore[union-attr]


async def test_token_signed_with_a_rotated_out_key_is_refused() -> None:
    async with running_server(token_options=TokenOptions(retired_grace_s=0)) as h:
        old = h.token(Role.VENUE, venue="tien-du")
        h.keyring.rotate(dev=True)
        await asyncio.sleep(0.01)
        assert await refused(h, old) == (401, "token_key_retired")
        client = await h.connect(h.token(Role.VENUE, venue="tien-du"))
        assert client.welcome["status"] == "admitted"


async def test_connect_ticket_is_redeemed_once_then_refused() -> None:
    async with running_server() as h:
        connect_ticket = await h.connect_tickets.issue(h.token(Role.VENUE, venue="tien-du"), 60)
        url = f"{h.url}&connect={connect_ticket}"
        async with websockets.connect(url, open_timeout=5) as ws:
            await ws.send(json.dumps({"type": "join", "protocol": 1}))
            assert json.loads(await ws.recv())["type"] == "welcome"
        assert await refused(h, None, url=url) == (401, "token_connect")


async def test_bad_input_gets_typed_errors_and_the_connection_survives() -> None:
    async with running_server() as h:
        client = await h.connect(h.token(Role.VENUE, venue="tien-du"))
        for frame, code in [
            ("{not json", "bad_message"),
            ("[1, 2]", "bad_message"),
            ('{"type": "floor.steal", "id": "a"}', "unknown_type"),
            ('{"no_type": 1}', "unknown_type"),
            ('{"type": "floor.give", "id": "b"}', "bad_message"),
            ('{"type": "mic.set", "muted": "maybe"}', "bad_message"),
            ('{"type": "join", "protocol": 1}', "already_joined"),
        ]:
            await client.ws.send(frame)
            answer = await client.expect("error")
            assert answer["code"] == code, frame
        await client.ws.send(b"\xff\xfe binary garbage")
        assert (await client.expect("error"))["code"] == "bad_message"
        await client.ws.send("[" * 30_000 + "]" * 30_000)  # deeper than Python's json module recurses
        assert (await client.expect("error"))["code"] == "bad_message"
        await client.send({"type": "ping", "id": "still-here"})
        assert await client.expect("pong") == {"type": "pong", "ref": "still-here"}


async def test_before_join_only_ping_and_leave_are_allowed_and_silence_closes_4000() -> None:
    async with running_server(RoomOptions(join_timeout_s=0.5)) as h:
        client = await h.connect(h.token(Role.VENUE, venue="tien-du"), join=False)
        await client.send({"type": "ping", "id": "p"})
        assert await client.expect("pong") == {"type": "pong", "ref": "p"}
        for early in ({"type": "hand.raise", "id": "h"}, {"type": "refresh", "token": "x", "id": "r"},
                      {"type": "media.subscribe", "id": "m"}):
            await client.send(early)
            answer = await client.expect("error")
            assert (answer["code"], answer["ref"]) == ("not_joined", early["id"])
        assert await client.closed_with() == 4000
        assert [m.get("code") for m in client.seen] == [None] + ["not_joined"] * 4  # the last: the timeout
        leaving = await h.connect(h.token(Role.VENUE, venue="tien-du"), join=False)
        await leaving.send({"type": "leave"})
        assert await leaving.closed_with() == 1000
        assert not h.server.room(ROOM).members  # type: ignore[union-attr]


async def test_unsupported_protocol_version_closes_4000() -> None:
    async with running_server() as h:
        client = await h.connect(h.token(Role.VENUE, venue="tien-du"), join=False)
        await client.send({"type": "join", "protocol": 2})
        assert (await client.expect("error"))["code"] == "unsupported_version"
        assert await client.closed_with() == 4000


async def test_oversized_frame_closes_1009() -> None:
    async with running_server(RoomOptions(max_frame_bytes=1024)) as h:
        client = await h.connect(h.token(Role.VENUE, venue="tien-du"))
        await client.send({"type": "ping", "id": "x" * 2000})
        assert await client.closed_with() == 1009


async def test_flood_is_rate_limited_with_the_dropped_ref_then_closed_1008_and_other_peers_are_undisturbed() -> None:
    options = RoomOptions(rate_per_s=5, rate_burst=5, flood_close_after=10)
    async with running_server(options) as h:
        chair = await h.connect(h.token(Role.CHAIR, venue="tinh"))
        flooder = await h.connect(h.token(Role.VENUE, venue="tien-du"))
        for i in range(40):
            await flooder.send({"type": "ping", "id": str(i)})
        assert await flooder.closed_with() == 1008
        errors = [m for m in flooder.seen if m["type"] == "error"]
        assert [m["code"] for m in errors] == ["rate_limited"]
        answered = {int(m["ref"]) for m in flooder.seen if m["type"] == "pong"}
        assert answered and int(errors[0]["ref"]) == min(set(range(40)) - answered)  # the first one dropped
        await chair.send({"type": "ping", "id": "ok"})
        assert (await chair.expect("pong"))["ref"] == "ok"


async def test_venue_joining_as_another_venue_is_refused_4003() -> None:
    async with running_server() as h:
        client = await h.connect(h.token(Role.VENUE, venue="tien-du"), join=False)
        await client.send({"type": "join", "protocol": 1, "venue": "que-vo"})
        assert (await client.expect("error"))["code"] == "forbidden"
        assert await client.closed_with() == 4003
        assert not h.server.room(ROOM).members  # type: ignore[union-attr]


async def test_venue_moderating_is_forbidden_and_floor_to_foreign_venue_refused() -> None:
    async with running_server() as h:
        chair = await h.connect(h.token(Role.CHAIR, venue="tinh"))
        venue = await h.connect(h.token(Role.VENUE, venue="tien-du"))
        other = await h.connect(h.token(Role.VENUE, venue="que-vo"))
        published = len(h.bus.published)
        for act in ({"type": "floor.give", "venue": "tien-du"}, {"type": "floor.take"},
                    {"type": "mic.mute", "participant": other.participant},
                    {"type": "participant.remove", "participant": other.participant},
                    {"type": "room.lock"}, {"type": "closed_segment.start", "venue": "que-vo"}):
            await venue.send({**act, "id": act["type"]})
            answer = await venue.expect("error")
            assert (answer["code"], answer["ref"]) == ("forbidden", act["type"])
        await chair.send({"type": "floor.give", "venue": "bac-ninh", "id": "f"})
        assert (await chair.expect("error"))["code"] == "venue_not_in_room"
        assert len(h.bus.published) == published
        assert h.server.room(ROOM).floor == "tinh"  # type: ignore[union-attr]


async def test_chair_moderation_reaches_every_peer_and_is_published() -> None:
    async with running_server() as h:
        chair = await h.connect(h.token(Role.CHAIR, venue="tinh"))
        secretary = await h.connect(h.token(Role.SECRETARY))
        venue = await h.connect(h.token(Role.VENUE, venue="tien-du"))
        await venue.send({"type": "hand.raise"})
        assert (await chair.expect("hands.changed"))["hands"] == [venue.participant]
        await chair.send({"type": "floor.give", "venue": "tien-du"})
        for peer in (chair, secretary, venue):
            assert (await peer.expect("floor.changed"))["venue"] == "tien-du"
        mic = await venue.expect("mic.changed", participant=venue.participant)
        assert mic["muted"] is False
        await secretary.send({"type": "closed_segment.request", "venue": "tien-du"})
        assert (await chair.expect("closed_segment.changed"))["closed_segment"]["state"] == "requested"
        await chair.send({"type": "closed_segment.start"})
        states = [(await venue.expect("closed_segment.changed"))["closed_segment"]["state"] for _ in range(2)]
        assert states == ["requested", "active"]
        await chair.send({"type": "room.lock"})
        await venue.expect("room.lock_changed", locked=True)
        late = await h.connect(h.token(Role.VENUE, venue="que-vo"))
        assert late.welcome["status"] == "lobby" and late.welcome["room"] is None
        entered = await chair.expect("lobby.entered")
        await chair.send({"type": "lobby.admit", "participant": entered["participant"]["participant"]})
        assert (await late.expect("admitted"))["room"]["floor"] == "tien-du"
        await chair.send({"type": "participant.remove", "participant": late.participant})
        await late.expect("removed")
        assert await late.closed_with() == 4004
        await asyncio.sleep(0.05)
        assert [t for t in h.bus.types() if t.startswith("room.")] == [
            "room.participant_joined", "room.participant_joined", "room.participant_joined", "room.hand_raised",
            "room.floor_revoked", "room.floor_granted", "room.muted", "room.closed_segment_requested",
            "room.closed_segment_started", "room.locked", "room.lobby_admitted", "room.participant_joined",
            "room.removed", "room.participant_left",
        ]


async def test_reconnect_within_grace_keeps_participant_floor_and_hand_without_leaving() -> None:
    async with running_server() as h:
        chair = await h.connect(h.token(Role.CHAIR, venue="tinh"))
        token = h.token(Role.VENUE, venue="tien-du")
        venue = await h.connect(token)
        await venue.send({"type": "hand.raise"})
        await chair.send({"type": "floor.give", "venue": "tien-du"})
        await venue.expect("floor.changed")
        await venue.ws.close()
        assert (await chair.expect("presence.updated"))["participant"]["connected"] is False
        again = await h.connect(token, resume=venue.welcome["resume_token"])
        assert again.welcome["resumed"] is True and again.participant == venue.participant
        assert again.welcome["room"]["floor"] == "tien-du"
        assert again.welcome["room"]["hands"] == [venue.participant]
        assert (await chair.expect("presence.updated"))["participant"]["connected"] is True
        await asyncio.sleep(FAST.reconnect_grace_s + 0.3)
        assert "room.participant_left" not in h.bus.types()


async def test_resume_token_of_another_subject_joins_as_new_participant() -> None:
    async with running_server() as h:
        venue = await h.connect(h.token(Role.VENUE, venue="tien-du", sub="u:1"))
        thief = await h.connect(h.token(Role.VENUE, venue="tien-du", sub="u:2"), resume=venue.welcome["resume_token"])
        assert thief.welcome["resumed"] is False and thief.participant != venue.participant
        assert (await thief.expect("error"))["code"] == "resume_failed"


async def test_resume_on_a_new_connection_closes_the_old_one_4009() -> None:
    async with running_server() as h:
        token = h.token(Role.VENUE, venue="tien-du")
        first = await h.connect(token)
        second = await h.connect(token, resume=first.welcome["resume_token"])
        assert second.participant == first.participant
        assert await first.closed_with() == 4009
        await second.send({"type": "ping"})
        await second.expect("pong")


async def test_after_the_grace_the_participant_leaves_with_an_event() -> None:
    async with running_server() as h:
        chair = await h.connect(h.token(Role.CHAIR, venue="tinh"))
        venue = await h.connect(h.token(Role.VENUE, venue="tien-du"))
        await venue.ws.close()
        left = await chair.expect("presence.left", timeout=FAST.reconnect_grace_s + 2)
        assert left == {"type": "presence.left", "participant": venue.participant, "reason": "timeout"}
        assert "room.participant_left" in h.bus.types()


async def test_leave_is_immediate() -> None:
    async with running_server() as h:
        chair = await h.connect(h.token(Role.CHAIR, venue="tinh"))
        venue = await h.connect(h.token(Role.VENUE, venue="tien-du"))
        await venue.send({"type": "leave"})
        assert await venue.closed_with() == 1000
        assert (await chair.expect("presence.left", timeout=0.5))["reason"] == "left"


async def test_token_expiring_then_refresh_keeps_the_connection() -> None:
    async with running_server(RoomOptions(refresh_lead_s=60)) as h:
        # Whole-second iat/exp: a 5 s token leaves at least 4 s for the exchange on a busy machine.
        venue = await h.connect(h.token(Role.VENUE, venue="tien-du", sub="u:1", ttl_s=5))
        expiring = await venue.expect("token.expiring", timeout=3)
        await venue.send({"type": "refresh", "token": h.token(Role.VENUE, venue="que-vo", sub="u:1")})
        assert (await venue.expect("error"))["code"] == "token_mismatch"
        await venue.send({"type": "refresh", "token": h.token(Role.VENUE, venue="tien-du", sub="u:1")})
        refreshed = await venue.expect("token.refreshed")
        assert refreshed["expires_at"] > expiring["expires_at"]
        await asyncio.sleep(5)  # past the first token's expiry
        await venue.send({"type": "ping"})
        await venue.expect("pong")


async def test_unrefreshed_token_closes_4001() -> None:
    async with running_server() as h:
        venue = await h.connect(h.token(Role.VENUE, venue="tien-du", ttl_s=2))
        await venue.expect("token.expiring", timeout=3)
        assert await venue.closed_with(timeout=4) == 4001
        assert any(m.get("code") == "token_expired" for m in venue.seen)


async def test_user_disabled_on_the_bus_ends_that_users_connections_4005() -> None:
    async with running_server() as h:
        chair = await h.connect(h.token(Role.CHAIR, venue="tinh"))
        token = h.token(Role.VENUE, venue="tien-du", sub="user:42")
        venue = await h.connect(token)
        await h.bus.publish(UserDisabled(user="user:42"))
        assert await venue.closed_with() == 4005
        assert (await chair.expect("presence.left"))["reason"] == "disabled"
        assert await refused(h, token) == (403, "account_disabled")


async def test_session_closed_on_the_bus_closes_the_room_4010() -> None:
    async with running_server() as h:
        chair = await h.connect(h.token(Role.CHAIR, venue="tinh"))
        await h.bus.publish(SessionClosed(session=ROOM))
        await chair.expect("room.closed")
        assert await chair.closed_with() == 4010
        assert await refused(h, h.token(Role.CHAIR, venue="tinh")) == (410, "room_closed")


async def test_server_close_ends_connections_with_1001() -> None:
    async with running_server() as h:
        venue = await h.connect(h.token(Role.VENUE, venue="tien-du"))
        await h.server.close()
        assert await venue.closed_with() == 1001
        assert h.server.closed
        await h.server.close()  # idempotent


async def test_the_call_order_on_the_bus_reaches_every_venue_and_moves_the_floor() -> None:
    async with running_server() as h:
        chair = await h.connect(h.token(Role.CHAIR, venue="tinh"))
        venue = await h.connect(h.token(Role.VENUE, venue="tien-du"))
        called = CaseCalled(session=ROOM, case="case-7", ticket_no=15, venue="tien-du", call_seq=1,
                            announcement_text="Mời công dân số 15 tại điểm cầu xã Tiên Du.",
                            announcement_audio_url="/media/announcements/abc.ogg")
        await h.bus.publish(called)
        for client in (chair, venue):
            notice = await client.expect("case.called")
            assert notice["call"] == {"call_seq": 1, "ticket_no": 15, "venue": "tien-du",
                                      "announcement_text": "Mời công dân số 15 tại điểm cầu xã Tiên Du.",
                                      "announcement_audio_url": "/media/announcements/abc.ogg", "paused": False}
            assert notice["recalled"] is False
            assert (await client.expect("floor.changed"))["venue"] == "tien-du"
        await venue.expect("mic.changed", participant=venue.participant, muted=False)
        await h.bus.publish(called)  # delivered twice: nothing more
        late = await h.connect(h.token(Role.VENUE, venue="que-vo"))
        assert late.welcome["room"]["calling"]["ticket_no"] == 15  # who joins later sees the call
        await h.bus.publish(CaseClosed(session=ROOM, case="case-7", ticket_no=15, venue="tien-du", call_seq=1))
        ended = await late.expect("case.ended")
        assert (ended["outcome"], ended["ticket_no"]) == ("closed", 15)
        assert (await late.expect("floor.changed"))["venue"] == "tinh"
        assert [m["type"] for m in chair.seen].count("case.called") == 1
        await h.bus.publish(CaseCalled(session="another-room", case="c", ticket_no=1, venue="x", call_seq=1,
                                       announcement_text=""))  # a room this node does not serve
        await chair.send({"type": "ping"})
        await chair.expect("pong")


async def test_a_recall_is_announced_again_with_the_floor_and_a_pause_reaches_every_page() -> None:
    async with running_server() as h:
        chair = await h.connect(h.token(Role.CHAIR, venue="tinh"))
        venue = await h.connect(h.token(Role.VENUE, venue="tien-du"))
        await h.bus.publish(CaseCalled(session=ROOM, case="case-7", ticket_no=15, venue="tien-du", call_seq=1,
                                       announcement_text="Mời công dân có số thứ tự 15."))
        await chair.expect("floor.changed", venue="tien-du")
        await chair.send({"type": "floor.give", "venue": "tinh"})
        await chair.expect("floor.changed", venue="tinh")
        await h.bus.publish(CaseRecalled(session=ROOM, case="case-7", ticket_no=15, venue="tien-du", call_seq=2,
                                         announcement_text="Mời công dân có số thứ tự 15.",
                                         announcement_audio_url="/api/announcements/" + "a" * 64 + ".wav"))
        for client in (chair, venue):
            notice = await client.expect("case.called", recalled=True)
            assert notice["call"]["call_seq"] == 2 and notice["call"]["announcement_audio_url"].endswith(".wav")
        await chair.expect("floor.changed", venue="tien-du")
        await h.bus.publish(CasePaused(session=ROOM, case="case-7", ticket_no=15, venue="tien-du", call_seq=2,
                                       pause_no=1, reason="link_lost"))
        for client in (chair, venue):
            paused = await client.expect("case.paused")
            assert (paused["ticket_no"], paused["pause_no"], paused["reason"]) == (15, 1, "link_lost")
        late = await h.connect(h.token(Role.VENUE, venue="que-vo"))
        assert late.welcome["room"]["calling"]["paused"] is True
        await h.bus.publish(CaseResumed(session=ROOM, case="case-7", ticket_no=15, venue="tien-du", call_seq=2,
                                        pause_no=1))
        for client in (chair, venue, late):
            assert (await client.expect("case.resumed"))["pause_no"] == 1
        assert [m["type"] for m in chair.seen].count("case.paused") == 1
