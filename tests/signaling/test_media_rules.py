"""The media plane's pure parts: slot layout, TURN credentials, link health, active speaker, error mapping."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

import sfu
from signaling.protocol import ErrorCode, MediaIceServers, dump_message, parse_server_message
from signaling.room.health import LinkMonitor, SpeakerTracker
from signaling.room.ice import ice_servers_for, parse_ice_urls, turn_credentials
from signaling.room.layout import LayoutInput, assign, role_of
from signaling.room.media import error_for

pytestmark = pytest.mark.unit

VENUES = ("tinh", "a", "b", "c", "d")
ALL = {"video": frozenset(VENUES), "audio": frozenset(VENUES)}


def layout(floor: str | None = "tinh", **kw: object) -> LayoutInput:
    args: dict[str, object] = {"venues": VENUES, "floor": floor, "chair": "tinh", "available": ALL}
    args.update(kw)
    return LayoutInput(**args)  # type: ignore[arg-type]


def test_floor_holder_then_chair_take_the_first_video_slots_and_nobody_sees_itself() -> None:
    result = assign(layout(floor="b", own="a"), video_slots=4, audio_slots=4)
    assert [result[f"video-{i}"] for i in range(4)] == ["b", "tinh", "c", "d"]
    assert "a" not in result.values()
    assert role_of("b", "b", "tinh") == "floor" and role_of("tinh", "b", "tinh") == "chair"
    assert role_of("c", "b", "tinh") == "other" and role_of(None, "b", "tinh") is None


def test_when_the_chair_holds_the_floor_one_large_slot_is_enough() -> None:
    result = assign(layout(floor="tinh", own="a"), video_slots=4, audio_slots=0)
    assert [result[f"video-{i}"] for i in range(4)] == ["tinh", "b", "c", "d"]


def test_floor_holder_sees_the_chair_large() -> None:
    result = assign(layout(floor="b", own="b"), video_slots=2, audio_slots=0)
    assert result == {"video-0": "tinh", "video-1": "a"}


def test_other_venues_keep_their_slot_when_the_floor_moves() -> None:
    first = assign(layout(floor="tinh", own="a"), video_slots=4, audio_slots=4)
    second = assign(layout(floor="c", own="a"), video_slots=4, audio_slots=4, previous=first)
    assert second["video-0"] == "c" and second["video-1"] == "tinh"
    # b stays where it was (video-1 is now the chair's, so b had to move only if it was there)
    assert first["video-1"] == "b" and second["video-3"] == "d"
    assert sorted(v for v in second.values() if v) == sorted(["c", "tinh", "b", "d"] * 2)
    # audio never moves a venue that is still shown
    for slot, venue in first.items():
        if slot.startswith("audio") and venue is not None:
            assert second[slot] == venue


def test_hidden_and_silent_venues_are_not_shown_and_empty_slots_are_none() -> None:
    available = {"video": frozenset({"tinh", "b"}), "audio": frozenset({"tinh", "b", "c"})}
    result = assign(layout(floor="c", own="a", available=available, hidden=frozenset({"b"})),
                    video_slots=3, audio_slots=3)
    assert [result[f"video-{i}"] for i in range(3)] == ["tinh", None, None]
    assert [result[f"audio-{i}"] for i in range(3)] == ["c", "tinh", None]


def test_a_floor_holder_publishing_nothing_gets_no_slot_until_it_publishes_then_takes_the_first() -> None:
    silent_c = {kind: frozenset(VENUES) - {"c"} for kind in ("video", "audio")}
    before = assign(layout(floor="c", own="a", available=silent_c), video_slots=4, audio_slots=4)
    assert [before[f"video-{i}"] for i in range(4)] == ["tinh", "b", "d", None]  # the chair's venue first
    assert [role_of(v, "c", "tinh") for v in before.values() if v] == ["chair", "other", "other"] * 2
    after = assign(layout(floor="c", own="a"), video_slots=4, audio_slots=4, previous=before)
    assert [after[f"video-{i}"] for i in range(4)] == ["c", "tinh", "d", "b"]  # d keeps its slot, b moves
    assert [after[f"audio-{i}"] for i in range(4)] == ["tinh", "b", "d", "c"]  # audio slots never move


def test_short_of_slots_the_floor_and_chair_are_heard_first() -> None:
    result = assign(layout(floor="d", own="a"), video_slots=1, audio_slots=2)
    assert result == {"video-0": "d", "audio-0": "d", "audio-1": "tinh"}


def test_turn_credentials_follow_the_turn_rest_scheme() -> None:
    username, credential, expiry = turn_credentials("s3cret", "p-1", now=1_000.7, ttl_s=3600)
    assert (username, expiry) == ("4600:p-1", 4600)
    expected = base64.b64encode(hmac.new(b"s3cret", b"4600:p-1", hashlib.sha1).digest()).decode()
    assert credential == expected


def test_ice_servers_message_gives_stun_plain_and_turn_with_credentials() -> None:
    urls = parse_ice_urls("stun:turn.example:3478, turn:turn.example:3478?transport=udp,turns:turn.example:443")
    servers, expires_at = ice_servers_for(urls, "k", "p-9", now=100.0, ttl_s=60)
    message = parse_server_message(dump_message(MediaIceServers(ice_servers=servers, expires_at=expires_at)))
    assert isinstance(message, MediaIceServers)
    stun, turn = message.ice_servers
    assert stun.urls == ("stun:turn.example:3478",) and stun.username is None
    assert turn.urls == ("turn:turn.example:3478?transport=udp", "turns:turn.example:443")
    assert turn.username == "160:p-9" and expires_at == 160
    assert turn.credential == turn_credentials("k", "p-9", now=100.0, ttl_s=60)[1]
    # without a secret TURN is left out rather than handed out unusable
    assert ice_servers_for(urls, None, "p-9", now=100.0, ttl_s=60) == ((stun,), None)
    with pytest.raises(ValueError):
        parse_ice_urls("http://example.org")


def test_link_monitor_reports_lost_after_silence_and_restored_when_media_flows() -> None:
    monitor = LinkMonitor(3.0)
    assert monitor.sample({"a": 0}, 0.0) == []  # pending: no media yet, never "lost"
    assert monitor.sample({"a": 0}, 10.0) == []
    assert monitor.sample({"a": 5}, 11.0) == []
    assert monitor.sample({"a": 5}, 13.9) == []
    assert monitor.sample({"a": 5}, 14.0) == [("a", "lost")]
    assert monitor.sample({}, 20.0) == []  # gone (e.g. reconnecting): still lost, reported once
    assert monitor.sample({"a": 1}, 21.0) == [("a", "restored")]  # a new publication counts
    assert monitor.failed("a", 22.0) == "lost" and monitor.failed("a", 22.5) is None
    monitor.forget("a")  # deliberate end: no more transitions
    assert monitor.sample({}, 40.0) == []


def test_active_speaker_changes_at_most_once_per_interval() -> None:
    tracker = SpeakerTracker(1.0)
    tracker.update("a", speaking=True, level=30)
    assert tracker.tick(0.0) == (True, "a")
    tracker.update("b", speaking=True, level=10)
    assert tracker.tick(0.5) == (False, "a")  # inside the window
    assert tracker.tick(1.0) == (True, "b")
    tracker.update("b", speaking=False)
    tracker.update("a", speaking=False)
    assert tracker.tick(1.8) == (False, "b")  # a pause between words: b keeps the highlight
    tracker.update("b", speaking=True, level=10)
    assert tracker.tick(2.2) == (False, "b")
    tracker.update("b", speaking=False)
    assert tracker.tick(4.0) == (False, "b")  # 1.8 s of silence
    assert tracker.tick(4.3) == (True, None)  # more than 2 s: nobody speaks
    tracker.update("a", speaking=True, level=20)
    tracker.forget("a")
    assert tracker.tick(6.0) == (False, None)


def test_sfu_errors_map_to_typed_protocol_errors() -> None:
    assert error_for(sfu.InvalidSdp("x")) == ErrorCode.INVALID_SDP
    assert error_for(sfu.UnsupportedCodec("x")) == ErrorCode.UNSUPPORTED_CODEC
    assert error_for(sfu.InvalidCandidate("x")) == ErrorCode.INVALID_CANDIDATE
    assert error_for(sfu.NegotiationStateError("x")) == ErrorCode.MEDIA_STATE
    assert error_for(sfu.AlreadyPublishing("x")) == ErrorCode.ALREADY_PUBLISHING
    assert error_for(sfu.NegotiationError("x")) == ErrorCode.INVALID_SDP
    assert error_for(sfu.IceTimeout("x")) == ErrorCode.MEDIA_FAILED
