"""Helpers of the draft, read-back, approval and closing tests (not a test module): the officials, signatures
drawn as a browser's canvas draws them, a called case's open draft, and a draft brought to a complete, savable
state."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

from PIL import Image, ImageDraw
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.enums import PetitionKind
from complaints.workdays import default_calendar
from evidence import Keyring
from minutes.drafts import Author, open_draft, save_draft
from signaling.grants import grants_for

from ._drafts import NOW, RECEPTION, SESSION, VENUE, register_case

CAL = default_calendar()
SECRETARY = Author("user:thuky", grants_for(["secretary"]))
CHAIR = Author("user:chutri", grants_for(["chair"]))
VENUE_OP = Author("user:diemcau", grants_for(["venue"]))

COMPLETE: dict[str, Any] = {
    "citizen_request": "Đề nghị cấp giấy chứng nhận quyền sử dụng đất cho thửa 112.",
    "local_report": "UBND xã báo cáo hồ sơ đang chờ đo đạc.",
    "conclusion": "Giao UBND xã Tiên Du kiểm tra, trả lời công dân.",
    "answer": "directed",
    "outcome": "assigned_to_unit",
    "handling_direction": "guide",
    "directives": [{"unit": "ubnd-tien-du", "content": "Kiểm tra, đo đạc và trả lời công dân.", "working_days": 10}],
}


def signature_png(*, blank: bool = False, size: tuple[int, int] = (600, 200)) -> bytes:
    """A transparent canvas with a stroke on it, as ``canvas.toBlob('image/png')`` sends it."""
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    if not blank:
        ImageDraw.Draw(image).line([(20, 150), (200, 40), (380, 160), (560, 60)], fill=(0, 0, 0, 255), width=4)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def opened(engine: AsyncEngine, keyring: Keyring, kind: PetitionKind = PetitionKind.COMPLAINT) -> str:
    """A case registered at the desk and called first at :data:`VENUE`: its draft open at version 1; its id."""
    async with engine.begin() as conn:
        case_id = await register_case(conn, keyring, kind=kind)
        await open_draft(conn, session_id=SESSION, case_id=case_id, call_seq=1, venue=VENUE,
                         reception=RECEPTION, calendar=CAL, now=NOW)
    return case_id


async def save(engine: AsyncEngine, keyring: Keyring, case_id: str, base: int, content: dict[str, Any], *,
               minutes: int = 5) -> int:
    async with engine.begin() as conn:
        saved = await save_draft(conn, session_id=SESSION, case_id=case_id, base_version=base, content=content,
                                 author=SECRETARY, keyring=keyring, calendar=CAL, client="tab-a",
                                 now=NOW + timedelta(minutes=minutes))
    return saved.draft.version
