"""The moderation state machine, pure: inputs in, effects out (no server, no clock)."""

from __future__ import annotations

import pytest

from signaling.events import VenueInfo
from signaling.protocol import (
    CallView,
    CloseCode,
    ClosedSegmentEnd,
    ClosedSegmentRequest,
    ClosedSegmentStart,
    FloorGive,
    FloorTake,
    HandLower,
    HandRaise,
    LobbyAdmit,
    LobbyDeny,
    MicMute,
    MicSet,
    MicUnmuteRequest,
    ParticipantRemove,
    RoomLock,
    RoomUnlock,
)
from signaling.room.moderation import SCHEDULER, Broadcast, Disconnect, Effect, Identity, Publish, Room, Send

pytestmark = pytest.mark.unit

VENUES = (VenueInfo(venue="tinh", name="Tỉnh", main=True), VenueInfo(venue="a", name="Xã A"),
          VenueInfo(venue="b", name="Xã B"))
CHAIR = Identity("u:chair", ("chair",), "tinh")
SECRETARY = Identity("u:sec", ("secretary",), None)
VENUE_A = Identity("u:a", ("venue",), "a")
VENUE_B = Identity("u:b", ("venue",), "b")


def events(effects: list[Effect]) -> list[str]:
    return [e.event.type for e in effects if isinstance(e, Publish)]


def errors(effects: list[Effect]) -> list[str]:
    return [e.message.code for e in effects if isinstance(e, Send) and e.message.type == "error"]


@pytest.fixture
def room() -> Room:
    r = Room("r1", VENUES)
    r.join("chair", CHAIR, 0)
    r.join("pa", VENUE_A, 0)
    r.join("pb", VENUE_B, 0)
    r.join("sec", SECRETARY, 0)
    return r


def test_floor_is_exclusive_and_moves_with_revoke_grant_and_mic_changes(room: Room) -> None:
    out = room.act("chair", FloorGive(venue="a"), 1)
    assert room.floor == "a"
    assert events(out) == ["room.floor_revoked", "room.floor_granted", "room.muted"]
    assert room.members["pa"].muted is False
    out = room.act("chair", FloorGive(venue="b"), 2)
    assert room.floor == "b"
    assert events(out) == ["room.floor_revoked", "room.floor_granted", "room.muted", "room.muted"]
    assert room.members["pa"].muted and room.members["pa"].forced
    assert not room.members["pb"].muted


def test_floor_take_returns_to_main_venue(room: Room) -> None:
    room.act("chair", FloorGive(venue="a"), 1)
    room.act("chair", FloorTake(), 2)
    assert room.floor == "tinh"


def test_giving_the_floor_to_its_holder_changes_nothing(room: Room) -> None:
    version = room.version
    assert room.act("chair", FloorGive(venue="tinh"), 1) == []
    assert room.version == version


@pytest.mark.parametrize("message", [
    FloorGive(venue="b"), FloorTake(), MicMute(participant="pb"), MicUnmuteRequest(participant="pb"),
    ParticipantRemove(participant="pb"), RoomLock(), ClosedSegmentRequest(venue="a"), ClosedSegmentStart(venue="a"),
    ClosedSegmentEnd(), HandLower(participant="chair"),
])
def test_venue_without_grant_is_forbidden_and_nothing_changes(room: Room, message: object) -> None:
    room.act("chair", HandRaise(), 0)
    before = room.record()
    out = room.act("pa", message, 1)  # type: ignore[arg-type]
    assert errors(out) == ["forbidden"]
    assert room.record() == before


def test_floor_to_a_venue_not_in_the_room_is_refused(room: Room) -> None:
    before = room.record()
    assert errors(room.act("chair", FloorGive(venue="elsewhere"), 1)) == ["venue_not_in_room"]
    assert room.record() == before


def test_force_mute_holds_until_unmute_request_then_participant_decides(room: Room) -> None:
    room.act("chair", MicMute(participant="pa"), 1)
    assert errors(room.act("pa", MicSet(muted=False), 2)) == ["forbidden"]
    out = room.act("chair", MicUnmuteRequest(participant="pa"), 3)
    assert events(out) == ["room.unmute_requested"]
    assert [e.to for e in out if isinstance(e, Send)] == ["pa"]
    out = room.act("pa", MicSet(muted=False), 4)
    assert events(out) == ["room.muted"] and not room.members["pa"].muted


def test_secretary_has_no_microphone(room: Room) -> None:
    assert errors(room.act("sec", MicSet(muted=False), 1)) == ["forbidden"]


def test_hands_are_fifo_and_only_moderators_lower_others(room: Room) -> None:
    room.act("pb", HandRaise(), 1)
    room.act("pa", HandRaise(), 2)
    assert room.act("pa", HandRaise(), 3) == []
    assert room.hands == ["pb", "pa"]
    assert errors(room.act("pa", HandLower(participant="pb"), 4)) == ["forbidden"]
    room.act("chair", HandLower(participant="pb"), 5)
    assert room.hands == ["pa"]
    out = room.act("pa", HandLower(), 6)  # ``participant`` is optional: one's own hand
    assert events(out) == ["room.hand_lowered"] and room.hands == []


def test_locked_room_sends_newcomers_to_lobby_and_chair_admits_or_denies(room: Room) -> None:
    room.act("chair", RoomLock(), 1)
    out = room.join("pc", Identity("u:c", ("venue",), "a"), 2)
    assert room.members["pc"].status == "lobby"
    assert any(isinstance(e, Broadcast) and e.audience == "moderators" for e in out)
    assert errors(room.act("pc", HandRaise(), 3)) == ["in_lobby"]
    out = room.act("chair", LobbyAdmit(participant="pc"), 4)
    assert events(out) == ["room.lobby_admitted", "room.participant_joined"]
    assert room.members["pc"].status == "admitted"
    room.join("pd", Identity("u:d", ("venue",), "b"), 5)
    out = room.act("chair", LobbyDeny(participant="pd"), 6)
    assert "pd" not in room.members
    assert Disconnect("pd", CloseCode.FORBIDDEN) in out
    assert errors(room.act("chair", LobbyAdmit(participant="pd"), 7)) == ["not_in_lobby"]
    room.act("chair", RoomUnlock(), 8)
    assert not room.locked


def test_moderator_enters_a_locked_room_directly(room: Room) -> None:
    room.act("chair", RoomLock(), 1)
    room.join("chair2", Identity("u:chair2", ("chair",), "tinh"), 2)
    assert room.members["chair2"].status == "admitted"


def test_removed_participant_is_disconnected_and_returns_to_the_lobby(room: Room) -> None:
    room.act("pa", HandRaise(), 0)
    out = room.act("chair", ParticipantRemove(participant="pa"), 1)
    assert events(out) == ["room.removed", "room.participant_left"]
    assert Disconnect("pa", CloseCode.REMOVED) in out
    assert "pa" not in room.hands
    room.join("pa2", VENUE_A, 2)
    assert room.members["pa2"].status == "lobby"


def test_closed_segment_requested_by_secretary_confirmed_by_chair_then_ended(room: Room) -> None:
    out = room.act("sec", ClosedSegmentRequest(venue="a"), 1)
    assert events(out) == ["room.closed_segment_requested"]
    assert errors(room.act("sec", ClosedSegmentStart(), 2)) == ["forbidden"]
    out = room.act("chair", ClosedSegmentStart(), 3)
    assert events(out) == ["room.closed_segment_started"]
    assert room.closed_segment is not None and room.closed_segment.state == "active"
    assert events(room.act("chair", ClosedSegmentEnd(), 4)) == ["room.closed_segment_ended"]
    assert errors(room.act("chair", ClosedSegmentEnd(), 5)) == ["no_closed_segment"]


def test_disconnect_keeps_the_place_until_the_grace_then_leaves(room: Room) -> None:
    room.act("chair", FloorGive(venue="a"), 0)
    room.act("pa", HandRaise(), 0)
    assert events(room.disconnect("pa", 10)) == []
    assert room.expire(10.5, 1.0) == []
    assert room.resume("pa", "u:a") != []
    assert room.members["pa"].connected and room.hands == ["pa"] and room.floor == "a"
    room.disconnect("pa", 20)
    out = room.expire(21, 1.0)
    assert events(out) == ["room.participant_left"]
    assert "pa" not in room.members and room.hands == []


def test_resume_by_another_subject_is_refused(room: Room) -> None:
    room.disconnect("pa", 1)
    with pytest.raises(KeyError):
        room.resume("pa", "u:b")


def test_record_and_restore_keep_floor_lobby_hands_lock_and_closed_segment(room: Room) -> None:
    room.act("chair", FloorGive(venue="a"), 1)
    room.act("pb", HandRaise(), 2)
    room.act("chair", RoomLock(), 3)
    room.join("pc", Identity("u:c", ("venue",), "a"), 4)
    room.act("sec", ClosedSegmentRequest(venue="b"), 5)
    restored = Room.restore(room.record(), 100)
    assert restored.record().model_dump(exclude={"members"}) == room.record().model_dump(exclude={"members"})
    assert all(not m.connected for m in restored.members.values())
    assert restored.resume("pb", "u:b")
    assert events(restored.expire(200, 30)) == ["room.participant_left"] * 3


def test_disable_disconnects_that_users_participants(room: Room) -> None:
    out = room.disable("u:a", 1)
    assert Disconnect("pa", CloseCode.ACCOUNT_DISABLED) in out
    assert events(out) == ["room.participant_left"]


def test_close_tells_everyone_and_refuses_later_joins(room: Room) -> None:
    out = room.close(1)
    assert {e.participant for e in out if isinstance(e, Disconnect)} == {"chair", "pa", "pb", "sec"}
    assert room.close(2) == []
    from signaling.room.errors import RoomClosed

    with pytest.raises(RoomClosed):
        room.join("late", VENUE_A, 3)
    assert errors(room.act("chair", RoomLock(), 4)) == ["room_closed"]


def _broadcast_types(effects: list[Effect]) -> list[str]:
    return [e.message.type for e in effects if isinstance(e, Broadcast)]


def test_a_called_case_is_announced_and_its_venue_gets_the_floor_until_the_case_ends(room: Room) -> None:
    call = CallView(call_seq=1, ticket_no=15, venue="a", announcement_text="Mời công dân số 15 tại xã A.")
    out = room.case_called(call, 1)
    assert _broadcast_types(out)[:2] == ["case.called", "floor.changed"]
    assert room.floor == "a" and room.calling == call and not room.members["pa"].muted
    floor_changed = next(e.message for e in out if isinstance(e, Broadcast) and e.message.type == "floor.changed")
    assert floor_changed.by == SCHEDULER  # type: ignore[union-attr]
    assert room.view_for("pb").calling == call  # a venue that joins or comes back sees the call
    assert room.case_called(call, 2) == []  # the bus delivered it twice: nothing more
    assert room.case_ended(7, "closed", 3) == []  # not the case being received
    out = room.case_ended(1, "closed", 4)
    assert _broadcast_types(out)[0] == "case.ended" and room.floor == "tinh" and room.calling is None
    assert room.members["pa"].muted and room.members["pa"].forced
    assert room.case_ended(1, "closed", 5) == []


def test_the_case_being_received_survives_a_restart_and_a_call_to_another_room_venue_keeps_the_floor(
        room: Room) -> None:
    call = CallView(call_seq=2, ticket_no=3, venue="b")
    room.case_called(call, 1)
    restored = Room.restore(room.record(), 10)
    assert restored.calling == call and restored.floor == "b"
    stray = CallView(call_seq=3, ticket_no=4, venue="not-here")  # a venue this room does not have
    out = restored.case_called(stray, 11)
    assert _broadcast_types(out) == ["case.called"] and restored.floor == "b"
    assert restored.case_ended(3, "absent", 12)[0].message.outcome == "absent"  # type: ignore[union-attr]


def test_a_recalled_case_is_announced_again_and_a_pause_tells_everyone_until_resumed(room: Room) -> None:
    room.case_called(CallView(call_seq=1, ticket_no=15, venue="a"), 1)
    room.act("chair", FloorGive(venue="b"), 2)  # the chair moved the floor; a recall brings it back
    again = CallView(call_seq=2, ticket_no=15, venue="a", announcement_text="Mời công dân có số thứ tự 15.")
    out = room.case_called(again, 3, recalled=True)
    notice = next(e.message for e in out if isinstance(e, Broadcast) and e.message.type == "case.called")
    assert notice.recalled and room.floor == "a"  # type: ignore[union-attr]
    assert room.case_paused(1, 1, "chair") == []  # not the current call
    out = room.case_paused(2, 1, "link_lost")
    assert _broadcast_types(out) == ["case.paused"] and room.floor == "a"
    assert room.calling is not None and room.calling.paused and room.view_for("pb").calling == room.calling
    assert room.case_paused(2, 1, "link_lost") == []  # delivered twice
    assert Room.restore(room.record(), 4).calling == room.calling
    out = room.case_resumed(2, 1)
    assert _broadcast_types(out) == ["case.resumed"] and room.calling is not None and not room.calling.paused
    assert room.case_resumed(2, 1) == []
    assert _broadcast_types(room.case_ended(2, "closed", 5))[0] == "case.ended" and room.floor == "tinh"
