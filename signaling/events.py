"""The typed events of the house (ARCHITECTURE §4, event catalogue).

Every event is a frozen pydantic model discriminated on ``type``, carrying ``event_id`` (unique),
``occurred_at`` and an idempotency ``key`` (what a consumer deduplicates on) and an ``aggregate``
(events of one aggregate are delivered in order). ``AnyEvent`` is the closed union parsed at the
edge with :func:`parse_event`. Events never carry personal data: ticket numbers, venue ids and case
ids yes; names, ID numbers, addresses and minutes text never.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

__all__ = [
    "Event", "AnyEvent", "parse_event", "dump_event", "EVENT_TYPES",
    "SessionPublished", "SessionOpened", "SessionStarted", "SessionClosed", "SessionPostponed",
    "SessionCancelled", "SessionRescheduled", "SessionCasesSelected", "SessionRollCallRecorded",
    "VenueReadinessChecked",
    "TicketIssued", "TicketTriaged", "CaseCalled", "CaseClosed", "CaseSkipped", "CaseRecalled",
    "CaseAbsent", "CasePaused", "CaseResumed", "FloorGranted", "FloorRevoked", "ParticipantJoined",
    "ParticipantLeft", "LobbyAdmitted", "LobbyDenied", "Muted", "Removed", "HandRaised", "HandLowered",
    "RoomLocked", "RoomUnlocked", "VenueLinkLost", "VenueLinkRestored", "ActiveSpeakerChanged",
    "SegmentOpened", "SegmentClosed", "SegmentFile", "SegmentSpan", "SegmentGap", "ClosedSegmentRequested",
    "ClosedSegmentStarted",
    "ClosedSegmentEnded", "CaseRecorded", "UserDisabled", "LoginSessionEnded", "VenueInfo", "UnmuteRequested",
    "CaseCreated", "CaseUpdated", "HandlingDecisionRecorded", "DirectiveIssued", "DirectiveReported",
    "PetitionAdded", "ReceptionRecorded", "DelegationRecorded", "AttachmentAdded", "PetitionerRegistered",
    "DocumentIssued", "SegmentReferenced",
]


def _new_id() -> str:
    return uuid.uuid4().hex


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Base of every event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(default_factory=_new_id, min_length=1, max_length=64)
    occurred_at: datetime = Field(default_factory=_now)
    version: Literal[1] = 1

    @property
    def aggregate(self) -> str:
        """Events of one aggregate are relayed and delivered in order."""
        return self.event_id

    @property
    def key(self) -> str:
        """What an idempotent consumer deduplicates on."""
        return self.event_id


# -- schedules ------------------------------------------------------------------------------------

#: an id or an enumeration value (never free text)
_Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


class VenueInfo(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    venue: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    main: bool = False
    max_kbps: int | None = None


class _SessionEvent(Event):
    """A transition of a reception session, written by ``schedules`` with the change (outbox).

    ``session_version`` is the session record's version after the transition: a session postponed,
    rescheduled and published again passes through a state twice, and the key tells the two apart
    (events written by hand, without a version, keep the key ``<session>:<type>``). ``by`` is the
    actor's label, ``host`` the leader's id (a position slug), never a name."""

    session: str = Field(min_length=1, max_length=64)
    session_version: int | None = Field(default=None, ge=1)
    by: str | None = Field(default=None, max_length=200)
    day: date | None = None
    form: _Code | None = None        # complaints.enums.ReceptionForm value
    kind: _Code | None = None        # complaints.enums.ReceptionType value
    host: _Code | None = None

    @property
    def aggregate(self) -> str:
        return f"session:{self.session}"

    @property
    def key(self) -> str:
        base = f"{self.session}:{self.type}"  # type: ignore[attr-defined]
        return base if self.session_version is None else f"{base}:{self.session_version}"


class SessionPublished(_SessionEvent):
    """``late``: published with fewer working days than LTCD Điều 24 asks, with a written reason."""

    type: Literal["session.published"] = "session.published"
    late: bool = False


class SessionOpened(_SessionEvent):
    type: Literal["session.opened"] = "session.opened"
    venues: tuple[VenueInfo, ...] = ()
    chair: str | None = None


class SessionStarted(_SessionEvent):
    type: Literal["session.started"] = "session.started"


class SessionClosed(_SessionEvent):
    """``not_reached``: tickets still waiting (or deferred) when the session closed — at its closing time by
    the timekeeper, or by hand. They stay on record in the closed queue; the desk registers those citizens
    again for a later session."""

    type: Literal["session.closed"] = "session.closed"
    not_reached: int = Field(default=0, ge=0, le=100_000)


class SessionPostponed(_SessionEvent):
    """``reason``: the reason code (``schedules.SessionReason`` value); the note stays in the record."""

    type: Literal["session.postponed"] = "session.postponed"
    reason: str = Field(default="", max_length=500)


class SessionCancelled(_SessionEvent):
    """``reason``: the reason code (``schedules.SessionReason`` value); the note stays in the record."""

    type: Literal["session.cancelled"] = "session.cancelled"
    reason: str = Field(default="", max_length=500)


class SessionRescheduled(_SessionEvent):
    """A postponed session got a new ``day`` (it is planned again and must be published again)."""

    type: Literal["session.rescheduled"] = "session.rescheduled"
    previous_day: date | None = None


class SessionCasesSelected(_SessionEvent):
    """The cases the chair pre-selected for the session changed (``schedules.planning``): ``cases`` lists
    the case ids in order, the whole selection after the change (ids only, never a summary)."""

    type: Literal["session.cases_selected"] = "session.cases_selected"
    cases: tuple[_Code, ...] = ()


class SessionRollCallRecorded(Event):
    """A roll call (điểm danh) of the session's venues, recorded by ``schedules.roll_call`` before the first
    call or as an amendment (``roll_call_no`` 2, 3 …; the earlier ones stay): the venue ids ``present``
    and ``absent``, how many officials and citizens attend in all. The officials' names stay in the record."""

    type: Literal["session.roll_call_recorded"] = "session.roll_call_recorded"
    session: str = Field(min_length=1, max_length=64)
    roll_call_no: int = Field(ge=1)
    by: str | None = Field(default=None, max_length=200)
    present: tuple[_Code, ...] = ()
    absent: tuple[_Code, ...] = ()
    officials: int = Field(default=0, ge=0)
    citizens: int = Field(default=0, ge=0)

    @property
    def aggregate(self) -> str:
        return f"session:{self.session}"

    @property
    def key(self) -> str:
        return f"{self.session}:{self.type}:{self.roll_call_no}"


class VenueReadinessChecked(Event):
    """A venue's readiness check before the session (``schedules.readiness``): ``check`` its id, ``ready``
    the verdict and ``problems`` its reason codes (the figures stay in the record)."""

    type: Literal["session.readiness_checked"] = "session.readiness_checked"
    session: str = Field(min_length=1, max_length=64)
    venue: str = Field(min_length=1, max_length=64)
    check: str = Field(min_length=1, max_length=64)
    by: str | None = Field(default=None, max_length=200)
    ready: bool = False
    problems: tuple[_Code, ...] = ()

    @property
    def aggregate(self) -> str:
        return f"session:{self.session}"

    @property
    def key(self) -> str:
        return f"readiness:{self.check}"


class _TicketEvent(Event):
    session: str
    ticket: str
    ticket_no: int = Field(ge=1)
    venue: str
    case: str | None = None
    by: str | None = Field(default=None, max_length=200)
    priorities: tuple[_Code, ...] = ()      # schedules.PriorityGround values

    @property
    def aggregate(self) -> str:
        return f"session:{self.session}"

    @property
    def key(self) -> str:
        return f"ticket:{self.ticket}:{self.type}"  # type: ignore[attr-defined]


class TicketIssued(_TicketEvent):
    type: Literal["ticket.issued"] = "ticket.issued"


class TicketTriaged(_TicketEvent):
    """The triage of an issued ticket changed (``triage_version``: 1, 2 … per ticket). Carries the new
    ``priorities`` only: a confidential case's handling (in person / closed segment) never travels on
    the bus; the chair's page reads it from the queue API."""

    type: Literal["ticket.triaged"] = "ticket.triaged"
    triage_version: int = Field(ge=1)

    @property
    def key(self) -> str:
        return f"ticket:{self.ticket}:{self.type}:{self.triage_version}"


class _CaseQueueEvent(Event):
    session: str
    case: str
    ticket_no: int = Field(ge=1)
    venue: str
    call_seq: int = Field(ge=1)
    by: str | None = Field(default=None, max_length=200)

    @property
    def aggregate(self) -> str:
        return f"session:{self.session}"

    @property
    def key(self) -> str:
        return f"{self.case}:{self.call_seq}:{self.type}"  # type: ignore[attr-defined]


class CaseCalled(_CaseQueueEvent):
    """``reorder``: why this ticket was called before plain ticket order (``schedules.ReorderReason``)."""

    type: Literal["case.called"] = "case.called"
    announcement_text: str = Field(max_length=500)
    announcement_audio_url: str | None = None
    reorder: _Code | None = None


class CaseClosed(_CaseQueueEvent):
    type: Literal["case.closed"] = "case.closed"


class CaseSkipped(_CaseQueueEvent):
    """``reason``: ``no_show`` (to the end of the queue once) or ``deferred`` (held, keeps its number)."""

    type: Literal["case.skipped"] = "case.skipped"
    reason: _Code | None = None


class CaseRecalled(_CaseQueueEvent):
    """Called again (a new ``call_seq``): the current case, or a ticket passed over before, out of order."""

    type: Literal["case.recalled"] = "case.recalled"
    announcement_text: str | None = Field(default=None, max_length=500)
    announcement_audio_url: str | None = None


class CaseAbsent(_CaseQueueEvent):
    type: Literal["case.absent"] = "case.absent"


class CasePaused(_CaseQueueEvent):
    """``pause_no`` numbers the pauses of the session (a call may pause twice: it is in the key)."""

    type: Literal["case.paused"] = "case.paused"
    pause_no: int | None = Field(default=None, ge=1)
    reason: _Code | None = None      # schedules.PauseReason value

    @property
    def key(self) -> str:
        base = f"{self.case}:{self.call_seq}:{self.type}"
        return base if self.pause_no is None else f"{base}:{self.pause_no}"


class CaseResumed(_CaseQueueEvent):
    type: Literal["case.resumed"] = "case.resumed"
    pause_no: int | None = Field(default=None, ge=1)

    @property
    def key(self) -> str:
        base = f"{self.case}:{self.call_seq}:{self.type}"
        return base if self.pause_no is None else f"{base}:{self.pause_no}"


# -- room server ----------------------------------------------------------------------------------


class _RoomEvent(Event):
    room: str = Field(min_length=1, max_length=64)

    @property
    def aggregate(self) -> str:
        return f"room:{self.room}"


class ParticipantJoined(_RoomEvent):
    type: Literal["room.participant_joined"] = "room.participant_joined"
    participant: str
    venue: str | None = None
    roles: tuple[str, ...] = ()


class ParticipantLeft(_RoomEvent):
    type: Literal["room.participant_left"] = "room.participant_left"
    participant: str
    venue: str | None = None
    reason: str = "left"


class FloorGranted(_RoomEvent):
    type: Literal["room.floor_granted"] = "room.floor_granted"
    venue: str
    by: str


class FloorRevoked(_RoomEvent):
    type: Literal["room.floor_revoked"] = "room.floor_revoked"
    venue: str
    by: str


class LobbyAdmitted(_RoomEvent):
    type: Literal["room.lobby_admitted"] = "room.lobby_admitted"
    participant: str
    by: str


class LobbyDenied(_RoomEvent):
    type: Literal["room.lobby_denied"] = "room.lobby_denied"
    participant: str
    by: str


class Muted(_RoomEvent):
    type: Literal["room.muted"] = "room.muted"
    participant: str
    muted: bool
    by: str


class UnmuteRequested(_RoomEvent):
    """A moderator asked a participant to turn its microphone on (the participant decides)."""

    type: Literal["room.unmute_requested"] = "room.unmute_requested"
    participant: str
    by: str


class Removed(_RoomEvent):
    type: Literal["room.removed"] = "room.removed"
    participant: str
    by: str


class HandRaised(_RoomEvent):
    type: Literal["room.hand_raised"] = "room.hand_raised"
    participant: str


class HandLowered(_RoomEvent):
    type: Literal["room.hand_lowered"] = "room.hand_lowered"
    participant: str
    by: str


class RoomLocked(_RoomEvent):
    type: Literal["room.locked"] = "room.locked"
    by: str


class RoomUnlocked(_RoomEvent):
    type: Literal["room.unlocked"] = "room.unlocked"
    by: str


class VenueLinkLost(_RoomEvent):
    type: Literal["room.venue_link_lost"] = "room.venue_link_lost"
    venue: str


class VenueLinkRestored(_RoomEvent):
    type: Literal["room.venue_link_restored"] = "room.venue_link_restored"
    venue: str


class ActiveSpeakerChanged(_RoomEvent):
    type: Literal["room.active_speaker_changed"] = "room.active_speaker_changed"
    venue: str | None


class SegmentOpened(_RoomEvent):
    """The recorder opened a case's segment (``segment``: ``c<call_seq>-<case>``). ``confidential``: the
    segment's media is encrypted as it is written (a closed segment was running when the case was called)."""

    type: Literal["room.segment_opened"] = "room.segment_opened"
    segment: str
    case: str
    confidential: bool = False
    call_seq: int | None = Field(default=None, ge=1)

    @property
    def key(self) -> str:
        return f"segment:{self.segment}:opened"


class SegmentFile(BaseModel):
    """One media file of a closed segment (path relative to the session's directory)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(min_length=1, max_length=300)
    venue: str = Field(min_length=1, max_length=64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    t0: float
    duration: float = Field(ge=0)
    kinds: tuple[str, ...] = ()
    encrypted: bool = False


class SegmentSpan(BaseModel):
    """Who spoke (``venue`` None: nobody) from ``start`` to ``end``, seconds on the session clock."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    venue: str | None = None
    start: float
    end: float


class SegmentGap(BaseModel):
    """A venue's media missing from ``start`` to ``end`` (None: to the segment's end), session clock."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    venue: str
    start: float
    end: float | None = None
    reason: _Code


class SegmentClosed(_RoomEvent):
    """A case's segment closed and its signed manifest is written. ``files`` lists the paths (relative to the
    session's directory), ``sha256`` is the manifest's hash (``manifest_path``: relative to the recordings
    root); the optional details (``tracks`` with each file's hash, ``speakers``, ``gaps``, times) are what the
    case store keeps. Older emitters sent only ``segment``, ``case``, ``files``, ``sha256``, ``media_t0``."""

    type: Literal["room.segment_closed"] = "room.segment_closed"
    segment: str
    case: str
    files: tuple[str, ...] = ()
    sha256: str = ""
    media_t0: float | None = None
    confidential: bool = False
    call_seq: int | None = Field(default=None, ge=1)
    manifest_path: str | None = Field(default=None, max_length=400)
    duration_s: float | None = Field(default=None, ge=0)
    opened_at: datetime | None = None
    tracks: tuple[SegmentFile, ...] = ()
    speakers: tuple[SegmentSpan, ...] = ()
    gaps: tuple[SegmentGap, ...] = ()

    @property
    def key(self) -> str:
        return f"segment:{self.segment}:closed"


class ClosedSegmentRequested(_RoomEvent):
    type: Literal["room.closed_segment_requested"] = "room.closed_segment_requested"
    venue: str
    by: str


class ClosedSegmentStarted(_RoomEvent):
    type: Literal["room.closed_segment_started"] = "room.closed_segment_started"
    venue: str
    by: str


class ClosedSegmentEnded(_RoomEvent):
    type: Literal["room.closed_segment_ended"] = "room.closed_segment_ended"
    venue: str
    by: str


# -- minutes, accounts ----------------------------------------------------------------------------


class CaseRecorded(Event):
    type: Literal["case.recorded"] = "case.recorded"
    case: str
    session: str

    @property
    def aggregate(self) -> str:
        return f"case:{self.case}"

    @property
    def key(self) -> str:
        return f"case:{self.case}:recorded"


# -- the complaint database (complaints, written by the console's complaint routes) ----------------
#
# Facts about a case file, put into the outbox in the transaction of the change. They name the case,
# its classification and ids, never a person and never free text (summary, content, a body's name),
# so a denouncer's identity cannot travel in one. ``by`` is the actor's label (``user:<id>`` or
# ``service:<id>``). Every event of one case has the aggregate ``case:<id>``.

_Ref = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


class _CaseFileEvent(Event):
    case: _Ref
    by: str = Field(min_length=1, max_length=200, pattern=r"^\S+$")

    @property
    def aggregate(self) -> str:
        return f"case:{self.case}"


class CaseCreated(_CaseFileEvent):
    """A case was opened (intake of a petition that starts a new case)."""

    type: Literal["case.created"] = "case.created"
    kind: _Ref                       # complaints.enums.PetitionKind value
    status: _Ref                     # complaints.enums.CaseStatus value
    confidential: bool = False
    venue: str | None = Field(default=None, max_length=64)

    @property
    def key(self) -> str:
        return f"case:{self.case}:created"


class CaseUpdated(_CaseFileEvent):
    """A case was edited: ``changed`` names the fields; classification and status as they are now."""

    type: Literal["case.updated"] = "case.updated"
    case_version: int = Field(ge=2)          # the case's version after the edit
    changed: tuple[_Ref, ...] = Field(min_length=1, max_length=16)
    kind: _Ref
    status: _Ref
    previous_status: _Ref | None = None     # set when ``status`` is among ``changed``
    subject_area: _Ref | None = None
    confidential: bool = False

    @property
    def key(self) -> str:
        return f"case:{self.case}:updated:{self.case_version}"


class HandlingDecisionRecorded(_CaseFileEvent):
    """A handling decision (hướng xử lý đơn) was recorded for the case or one of its petitions."""

    type: Literal["case.handling_decision_recorded"] = "case.handling_decision_recorded"
    decision: _Ref
    direction: _Ref                  # complaints.enums.HandlingDirection value
    decided_on: date
    petition: _Ref | None = None

    @property
    def key(self) -> str:
        return f"decision:{self.decision}:recorded"


class DirectiveIssued(_CaseFileEvent):
    """The chair's directive (ý kiến chỉ đạo) to ``unit`` with its deadline."""

    type: Literal["case.directive_issued"] = "case.directive_issued"
    directive: _Ref
    unit: _Ref
    issued_on: date
    deadline: date

    @property
    def key(self) -> str:
        return f"directive:{self.directive}:issued"


class DirectiveReported(_CaseFileEvent):
    """A unit reported on a directive (``completed``: the directive is done)."""

    type: Literal["case.directive_reported"] = "case.directive_reported"
    directive: _Ref
    unit: _Ref
    directive_version: int = Field(ge=2)    # the directive's version after the report
    reported_on: date
    completed: bool = False

    @property
    def key(self) -> str:
        return f"directive:{self.directive}:reported:{self.directive_version}"


class PetitionAdded(_CaseFileEvent):
    """A petition (đơn) was added to an existing case (a new case's first petition is its ``CaseCreated``)."""

    type: Literal["case.petition_added"] = "case.petition_added"
    petition: _Ref
    kind: _Ref                       # complaints.enums.PetitionKind value
    source: _Ref                     # complaints.enums.PetitionSource value

    @property
    def key(self) -> str:
        return f"petition:{self.petition}:added"


class ReceptionRecorded(_CaseFileEvent):
    """A reception (lượt tiếp, "lần tiếp thứ ``nth``") of the case was recorded."""

    type: Literal["case.reception_recorded"] = "case.reception_recorded"
    reception: _Ref
    nth: int = Field(ge=1)
    received_on: date
    form: _Ref                       # complaints.enums.ReceptionForm value
    reception_type: _Ref             # complaints.enums.ReceptionType value
    session: _Ref | None = None

    @property
    def key(self) -> str:
        return f"reception:{self.reception}:recorded"


class DelegationRecorded(_CaseFileEvent):
    """A group (đoàn đông người) of ``headcount`` members was recorded for the case."""

    type: Literal["case.delegation_recorded"] = "case.delegation_recorded"
    delegation: _Ref
    headcount: int = Field(ge=1)

    @property
    def key(self) -> str:
        return f"delegation:{self.delegation}:recorded"


class AttachmentAdded(_CaseFileEvent):
    """A file was attached to a petition of the case (its name never travels: it may name a citizen)."""

    type: Literal["case.attachment_added"] = "case.attachment_added"
    attachment: _Ref
    petition: _Ref
    size: int = Field(ge=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @property
    def key(self) -> str:
        return f"attachment:{self.attachment}:added"


class SegmentReferenced(_CaseFileEvent):
    """A recording segment of the case's reception in ``session`` became part of the case record
    (``segment_refs``), with its manifest's SHA-256."""

    type: Literal["case.segment_referenced"] = "case.segment_referenced"
    segment: str = Field(pattern=r"^[A-Za-z0-9._-]{1,80}$")   # the recorder's segment id
    session: _Ref
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    confidential: bool = False

    @property
    def key(self) -> str:
        return f"segment:{self.segment}:referenced"


class PetitionerRegistered(Event):
    """A petitioner record was registered on its own (not through an intake); ``sealed``: a denouncer's."""

    type: Literal["petitioner.registered"] = "petitioner.registered"
    petitioner: _Ref
    by: str = Field(min_length=1, max_length=200, pattern=r"^\S+$")
    sealed: bool = False

    @property
    def aggregate(self) -> str:
        return f"petitioner:{self.petitioner}"

    @property
    def key(self) -> str:
        return f"petitioner:{self.petitioner}:registered"


class DocumentIssued(Event):
    """A document of the minutes service was signed and issued (``kind``: ``case_minutes`` or
    ``conclusion_notice``); ``sha256`` is the signed PDF's, ``public_sha256`` its redacted public twin's. It
    names ids and hashes only, never a person or a text."""

    type: Literal["minutes.document_issued"] = "minutes.document_issued"
    document: _Ref
    kind: _Ref
    session: _Ref
    case: _Ref | None = None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    public_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    by: str = Field(min_length=1, max_length=200, pattern=r"^\S+$")

    @property
    def aggregate(self) -> str:
        return f"document:{self.document}"

    @property
    def key(self) -> str:
        return f"document:{self.document}:issued"


class UserDisabled(Event):
    """An account was disabled: every live connection of ``user`` must end (within 60 s)."""

    type: Literal["account.user_disabled"] = "account.user_disabled"
    user: str

    @property
    def aggregate(self) -> str:
        return f"user:{self.user}"


class LoginSessionEnded(Event):
    """A console login session ended (sign-out, a sign-in over it, a new password; a disabled account is
    ``UserDisabled``): every token minted for it must stop working, and the live-room connections opened
    with them end. ``sid`` is the tokens' ``sid`` claim (an opaque reference, never the session cookie)."""

    type: Literal["account.login_session_ended"] = "account.login_session_ended"
    user: str
    sid: str = Field(min_length=8, max_length=64, pattern=r"^[0-9a-f]+$")
    reason: Literal["logout", "replaced", "password_changed"] = "logout"

    @property
    def aggregate(self) -> str:
        return f"user:{self.user}"


AnyEvent = Annotated[
    SessionPublished | SessionOpened | SessionStarted | SessionClosed | SessionPostponed
    | SessionCancelled | SessionRescheduled | SessionCasesSelected | SessionRollCallRecorded
    | VenueReadinessChecked
    | TicketIssued | TicketTriaged
    | CaseCalled | CaseClosed | CaseSkipped | CaseRecalled | CaseAbsent | CasePaused | CaseResumed
    | ParticipantJoined | ParticipantLeft | FloorGranted | FloorRevoked | LobbyAdmitted | LobbyDenied
    | Muted | UnmuteRequested | Removed | HandRaised | HandLowered | RoomLocked | RoomUnlocked
    | VenueLinkLost | VenueLinkRestored | ActiveSpeakerChanged | SegmentOpened | SegmentClosed
    | ClosedSegmentRequested | ClosedSegmentStarted | ClosedSegmentEnded
    | CaseRecorded | UserDisabled | LoginSessionEnded
    | CaseCreated | CaseUpdated | HandlingDecisionRecorded | DirectiveIssued | DirectiveReported
    | PetitionAdded | ReceptionRecorded | DelegationRecorded | AttachmentAdded | PetitionerRegistered
    | DocumentIssued | SegmentReferenced,
    Field(discriminator="type"),
]

_ADAPTER: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)

EVENT_TYPES: frozenset[str] = frozenset(
    cls.model_fields["type"].default
    for cls in Event.__subclasses__() + [c for b in Event.__subclasses__() for c in b.__subclasses__()]
    if "type" in cls.model_fields
)


def parse_event(data: str | bytes) -> AnyEvent:
    """Parse one serialised event (JSON); raises ``pydantic.ValidationError`` on anything else."""
    return _ADAPTER.validate_json(data)


def dump_event(event: Event) -> str:
    return event.model_dump_json()
