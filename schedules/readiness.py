"""A venue's readiness check before the session, recorded per venue.

Provincial practice runs a technical rehearsal with every venue before an online session (domain.md §3
step 5), and an online reception needs "adequate equipment and links" at every venue (QĐ 748/QĐ-TTCP,
R18). The venue's own browser measures what only it can see and reports it (the console's
``/api/sessions/{id}/readiness``); this module checks the figures, judges them and records the check:

* ``rtt_ms``: the round-trip time, and where it was measured (``rtt_source``): on the venue's media
  connection once it publishes (the WebRTC candidate pair's ``currentRoundTripTime``), else on the
  signalling WebSocket (``ping`` → ``pong``), which crosses the same network path to the server but
  not the media relay;
* ``outgoing_kbps``: the browser's bandwidth estimate (``availableOutgoingBitrate``), None when the
  venue does not publish yet (the estimate exists only on a live media connection);
* ``turn``: whether a relay candidate appeared when gathering with ``iceTransportPolicy: 'relay'``
  against the configured TURN server, or ``not_configured``;
* ``camera`` / ``microphone``: found by the browser; ``browser``: its name and version.

Ranges (:func:`checked_report`): a round trip from 0 to 60 s, a bandwidth up to 10 Gbit/s; anything
else is a broken or forged report and is refused. The verdict (:func:`assess`) lists the problems:
round trip unknown or above 300 ms (ITU-T G.114 keeps one-way delay under 150 ms for a conversation),
bandwidth measured below 300 kbit/s (the small video layer's 150 kbit/s, the audio's ~40 and the
large layer at its lowest; note that a connection's first estimate is the browser's start bitrate, so a
check right after joining is pessimistic), TURN configured but unreachable (a venue behind a
UDP-blocking firewall would have no path), no camera, no microphone. No problem: ready.

Only the venue itself reports (grant ``publish`` and the account's own venue): an operator cannot vouch
for another venue's link. Every check is kept; the chair's page shows each venue's latest.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.enums import LabelledEnum
from signaling.events import Event, VenueReadinessChecked
from signaling.grants import Grant
from signaling.outbox import add_to_outbox

from ._clock import require_actor
from ._service import Clock, audit, now_of, require_grant
from .errors import (
    InvalidArgument,
    NotPermitted,
    SessionNotInProgress,
    UnknownSession,
    UnknownVenue,
    VenueNotInSession,
)
from .session_state import SessionState
from .tables import readiness_checks, reception_sessions, session_venues, venues

__all__ = [
    "MAX_READY_RTT_MS",
    "MIN_READY_KBPS",
    "ReadinessCheck",
    "ReadinessProblem",
    "ReadinessReport",
    "RttSource",
    "TurnResult",
    "VenueReadiness",
    "assess",
    "checked_report",
    "readiness_of",
    "record_readiness",
]

MAX_READY_RTT_MS = 300.0
MIN_READY_KBPS = 300
_RTT_LIMIT_MS = 60_000.0
_KBPS_LIMIT = 10_000_000
_MAX_BROWSER = 200
#: A check is taken before the session or during it (a venue that reconnects checks again), never after.
_CHECK_STATES = (SessionState.PLANNED, SessionState.PUBLISHED, SessionState.OPEN, SessionState.IN_PROGRESS)


class RttSource(LabelledEnum):
    MEDIA = ("media", "đường truyền hình ảnh")
    SIGNALLING = ("signalling", "kênh báo hiệu")


class TurnResult(LabelledEnum):
    REACHABLE = ("reachable", "kết nối được")
    UNREACHABLE = ("unreachable", "không kết nối được")
    NOT_CONFIGURED = ("not_configured", "chưa cấu hình")


class ReadinessProblem(LabelledEnum):
    RTT_UNKNOWN = ("rtt_unknown", "Chưa đo được độ trễ khứ hồi")
    RTT_HIGH = ("rtt_high", "Độ trễ khứ hồi quá cao")
    BANDWIDTH_LOW = ("bandwidth_low", "Băng thông gửi đi quá thấp")
    TURN_UNREACHABLE = ("turn_unreachable", "Không kết nối được máy chủ TURN")
    NO_CAMERA = ("no_camera", "Không tìm thấy camera")
    NO_MICROPHONE = ("no_microphone", "Không tìm thấy micro")


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """What the venue's browser measured (see the module docstring)."""

    venue: str
    rtt_ms: float | None
    rtt_source: RttSource | None
    outgoing_kbps: int | None
    turn: TurnResult
    camera: bool
    microphone: bool
    browser: str = ""


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    """A recorded check: the report, the verdict and who reported it when."""

    id: str
    session_id: str
    report: ReadinessReport
    problems: tuple[ReadinessProblem, ...]
    checked_by: str
    checked_at: datetime
    events: tuple[Event, ...] = field(default=(), compare=False)

    @property
    def ready(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class VenueReadiness:
    """A venue of the session with its latest check (None: not checked)."""

    venue: str
    name: str
    main: bool
    latest: ReadinessCheck | None

    @property
    def status(self) -> str:
        """``ready``, ``not_ready`` or ``not_checked``."""
        if self.latest is None:
            return "not_checked"
        return "ready" if self.latest.ready else "not_ready"


# -- pure rules ------------------------------------------------------------------------------------------------


def checked_report(report: ReadinessReport) -> ReadinessReport:
    """The report with its figures checked (:class:`InvalidArgument` with the reason otherwise) and the
    browser's name tidied."""
    rtt = report.rtt_ms
    if rtt is not None:
        if isinstance(rtt, bool) or not isinstance(rtt, int | float) or not math.isfinite(rtt):
            raise InvalidArgument("Độ trễ khứ hồi phải là một số.", code="bad_rtt")
        if rtt < 0:
            raise InvalidArgument("Độ trễ khứ hồi không thể âm.", code="bad_rtt")
        if rtt > _RTT_LIMIT_MS:
            raise InvalidArgument(f"Độ trễ khứ hồi {rtt:.0f} ms vượt quá giới hạn đo ({_RTT_LIMIT_MS:.0f} ms).",
                                  code="bad_rtt")
        if report.rtt_source is None:
            raise InvalidArgument("Cần nêu độ trễ được đo trên kênh nào.", code="bad_rtt_source")
    elif report.rtt_source is not None:
        raise InvalidArgument("Nêu kênh đo độ trễ nhưng không có số đo.", code="bad_rtt_source")
    kbps = report.outgoing_kbps
    if kbps is not None and (isinstance(kbps, bool) or not isinstance(kbps, int)):
        raise InvalidArgument("Băng thông phải là một số nguyên (kbit/s).", code="bad_bitrate")
    if kbps is not None and not 0 <= kbps <= _KBPS_LIMIT:
        raise InvalidArgument(f"Băng thông {kbps} kbit/s không hợp lệ (từ 0 đến {_KBPS_LIMIT} kbit/s).",
                              code="bad_bitrate")
    for flag in (report.camera, report.microphone):
        if not isinstance(flag, bool):
            raise InvalidArgument("Camera và micro: có hoặc không.", code="bad_devices")
    browser = " ".join(str(report.browser).split())
    if len(browser) > _MAX_BROWSER or any(not ch.isprintable() for ch in browser):
        raise InvalidArgument(f"Tên trình duyệt dài quá {_MAX_BROWSER} ký tự hoặc có ký tự không hợp lệ.",
                              code="bad_browser")
    return ReadinessReport(venue=report.venue, rtt_ms=None if rtt is None else float(rtt),
                           rtt_source=None if report.rtt_source is None else RttSource.parse(report.rtt_source),
                           outgoing_kbps=kbps, turn=TurnResult.parse(report.turn), camera=report.camera,
                           microphone=report.microphone, browser=browser)


def assess(report: ReadinessReport) -> tuple[ReadinessProblem, ...]:
    """The problems of a checked report, in a fixed order; none: the venue is ready."""
    problems: list[ReadinessProblem] = []
    if report.rtt_ms is None:
        problems.append(ReadinessProblem.RTT_UNKNOWN)
    elif report.rtt_ms > MAX_READY_RTT_MS:
        problems.append(ReadinessProblem.RTT_HIGH)
    if report.outgoing_kbps is not None and report.outgoing_kbps < MIN_READY_KBPS:
        problems.append(ReadinessProblem.BANDWIDTH_LOW)
    if report.turn is TurnResult.UNREACHABLE:
        problems.append(ReadinessProblem.TURN_UNREACHABLE)
    if not report.camera:
        problems.append(ReadinessProblem.NO_CAMERA)
    if not report.microphone:
        problems.append(ReadinessProblem.NO_MICROPHONE)
    return tuple(problems)


# -- the database ----------------------------------------------------------------------------------------------


async def _session_venue_rows(conn: AsyncConnection, session_id: str) -> list[tuple[str, str, bool]]:
    rows = await conn.execute(select(session_venues.c.venue_id, session_venues.c.name, session_venues.c.main)
                              .where(session_venues.c.session_id == session_id).order_by(session_venues.c.position))
    return [(str(v), str(n), bool(m)) for v, n, m in rows.all()]


async def record_readiness(
    conn: AsyncConnection, session_id: str, report: ReadinessReport, *, actor: str, actor_venue: str | None,
    grants: Collection[Grant], clock: Clock,
) -> ReadinessCheck:
    """Record a venue's readiness check (grant ``publish``; ``actor_venue``, the reporter's own venue, must
    be the report's): the check row, its audit row and ``session.readiness_checked``."""
    require_grant(grants, Grant.PUBLISH, "báo cáo kiểm tra sẵn sàng của điểm cầu")
    actor = require_actor(actor)
    state_value = await conn.scalar(select(reception_sessions.c.state).where(reception_sessions.c.id == session_id))
    if state_value is None:
        raise UnknownSession(f"Không có phiên tiếp công dân «{session_id[:64]}».")
    state = SessionState.parse(state_value)
    if state not in _CHECK_STATES:
        raise SessionNotInProgress(f"Phiên đang ở trạng thái «{state.label_vi}»; không còn kiểm tra sẵn sàng.",
                                   code="session_over")
    venue = str(report.venue)[:64]
    if venue not in {v for v, _, _ in await _session_venue_rows(conn, session_id)}:
        if await conn.scalar(select(venues.c.id).where(venues.c.id == venue)) is None:
            raise UnknownVenue(f"Không có điểm cầu «{venue}».")
        raise VenueNotInSession(f"Điểm cầu «{venue}» không thuộc phiên này.")
    if actor_venue != venue:
        raise NotPermitted("Mỗi điểm cầu chỉ báo cáo kiểm tra của chính mình; tài khoản này không thuộc điểm cầu "
                           f"«{venue}».")
    checked = checked_report(report)
    problems = assess(checked)
    now = now_of(clock)
    check_id = str(uuid.uuid4())
    await conn.execute(insert(readiness_checks).values(
        id=check_id, session_id=session_id, venue_id=venue, checked_by=actor, checked_at=now, rtt_ms=checked.rtt_ms,
        rtt_source=checked.rtt_source.value if checked.rtt_source else None, outgoing_kbps=checked.outgoing_kbps,
        turn=checked.turn.value, camera=checked.camera, microphone=checked.microphone, browser=checked.browser,
        ready=not problems, problems=[p.value for p in problems]))
    event = VenueReadinessChecked(session=session_id, venue=venue, check=check_id, by=actor, ready=not problems,
                                  problems=tuple(p.value for p in problems), occurred_at=now)
    await add_to_outbox(conn, event)
    await audit(conn, actor=actor, action="session.readiness_checked", target_kind="session", target_id=session_id,
                at=now, detail={"venue": venue, "check": check_id, "ready": not problems,
                                "problems": [p.value for p in problems], "rtt_ms": checked.rtt_ms,
                                "rtt_source": checked.rtt_source.value if checked.rtt_source else None,
                                "outgoing_kbps": checked.outgoing_kbps, "turn": checked.turn.value})
    return ReadinessCheck(id=check_id, session_id=session_id, report=checked, problems=problems, checked_by=actor,
                          checked_at=now, events=(event,))


async def readiness_of(conn: AsyncConnection, session_id: str) -> tuple[VenueReadiness, ...]:
    """Each venue of the session, in order, with its latest check (:class:`UnknownSession` if none)."""
    if await conn.scalar(select(reception_sessions.c.id).where(reception_sessions.c.id == session_id)) is None:
        raise UnknownSession(f"Không có phiên tiếp công dân «{session_id[:64]}».")
    rows = (await conn.execute(select(readiness_checks).where(readiness_checks.c.session_id == session_id)
                               .order_by(readiness_checks.c.checked_at, readiness_checks.c.id))).all()
    latest: dict[str, ReadinessCheck] = {}
    for r in rows:
        report = ReadinessReport(
            venue=r.venue_id, rtt_ms=r.rtt_ms, rtt_source=RttSource.parse(r.rtt_source) if r.rtt_source else None,
            outgoing_kbps=r.outgoing_kbps, turn=TurnResult.parse(r.turn), camera=bool(r.camera),
            microphone=bool(r.microphone), browser=r.browser)
        latest[r.venue_id] = ReadinessCheck(
            id=r.id, session_id=session_id, report=report,
            problems=tuple(ReadinessProblem.parse(p) for p in r.problems or ()), checked_by=r.checked_by,
            checked_at=r.checked_at)
    return tuple(VenueReadiness(venue=v, name=n, main=m, latest=latest.get(v))
                 for v, n, m in await _session_venue_rows(conn, session_id))
