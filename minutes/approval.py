"""Read-back, the citizen's confirmation and the chair's approval of a case's minutes.

Theory of operation
-------------------
One approval row per draft (``minutes_approvals``), created on first use. Its states follow each other:

* **read back** (:func:`request_readback`, grant ``minutes``): the secretary freezes the version shown to the
  citizen; the row keeps the version and its content hash (:func:`minutes.closing.content_sha256`). The
  called venue's page shows that version (:func:`readback_for_venue`). Asking again (after a correction)
  starts over: the confirmation and the approval of an older version are dropped.
* **confirmed**, in one of two ways, each naming the read-back hash the person saw (a draft saved since the
  read-back is :class:`ReadbackStale`: read back again):
  - :func:`confirm_by_signature`: the citizen signs on the venue's screen; the PNG (at most
    :data:`MAX_SIGNATURE_BYTES`, a real PNG, not blank, checked with Pillow) is kept in
    ``minutes_signatures`` with its SHA-256, the row names it. Sent by the called venue's operator or a
    holder of ``minutes`` (the citizen at the main venue);
  - :func:`confirm_verbally` (grant ``minutes``): the secretary notes the citizen confirmed aloud, with the
    recording time of the case segment (``mm:ss`` or ``h:mm:ss``) where it can be heard.
* **approved** (:func:`approve`, grant ``approve``: the chair): bound to the confirmed hash; refused when the
  draft changed since the confirmation; when required fields are missing it is not given, and the approval
  row lists each problem (``problems``, kept for the pages: the caller commits them). When ``case.closed``
  was seen already, the approval closes the case in the same transaction (:func:`minutes.closing.close_if_ready`).

Every step writes an audit row (ids and hashes only). A closed draft refuses every step
(:class:`~minutes.drafts.DraftClosed`).
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PIL import Image, UnidentifiedImageError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.audit import append_audit
from complaints.errors import NotFound, StaleVersion
from complaints.workdays import WorkCalendar
from evidence import Keyring
from signaling.grants import Grant

from .closing import CaseRecord, check_content, close_if_ready, content_sha256, load_record
from .drafts import VIETNAM_TZ, Author, DraftClosed, DraftForbidden, DraftInvalid
from .drafts_content import MinutesContent
from .tables import minutes_approvals, minutes_draft_versions, minutes_drafts, minutes_signatures

__all__ = ["Approval", "ReadbackStale", "MAX_SIGNATURE_BYTES", "check_signature_png", "parse_media_time",
           "approval_state", "request_readback", "confirm_by_signature", "confirm_verbally", "approve",
           "readback_for_venue", "note_case_closed", "format_media_time"]

MAX_SIGNATURE_BYTES = 256 * 1024
MAX_SIGNATURE_PIXELS = (4000, 2000)
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MEDIA_TIME = re.compile(r"^(?:(\d{1,2}):)?(\d{1,3}):([0-5]\d)$")
_MAX_MEDIA_S = 24 * 3600


class ReadbackStale(StaleVersion):
    """What the person confirmed or approved is not the draft as it is now."""


@dataclass(frozen=True)
class Approval:
    draft_id: str
    session_id: str
    case_id: str
    venue: str | None
    draft_state: str
    draft_version: int
    draft_sha256: str
    readback_version: int | None
    readback_sha256: str | None
    confirmation: str | None            # signature | verbal
    confirmed_sha256: str | None
    confirmed_by: str | None
    confirmed_at: datetime | None
    signature_sha256: str | None
    verbal_media_s: int | None
    approved_sha256: str | None
    approved_by: str | None
    approved_at: datetime | None
    case_closed: bool
    problems: tuple[dict[str, str], ...]
    record: CaseRecord | None

    @property
    def state(self) -> str:
        """``none``, ``readback``, ``confirmed``, ``approved`` or ``recorded``."""
        if self.record is not None:
            return "recorded"
        if self.approved_sha256 is not None:
            return "approved"
        if self.confirmation is not None:
            return "confirmed"
        return "readback" if self.readback_sha256 is not None else "none"

    @property
    def changed_since_readback(self) -> bool:
        return self.readback_sha256 is not None and self.readback_sha256 != self.draft_sha256

    @property
    def verbal_time(self) -> str | None:
        return None if self.verbal_media_s is None else format_media_time(self.verbal_media_s)


def format_media_time(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def parse_media_time(text: str) -> int:
    """``mm:ss`` or ``h:mm:ss`` → seconds; :class:`DraftInvalid` otherwise."""
    found = _MEDIA_TIME.match(text.strip())
    seconds = None
    if found is not None:
        hours, minutes, secs = int(found.group(1) or 0), int(found.group(2)), int(found.group(3))
        if found.group(1) is None or minutes < 60:
            seconds = hours * 3600 + minutes * 60 + secs
    if seconds is None or seconds > _MAX_MEDIA_S:
        raise DraftInvalid([{"field": "media_time", "message": "Thời điểm trong bản ghi phải có dạng phút:giây "
                                                               "(ví dụ 12:05) hoặc giờ:phút:giây."}])
    return seconds


def check_signature_png(data: bytes) -> tuple[int, int]:
    """The size of a signature drawn on screen; :class:`DraftInvalid` unless ``data`` is one PNG image of at
    most :data:`MAX_SIGNATURE_BYTES` with something drawn on it."""
    def bad(message: str) -> DraftInvalid:
        return DraftInvalid([{"field": "signature", "message": message}])

    if not data:
        raise bad("Chưa có chữ ký.")
    if len(data) > MAX_SIGNATURE_BYTES:
        raise bad(f"Ảnh chữ ký quá lớn (tối đa {MAX_SIGNATURE_BYTES // 1024} KB).")
    if not data.startswith(_PNG_MAGIC):
        raise bad("Chữ ký phải là ảnh PNG.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                if probe.format != "PNG":
                    raise bad("Chữ ký phải là ảnh PNG.")
                width, height = probe.size
                if not (1 <= width <= MAX_SIGNATURE_PIXELS[0] and 1 <= height <= MAX_SIGNATURE_PIXELS[1]):
                    raise bad("Kích thước ảnh chữ ký không hợp lệ.")
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                rgba = image.convert("RGBA")
    except DraftInvalid:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombWarning,
            Image.DecompressionBombError):
        raise bad("Ảnh chữ ký bị hỏng hoặc không phải ảnh PNG.") from None
    alpha = rgba.getchannel("A").getextrema()
    luminance = rgba.convert("L").getextrema()
    if alpha[0] == alpha[1] and luminance[0] == luminance[1]:
        raise bad("Ảnh chữ ký trống: công dân chưa ký.")
    return width, height


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def _draft(conn: AsyncConnection, session_id: str, case_id: str, *, lock: bool = False) -> Any:
    query = select(minutes_drafts).where(minutes_drafts.c.session_id == session_id,
                                         minutes_drafts.c.case_id == case_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFound("Chưa có biên bản của vụ việc này trong phiên: vụ việc chưa được gọi.")
    return row


async def _row(conn: AsyncConnection, draft_id: str) -> Any:
    return (await conn.execute(select(minutes_approvals).where(minutes_approvals.c.draft_id == draft_id))
            ).mappings().first()


async def _ensure_row(conn: AsyncConnection, draft: Any, now: datetime) -> Any:
    row = await _row(conn, draft["id"])
    if row is None:
        await conn.execute(minutes_approvals.insert().values(
            draft_id=draft["id"], session_id=draft["session_id"], case_id=draft["case_id"], updated_at=now))
        row = await _row(conn, draft["id"])
    return row


async def _state(conn: AsyncConnection, draft: Any) -> Approval:
    row = await _row(conn, draft["id"])
    content = MinutesContent.model_validate(draft["content"])
    get = (lambda key: row[key]) if row is not None else (lambda key: None)
    signature_sha = None
    if row is not None and row["signature_id"] is not None:
        signature_sha = (await conn.execute(select(minutes_signatures.c.sha256).where(
            minutes_signatures.c.id == row["signature_id"]))).scalar_one()
    return Approval(
        draft_id=draft["id"], session_id=draft["session_id"], case_id=draft["case_id"], venue=draft["venue"],
        draft_state=draft["state"], draft_version=draft["version"], draft_sha256=content_sha256(content),
        readback_version=get("readback_version"), readback_sha256=get("readback_sha256"),
        confirmation=get("confirmation"), confirmed_sha256=get("confirmed_sha256"), confirmed_by=get("confirmed_by"),
        confirmed_at=_aware(get("confirmed_at")), signature_sha256=signature_sha, verbal_media_s=get("verbal_media_s"),
        approved_sha256=get("approved_sha256"), approved_by=get("approved_by"),
        approved_at=_aware(get("approved_at")), case_closed=get("case_closed_at") is not None,
        problems=tuple(get("problems") or ()), record=await load_record(conn, draft["id"]))


def _may_read(author: Author, venue: str | None, draft: Any) -> bool:
    return not author.grants.isdisjoint({Grant.MINUTES, Grant.APPROVE}) or (
        venue is not None and venue == draft["venue"])


async def approval_state(conn: AsyncConnection, *, session_id: str, case_id: str, author: Author,
                         venue: str | None = None) -> Approval:
    """The read-back, confirmation and approval of a draft; readable with ``minutes`` or ``approve``, or by
    the called venue's operator (``venue``)."""
    draft = await _draft(conn, session_id, case_id)
    if not _may_read(author, venue, draft):
        raise DraftForbidden("Bạn không có quyền xem biên bản này.")
    return await _state(conn, draft)


async def readback_for_venue(conn: AsyncConnection, *, session_id: str, author: Author,
                             venue: str | None) -> tuple[Approval, MinutesContent] | None:
    """The session's case being read back (the latest read-back asked for, not yet written) with the content
    shown, for the called venue's operator or a holder of ``minutes``/``approve``; None when there is none."""
    query = (select(minutes_drafts).join(minutes_approvals, minutes_approvals.c.draft_id == minutes_drafts.c.id)
             .where(minutes_drafts.c.session_id == session_id, minutes_drafts.c.state == "open",
                    minutes_approvals.c.readback_sha256.is_not(None))
             .order_by(minutes_approvals.c.requested_at.desc()).limit(1))
    draft = (await conn.execute(query)).mappings().first()
    if draft is None or not _may_read(author, venue, draft):
        return None
    state = await _state(conn, draft)
    assert state.readback_version is not None
    shown = (await conn.execute(select(minutes_draft_versions.c.content).where(
        minutes_draft_versions.c.draft_id == draft["id"],
        minutes_draft_versions.c.version == state.readback_version))).scalar_one()
    return state, MinutesContent.model_validate(shown)


def _require(author: Author, grant: Grant, message: str) -> None:
    if grant not in author.grants:
        raise DraftForbidden(message)


def _open(draft: Any) -> None:
    if draft["state"] != "open":
        raise DraftClosed("Biên bản đã khép lại và đã được ghi vào cơ sở dữ liệu.")


async def request_readback(conn: AsyncConnection, *, session_id: str, case_id: str, version: int, author: Author,
                           now: datetime) -> Approval:
    """Freeze ``version`` (the draft's current one) as what is read back to the citizen."""
    _require(author, Grant.MINUTES, "Chỉ thư ký (quyền ghi biên bản) mới đọc lại biên bản.")
    now = now.astimezone(UTC)
    draft = await _draft(conn, session_id, case_id, lock=True)
    _open(draft)
    if version != draft["version"]:
        raise ReadbackStale(f"Biên bản đã có phiên bản {draft['version']}; hãy đọc lại bản mới nhất.",
                            code="readback_stale")
    digest = content_sha256(MinutesContent.model_validate(draft["content"]))
    await _ensure_row(conn, draft, now)
    await conn.execute(update(minutes_approvals).where(minutes_approvals.c.draft_id == draft["id"]).values(
        readback_version=version, readback_sha256=digest, requested_by=author.label, requested_at=now,
        confirmation=None, confirmed_sha256=None, confirmed_by=None, confirmed_at=None, signature_id=None,
        verbal_media_s=None, approved_sha256=None, approved_by=None, approved_name=None, approved_at=None,
        updated_at=now))
    await append_audit(conn, actor=author.label, action="minutes.readback", target_kind="case", target_id=case_id,
                       detail={"session": session_id, "draft": draft["id"], "version": version, "sha256": digest},
                       at=now)
    return await _state(conn, draft)


async def _confirmable(conn: AsyncConnection, session_id: str, case_id: str, readback_sha256: str) -> Any:
    draft = await _draft(conn, session_id, case_id, lock=True)
    _open(draft)
    row = await _row(conn, draft["id"])
    if row is None or row["readback_sha256"] is None:
        raise ReadbackStale("Biên bản chưa được đọc lại cho công dân.", code="no_readback")
    current = content_sha256(MinutesContent.model_validate(draft["content"]))
    if readback_sha256 != row["readback_sha256"] or current != row["readback_sha256"]:
        raise ReadbackStale("Biên bản đã thay đổi sau khi đọc lại; hãy đọc lại bản mới trước khi xác nhận.",
                            code="readback_stale")
    return draft


async def confirm_by_signature(conn: AsyncConnection, *, session_id: str, case_id: str, readback_sha256: str,
                               png: bytes, author: Author, venue: str | None, now: datetime) -> Approval:
    """The citizen's signature drawn on screen confirms the read-back ``readback_sha256``."""
    now = now.astimezone(UTC)
    draft = await _draft(conn, session_id, case_id)
    if Grant.MINUTES not in author.grants and (venue is None or venue != draft["venue"]):
        raise DraftForbidden("Chỉ điểm cầu được gọi hoặc thư ký mới gửi chữ ký xác nhận biên bản.")
    width, height = check_signature_png(png)
    draft = await _confirmable(conn, session_id, case_id, readback_sha256)
    signature_id = str(uuid.uuid4())
    digest = hashlib.sha256(png).hexdigest()
    await conn.execute(minutes_signatures.insert().values(
        id=signature_id, draft_id=draft["id"], readback_sha256=readback_sha256, sha256=digest, png=png,
        size=len(png), width=width, height=height, submitted_by=author.label, submitted_at=now))
    return await _record_confirmation(conn, draft, session_id=session_id, case_id=case_id, how="signature",
                                      readback_sha256=readback_sha256, author=author, now=now,
                                      signature_id=signature_id, detail={"signature_sha256": digest})


async def confirm_verbally(conn: AsyncConnection, *, session_id: str, case_id: str, readback_sha256: str,
                           media_time: str, author: Author, now: datetime) -> Approval:
    """The secretary notes the citizen confirmed the read-back aloud, at ``media_time`` in the recording."""
    _require(author, Grant.MINUTES, "Chỉ thư ký (quyền ghi biên bản) mới ghi nhận xác nhận bằng lời.")
    now = now.astimezone(UTC)
    seconds = parse_media_time(media_time)
    draft = await _confirmable(conn, session_id, case_id, readback_sha256)
    return await _record_confirmation(conn, draft, session_id=session_id, case_id=case_id, how="verbal",
                                      readback_sha256=readback_sha256, author=author, now=now,
                                      verbal_media_s=seconds, detail={"media_s": seconds})


async def _record_confirmation(conn: AsyncConnection, draft: Any, *, session_id: str, case_id: str, how: str,
                               readback_sha256: str, author: Author, now: datetime, signature_id: str | None = None,
                               verbal_media_s: int | None = None, detail: dict[str, Any]) -> Approval:
    """The read-back ``readback_sha256`` confirmed ``how`` (``signature`` or ``verbal``): a previous confirmation
    and approval are replaced; audited with ``detail`` added."""
    await conn.execute(update(minutes_approvals).where(minutes_approvals.c.draft_id == draft["id"]).values(
        confirmation=how, confirmed_sha256=readback_sha256, confirmed_by=author.label, confirmed_at=now,
        signature_id=signature_id, verbal_media_s=verbal_media_s, approved_sha256=None, approved_by=None,
        approved_name=None, approved_at=None, updated_at=now))
    await append_audit(conn, actor=author.label, action="minutes.confirmed", target_kind="case", target_id=case_id,
                       detail={"session": session_id, "draft": draft["id"], "how": how, "sha256": readback_sha256,
                               **detail}, at=now)
    return await _state(conn, draft)


async def approve(conn: AsyncConnection, *, session_id: str, case_id: str, confirmed_sha256: str, author: Author,
                  name: str, keyring: Keyring, calendar: WorkCalendar, now: datetime) -> Approval:
    """The chair approves the confirmed minutes ``confirmed_sha256`` (his display ``name`` is recorded as the
    officer of the reception); closes the case at once when ``case.closed`` was seen. Minutes that cannot be
    written (required fields missing, a deadline past or on a day off, an unknown unit) are not approved: the
    answer's ``problems`` list why (``approved_sha256`` stays None)."""
    _require(author, Grant.APPROVE, "Chỉ người chủ trì mới phê duyệt biên bản.")
    now = now.astimezone(UTC)
    draft = await _draft(conn, session_id, case_id, lock=True)
    _open(draft)
    row = await _row(conn, draft["id"])
    if row is None or row["confirmation"] is None:
        raise ReadbackStale("Công dân chưa xác nhận biên bản đã đọc lại.", code="not_confirmed")
    content = MinutesContent.model_validate(draft["content"])
    current = content_sha256(content)
    if confirmed_sha256 != row["confirmed_sha256"] or current != row["confirmed_sha256"]:
        raise ReadbackStale("Biên bản đã thay đổi sau khi công dân xác nhận; cần đọc lại và xác nhận lại.",
                            code="changed_after_confirmation")
    opened = _aware(draft["opened_at"])
    assert opened is not None
    problems = await check_content(conn, content, issued_on=opened.astimezone(VIETNAM_TZ).date(),
                                   today=now.astimezone(VIETNAM_TZ).date(), calendar=calendar)
    if problems:
        await conn.execute(update(minutes_approvals).where(minutes_approvals.c.draft_id == draft["id"])
                           .values(problems=problems, updated_at=now))
        return await _state(conn, draft)
    await conn.execute(update(minutes_approvals).where(minutes_approvals.c.draft_id == draft["id"]).values(
        approved_sha256=current, approved_by=author.label, approved_name=name[:200], approved_at=now, problems=None,
        updated_at=now))
    await append_audit(conn, actor=author.label, action="minutes.approved", target_kind="case", target_id=case_id,
                       detail={"session": session_id, "draft": draft["id"], "sha256": current}, at=now)
    await close_if_ready(conn, session_id, case_id, keyring=keyring, calendar=calendar, now=now)
    return await _state(conn, await _draft(conn, session_id, case_id))


async def note_case_closed(conn: AsyncConnection, *, session_id: str, case_id: str, by: str, keyring: Keyring,
                           calendar: WorkCalendar, now: datetime) -> CaseRecord | None:
    """``case.closed`` of the case: noted on its approval row, then the case is written when approved. None
    when nothing was written now (no draft, not approved yet, or refused: see the row's problems)."""
    now = now.astimezone(UTC)
    try:
        draft = await _draft(conn, session_id, case_id, lock=True)
    except NotFound:
        return None
    row = await _ensure_row(conn, draft, now)
    if row["case_closed_at"] is None:
        await conn.execute(update(minutes_approvals).where(minutes_approvals.c.draft_id == draft["id"])
                           .values(case_closed_at=now, case_closed_by=by[:200], updated_at=now))
    return await close_if_ready(conn, session_id, case_id, keyring=keyring, calendar=calendar, now=now)
