"""Validation and normalisation of Vietnamese personal identity numbers.

Three kinds are recognised (:class:`~complaints.enums.IdDocumentKind`):

* **Số định danh cá nhân** (12 digits, printed on the căn cước / căn cước công dân card; the 12-digit
  CMND of 2012–2016 used the same structure). Structure (Thông tư 59/2021/TT-BCA Điều 7, earlier
  Thông tư 07/2016/TT-BCA): digits 1–3 the code of the province where the birth was registered,
  digit 4 the century of birth and the sex (0/1: 20th century male/female, 2/3: 21st, 4/5: 22nd,
  6/7: 23rd, 8/9: 24th), digits 5–6 the last two digits of the birth year, digits 7–12 a random number.
  When a birth date (or sex) is given, the encoded year (and sex) must agree with it.
* **Chứng minh nhân dân** (old 9-digit card): only the format can be checked.
* **Hộ chiếu** (passport): Vietnamese passports are one letter and seven digits (e.g. ``C1234567``);
  ``foreign_passport=True`` accepts the ICAO range of 6–9 letters and digits.

Province codes are the 63 codes of the appendix to TT 07/2016 (the same as the pre-2025 statistical
province codes). Cards issued before the 2025 merger keep the old code; the codes kept by the merged
provinces are a subset, so the set stays valid. Citizens whose birth was registered abroad carry a
country code instead (UNVERIFIED which list); pass ``strict_province=False`` to accept any code.

Errors are :class:`~complaints.errors.InvalidPersonalId` with a Vietnamese message that never repeats
the number. Nothing here reads the clock: pass ``today`` to reject birth dates in the future.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from .enums import IdDocumentKind, Sex
from .errors import InvalidPersonalId

__all__ = [
    "PROVINCE_CODES",
    "PersonalId",
    "is_valid_personal_id",
    "mask_id_number",
    "normalize_id_number",
    "parse_personal_id",
]

#: Province code of birth registration (TT 07/2016 appendix) → province name at the time of the code.
PROVINCE_CODES: dict[str, str] = {
    "001": "Hà Nội", "002": "Hà Giang", "004": "Cao Bằng", "006": "Bắc Kạn", "008": "Tuyên Quang",
    "010": "Lào Cai", "011": "Điện Biên", "012": "Lai Châu", "014": "Sơn La", "015": "Yên Bái",
    "017": "Hòa Bình", "019": "Thái Nguyên", "020": "Lạng Sơn", "022": "Quảng Ninh", "024": "Bắc Giang",
    "025": "Phú Thọ", "026": "Vĩnh Phúc", "027": "Bắc Ninh", "030": "Hải Dương", "031": "Hải Phòng",
    "033": "Hưng Yên", "034": "Thái Bình", "035": "Hà Nam", "036": "Nam Định", "037": "Ninh Bình",
    "038": "Thanh Hóa", "040": "Nghệ An", "042": "Hà Tĩnh", "044": "Quảng Bình", "045": "Quảng Trị",
    "046": "Thừa Thiên Huế", "048": "Đà Nẵng", "049": "Quảng Nam", "051": "Quảng Ngãi",
    "052": "Bình Định", "054": "Phú Yên", "056": "Khánh Hòa", "058": "Ninh Thuận", "060": "Bình Thuận",
    "062": "Kon Tum", "064": "Gia Lai", "066": "Đắk Lắk", "067": "Đắk Nông", "068": "Lâm Đồng",
    "070": "Bình Phước", "072": "Tây Ninh", "074": "Bình Dương", "075": "Đồng Nai",
    "077": "Bà Rịa - Vũng Tàu", "079": "Hồ Chí Minh", "080": "Long An", "082": "Tiền Giang",
    "083": "Bến Tre", "084": "Trà Vinh", "086": "Vĩnh Long", "087": "Đồng Tháp", "089": "An Giang",
    "091": "Kiên Giang", "092": "Cần Thơ", "093": "Hậu Giang", "094": "Sóc Trăng", "095": "Bạc Liêu",
    "096": "Cà Mau",
}  # fmt: skip

_SEPARATORS = re.compile(r"[\s.\-_/]+")
_PERSONAL_ID = re.compile(r"\d{12}")
_OLD_ID_CARD = re.compile(r"\d{9}")
_VN_PASSPORT = re.compile(r"[A-Z]\d{7}")
_FOREIGN_PASSPORT = re.compile(r"(?=.*\d)[A-Z0-9]{6,9}")


@dataclass(frozen=True, slots=True)
class PersonalId:
    """A validated identity number and what its structure tells.

    ``number`` is normalised (digits, or upper-case letters and digits for passports). The decoded
    fields are ``None`` for kinds that encode nothing.
    """

    kind: IdDocumentKind
    number: str
    birth_province_code: str | None = None
    birth_province_vi: str | None = None
    birth_year: int | None = None
    sex: Sex | None = None

    def masked(self) -> str:
        """The number with its middle hidden, for screens and logs that must not show it whole."""
        return mask_id_number(self.number)


def normalize_id_number(raw: str) -> str:
    """Return ``raw`` with width variants folded (NFKC), separators removed and letters upper-cased.

    Spaces, dots, hyphens, underscores and slashes are dropped: ``"001 203-012.345"`` → ``"001203012345"``.
    """
    text = unicodedata.normalize("NFKC", raw)
    return _SEPARATORS.sub("", text).upper()


def mask_id_number(number: str) -> str:
    """Hide all but the first three and last two characters: ``"001203012345"`` → ``"001*******45"``."""
    if len(number) <= 5:
        return "*" * len(number)
    return number[:3] + "*" * (len(number) - 5) + number[-2:]


def _fail(code: str, message_vi: str) -> InvalidPersonalId:
    return InvalidPersonalId(message_vi, code=code)


def _guess_kind(number: str) -> IdDocumentKind:
    if number.isdigit():
        if len(number) == 12:
            return IdDocumentKind.PERSONAL_ID
        if len(number) == 9:
            return IdDocumentKind.OLD_ID_CARD
        raise _fail(
            "wrong_length",
            f"Số giấy tờ tùy thân gồm {len(number)} chữ số: số định danh cá nhân phải có 12 chữ số, "
            "chứng minh nhân dân cũ có 9 chữ số.",
        )
    return IdDocumentKind.PASSPORT


def parse_personal_id(
    raw: str,
    *,
    kind: IdDocumentKind | None = None,
    birth_date: date | None = None,
    sex: Sex | None = None,
    today: date | None = None,
    strict_province: bool = True,
    foreign_passport: bool = False,
) -> PersonalId:
    """Validate ``raw`` and return the normalised :class:`PersonalId`.

    ``kind`` is guessed from the shape when omitted (12 digits: personal ID; 9 digits: old card;
    letters: passport). For a personal ID the province code must be known (unless
    ``strict_province=False``), the century digit must give a birth year not after ``today``, and it must
    agree with ``birth_date`` and ``sex`` when they are given. ``birth_date`` after ``today`` is an error
    for every kind. Raises :class:`InvalidPersonalId` with a stable ``code`` and a Vietnamese message.
    """
    if not raw or not raw.strip():
        raise _fail("empty", "Chưa nhập số giấy tờ tùy thân.")
    number = normalize_id_number(raw)
    if today is not None and birth_date is not None and birth_date > today:
        raise _fail("future_birth_date", "Ngày sinh không được sau ngày hiện tại.")
    if kind is None:
        kind = _guess_kind(number)
    if kind is IdDocumentKind.PERSONAL_ID:
        return _parse_personal_number(number, birth_date, sex, today, strict_province)
    if kind is IdDocumentKind.OLD_ID_CARD:
        if not _OLD_ID_CARD.fullmatch(number):
            raise _fail("wrong_format", "Số chứng minh nhân dân phải gồm đúng 9 chữ số.")
        if number == "0" * 9:
            raise _fail("wrong_format", "Số chứng minh nhân dân không hợp lệ (toàn chữ số 0).")
        return PersonalId(kind=kind, number=number)
    pattern = _FOREIGN_PASSPORT if foreign_passport else _VN_PASSPORT
    if not pattern.fullmatch(number):
        expected = (
            "từ 6 đến 9 ký tự chữ và số"
            if foreign_passport
            else "một chữ cái in hoa và 7 chữ số (ví dụ C1234567)"
        )
        raise _fail("wrong_format", f"Số hộ chiếu không đúng định dạng: phải gồm {expected}.")
    return PersonalId(kind=kind, number=number)


def _parse_personal_number(
    number: str, birth_date: date | None, sex: Sex | None, today: date | None, strict_province: bool
) -> PersonalId:
    if not number.isdigit():
        raise _fail("not_digits", "Số định danh cá nhân chỉ gồm chữ số.")
    if not _PERSONAL_ID.fullmatch(number):
        raise _fail(
            "wrong_length", f"Số định danh cá nhân phải có đúng 12 chữ số (đã nhập {len(number)} chữ số)."
        )
    province_code = number[:3]
    province = PROVINCE_CODES.get(province_code)
    if province is None and strict_province:
        raise _fail(
            "unknown_province",
            "Ba chữ số đầu của số định danh cá nhân không phải là mã tỉnh, thành phố nơi đăng ký khai sinh.",
        )
    century_digit = int(number[3])
    encoded_sex = Sex.MALE if century_digit % 2 == 0 else Sex.FEMALE
    birth_year = 1900 + 100 * (century_digit // 2) + int(number[4:6])
    if today is not None and birth_year > today.year:
        raise _fail(
            "future_birth_year",
            "Chữ số thứ 4 đến thứ 6 của số định danh cá nhân cho năm sinh ở tương lai.",
        )
    if birth_date is not None and birth_date.year != birth_year:
        raise _fail(
            "birth_year_mismatch",
            "Năm sinh mã hóa trong số định danh cá nhân (chữ số thứ 4 đến thứ 6) không khớp với ngày sinh "
            "đã khai.",
        )
    if sex is not None and sex is not encoded_sex:
        raise _fail(
            "sex_mismatch",
            "Giới tính mã hóa trong số định danh cá nhân (chữ số thứ 4) không khớp với giới tính đã khai.",
        )
    return PersonalId(
        kind=IdDocumentKind.PERSONAL_ID,
        number=number,
        birth_province_code=province_code,
        birth_province_vi=province,
        birth_year=birth_year,
        sex=encoded_sex,
    )


def is_valid_personal_id(
    raw: str,
    *,
    kind: IdDocumentKind | None = None,
    birth_date: date | None = None,
    sex: Sex | None = None,
    today: date | None = None,
) -> bool:
    """True when :func:`parse_personal_id` accepts ``raw`` with the same checks."""
    try:
        parse_personal_id(raw, kind=kind, birth_date=birth_date, sex=sex, today=today)
    except InvalidPersonalId:
        return False
    return True
