"""Helpers of the minutes-draft tests (not a test module): a database with every table, units, and cases
registered as the desk registers them."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from complaints.directives import add_unit
from complaints.enums import PetitionerType, PetitionKind, PetitionSource, ReceptionForm, ReceptionType
from complaints.intake import Intake, record_intake
from complaints.petitioners import NewPetitioner
from complaints.petitions import NewPetition
from evidence import Keyring
from minutes.drafts import SessionReception
from signaling.grants import grants_for
from tiepdan.db import metadatas

NOW = datetime(2026, 12, 10, 2, 0, tzinfo=UTC)  # 09:00 in Vietnam, Thursday 10/12/2026
SESSION = "phien-2026-12-10"
VENUE = "xa-tien-du"
#: The session of these tests: an online periodic session of the Provincial Party Secretary.
RECEPTION = SessionReception(ReceptionType.PERIODIC, ReceptionForm.ONLINE, "bi-thu-tinh-uy")
REQUEST = "Đề nghị cấp giấy chứng nhận quyền sử dụng đất cho thửa 112."
DENOUNCER = {"full_name": "Trần Thị Tố Giác", "id_number": "001203012345", "address": "Thôn Đông, xã Tiên Du",
             "phone": "0912345678"}


async def create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for md in metadatas():
            await conn.run_sync(md.create_all)
        await add_units(conn)


async def add_units(conn: AsyncConnection) -> None:
    """The units directives are given to."""
    await add_unit(conn, "so-tnmt", "Sở Nông nghiệp và Môi trường", track="state")
    await add_unit(conn, "ubnd-tien-du", "UBND xã Tiên Du", track="state")


async def register_case(conn: AsyncConnection, keyring: Keyring, *, kind: PetitionKind = PetitionKind.COMPLAINT,
                        name: str = "Nguyễn Văn An") -> str:
    """A case registered at the desk with one petition (its request) and its petitioner; returns its id."""
    result = await record_intake(conn, keyring, Intake(
        petition=NewPetition(source=PetitionSource.IN_PERSON, kind=kind, received_on=date(2026, 12, 1),
                             content="Nội dung đơn về đất đai tại thửa 112.", request=REQUEST),
        petitioner=NewPetitioner(kind=PetitionerType.INDIVIDUAL, full_name=name, id_number="001203012346",
                                 address_detail="Thôn Tây, xã Tiên Du"),
        venue=VENUE,
    ), actor="user:desk", grants=grants_for(["reception"]), now=NOW)
    return result.case_id

