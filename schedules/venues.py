"""Venues (điểm cầu) as data: the main venue and the communes and wards a province links.

Since the reform of 1 July 2025 a province has no districts and up to about a hundred communes and
wards (domain.md §0), so venues are rows, never constants. Each carries its administrative code after
the reform (Quyết định 19/2025/QĐ-TTg) and the codes of the units merged into it (the codes of
Quyết định 124/2004/QĐ-TTg as they stood before), so records made before the merger still find their
venue; a bitrate cap for a weak link (``max_kbps``, each video layer; None: the server's default); an
active flag (a venue is deactivated, not deleted, once a session used it).

Writes need the ``manage`` grant and leave an audit row; venues raise no bus event (the room server
learns a session's venues, with their caps, from ``session.opened``).

:data:`SAMPLE_VENUES` is the development sample: the provincial reception office of Bắc Ninh and 8 of
its communes and wards after the merger of Bắc Ninh and Bắc Giang (Nghị quyết 202/2025/QH15; communes
arranged by Nghị quyết 1658/NQ-UBTVQH15). New codes: province 24, communes from the list of QĐ
19/2025/QĐ-TTg; old codes: Bắc Giang 24 and Bắc Ninh 27, communes as before the merger. Both were read
from public data sets that reproduce the official lists, not from the gazette itself (UNVERIFIED
against the official text): check them before relying on them beyond development.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from complaints.enums import LabelledEnum
from signaling.grants import Grant

from ._service import Clock, audit, check_slug, now_of, require_grant
from .errors import ConcurrentChange, InvalidArgument, UnknownVenue, VenueExists, VenueInUse
from .tables import session_venues, venues

__all__ = [
    "MAX_KBPS",
    "MIN_KBPS",
    "SAMPLE_SOURCE",
    "SAMPLE_VENUES",
    "Venue",
    "VenueDraft",
    "VenueLevel",
    "create_venue",
    "delete_venue",
    "ensure_venues",
    "get_venue",
    "install_sample_venues",
    "list_venues",
    "update_venue",
]

MIN_KBPS = 100
MAX_KBPS = 20_000
_MAX_NAME = 200
_MAX_OLD_CODES = 32
_EDITABLE = frozenset({"name", "level", "admin_code", "old_admin_codes", "max_kbps", "active"})


class VenueLevel(LabelledEnum):
    MAIN = ("main", "Điểm cầu chính")
    COMMUNE = ("commune", "Xã")
    WARD = ("ward", "Phường")
    DISTRICT = ("district", "Huyện (trước ngày 01/7/2025)")


@dataclass(frozen=True, slots=True)
class VenueDraft:
    """A venue as entered; :meth:`checked` normalises it or raises :class:`InvalidArgument`."""

    id: str
    name: str
    level: VenueLevel = VenueLevel.COMMUNE
    admin_code: str | None = None
    old_admin_codes: tuple[str, ...] = ()
    max_kbps: int | None = None
    active: bool = True

    def checked(self) -> VenueDraft:
        return VenueDraft(
            id=check_slug(self.id, "Mã điểm cầu", code="bad_venue_id"),
            name=_name(self.name),
            level=VenueLevel.parse(self.level),
            admin_code=_code(self.admin_code) if self.admin_code is not None else None,
            old_admin_codes=_codes(self.old_admin_codes),
            max_kbps=_kbps(self.max_kbps),
            active=_flag(self.active),
        )


@dataclass(frozen=True, slots=True)
class Venue:
    id: str
    name: str
    level: VenueLevel
    admin_code: str | None
    old_admin_codes: tuple[str, ...]
    max_kbps: int | None
    active: bool
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> Venue:
        return cls(id=row["id"], name=row["name"], level=VenueLevel.parse(row["level"]),
                   admin_code=row["admin_code"], old_admin_codes=tuple(row["old_admin_codes"] or ()),
                   max_kbps=row["max_kbps"], active=bool(row["active"]), version=row["version"],
                   created_at=row["created_at"], updated_at=row["updated_at"])


def _name(value: str) -> str:
    text = " ".join(unicodedata.normalize("NFC", value).split()) if isinstance(value, str) else ""
    if not text or len(text) > _MAX_NAME:
        raise InvalidArgument(f"Tên điểm cầu phải có từ 1 đến {_MAX_NAME} ký tự.", code="bad_venue_name")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise InvalidArgument("Tên điểm cầu chứa ký tự điều khiển.", code="bad_venue_name")
    return text


def _code(value: str) -> str:
    """An administrative code: 2 digits (a province) or 5 digits (a commune, ward, town)."""
    text = value.strip() if isinstance(value, str) else ""
    if not (text.isascii() and text.isdigit() and len(text) in (2, 5)):
        raise InvalidArgument(f"Mã đơn vị hành chính «{value}» phải gồm 2 chữ số (tỉnh) hoặc 5 chữ số (xã, phường).",
                              code="bad_admin_code")
    return text


def _codes(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise InvalidArgument("Danh sách mã cũ phải là một danh sách.", code="bad_admin_code")
    codes = tuple(dict.fromkeys(_code(v) for v in values))
    if len(codes) > _MAX_OLD_CODES:
        raise InvalidArgument(f"Tối đa {_MAX_OLD_CODES} mã đơn vị hành chính cũ.", code="bad_admin_code")
    return codes


def _kbps(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_KBPS <= value <= MAX_KBPS:
        raise InvalidArgument(f"Giới hạn băng thông phải từ {MIN_KBPS} đến {MAX_KBPS} kbps.", code="bad_max_kbps")
    return value


def _flag(value: bool) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument("Trạng thái hoạt động phải là đúng hoặc sai.", code="bad_active")
    return value


def _values(draft: VenueDraft) -> dict[str, Any]:
    return {"name": draft.name, "level": draft.level.value, "admin_code": draft.admin_code,
            "old_admin_codes": list(draft.old_admin_codes), "max_kbps": draft.max_kbps, "active": draft.active}


# -- reads ----------------------------------------------------------------------------------------------------


async def get_venue(conn: AsyncConnection, venue_id: str) -> Venue:
    row = (await conn.execute(select(venues).where(venues.c.id == venue_id))).mappings().first()
    if row is None:
        raise UnknownVenue(f"Không có điểm cầu «{venue_id}».")
    return Venue.from_row(row)


async def list_venues(conn: AsyncConnection, *, active_only: bool = False) -> tuple[Venue, ...]:
    """Every venue, the main venue(s) first, then by name."""
    query = select(venues).order_by(case((venues.c.level == VenueLevel.MAIN.value, 0), else_=1), venues.c.name,
                                    venues.c.id)
    if active_only:
        query = query.where(venues.c.active.is_(True))
    return tuple(Venue.from_row(row) for row in (await conn.execute(query)).mappings())


# -- writes ---------------------------------------------------------------------------------------------------


async def create_venue(conn: AsyncConnection, draft: VenueDraft, *, actor: str, grants: Collection[Grant],
                       clock: Clock) -> Venue:
    """Add a venue (grant ``manage``); :class:`VenueExists` when the id is taken."""
    require_grant(grants, Grant.MANAGE, "quản lý điểm cầu")
    checked = draft.checked()
    now = now_of(clock)
    await _insert(conn, checked, now)
    await audit(conn, actor=actor, action="venue.created", target_kind="venue", target_id=checked.id, at=now,
                detail={"level": checked.level.value, "admin_code": checked.admin_code, "max_kbps": checked.max_kbps})
    return await get_venue(conn, checked.id)


async def _insert(conn: AsyncConnection, draft: VenueDraft, now: datetime) -> None:
    try:
        async with conn.begin_nested():  # a savepoint: the caller's transaction survives a taken id
            await conn.execute(insert(venues).values(id=draft.id, **_values(draft), version=1, created_at=now,
                                                     updated_at=now))
    except IntegrityError as exc:
        raise VenueExists(f"Mã điểm cầu «{draft.id}» đã được dùng.") from exc


async def update_venue(conn: AsyncConnection, venue_id: str, *, expected_version: int, changes: Mapping[str, Any],
                       actor: str, grants: Collection[Grant], clock: Clock) -> Venue:
    """Change some of ``name``, ``level``, ``admin_code``, ``old_admin_codes``, ``max_kbps``, ``active``
    when the venue is still at ``expected_version`` (else :class:`ConcurrentChange`). Sessions already
    planned keep the name they announced."""
    require_grant(grants, Grant.MANAGE, "quản lý điểm cầu")
    unknown = sorted(set(changes) - _EDITABLE)
    if unknown:
        raise InvalidArgument(f"Không sửa được các trường: {', '.join(unknown)}.", code="not_editable")
    claimed = await conn.execute(update(venues).where(venues.c.id == venue_id, venues.c.version == expected_version)
                                 .values(version=venues.c.version))
    if claimed.rowcount != 1:
        current = await get_venue(conn, venue_id)
        raise ConcurrentChange(
            f"Điểm cầu đã được người khác cập nhật (phiên bản {current.version}); hãy tải lại trước khi lưu.",
            current=current.version, expected=expected_version)
    before = await get_venue(conn, venue_id)
    merged = VenueDraft(id=before.id, name=before.name, level=before.level, admin_code=before.admin_code,
                        old_admin_codes=before.old_admin_codes, max_kbps=before.max_kbps, active=before.active)
    fields = {name: getattr(merged, name) for name in _EDITABLE}
    fields.update(changes)
    after = VenueDraft(id=before.id, **fields).checked()
    changed = sorted(name for name in _EDITABLE if getattr(after, name) != getattr(merged, name))
    if not changed:
        return before
    now = now_of(clock)
    await conn.execute(update(venues).where(venues.c.id == venue_id)
                       .values(**_values(after), version=venues.c.version + 1, updated_at=now))
    await audit(conn, actor=actor, action="venue.updated", target_kind="venue", target_id=venue_id, at=now,
                detail={"changed": changed, "version": before.version + 1})
    return await get_venue(conn, venue_id)


async def delete_venue(conn: AsyncConnection, venue_id: str, *, actor: str, grants: Collection[Grant],
                       clock: Clock) -> None:
    """Delete a venue no session ever used (:class:`VenueInUse` otherwise: deactivate it instead)."""
    require_grant(grants, Grant.MANAGE, "quản lý điểm cầu")
    await get_venue(conn, venue_id)
    used = await conn.scalar(select(func.count()).select_from(session_venues)
                             .where(session_venues.c.venue_id == venue_id))
    if used:
        raise VenueInUse(f"Điểm cầu «{venue_id}» đã tham gia {used} phiên tiếp công dân; chỉ có thể ngừng hoạt động, "
                         "không xóa được.")
    now = now_of(clock)
    await conn.execute(venues.delete().where(venues.c.id == venue_id))
    await audit(conn, actor=actor, action="venue.deleted", target_kind="venue", target_id=venue_id, at=now)


async def ensure_venues(conn: AsyncConnection, drafts: Sequence[VenueDraft], *, actor: str, grants: Collection[Grant],
                        clock: Clock) -> tuple[str, ...]:
    """Create those of ``drafts`` whose id is not in the table yet (the others stay as they are);
    returns the ids created."""
    require_grant(grants, Grant.MANAGE, "quản lý điểm cầu")
    created: list[str] = []
    for draft in drafts:
        checked = draft.checked()
        if (await conn.execute(select(venues.c.id).where(venues.c.id == checked.id))).first() is None:
            await create_venue(conn, checked, actor=actor, grants=grants, clock=clock)
            created.append(checked.id)
    return tuple(created)


#: Where the sample's codes come from (see the module docstring).
SAMPLE_SOURCE = (
    "Tỉnh Bắc Ninh sau sắp xếp (Nghị quyết 202/2025/QH15, Nghị quyết 1658/NQ-UBTVQH15); mã mới theo "
    "Quyết định 19/2025/QĐ-TTg, mã cũ theo danh mục trước ngày 01/7/2025; đọc từ bộ dữ liệu công khai, "
    "chưa đối chiếu văn bản gốc."
)

_C, _W = VenueLevel.COMMUNE, VenueLevel.WARD
#: The main venue and 8 communes and wards of Bắc Ninh (post-2025): id, name, level, new code, old codes.
SAMPLE_VENUES: tuple[VenueDraft, ...] = (
    VenueDraft("tru-so-tinh", "Trụ sở Tiếp công dân tỉnh Bắc Ninh", VenueLevel.MAIN, "24", ("24", "27")),
    # thị trấn Lim, xã Nội Duệ, xã Phú Lâm
    VenueDraft("xa-tien-du", "Xã Tiên Du", _C, "09319", ("09319", "09328", "09322")),
    # xã Minh Đạo, xã Cảnh Hưng, xã Phật Tích
    VenueDraft("xa-phat-tich", "Xã Phật Tích", _C, "09349", ("09361", "09364", "09349")),
    # xã Hiên Vân, xã Việt Đoàn, xã Liên Bão
    VenueDraft("xa-lien-bao", "Xã Liên Bão", _C, "09334", ("09337", "09346", "09334")),
    # phường Phố Mới, phường Bằng An, phường Việt Hùng, phường Quế Tân
    VenueDraft("phuong-que-vo", "Phường Quế Võ", _W, "09247", ("09247", "09262", "09283", "09268")),
    # phường Hồ, phường Song Hồ, phường Gia Đông, xã Đại Đồng Thành
    VenueDraft("phuong-thuan-thanh", "Phường Thuận Thành", _W, "09400", ("09400", "09412", "09424", "09406")),
    # phường Trang Hạ, phường Đồng Kỵ, phường Đồng Nguyên
    VenueDraft("phuong-dong-nguyen", "Phường Đồng Nguyên", _W, "09385", ("09383", "09382", "09385")),
    # thị trấn Gia Bình, xã Xuân Lai, xã Quỳnh Phú, xã Đại Bái
    VenueDraft("xa-gia-binh", "Xã Gia Bình", _C, "09454", ("09454", "09484", "09493", "09490")),
    # thị trấn Thứa, xã Phú Hòa, xã Tân Lãng
    VenueDraft("xa-luong-tai", "Xã Lương Tài", _C, "09496", ("09496", "09505", "09511")),
)


async def install_sample_venues(conn: AsyncConnection, *, actor: str, grants: Collection[Grant],
                                clock: Clock) -> tuple[str, ...]:
    """Fill an empty venue table with :data:`SAMPLE_VENUES` (development); a table that holds any venue
    is left alone. Returns the ids created."""
    require_grant(grants, Grant.MANAGE, "quản lý điểm cầu")
    if await conn.scalar(select(func.count()).select_from(venues)):
        return ()
    return await ensure_venues(conn, SAMPLE_VENUES, actor=actor, grants=grants, clock=clock)
