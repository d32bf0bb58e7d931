"""Attachments of petitions: the record of a stored file (its bytes are written by the web tier,
streamed under a hard size cap, into ``data_dir/attachments/<stored_name>``).

The client's file name is never used as a path: files are stored under a random name and the
client's name is kept, cleaned, for display only (:func:`clean_display_name`). A download names the
file by :func:`content_disposition` (RFC 6266: an ASCII ``filename`` for old clients and the exact
Vietnamese name in ``filename*``). Who may download follows :mod:`complaints.confidentiality`
(:func:`may_download`): a confidential case's files need ``identity_read``.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from signaling.grants import Grant

from .confidentiality import attachment_shown_name, is_confidential, may_download_attachments
from .errors import NotFound
from .tables import attachments, petitions

__all__ = ["AttachmentRecord", "StoredAttachment", "MAX_ATTACHMENT_BYTES", "add_attachment", "clean_display_name",
           "new_stored_name", "clean_media_type", "list_attachments", "petition_exists", "get_attachment",
           "ascii_file_name", "content_disposition", "is_stored_name", "may_download", "shown_name"]

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
_STORED_NAME = re.compile(r"^[0-9a-f]{32}$")
# RFC 8187 attr-char, besides the letters, digits and "_.-~" that quote() always keeps.
_ATTR_CHAR_EXTRA = "!#$&+^`|"
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")


@dataclass(frozen=True)
class AttachmentRecord:
    id: str
    petition_id: str
    display_name: str
    media_type: str
    size: int
    sha256: str
    created_at: datetime


@dataclass(frozen=True)
class StoredAttachment:
    """An attachment with where its bytes are (``stored_name`` under the attachments directory)."""

    id: str
    case_id: str
    petition_id: str
    stored_name: str
    display_name: str
    media_type: str
    size: int
    sha256: str


def new_stored_name() -> str:
    """A random file name (hex), unrelated to anything the client sent."""
    return secrets.token_hex(16)


def is_stored_name(name: str) -> bool:
    """True for a name :func:`new_stored_name` can make (never a path)."""
    return bool(_STORED_NAME.fullmatch(name))


def ascii_file_name(name: str) -> str:
    """``name`` in plain ASCII for clients that ignore ``filename*``: Vietnamese letters lose their
    marks (đ → d), anything outside letters, digits, space and ``._()-`` becomes ``_``."""
    text = unicodedata.normalize("NFKD", name.replace("đ", "d").replace("Đ", "D"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[^A-Za-z0-9 ._()-]", "_", text).strip(" .")
    return text[:200] or "tep-dinh-kem"


def content_disposition(display_name: str, *, disposition: str = "attachment") -> str:
    """The ``Content-Disposition`` value of a download (RFC 6266 with the RFC 8187 ``filename*``)."""
    if disposition not in ("attachment", "inline"):
        raise ValueError("disposition is attachment or inline")
    name = clean_display_name(display_name)
    encoded = quote(name, safe=_ATTR_CHAR_EXTRA, encoding="utf-8")
    return f"{disposition}; filename=\"{ascii_file_name(name)}\"; filename*=UTF-8''{encoded}"


def clean_display_name(raw: str | None) -> str:
    """The last path component of ``raw``, without control characters, at most 200 characters."""
    text = unicodedata.normalize("NFC", raw or "")
    text = re.split(r"[\\/]", text)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip().strip(".")
    return text[:200] or "tep-dinh-kem"


def clean_media_type(raw: str | None) -> str:
    value = (raw or "").split(";")[0].strip().lower()
    return value if _MEDIA_TYPE.fullmatch(value) else "application/octet-stream"


async def add_attachment(
    conn: AsyncConnection,
    petition_id: str,
    *,
    stored_name: str,
    display_name: str,
    media_type: str,
    size: int,
    sha256: str,
    uploaded_by: str,
    now: datetime,
) -> AttachmentRecord:
    case_id = (await conn.execute(select(petitions.c.case_id).where(petitions.c.id == petition_id))).scalar()
    if case_id is None:
        raise NotFound("Không tìm thấy đơn.")
    record = AttachmentRecord(id=str(uuid.uuid4()), petition_id=petition_id, display_name=display_name,
                              media_type=media_type, size=size, sha256=sha256, created_at=now)
    await conn.execute(attachments.insert().values(
        id=record.id, petition_id=petition_id, case_id=case_id, stored_name=stored_name, display_name=display_name,
        media_type=media_type, size=size, sha256=sha256, uploaded_by=uploaded_by, created_at=now,
    ))
    return record


async def petition_exists(conn: AsyncConnection, petition_id: str) -> bool:
    return (await conn.execute(select(petitions.c.id).where(petitions.c.id == petition_id))).first() is not None


async def list_attachments(conn: AsyncConnection, case_id: str) -> list[AttachmentRecord]:
    rows = (await conn.execute(select(attachments).where(attachments.c.case_id == case_id)
                               .order_by(attachments.c.created_at, attachments.c.id))).mappings().all()
    return [AttachmentRecord(id=r["id"], petition_id=r["petition_id"], display_name=r["display_name"],
                             media_type=r["media_type"], size=r["size"], sha256=r["sha256"],
                             created_at=r["created_at"]) for r in rows]


async def shown_name(conn: AsyncConnection, attachment_id: str, grants: Collection[Grant]) -> str:
    """The attachment's name as a holder of ``grants`` may see it: numbered in a confidential case
    without ``identity_read`` (:func:`complaints.confidentiality.attachment_shown_name`; the number is
    its place among the case's attachments, as in the case file)."""
    record = await get_attachment(conn, attachment_id)
    order = [r[0] for r in await conn.execute(select(attachments.c.id).where(attachments.c.case_id == record.case_id)
                                              .order_by(attachments.c.created_at, attachments.c.id))]
    return attachment_shown_name(record.display_name, order.index(record.id) + 1,
                                 confidential=await is_confidential(conn, record.case_id), grants=grants)


async def may_download(conn: AsyncConnection, record: StoredAttachment, grants: Collection[Grant]) -> bool:
    """Whether a holder of ``grants`` who may see the case may also have this file."""
    return await may_download_attachments(conn, record.case_id, grants)


async def get_attachment(conn: AsyncConnection, attachment_id: str) -> StoredAttachment:
    row = (await conn.execute(select(attachments).where(attachments.c.id == attachment_id))).mappings().first()
    if row is None:
        raise NotFound("Không tìm thấy tệp đính kèm.")
    return StoredAttachment(id=row["id"], case_id=row["case_id"], petition_id=row["petition_id"],
                            stored_name=row["stored_name"], display_name=row["display_name"],
                            media_type=row["media_type"], size=row["size"], sha256=row["sha256"])
