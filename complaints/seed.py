"""Sample data: a realistic province for demonstrations and for newcomers (``tiepdan seed``).

The same people, topics and dates for a given seed (ids and tracking codes are drawn fresh). Every
case goes through the service layer (:mod:`complaints.service`, as ``system:seed``), so sample data
obeys the same rules as real data (sealed denouncers, tracking codes, working-day deadlines) and is
audited and announced like it (the outbox table must exist: ``tiepdan seed`` prepares the database).
The people are invented; any likeness to a real person is chance.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from evidence import Keyring
from signaling.grants import Grant

from . import service
from .directives import add_unit
from .enums import (
    PetitionerType,
    PetitionKind,
    PetitionSource,
    ReceptionForm,
    ReceptionOutcome,
    ReceptionType,
    SubjectArea,
)
from .intake import Intake, IntakeReception, IntakeRespondent
from .petitioners import NewPetitioner
from .petitions import NewPetition
from .service import Caller
from .tables import cases
from .workdays import WorkCalendar, default_calendar, local_date

__all__ = ["SeedReport", "seed_province", "database_is_empty", "ACTOR"]

ACTOR = "system:seed"

SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ",
            "Ngô", "Dương", "Lý", "Đào", "Đinh", "Trịnh", "Tạ"]
MIDDLE_M = ["Văn", "Đức", "Minh", "Quang", "Hữu", "Công", "Xuân", "Đình", "Thanh", "Ngọc"]
MIDDLE_F = ["Thị", "Thu", "Ngọc", "Thanh", "Minh", "Hồng", "Kim", "Phương"]
GIVEN_M = ["Hùng", "Dũng", "Tuấn", "Hải", "Long", "Nam", "Sơn", "Thắng", "Cường", "Hưởng", "Khải", "Toàn",
           "Quý", "Đạt", "Phúc", "Bình", "Giang", "Hiếu", "Lực", "Tùng"]
GIVEN_F = ["Lan", "Hương", "Mai", "Hoa", "Nhung", "Thảo", "Hằng", "Yến", "Trang", "Loan", "Huyền", "Ngân",
           "Dung", "Hạnh", "Liên", "Oanh"]
# Communes and wards of a merged province (names as after the 2025 reform) with a former district.
COMMUNES = [("Tiên Du", "huyện Tiên Du"), ("Từ Sơn", "thành phố Từ Sơn"), ("Yên Phong", "huyện Yên Phong"),
            ("Quế Võ", "thị xã Quế Võ"), ("Thuận Thành", "thị xã Thuận Thành"), ("Gia Bình", "huyện Gia Bình"),
            ("Lương Tài", "huyện Lương Tài"), ("Việt Yên", "thị xã Việt Yên"), ("Lạng Giang", "huyện Lạng Giang"),
            ("Tân Yên", "huyện Tân Yên"), ("Hiệp Hòa", "huyện Hiệp Hòa"), ("Lục Nam", "huyện Lục Nam")]
HAMLETS = ["Thôn Đông", "Thôn Đoài", "Thôn Trung", "Thôn Lũng Giang", "Khu phố 3", "Thôn Hạ", "Xóm Mới",
           "Thôn Nội Duệ", "Khu phố Đình", "Thôn Ngô Xá"]
UNITS = [("so-nnmt", "Sở Nông nghiệp và Môi trường", "state"), ("so-xd", "Sở Xây dựng", "state"),
         ("so-nv", "Sở Nội vụ", "state"), ("thanh-tra-tinh", "Thanh tra tỉnh", "state"),
         ("ban-noi-chinh", "Ban Nội chính Tỉnh ủy", "party"), ("ubkt-tu", "Ủy ban Kiểm tra Tỉnh ủy", "party")]
TOPICS: list[tuple[SubjectArea, PetitionKind, str, str]] = [
    (SubjectArea.LAND, PetitionKind.COMPLAINT, "Khiếu nại quyết định thu hồi đất nông nghiệp, mức bồi thường thấp",
     "UBND xã {c}"),
    (SubjectArea.LAND, PetitionKind.COMPLAINT, "Khiếu nại việc cấp giấy chứng nhận quyền sử dụng đất chồng lấn",
     "Văn phòng đăng ký đất đai"),
    (SubjectArea.LAND, PetitionKind.PROPOSAL_FEEDBACK, "Kiến nghị giải quyết tranh chấp ranh giới đất ở",
     "UBND xã {c}"),
    (SubjectArea.HOUSING_PROPERTY, PetitionKind.COMPLAINT, "Khiếu nại việc cưỡng chế tháo dỡ công trình",
     "UBND xã {c}"),
    (SubjectArea.POLICIES_BENEFITS, PetitionKind.PROPOSAL_FEEDBACK,
     "Kiến nghị xem xét chế độ người có công với cách mạng", "Sở Nội vụ"),
    (SubjectArea.POLICIES_BENEFITS, PetitionKind.COMPLAINT, "Khiếu nại việc cắt trợ cấp bảo trợ xã hội",
     "UBND xã {c}"),
    (SubjectArea.OTHER_ADMINISTRATIVE, PetitionKind.PROPOSAL_FEEDBACK,
     "Phản ánh ô nhiễm môi trường từ cơ sở sản xuất trong khu dân cư", "Công ty TNHH Phú Thịnh"),
    (SubjectArea.CORRUPTION, PetitionKind.DENUNCIATION, "Tố cáo cán bộ địa chính nhận tiền khi làm thủ tục đất đai",
     "Cán bộ địa chính xã {c}"),
    (SubjectArea.PARTY_MASS_ORGANISATIONS, PetitionKind.DENUNCIATION,
     "Tố cáo đảng viên vi phạm quy định về kê khai tài sản", "Đảng ủy xã {c}"),
]


@dataclass(frozen=True)
class SeedReport:
    cases: int
    petitioners: int
    sealed: int
    directives: int


async def database_is_empty(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(cases))).scalar_one()) == 0


def _person(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.55:
        return f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE_M)} {rng.choice(GIVEN_M)}", "male"
    return f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE_F)} {rng.choice(GIVEN_F)}", "female"


def _id_number(rng: random.Random, sex: str, born: date) -> str:
    century_sex = (0 if born.year < 2000 else 2) + (1 if sex == "female" else 0)
    return f"027{century_sex}{born.year % 100:02d}{rng.randrange(10**6):06d}"


async def seed_province(
    engine: AsyncEngine,
    keyring: Keyring,
    *,
    cases_count: int = 300,
    seed: int = 2026,
    today: date | None = None,
    calendar: WorkCalendar | None = None,
    grants: Collection[Grant] = frozenset({Grant.IDENTITY_WRITE}),
) -> SeedReport:
    """Fill the database with ``cases_count`` varied cases over the last 18 months."""
    rng = random.Random(seed)
    cal = calendar or default_calendar()
    today = today or local_date(datetime.now(UTC))
    now = datetime.combine(today, datetime.min.time(), tzinfo=UTC) + timedelta(hours=8)
    desk = Caller.system(ACTOR, frozenset(grants) | {Grant.INTAKE}, name="Cán bộ tiếp công dân")
    chair = Caller.system(ACTOR, {Grant.DIRECTIVES, Grant.APPROVE}, name="Bí thư Tỉnh ủy")
    petitioners_made = sealed = directives_made = 0
    async with engine.begin() as conn:
        for unit_id, name, track in UNITS:
            await add_unit(conn, unit_id, name, track=track)
    # Citizens who come back with the same matter: (petitioner id, case id, topic, commune).
    repeaters: list[tuple[str, str, tuple[SubjectArea, PetitionKind, str, str], tuple[str, str]]] = []
    last_visit: dict[str, date] = {}
    for _ in range(cases_count):
        area, kind, summary, respondent = rng.choice(TOPICS)
        commune, old_district = rng.choice(COMMUNES)
        received = cal.next_working_day(today - timedelta(days=rng.randrange(20, 540)))
        name, sex = _person(rng)
        born = date(rng.randrange(1945, 2002), rng.randrange(1, 13), rng.randrange(1, 29))
        address = f"{rng.choice(HAMLETS)}, xã {commune}, tỉnh Bắc Ninh"
        old_address = f"{rng.choice(HAMLETS)}, xã {commune}, {old_district}, tỉnh Bắc Ninh"
        denounce = kind is PetitionKind.DENUNCIATION
        returning: tuple[str, str] | None = None
        person: NewPetitioner | None = None
        if repeaters and not denounce and rng.random() < 0.15:
            pid, case_id, (area, kind, summary, respondent), (commune, old_district) = rng.choice(repeaters)
            # A return visit comes after the last one (lần tiếp thứ n follows the calendar).
            gap = timedelta(days=rng.randrange(14, 90))
            later = min(cal.next_working_day(last_visit[case_id] + gap), today)
            if later <= last_visit[case_id]:
                continue
            received = later
            returning = (pid, case_id)
        else:
            person = NewPetitioner(
                kind=PetitionerType.INDIVIDUAL, full_name=name, id_number=_id_number(rng, sex, born), id_kind="cccd",
                birth_date=born, sex=sex, phone=f"09{rng.randrange(10**8):08d}",
                address_detail=old_address if rng.random() < 0.3 else address, sealed=denounce)
        petition = NewPetition(
            source=rng.choice([PetitionSource.IN_PERSON, PetitionSource.POST, PetitionSource.ONLINE]),
            kind=kind, received_on=received, written_on=received - timedelta(days=rng.randrange(0, 10)),
            content=summary + f" tại xã {commune}.", request="Đề nghị xem xét, giải quyết.")
        reception = IntakeReception(
            reception_type=rng.choice([ReceptionType.ROUTINE, ReceptionType.PERIODIC, ReceptionType.AD_HOC]),
            form=ReceptionForm.ONLINE if rng.random() < 0.4 else ReceptionForm.IN_PERSON,
            outcome=rng.choice(list(ReceptionOutcome)[:6]), venue=_slug(commune))
        if returning is not None:
            intake = Intake(petition=petition, petitioner_id=returning[0], case_id=returning[1], reception=reception)
        else:
            intake = Intake(petition=petition, petitioner=person, summary=summary, subject_area=area.value,
                            venue=_slug(commune), reception=reception,
                            respondent=IntakeRespondent(kind="organisation" if "UBND" in respondent else "person",
                                                        name=respondent.format(c=commune)))
        async with engine.begin() as conn:
            result = await service.record_intake(conn, keyring, desk, intake, now=now)
            case_id = result.case_id
            if returning is None:
                petitioners_made += 1
                sealed += int(denounce)
                if not denounce:
                    repeaters.append((result.petitioner_id, case_id, (area, kind, summary, respondent),
                                      (commune, old_district)))
            last_visit[case_id] = received
            if rng.random() < 0.45:
                unit_id = rng.choice(UNITS)[0]
                deadline = cal.add_working_days(received, rng.choice([10, 15, 30, 45]))
                directive_id, _due = await service.issue_directive(
                    conn, chair, case_id, unit_id=unit_id, content="Kiểm tra, xác minh, giải quyết theo quy định và "
                    "báo cáo kết quả.", issued_on=received, deadline=deadline, calendar=cal, now=now)
                # Most units report back, a few late; the rest are still open (or overdue).
                done = cal.add_working_days(received, rng.randrange(3, 55))
                if done <= today and rng.random() < 0.7:
                    unit = Caller.system(ACTOR, {Grant.DIRECTIVES}, name=unit_id, unit=unit_id)
                    await service.report_on_directive(
                        conn, unit, directive_id, expected_version=1, reported_on=done, completed=True, now=now,
                        content="Đã kiểm tra, giải quyết và trả lời công dân bằng văn bản.")
                directives_made += 1
    async with engine.connect() as conn:
        total = int((await conn.execute(select(func.count()).select_from(cases))).scalar_one())
    return SeedReport(cases=total, petitioners=petitioners_made, sealed=sealed, directives=directives_made)


def _slug(commune: str) -> str:
    from .duplicates import fold_text

    return fold_text(commune).replace(" ", "-")
