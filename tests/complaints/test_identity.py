"""Vietnamese personal ID numbers: structure, checks against birth date and sex, messages."""

from __future__ import annotations

from datetime import date

import pytest

from complaints.enums import IdDocumentKind, Sex
from complaints.errors import InvalidPersonalId
from complaints.identity import (
    PROVINCE_CODES,
    is_valid_personal_id,
    mask_id_number,
    normalize_id_number,
    parse_personal_id,
)

pytestmark = pytest.mark.unit
TODAY = date(2026, 11, 20)
# Bắc Ninh (027), female born in the 20th century (1), 1985, random 012345 (synthetic).
WOMAN_1985 = "027185012345"


def test_twelve_digit_number_is_decoded() -> None:
    pid = parse_personal_id(WOMAN_1985, today=TODAY)
    assert pid.kind is IdDocumentKind.PERSONAL_ID
    assert pid.birth_province_vi == "Bắc Ninh"
    assert pid.birth_year == 1985 and pid.sex is Sex.FEMALE


@pytest.mark.parametrize(
    ("number", "year", "sex"),
    [("001090000001", 1990, Sex.MALE), ("079203000001", 2003, Sex.MALE), ("001325000001", 2025, Sex.FEMALE)],
)
def test_century_digit_gives_century_and_sex(number: str, year: int, sex: Sex) -> None:
    pid = parse_personal_id(number, today=TODAY)
    assert (pid.birth_year, pid.sex) == (year, sex)


def test_normalisation_drops_separators_and_folds_width() -> None:
    assert normalize_id_number(" 027 185-012.345 ") == WOMAN_1985
    assert normalize_id_number("０２７１８５０１２３４５") == WOMAN_1985
    assert parse_personal_id("027 185 012 345").number == WOMAN_1985
    assert normalize_id_number("c 123 4567") == "C1234567"


def test_birth_date_and_sex_must_agree_with_the_number() -> None:
    parse_personal_id(WOMAN_1985, birth_date=date(1985, 3, 2), sex=Sex.FEMALE, today=TODAY)
    with pytest.raises(InvalidPersonalId) as caught:
        parse_personal_id(WOMAN_1985, birth_date=date(1986, 3, 2), today=TODAY)
    assert caught.value.code == "birth_year_mismatch" and "không khớp" in str(caught.value)
    with pytest.raises(InvalidPersonalId) as caught:
        parse_personal_id(WOMAN_1985, sex=Sex.MALE)
    assert caught.value.code == "sex_mismatch"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("02718501234", "wrong_length"),
        ("0271850123456", "wrong_length"),
        ("12345", "wrong_length"),
        ("003185012345", "unknown_province"),
        ("099185012345", "unknown_province"),
        ("C12345678", "wrong_format"),
        ("12A456789012", "wrong_format"),
    ],
)
def test_malformed_numbers_are_rejected_with_a_code(raw: str, code: str) -> None:
    with pytest.raises(InvalidPersonalId) as caught:
        parse_personal_id(raw, today=TODAY)
    assert caught.value.code == code
    assert not is_valid_personal_id(raw, today=TODAY)


def test_letters_in_a_declared_personal_id_are_rejected() -> None:
    with pytest.raises(InvalidPersonalId) as caught:
        parse_personal_id("02718501234X", kind=IdDocumentKind.PERSONAL_ID)
    assert caught.value.code == "not_digits"


def test_future_birth_dates_are_rejected() -> None:
    with pytest.raises(InvalidPersonalId) as caught:
        parse_personal_id(WOMAN_1985, birth_date=date(2027, 1, 1), today=TODAY)
    assert caught.value.code == "future_birth_date"
    with pytest.raises(InvalidPersonalId) as caught:
        parse_personal_id("001299000001", today=TODAY)  # century 21, year 2099
    assert caught.value.code == "future_birth_year"


def test_error_messages_are_vietnamese_and_never_repeat_the_number() -> None:
    for raw in ("003185012345", "0271850123", "027185012345"):
        try:
            parse_personal_id(raw, birth_date=date(1990, 1, 1), today=TODAY)
        except InvalidPersonalId as exc:
            assert raw not in str(exc)
            assert any(word in str(exc) for word in ("số", "Số"))


def test_unknown_province_is_accepted_when_not_strict() -> None:
    pid = parse_personal_id("999185012345", strict_province=False)
    assert pid.birth_province_vi is None and pid.birth_year == 1985


def test_old_nine_digit_card_and_passports() -> None:
    assert parse_personal_id("125 678 901").kind is IdDocumentKind.OLD_ID_CARD
    with pytest.raises(InvalidPersonalId):
        parse_personal_id("000000000")
    assert parse_personal_id("c1234567").number == "C1234567"
    assert parse_personal_id("C1234567").kind is IdDocumentKind.PASSPORT
    with pytest.raises(InvalidPersonalId):
        parse_personal_id("CC123456")
    assert parse_personal_id("X12Y3456", foreign_passport=True).kind is IdDocumentKind.PASSPORT


def test_province_table_has_the_63_pre_merger_codes() -> None:
    assert len(PROVINCE_CODES) == 63
    assert PROVINCE_CODES["001"] == "Hà Nội" and PROVINCE_CODES["079"] == "Hồ Chí Minh"


def test_masking_hides_the_middle() -> None:
    assert mask_id_number(WOMAN_1985) == "027*******45"
    assert parse_personal_id(WOMAN_1985).masked() == "027*******45"
    assert mask_id_number("123") == "***"
