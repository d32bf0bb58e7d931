"""The live-room WebSocket protocol at ``/ws`` (published: pydantic only).

One closed union per direction, discriminated on ``type``: :data:`ClientMessage` (client → server)
and :data:`ServerMessage` (server → client), parsed once at the edge with
:func:`parse_client_message` / :func:`parse_server_message`. ``docs/protocol.md`` documents every
message with a JSON example; ``tests/signaling/test_protocol.py`` parses each example with these
unions.

Versioning: the protocol version is :data:`PROTOCOL_VERSION`; the client states it in ``join`` and
the server repeats it in ``welcome``. Within one version the server may add *server* message
types and optional fields (a client ignores a ``type`` it does not know); a change a client must
understand bumps the version. The media plane joined both unions under the ``media.`` prefix
without touching the other messages: new *client* types are only sent by clients that know them,
new *server* types are ignored by clients that do not, so the version stays 1.

Importing this module loads neither fastapi nor aiortc.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

__all__ = [
    "PROTOCOL_VERSION", "RoomId", "VenueId", "ParticipantId", "ErrorCode", "CloseCode",
    "ClientMessage", "ServerMessage", "CLIENT_MESSAGE_TYPES", "SERVER_MESSAGE_TYPES",
    "parse_client_message", "parse_server_message", "dump_message", "ERROR_TEXT_VI", "error",
    # client → server
    "Join", "Leave", "Ping", "Refresh", "FloorGive", "FloorTake", "MicMute", "MicUnmuteRequest", "MicSet",
    "LobbyAdmit", "LobbyDeny", "ParticipantRemove", "HandRaise", "HandLower", "RoomLock", "RoomUnlock",
    "ClosedSegmentRequest", "ClosedSegmentStart", "ClosedSegmentEnd",
    "MediaPublish", "MediaSubscribe", "MediaAnswer", "MediaIce", "MediaUnpublish",
    # server → client
    "Welcome", "Admitted", "RoomState", "PresenceJoined", "PresenceUpdated", "PresenceLeft",
    "FloorChanged", "MicChanged", "UnmuteRequested", "LobbyEntered", "LobbyLeft", "LobbyDenied",
    "RemovedNotice", "HandsChanged", "LockChanged", "ClosedSegmentChanged", "TokenExpiring",
    "TokenRefreshed", "Pong", "Error", "RoomClosedNotice",
    "MediaIceServers", "MediaPublishAnswer", "MediaSubscriberOffer", "MediaSlots", "MediaLink",
    "MediaActiveSpeaker", "MediaStats", "CaseCalledNotice", "CaseEndedNotice", "CasePausedNotice",
    "CaseResumedNotice", "RecordingAlarm",
    # shared shapes
    "VenueView", "ParticipantView", "ClosedSegmentView", "CallView", "RoomView", "You",
    "IceServerView", "SlotView", "SlotSource", "MediaStatsEntry", "TrackName", "Mid",
]

PROTOCOL_VERSION = 1

_SLUG = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
RoomId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_SLUG)]
"""A room id: the id of the reception session (opaque slug)."""
VenueId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_SLUG)]
"""A venue id (điểm cầu): the slug ``schedules`` announced in ``SessionOpened``."""
ParticipantId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_SLUG)]
"""A participant id, assigned by the server at join, kept across a resume."""
RequestId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
TrackName = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9-]*$")]
"""A published track's name (``camera``, ``mic``, ``camera-low``)."""
Mid = Annotated[str, StringConstraints(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_-]+$")]
"""An SDP media-section id (``a=mid``)."""
Sdp = Annotated[str, StringConstraints(min_length=1, max_length=60_000)]
"""A complete session description (all candidates included: no trickle needed)."""
MediaRole = Literal["publisher", "subscriber"]
MAX_SLOTS = 16


class ErrorCode(StrEnum):
    """Stable machine-readable error codes (``error.code``); ``docs/protocol.md`` explains each."""

    BAD_MESSAGE = "bad_message"            # not JSON, not an object, a field missing or invalid
    UNKNOWN_TYPE = "unknown_type"          # ``type`` is not a client message of this version
    UNSUPPORTED_VERSION = "unsupported_version"
    NOT_JOINED = "not_joined"              # before ``join`` only ``ping`` and ``leave``; or no ``join`` in time
    ALREADY_JOINED = "already_joined"
    FORBIDDEN = "forbidden"                # the token lacks the grant, or acts as another venue
    IN_LOBBY = "in_lobby"                  # waiting in the lobby: only ping/refresh/leave
    NOT_IN_ROOM = "not_in_room"            # the target participant is not in the room
    NOT_IN_LOBBY = "not_in_lobby"          # the target participant is not waiting in the lobby
    VENUE_NOT_IN_ROOM = "venue_not_in_room"  # the venue is not one of the session's venues
    NO_CLOSED_SEGMENT = "no_closed_segment"
    RATE_LIMITED = "rate_limited"          # messages dropped; ``ref``: the first one dropped
    ROOM_CLOSED = "room_closed"
    ROOM_UNKNOWN = "room_unknown"
    WRONG_ROOM = "wrong_room"              # the token's ``room`` claim is not the room asked for
    ACCOUNT_DISABLED = "account_disabled"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_INVALID = "token_invalid"        # a refresh token that does not verify (see ``detail``)
    TOKEN_MISMATCH = "token_mismatch"      # a refresh token for another subject, room or venue
    RESUME_FAILED = "resume_failed"
    INVALID_SDP = "invalid_sdp"            # the session description cannot be used (``detail`` says why)
    UNSUPPORTED_CODEC = "unsupported_codec"  # no codec the room forwards (VP8/H.264, Opus) is offered
    INVALID_CANDIDATE = "invalid_candidate"  # a trickled ICE candidate cannot be parsed or placed
    MEDIA_STATE = "media_state"            # out of order: an answer without an offer, a second subscribe
    ALREADY_PUBLISHING = "already_publishing"  # the venue already publishes (this or another connection)
    MEDIA_FAILED = "media_failed"          # the media plane failed for this request; nothing changed
    MEDIA_UNAVAILABLE = "media_unavailable"  # this node serves no media (no SFU)
    INTERNAL = "internal"


class CloseCode(IntEnum):
    """WebSocket close codes the server uses (RFC 6455 §7.4 and the private 4000–4999 range)."""

    NORMAL = 1000            # the client sent ``leave``
    GOING_AWAY = 1001        # the server shuts down: reconnect with the resume token
    POLICY = 1008            # persistent flooding after ``rate_limited``
    TOO_BIG = 1009           # a frame larger than the limit
    INTERNAL = 1011
    PROTOCOL = 4000          # no ``join`` in time, or a second ``join``
    TOKEN_EXPIRED = 4001     # the access token expired without a ``refresh``
    FORBIDDEN = 4003         # denied from the lobby, or joined as another venue
    REMOVED = 4004           # removed by the chair
    ACCOUNT_DISABLED = 4005  # the account was disabled
    SESSION_ENDED = 4006     # the console login session the token was minted for ended (signed out)
    SLOW_CONSUMER = 4008     # the client did not read fast enough (outbound queue full)
    REPLACED = 4009          # the same participant resumed on another connection
    ROOM_CLOSED = 4010       # the session closed


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _ClientMessage(_Message):
    id: RequestId | None = None
    """Optional request id, echoed as ``ref`` in an ``error`` caused by this message."""


# -- client → server ------------------------------------------------------------------------------


class Join(_ClientMessage):
    """First message after the socket opens. ``resume`` takes back a participant (reconnect)."""

    type: Literal["join"] = "join"
    protocol: int = Field(ge=1)
    resume: str | None = Field(default=None, max_length=8192)
    venue: VenueId | None = None
    """The venue the client acts as; when given it must be the token's ``venue`` claim."""


class Leave(_ClientMessage):
    type: Literal["leave"] = "leave"


class Ping(_ClientMessage):
    type: Literal["ping"] = "ping"


class Refresh(_ClientMessage):
    """A new access token (same subject, room and venue) before the current one expires."""

    type: Literal["refresh"] = "refresh"
    token: str = Field(min_length=1, max_length=8192)


class FloorGive(_ClientMessage):
    type: Literal["floor.give"] = "floor.give"
    venue: VenueId


class FloorTake(_ClientMessage):
    """Take the floor back: it returns to the main venue."""

    type: Literal["floor.take"] = "floor.take"


class MicMute(_ClientMessage):
    """Moderator: force a participant's microphone off (server-authoritative)."""

    type: Literal["mic.mute"] = "mic.mute"
    participant: ParticipantId


class MicUnmuteRequest(_ClientMessage):
    """Moderator: ask a participant to turn its microphone on; the participant decides."""

    type: Literal["mic.unmute_request"] = "mic.unmute_request"
    participant: ParticipantId


class MicSet(_ClientMessage):
    """Set one's own microphone; unmuting is refused while force-muted without a request."""

    type: Literal["mic.set"] = "mic.set"
    muted: bool


class LobbyAdmit(_ClientMessage):
    type: Literal["lobby.admit"] = "lobby.admit"
    participant: ParticipantId


class LobbyDeny(_ClientMessage):
    type: Literal["lobby.deny"] = "lobby.deny"
    participant: ParticipantId


class ParticipantRemove(_ClientMessage):
    type: Literal["participant.remove"] = "participant.remove"
    participant: ParticipantId


class HandRaise(_ClientMessage):
    type: Literal["hand.raise"] = "hand.raise"


class HandLower(_ClientMessage):
    """Lower one's own hand, or (moderator) another participant's."""

    type: Literal["hand.lower"] = "hand.lower"
    participant: ParticipantId | None = None


class RoomLock(_ClientMessage):
    type: Literal["room.lock"] = "room.lock"


class RoomUnlock(_ClientMessage):
    type: Literal["room.unlock"] = "room.unlock"


class ClosedSegmentRequest(_ClientMessage):
    """Secretary (or chair): ask for a closed segment (phiên kín) for ``venue``."""

    type: Literal["closed_segment.request"] = "closed_segment.request"
    venue: VenueId


class ClosedSegmentStart(_ClientMessage):
    """Chair: confirm the pending request, or start directly; ``venue`` defaults to the request's."""

    type: Literal["closed_segment.start"] = "closed_segment.start"
    venue: VenueId | None = None


class ClosedSegmentEnd(_ClientMessage):
    """Chair: end the closed segment, or withdraw a pending request."""

    type: Literal["closed_segment.end"] = "closed_segment.end"


class MediaPublish(_ClientMessage):
    """Publish camera and microphone (grant PUBLISH, as the token's venue): a send-only offer.

    ``tracks`` names the offer's media sections by ``mid`` (e.g. ``{"0": "mic", "1": "camera"}``);
    unnamed ones get ``audio-0``, ``video-0``, … The answer is ``media.publish_answer``.
    """

    type: Literal["media.publish"] = "media.publish"
    sdp: Sdp
    tracks: dict[Mid, TrackName] = Field(default_factory=dict, max_length=8)


class MediaSubscribe(_ClientMessage):
    """Ask for the subscriber connection: the server offers fixed slots (``media.subscriber_offer``).

    Without counts the server decides from the room size (one video and one audio slot per venue).
    """

    type: Literal["media.subscribe"] = "media.subscribe"
    video_slots: int | None = Field(default=None, ge=0, le=MAX_SLOTS)
    audio_slots: int | None = Field(default=None, ge=0, le=MAX_SLOTS)


class MediaAnswer(_ClientMessage):
    """The answer to the server's ``media.subscriber_offer``."""

    type: Literal["media.answer"] = "media.answer"
    sdp: Sdp


class MediaIce(_ClientMessage):
    """A trickled ICE candidate of the client (optional: a complete SDP needs none).

    ``candidate`` null or empty ends trickling.
    """

    type: Literal["media.ice"] = "media.ice"
    candidate: str | None = Field(default=None, max_length=1024)
    sdp_mid: Mid | None = None
    sdp_mline_index: int | None = Field(default=None, ge=0, le=64)
    role: MediaRole


class MediaUnpublish(_ClientMessage):
    """Stop publishing: the venue's tracks end and every slot showing them is repointed."""

    type: Literal["media.unpublish"] = "media.unpublish"


ClientMessage = Annotated[
    Join | Leave | Ping | Refresh | FloorGive | FloorTake | MicMute | MicUnmuteRequest | MicSet
    | LobbyAdmit | LobbyDeny | ParticipantRemove | HandRaise | HandLower | RoomLock | RoomUnlock
    | ClosedSegmentRequest | ClosedSegmentStart | ClosedSegmentEnd
    | MediaPublish | MediaSubscribe | MediaAnswer | MediaIce | MediaUnpublish,
    Field(discriminator="type"),
]


# -- shared shapes --------------------------------------------------------------------------------


class VenueView(_Message):
    venue: VenueId
    name: str
    main: bool = False


class ParticipantView(_Message):
    participant: ParticipantId
    venue: VenueId | None = None
    roles: tuple[str, ...] = ()
    name: str | None = None
    muted: bool = True
    connected: bool = True
    """False while the participant's connection is lost and the reconnect grace runs."""


class ClosedSegmentView(_Message):
    state: Literal["requested", "active"]
    venue: VenueId
    by: str


class CallView(_Message):
    """The case being received: the citizen's ticket number and venue (never a name), the call's
    sequence number in the session, and the announcement ``schedules`` made for it."""

    call_seq: int = Field(ge=1)
    ticket_no: int = Field(ge=1)
    venue: VenueId
    announcement_text: str = Field(default="", max_length=500)
    announcement_audio_url: str | None = Field(default=None, max_length=500)
    paused: bool = False
    """True while the case is paused (``case.paused`` until ``case.resumed``)."""


class RoomView(_Message):
    """The room as one participant may see it (``lobby`` is filled for moderators only)."""

    room: RoomId
    venues: tuple[VenueView, ...]
    participants: tuple[ParticipantView, ...]
    floor: VenueId | None
    hands: tuple[ParticipantId, ...]
    locked: bool
    closed_segment: ClosedSegmentView | None = None
    lobby: tuple[ParticipantView, ...] = ()
    calling: CallView | None = None
    """the case being received now (None between cases)"""


class You(_Message):
    participant: ParticipantId
    venue: VenueId | None
    roles: tuple[str, ...]
    grants: tuple[str, ...]


# -- server → client ------------------------------------------------------------------------------


class Welcome(_Message):
    """Answer to ``join``: who you are, the resume token, and the room (``None`` while in the lobby)."""

    type: Literal["welcome"] = "welcome"
    protocol: int = PROTOCOL_VERSION
    you: You
    status: Literal["admitted", "lobby"]
    resumed: bool = False
    resume_token: str
    resume_grace_s: float
    token_expires_at: int
    room: RoomView | None = None
    max_kbps: int | None = Field(default=None, ge=1)
    """The cap (kbit/s) of each of your video layers, for a connection that may publish (grant ``publish``
    and a venue of the session) on a node with media: the session's cap for your venue, else the venue's,
    else the server's default. ``None`` for a connection that cannot publish. Set it as the encoder's
    ``maxBitrate`` (the SFU's answer carries the same cap as ``x-google-max-bitrate``)."""


class Admitted(_Message):
    """You were admitted from the lobby; the room as you now see it."""

    type: Literal["admitted"] = "admitted"
    room: RoomView


class RoomState(_Message):
    """A full view of the room (sent when the view must be rebuilt, e.g. after a restore)."""

    type: Literal["room.state"] = "room.state"
    room: RoomView


class PresenceJoined(_Message):
    type: Literal["presence.joined"] = "presence.joined"
    participant: ParticipantView


class PresenceUpdated(_Message):
    """A participant's connection was lost (``connected: false``) or came back."""

    type: Literal["presence.updated"] = "presence.updated"
    participant: ParticipantView


class PresenceLeft(_Message):
    type: Literal["presence.left"] = "presence.left"
    participant: ParticipantId
    reason: Literal["left", "timeout", "removed", "disabled", "room_closed"]


class FloorChanged(_Message):
    type: Literal["floor.changed"] = "floor.changed"
    venue: VenueId | None
    previous: VenueId | None = None
    by: str


class CaseCalledNotice(_Message):
    """A citizen's case is called (``schedules``' call order): show and play the announcement; the
    called venue gets the floor (a ``floor.changed`` follows)."""

    type: Literal["case.called"] = "case.called"
    call: CallView
    recalled: bool = False
    """True when the case is called again (``case.recalled``: the current case, or a ticket passed over
    before); pages announce it like a first call."""


class CaseEndedNotice(_Message):
    """The case being received ended (``closed``, ``skipped``, ``absent``): the floor returns to the main
    venue."""

    type: Literal["case.ended"] = "case.ended"
    call_seq: int = Field(ge=1)
    ticket_no: int = Field(ge=1)
    venue: VenueId
    outcome: Literal["closed", "skipped", "absent"]


class CasePausedNotice(_Message):
    """The case being received is paused (the called venue's link lost over 5 s, or the chair's word):
    its timer stops until ``case.resumed``. ``reason``: ``link_lost`` or ``chair``."""

    type: Literal["case.paused"] = "case.paused"
    call_seq: int = Field(ge=1)
    ticket_no: int = Field(ge=1)
    venue: VenueId
    pause_no: int | None = Field(default=None, ge=1)
    reason: str | None = Field(default=None, max_length=40)


class CaseResumedNotice(_Message):
    """The paused case goes on."""

    type: Literal["case.resumed"] = "case.resumed"
    call_seq: int = Field(ge=1)
    ticket_no: int = Field(ge=1)
    venue: VenueId
    pause_no: int | None = Field(default=None, ge=1)


class MicChanged(_Message):
    type: Literal["mic.changed"] = "mic.changed"
    participant: ParticipantId
    muted: bool
    forced: bool = False
    """True when a moderator muted: the participant may not unmute without a request."""
    by: str


class UnmuteRequested(_Message):
    """To one participant: the chair asks you to turn your microphone on (answer with ``mic.set``)."""

    type: Literal["mic.unmute_requested"] = "mic.unmute_requested"
    by: str


class LobbyEntered(_Message):
    """To moderators: someone waits in the lobby."""

    type: Literal["lobby.entered"] = "lobby.entered"
    participant: ParticipantView


class LobbyLeft(_Message):
    """To moderators: a lobby entry was admitted, denied or left."""

    type: Literal["lobby.left"] = "lobby.left"
    participant: ParticipantId
    outcome: Literal["admitted", "denied", "left"]


class LobbyDenied(_Message):
    """To the participant: the chair denied entry (the server then closes with 4003)."""

    type: Literal["lobby.denied"] = "lobby.denied"
    by: str


class RemovedNotice(_Message):
    """To the participant: removed by the chair (the server then closes with 4004)."""

    type: Literal["removed"] = "removed"
    by: str


class HandsChanged(_Message):
    """The officials' hand queue (xin phát biểu), in order; separate from the citizens' queue."""

    type: Literal["hands.changed"] = "hands.changed"
    hands: tuple[ParticipantId, ...]


class LockChanged(_Message):
    type: Literal["room.lock_changed"] = "room.lock_changed"
    locked: bool
    by: str


class ClosedSegmentChanged(_Message):
    type: Literal["closed_segment.changed"] = "closed_segment.changed"
    closed_segment: ClosedSegmentView | None
    by: str


class TokenExpiring(_Message):
    """Your access token expires at ``expires_at`` (Unix seconds): send ``refresh`` before."""

    type: Literal["token.expiring"] = "token.expiring"
    expires_at: int


class TokenRefreshed(_Message):
    type: Literal["token.refreshed"] = "token.refreshed"
    expires_at: int
    resume_token: str


class Pong(_Message):
    type: Literal["pong"] = "pong"
    ref: RequestId | None = None


class Error(_Message):
    """A typed refusal: ``code`` is stable (:class:`ErrorCode`), ``message`` is for people (Vietnamese)."""

    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    ref: RequestId | None = None
    """The ``id`` of the client message that caused the error, when it had one."""
    detail: str | None = None


class RoomClosedNotice(_Message):
    """The session closed (the server then closes with 4010)."""

    type: Literal["room.closed"] = "room.closed"


class IceServerView(_Message):
    """A STUN/TURN server for ``RTCPeerConnection({iceServers})``; TURN has time-limited credentials."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None


class MediaIceServers(_Message):
    """The ICE servers to use (after ``welcome``/``admitted``, and again after ``token.refreshed``).

    TURN credentials follow the TURN REST scheme and stop working at ``expires_at`` (Unix seconds);
    a connection made before keeps working.
    """

    type: Literal["media.ice_servers"] = "media.ice_servers"
    ice_servers: tuple[IceServerView, ...]
    expires_at: int | None = None


class MediaPublishAnswer(_Message):
    """The answer to ``media.publish``; ``tracks`` names each published ``mid``."""

    type: Literal["media.publish_answer"] = "media.publish_answer"
    sdp: str
    tracks: dict[str, str] = Field(default_factory=dict)


class SlotView(_Message):
    """One fixed receive slot of the subscriber connection: its id, kind and SDP ``mid``."""

    slot: str
    kind: Literal["audio", "video"]
    mid: str


class MediaSubscriberOffer(_Message):
    """The server's offer for the subscriber connection (answer with ``media.answer``)."""

    type: Literal["media.subscriber_offer"] = "media.subscriber_offer"
    sdp: str
    slots: tuple[SlotView, ...]


class SlotSource(_Message):
    """What a slot shows: a venue (``null``: nothing), why (``floor`` holder, ``chair``, ``other``) and,
    for video, which layer (``high``: the venue's camera, ``low``: its 320×180 camera-low)."""

    slot: str
    kind: Literal["audio", "video"]
    venue: VenueId | None
    role: Literal["floor", "chair", "other"] | None = None
    layer: Literal["high", "low"] | None = None


class MediaSlots(_Message):
    """The full slot assignment of your subscriber connection; sent whenever it changes.

    Sources change without renegotiation: a slot stays silent until the new source's keyframe.
    """

    type: Literal["media.slots"] = "media.slots"
    slots: tuple[SlotSource, ...]


class MediaLink(_Message):
    """A media connection went up, was lost or came back (``role`` publisher: the venue's uplink).

    To the participant itself for both roles (on ``lost`` it negotiates again: ``media.publish`` or
    ``media.subscribe``); the publisher link of a venue also to everyone in the room.
    """

    type: Literal["media.link"] = "media.link"
    participant: ParticipantId
    venue: VenueId | None = None
    role: MediaRole
    state: Literal["connected", "lost", "restored"]


class MediaActiveSpeaker(_Message):
    """The venue speaking loudest now (``null``: nobody); at most once per second."""

    type: Literal["media.active_speaker"] = "media.active_speaker"
    venue: VenueId | None


class MediaStatsEntry(_Message):
    """One publication (venue → server) or subscription slot (server → venue), over the last interval."""

    participant: ParticipantId
    venue: VenueId | None
    direction: Literal["publication", "subscription"]
    kind: Literal["audio", "video"]
    slot: str | None = None
    source: VenueId | None = None
    bitrate_bps: float
    packets: int
    packets_lost: int
    loss: float
    """Fraction of packets lost since the previous report (0..1)."""
    rtt_ms: float | None = None
    jitter_ms: float | None = None
    fps: float
    keyframe_requests: int


class MediaStats(_Message):
    """Media health of every venue (to moderators, every few seconds)."""

    type: Literal["media.stats"] = "media.stats"
    entries: tuple[MediaStatsEntry, ...]


class RecordingAlarm(_Message):
    """The recording of the room stopped (``active`` true) for ``code`` (``disk_full``, ``write_failed``) or
    found unfinished files of an earlier run (``recovered_files``), and the all-clear (``active`` false). To
    moderators; the chair's page shows a banner while an alarm is active. Forwarding goes on."""

    type: Literal["recording.alarm"] = "recording.alarm"
    code: Literal["disk_full", "write_failed", "recovered_files"]
    active: bool


ServerMessage = Annotated[
    Welcome | Admitted | RoomState | PresenceJoined | PresenceUpdated | PresenceLeft | FloorChanged
    | MicChanged | UnmuteRequested | LobbyEntered | LobbyLeft | LobbyDenied | RemovedNotice | HandsChanged
    | LockChanged | ClosedSegmentChanged | TokenExpiring | TokenRefreshed | Pong | Error | RoomClosedNotice
    | MediaIceServers | MediaPublishAnswer | MediaSubscriberOffer | MediaSlots | MediaLink | MediaActiveSpeaker
    | MediaStats | CaseCalledNotice | CaseEndedNotice | CasePausedNotice | CaseResumedNotice | RecordingAlarm,
    Field(discriminator="type"),
]

_CLIENT: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
_SERVER: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)


def _types(adapter: TypeAdapter[ClientMessage] | TypeAdapter[ServerMessage]) -> frozenset[str]:
    schema = adapter.json_schema()
    mapping: dict[str, str] = schema["discriminator"]["mapping"]
    return frozenset(mapping)


CLIENT_MESSAGE_TYPES: frozenset[str] = _types(_CLIENT)
SERVER_MESSAGE_TYPES: frozenset[str] = _types(_SERVER)


def parse_client_message(data: str | bytes) -> ClientMessage:
    """Parse one client frame; raises ``pydantic.ValidationError`` on anything else."""
    return _CLIENT.validate_json(data)


def parse_server_message(data: str | bytes) -> ServerMessage:
    """Parse one server frame (for clients and tests); raises ``pydantic.ValidationError``."""
    return _SERVER.validate_json(data)


def dump_message(message: _Message) -> str:
    """Serialise a message as sent on the wire (``None`` fields are kept: clients rely on them)."""
    return message.model_dump_json()


ERROR_TEXT_VI: dict[ErrorCode, str] = {
    ErrorCode.BAD_MESSAGE: "Thông điệp không hợp lệ.",
    ErrorCode.UNKNOWN_TYPE: "Loại thông điệp không được hỗ trợ.",
    ErrorCode.UNSUPPORTED_VERSION: "Phiên bản giao thức không được hỗ trợ.",
    ErrorCode.NOT_JOINED: "Cần gửi thông điệp tham gia (join) trước.",
    ErrorCode.ALREADY_JOINED: "Đã tham gia phòng.",
    ErrorCode.FORBIDDEN: "Bạn không có quyền thực hiện thao tác này.",
    ErrorCode.IN_LOBBY: "Bạn đang ở phòng chờ, vui lòng chờ chủ trì cho vào.",
    ErrorCode.NOT_IN_ROOM: "Người tham gia không có trong phòng.",
    ErrorCode.NOT_IN_LOBBY: "Người tham gia không ở phòng chờ.",
    ErrorCode.VENUE_NOT_IN_ROOM: "Điểm cầu không thuộc phiên tiếp công dân này.",
    ErrorCode.NO_CLOSED_SEGMENT: "Không có phiên kín đang diễn ra hoặc chờ xác nhận.",
    ErrorCode.RATE_LIMITED: "Gửi quá nhiều thông điệp, vui lòng chậm lại.",
    ErrorCode.ROOM_CLOSED: "Phiên tiếp công dân đã kết thúc.",
    ErrorCode.ROOM_UNKNOWN: "Không tìm thấy phòng của phiên tiếp công dân này.",
    ErrorCode.WRONG_ROOM: "Mã thông báo không dùng cho phòng này.",
    ErrorCode.ACCOUNT_DISABLED: "Tài khoản đã bị khóa.",
    ErrorCode.TOKEN_EXPIRED: "Phiên đăng nhập đã hết hạn.",
    ErrorCode.TOKEN_INVALID: "Mã thông báo không hợp lệ.",
    ErrorCode.TOKEN_MISMATCH: "Mã thông báo mới không khớp với người tham gia.",
    ErrorCode.RESUME_FAILED: "Không khôi phục được kết nối trước; đã tham gia lại như mới.",
    ErrorCode.INVALID_SDP: "Mô tả phiên truyền hình ảnh, âm thanh không hợp lệ.",
    ErrorCode.UNSUPPORTED_CODEC: "Thiết bị không hỗ trợ chuẩn mã hóa hình ảnh, âm thanh của phiên.",
    ErrorCode.INVALID_CANDIDATE: "Thông tin kết nối mạng (ICE) không hợp lệ.",
    ErrorCode.MEDIA_STATE: "Thao tác truyền hình ảnh, âm thanh không đúng trình tự.",
    ErrorCode.ALREADY_PUBLISHING: "Điểm cầu đã đang truyền hình ảnh, âm thanh.",
    ErrorCode.MEDIA_FAILED: "Không thiết lập được kết nối hình ảnh, âm thanh, vui lòng thử lại.",
    ErrorCode.MEDIA_UNAVAILABLE: "Máy chủ này không phục vụ hình ảnh, âm thanh.",
    ErrorCode.INTERNAL: "Lỗi máy chủ, vui lòng thử lại.",
}
"""The people-facing text of each error code (the one catalogue; an English UI maps the codes)."""


def error(code: ErrorCode, *, ref: str | None = None, detail: str | None = None) -> Error:
    """An ``error`` message with the catalogue text for ``code``."""
    return Error(code=code, message=ERROR_TEXT_VI[code], ref=ref, detail=detail)
