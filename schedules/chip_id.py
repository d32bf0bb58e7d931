"""The QR code of a Vietnamese chip ID card (căn cước công dân gắn chip), as the desk's scanner types it.

Theory of operation
-------------------
The QR code on the chip card holds seven fields separated by ``|``::

    số CCCD | số CMND cũ | Họ và tên | ngày sinh ddmmyyyy | giới tính | nơi thường trú | ngày cấp ddmmyyyy

e.g. ``001099012345|012345678|Nguyễn Văn An|01011999|Nam|Thôn Đông, xã Tiên Du, tỉnh Bắc Ninh|15082021``.
The old-CMND field is empty for people who never had a 9-digit card. (Layout as read by public card
readers, e.g. github.com/dangbaokhoa/identity-card; no official specification was found.)

A USB scanner acting as a keyboard adds a line ending and sometimes sends decomposed Unicode, and one
set to a US layout loses the diacritics ("Nu" for "Nữ"): :func:`parse_chip_id_qr` strips the line
ending, normalises to NFC and accepts "Nam"/"Nữ" with or without diacritics, in any case. Then:

* the 12-digit number is checked by :func:`complaints.identity.parse_personal_id` (province code,
  century/sex digit, birth year and sex agreeing with the card's own birth date and sex);
* the old number is empty or 9 digits (or 12, the 2012–2016 CMND of the same structure);
* dates are real calendar dates, not after ``today`` (passed in: nothing here reads the clock), and the
  card is not issued before the holder's birth;
* the name and address are present, of sane length, without control characters.

Anything else raises :class:`~schedules.errors.InvalidChipId` with a Vietnamese reason, a stable
``code`` and the English ``field`` name — never the ID number, the name or the address, which are
personal data (CONVENTIONS.md rule 14). The parsed :class:`ChipIdCard` prints itself masked for the
same reason.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from complaints.enums import IdDocumentKind, Sex
from complaints.errors import InvalidPersonalId
from complaints.identity import PersonalId, mask_id_number, parse_personal_id

from .errors import InvalidChipId

__all__ = ["CHIP_ID_FIELDS", "ChipIdCard", "parse_chip_id_qr"]

CHIP_ID_FIELDS = (
    "personal_id",
    "old_id_number",
    "full_name",
    "birth_date",
    "sex",
    "permanent_address",
    "issue_date",
)
_MAX_LENGTH = 1000
_MAX_NAME = 100
_MAX_ADDRESS = 400
_DATE = re.compile(r"[0-9]{8}")
_OLD_ID = re.compile(r"[0-9]{9}|[0-9]{12}")
_PERSONAL_ID = re.compile(r"[0-9]{12}")
_NAME_CHARS = re.compile(r"[^\W\d_]+(?:[ '\-.][^\W\d_]+)*")
_SEX = {"nam": Sex.MALE, "nữ": Sex.FEMALE, "nu": Sex.FEMALE}


@dataclass(frozen=True, slots=True, repr=False)
class ChipIdCard:
    """What the QR code of a chip ID card says, validated. Personal data: never log it."""

    personal_id: PersonalId
    old_id_number: str | None
    full_name: str
    birth_date: date
    sex: Sex
    permanent_address: str
    issue_date: date

    @property
    def id_number(self) -> str:
        return self.personal_id.number

    def __repr__(self) -> str:
        return f"ChipIdCard(personal_id={mask_id_number(self.personal_id.number)!r}, …)"


def _fail(code: str, message_vi: str, field: str | None = None) -> InvalidChipId:
    return InvalidChipId(message_vi, code=code, field=field)


def _date(raw: str, field: str, label_vi: str, today: date) -> date:
    if not _DATE.fullmatch(raw):
        raise _fail(f"{field}_format", f"{label_vi} phải gồm 8 chữ số theo dạng ngày-tháng-năm (ddmmyyyy).", field)
    try:
        value = date(int(raw[4:]), int(raw[2:4]), int(raw[:2]))
    except ValueError as exc:
        raise _fail(f"{field}_invalid", f"{label_vi} không phải là một ngày có thật.", field) from exc
    if value.year < 1900:
        raise _fail(f"{field}_invalid", f"{label_vi} trước năm 1900.", field)
    if value > today:
        raise _fail(f"{field}_future", f"{label_vi} ở sau ngày hôm nay.", field)
    return value


def _text(raw: str, field: str, label_vi: str, maximum: int) -> str:
    text = " ".join(raw.split())
    if not text:
        raise _fail(f"{field}_missing", f"Thiếu {label_vi}.", field)
    if len(text) > maximum:
        raise _fail(f"{field}_too_long", f"{label_vi.capitalize()} dài quá {maximum} ký tự.", field)
    return text


def parse_chip_id_qr(raw: str, *, today: date) -> ChipIdCard:
    """Parse and validate the QR text of a chip ID card; see the module docstring."""
    if not isinstance(raw, str) or not raw.strip():
        raise _fail("empty", "Chưa nhận được dữ liệu mã QR của thẻ căn cước.")
    if len(raw) > _MAX_LENGTH:
        raise _fail("too_long", "Dữ liệu mã QR quá dài, không phải mã QR của thẻ căn cước.")
    text = unicodedata.normalize("NFC", raw.strip())
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise _fail("control_characters", "Dữ liệu mã QR chứa ký tự điều khiển; hãy quét lại thẻ.")
    fields = text.split("|")
    if len(fields) != len(CHIP_ID_FIELDS):
        raise _fail(
            "field_count",
            f"Mã QR của thẻ căn cước phải có {len(CHIP_ID_FIELDS)} trường ngăn cách bởi dấu «|», "
            f"dữ liệu quét được có {len(fields)} trường.",
        )
    raw_id, raw_old, raw_name, raw_birth, raw_sex, raw_address, raw_issue = (f.strip() for f in fields)

    full_name = _text(raw_name, "full_name", "họ và tên", _MAX_NAME)
    if not _NAME_CHARS.fullmatch(full_name):
        raise _fail("full_name_format", "Họ và tên chỉ được gồm chữ cái và khoảng trắng.", "full_name")
    birth_date = _date(raw_birth, "birth_date", "Ngày sinh", today)
    sex = _SEX.get(raw_sex.casefold())
    if sex is None:
        raise _fail("sex_unknown", "Giới tính phải là «Nam» hoặc «Nữ».", "sex")
    permanent_address = _text(raw_address, "permanent_address", "nơi thường trú", _MAX_ADDRESS)
    issue_date = _date(raw_issue, "issue_date", "Ngày cấp", today)
    if issue_date < birth_date:
        raise _fail("issue_before_birth", "Ngày cấp thẻ ở trước ngày sinh.", "issue_date")
    if raw_old and not _OLD_ID.fullmatch(raw_old):
        raise _fail(
            "old_id_format", "Số chứng minh nhân dân cũ phải gồm 9 (hoặc 12) chữ số, hoặc để trống.", "old_id_number"
        )
    if not _PERSONAL_ID.fullmatch(raw_id):
        raise _fail("personal_id_format", "Số căn cước công dân phải gồm đúng 12 chữ số.", "personal_id")
    try:
        personal_id = parse_personal_id(
            raw_id, kind=IdDocumentKind.PERSONAL_ID, birth_date=birth_date, sex=sex, today=today
        )
    except InvalidPersonalId as exc:
        raise _fail(f"personal_id_{exc.code}", exc.message_vi, "personal_id") from exc
    return ChipIdCard(
        personal_id=personal_id,
        old_id_number=raw_old or None,
        full_name=full_name,
        birth_date=birth_date,
        sex=sex,
        permanent_address=permanent_address,
        issue_date=issue_date,
    )
