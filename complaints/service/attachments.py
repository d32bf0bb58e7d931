"""Attachments of petitions: recording an upload, and opening one for download.

* :func:`add_attachment` (``INTAKE_GRANTS``) — the record of a file already received to disk by
  :func:`complaints.attachments.receive_file` (its display name and media type cleaned here); one
  audit row and ``AttachmentAdded`` (id, size and hash: never the file's name, which may name a
  citizen). Answers the name as the case file shows it to the caller (numbered in a confidential case
  without ``identity_read``). The caller removes the file (:func:`complaints.attachments.discard_file`)
  when the transaction does not commit.
* :func:`open_attachment` — for a caller who may see the case (a unit only its own cases); a
  confidential case's files may show the denouncer (the letter itself, the handwriting: LTC Điều 56),
  so they need ``identity_read`` too. A refusal writes its audit row
  (``attachment.download_refused``) and raises :class:`~complaints.errors.IdentityAccessDenied`:
  the caller commits to keep it. A download is the audit row ``attachment.download``, to be
  committed before the first byte is sent. Reading writes no event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from signaling.events import AttachmentAdded

from .. import attachments as _attachments
from ..errors import IdentityAccessDenied, NotFound
from ._record import announce, audit
from .caller import INTAKE_GRANTS, Caller, require
from .cases import ensure_case_visible

__all__ = ["AddedAttachment", "add_attachment", "open_attachment"]

log = logging.getLogger("complaints.attachments")


@dataclass(frozen=True)
class AddedAttachment:
    record: _attachments.AttachmentRecord
    case_id: str
    shown_name: str  # the name as the caller may see it


async def add_attachment(conn: AsyncConnection, caller: Caller, petition_id: str, file: _attachments.ReceivedFile,
                         *, display_name: str | None, media_type: str | None, now: datetime) -> AddedAttachment:
    """Record ``file`` as an attachment of the petition (see the module docstring)."""
    require(caller, INTAKE_GRANTS)
    record = await _attachments.add_attachment(
        conn, petition_id, stored_name=file.stored_name, display_name=_attachments.clean_display_name(display_name),
        media_type=_attachments.clean_media_type(media_type), size=file.size, sha256=file.sha256,
        uploaded_by=caller.label, now=now)
    stored = await _attachments.get_attachment(conn, record.id)
    await audit(conn, caller, "case.attachment", stored.case_id, now=now,
                detail={"attachment": record.id, "petition": petition_id, "sha256": file.sha256})
    await announce(conn, AttachmentAdded(case=stored.case_id, by=caller.label, attachment=record.id,
                                         petition=petition_id, size=file.size, sha256=file.sha256, occurred_at=now))
    shown = await _attachments.shown_name(conn, record.id, caller.grants)
    return AddedAttachment(record=record, case_id=stored.case_id, shown_name=shown)


async def open_attachment(conn: AsyncConnection, caller: Caller, attachment_id: str, *, folder: Path, now: datetime,
                          case_id: str | None = None) -> tuple[_attachments.StoredAttachment, Path]:
    """The attachment and the path of its bytes, for a caller who may have them (see the module
    docstring); ``case_id``: the case the link was followed from (another case's file is not found)."""
    record = await _attachments.get_attachment(conn, attachment_id)
    if case_id is not None and record.case_id != case_id:
        raise NotFound("Không tìm thấy tệp đính kèm.")
    await ensure_case_visible(conn, caller, record.case_id)
    if not await _attachments.may_download(conn, record, caller.grants):
        await audit(conn, caller, "attachment.download_refused", record.id, target_kind="attachment", now=now,
                    detail={"case_id": record.case_id})
        raise IdentityAccessDenied("Tài liệu của vụ việc mật chỉ người có quyền xem danh tính người tố cáo "
                                   "mới được tải về.")
    path = await _attachments.stored_path(folder, record.stored_name)
    if path is None:
        log.error("attachment file missing", extra={"ctx": {"attachment_id": record.id}})
        raise NotFound("Tệp đính kèm không còn trong kho lưu trữ; hãy báo quản trị hệ thống.")
    await audit(conn, caller, "attachment.download", record.id, target_kind="attachment", now=now,
                detail={"case_id": record.case_id, "sha256": record.sha256})
    return record, path
