"""Attachments of petitions: receiving a file to disk and the record of a stored file.

:func:`receive_file` writes the chunks of an upload (whatever transport brings them: the web tier
passes the request's body stream) into ``<folder>/<stored_name>`` under a random name, hashing them
as they come and refusing, file removed, as soon as they pass :data:`MAX_ATTACHMENT_BYTES` (a
declared length is checked before reading by :func:`check_declared_length`) or when there are none.
Blocking writes run in a thread, in blocks of 64 KiB. The record is written by
:func:`complaints.service.attachments.add_attachment`; :func:`discard_file` removes the bytes of an
upload whose record was not written.

The client's file name is never used as a path: files are stored under a random name and the
client's name is kept, cleaned, for display only (:func:`clean_display_name`). A download names the
file by :func:`content_disposition` (RFC 6266: an ASCII ``filename`` for old clients and the exact
Vietnamese name in ``filename*``). Who may download follows :mod:`complaints.confidentiality`
(:func:`may_download`): a confidential case's files need ``identity_read``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import unicodedata
import uuid
from collections.abc import AsyncIterable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from signaling.grants import Grant

from .confidentiality import attachment_shown_name, is_confidential, may_download_attachments
from .errors import InvalidInput, NotFound
from .tables import attachments, petitions

__all__ = ["AttachmentRecord", "StoredAttachment", "MAX_ATTACHMENT_BYTES", "add_attachment", "clean_display_name",
           "new_stored_name", "clean_media_type", "list_attachments", "petition_exists", "get_attachment",
           "ascii_file_name", "content_disposition", "is_stored_name", "may_download", "shown_name", "ReceivedFile",
           "receive_file", "discard_file", "check_declared_length", "too_large", "stored_path"]

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
_STORED_NAME = re.compile(r"^[0-9a-f]{32}$")
# RFC 8187 attr-char, besides the letters, digits and "_.-~" that quote() always keeps.
_ATTR_CHAR_EXTRA = "!#$&+^`|"
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
_BLOCK = 64 * 1024


@dataclass(frozen=True)
class ReceivedFile:
    """An upload on disk, not yet recorded: ``<folder>/<stored_name>``, ``size`` bytes, its SHA-256."""

    stored_name: str
    size: int
    sha256: str


def too_large(limit: int = MAX_ATTACHMENT_BYTES) -> InvalidInput:
    return InvalidInput(f"Tệp đính kèm vượt quá giới hạn {limit // (1024 * 1024)} MB.", code="too_large",
                        field="file")


def check_declared_length(declared: str | None, limit: int = MAX_ATTACHMENT_BYTES) -> None:
    """Refuse an upload whose declared length (``Content-Length``) is not a number or is over the cap."""
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise too_large(limit)


def _open_new(folder: Path, path: Path) -> IO[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    return path.open("xb")


async def receive_file(chunks: AsyncIterable[bytes], folder: Path, *,
                       limit: int = MAX_ATTACHMENT_BYTES) -> ReceivedFile:
    """Write ``chunks`` to a new file under ``folder``; on overflow (``too_large``), an empty upload or
    any failure the file is removed and the error raised."""
    stored = new_stored_name()
    path = folder / stored
    digest = hashlib.sha256()
    size = 0
    handle = await asyncio.to_thread(_open_new, folder, path)
    try:
        pending = bytearray()
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            digest.update(chunk)
            pending += chunk
            if len(pending) >= _BLOCK:
                await asyncio.to_thread(handle.write, bytes(pending))
                pending.clear()
        if pending:
            await asyncio.to_thread(handle.write, bytes(pending))
    except BaseException:
        await asyncio.to_thread(handle.close)
        await asyncio.to_thread(path.unlink, True)
        raise
    await asyncio.to_thread(handle.close)
    if size == 0:
        await asyncio.to_thread(path.unlink, True)
        raise InvalidInput("Tệp đính kèm rỗng.", field="file")
    return ReceivedFile(stored_name=stored, size=size, sha256=digest.hexdigest())


async def discard_file(folder: Path, stored_name: str) -> None:
    """Remove the bytes of an upload whose record was not written (nothing when already gone)."""
    if is_stored_name(stored_name):
        await asyncio.to_thread((folder / stored_name).unlink, True)


async def stored_path(folder: Path, stored_name: str) -> Path | None:
    """Where a recorded attachment's bytes are, or None when the file is missing (or the name is not one
    :func:`new_stored_name` makes)."""
    if not is_stored_name(stored_name):
        return None
    path = folder / stored_name
    return path if await asyncio.to_thread(path.is_file) else None


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
