"""The chip ID card QR parser: the 7-field layout, validation against the ID structure, no personal data in errors."""

from __future__ import annotations

import re
import unicodedata
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from complaints.enums import Sex
from schedules.chip_id import CHIP_ID_FIELDS, parse_chip_id_qr
from schedules.errors import InvalidChipId

pytestmark = pytest.mark.unit
TODAY = date(2027, 3, 10)
# 001 Hà Nội, 0 = 20th century male, 99 = born 1999. Synthetic: not a real person's number.
NUMBER = "001099012345"
NAME = "Nguyễn Văn An"
ADDRESS = "Thôn Đông, xã Tiên Du, tỉnh Bắc Ninh"
GOOD = f"{NUMBER}|012345678|{NAME}|01011999|Nam|{ADDRESS}|15082021"


def with_field(index: int, value: str, base: str = GOOD) -> str:
    fields = base.split("|")
    fields[index] = value
    return "|".join(fields)


def test_a_scanned_card_is_parsed_into_a_typed_record() -> None:
    card = parse_chip_id_qr(GOOD + "\r\n", today=TODAY)  # the scanner's Enter key
    assert card.id_number == NUMBER and card.personal_id.birth_province_vi == "Hà Nội"
    assert (card.old_id_number, card.full_name, card.sex) == ("012345678", NAME, Sex.MALE)
    assert (card.birth_date, card.issue_date) == (date(1999, 1, 1), date(2021, 8, 15))
    assert card.permanent_address == ADDRESS
    assert NUMBER not in repr(card) and NAME not in repr(card) and "001*******45" in repr(card)


def test_an_empty_old_id_decomposed_unicode_and_an_unaccented_scanner_are_accepted() -> None:
    # 2 = 21st century male; 3 = 21st century female (born 2005).
    woman = f"001305012345||{NAME}|02032005|Nữ|{ADDRESS}|20042022"
    card = parse_chip_id_qr(unicodedata.normalize("NFD", woman), today=TODAY)
    assert card.old_id_number is None and card.sex is Sex.FEMALE and card.full_name == NAME
    unaccented = parse_chip_id_qr("001305012345||NGUYEN THI BINH|02032005|NU|THON DONG, TIEN DU|20042022", today=TODAY)
    assert unaccented.sex is Sex.FEMALE and unaccented.full_name == "NGUYEN THI BINH"


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        ("", "empty", None),
        ("   \r\n", "empty", None),
        (GOOD.replace("|", ";"), "field_count", None),
        (GOOD + "|extra", "field_count", None),
        (GOOD[: GOOD.rindex("|")], "field_count", None),
        (with_field(2, "Nguyễn\tVăn An"), "control_characters", None),
        ("x" * 1001, "too_long", None),
        (with_field(0, "00109901234"), "personal_id_format", "personal_id"),
        (with_field(0, "00109901234X"), "personal_id_format", "personal_id"),
        (with_field(0, "999099012345"), "personal_id_unknown_province", "personal_id"),
        (with_field(0, "001199012345"), "personal_id_sex_mismatch", "personal_id"),  # 1 = female, card says Nam
        (with_field(0, "001098012345"), "personal_id_birth_year_mismatch", "personal_id"),
        (with_field(1, "12345"), "old_id_format", "old_id_number"),
        (with_field(2, " "), "full_name_missing", "full_name"),
        (with_field(2, "Nguyễn Văn 4n"), "full_name_format", "full_name"),
        (with_field(3, "1999-01-01"), "birth_date_format", "birth_date"),
        (with_field(3, "31021999"), "birth_date_invalid", "birth_date"),
        (with_field(3, "01011899"), "birth_date_invalid", "birth_date"),
        (with_field(4, "Khác"), "sex_unknown", "sex"),
        (with_field(5, ""), "permanent_address_missing", "permanent_address"),
        (with_field(6, "11032027"), "issue_date_future", "issue_date"),
        (with_field(6, "31121998"), "issue_before_birth", "issue_date"),
    ],
)
def test_malformed_strings_are_refused_with_a_stable_code(raw: str, code: str, field: str | None) -> None:
    with pytest.raises(InvalidChipId) as refused:
        parse_chip_id_qr(raw, today=TODAY)
    assert (refused.value.code, refused.value.field) == (code, field)
    assert refused.value.message_vi and NUMBER not in str(refused.value) and NAME not in str(refused.value)


def test_a_birth_date_in_the_future_is_refused() -> None:
    born_2027 = f"001227012345||{NAME}|11032027|Nam|{ADDRESS}|11032027"
    with pytest.raises(InvalidChipId) as refused:
        parse_chip_id_qr(born_2027, today=TODAY)
    assert refused.value.code == "birth_date_future"
    assert parse_chip_id_qr(born_2027, today=date(2027, 3, 11)).birth_date == date(2027, 3, 11)


def test_the_layout_has_seven_fields() -> None:
    assert len(CHIP_ID_FIELDS) == 7 and len(GOOD.split("|")) == 7


# -- fuzzing ----------------------------------------------------------------------------------------------------

FUZZ = settings(derandomize=True, max_examples=250, deadline=None)
NAMES = st.builds(
    lambda parts: " ".join(parts),
    st.lists(st.sampled_from(["Trần", "Lê", "Phạm", "Thị", "Văn", "Hoàng", "Ngọc", "Đức", "Minh", "Hương"]),
             min_size=3, max_size=4),
)  # fmt: skip
NUMBERS = st.from_regex(r"0(0[1-9]|[1-9][0-9])[0-3][0-9]{8}", fullmatch=True)


@FUZZ
@given(st.text(max_size=300))
def test_arbitrary_text_only_ever_raises_the_typed_error(raw: str) -> None:
    try:
        parse_chip_id_qr(raw, today=TODAY)
    except InvalidChipId as exc:
        assert exc.code and exc.message_vi


@FUZZ
@given(
    st.lists(st.text(alphabet=st.characters(blacklist_characters="|"), max_size=20), min_size=7, max_size=7),
)
def test_seven_arbitrary_fields_only_ever_raise_the_typed_error(fields: list[str]) -> None:
    try:
        parse_chip_id_qr("|".join(fields), today=TODAY)
    except InvalidChipId as exc:
        assert exc.code and exc.message_vi


@FUZZ
@given(NUMBERS, NAMES, st.integers(0, 6), st.text(max_size=14))
def test_errors_never_repeat_the_number_or_the_name(number: str, name: str, broken: int, junk: str) -> None:
    raw = with_field(broken, junk, with_field(2, name, with_field(0, number)))
    try:
        parse_chip_id_qr(raw, today=TODAY)
    except InvalidChipId as exc:
        message = str(exc)
        assert number not in message and name not in message
        assert not re.search(r"\d{9}", message)  # no ID-like run of digits at all
