"""Tracking codes: format, randomness source, and detection of typing errors."""

from __future__ import annotations

import math
import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from complaints.errors import InvalidTrackingCode
from complaints.tracking import (
    TRACKING_ALPHABET,
    check_character,
    generate_tracking_code,
    is_valid_tracking_code,
    parse_tracking_code,
)

pytestmark = pytest.mark.unit
FORMAT = re.compile(r"TD-[23456789A-HJKMNP-TV-Y]{4}-[23456789A-HJKMNP-TV-Y]{4}-[23456789A-HJKMNP-TV-Y]{4}-"
                    r"[23456789A-HJKMNP-TV-Y]")


def samples(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [generate_tracking_code(rng.randrange) for _ in range(n)]


def body(code: str) -> str:
    return code.replace("-", "")[2:]


def test_codes_have_the_documented_shape_and_enough_entropy() -> None:
    for code in samples(200):
        assert FORMAT.fullmatch(code), code
    assert 12 * math.log2(len(TRACKING_ALPHABET)) >= 48
    assert not set("01OILUZ") & set(TRACKING_ALPHABET)


def test_generation_uses_only_the_given_random_source() -> None:
    assert samples(5, seed=1) == samples(5, seed=1)
    assert samples(5, seed=1) != samples(5, seed=2)
    assert generate_tracking_code(lambda n: 0) == "TD-2222-2222-2222-2"


def test_sloppy_input_is_accepted() -> None:
    code = samples(1)[0]
    assert parse_tracking_code(code.lower()) == code
    assert parse_tracking_code(" " + code.replace("-", " ") + " ") == code
    assert parse_tracking_code(body(code)) == code


def test_every_single_character_substitution_is_detected() -> None:
    for code in samples(60):
        text = body(code)
        for position in range(len(text)):
            for symbol in TRACKING_ALPHABET + "01OILUZ":
                if symbol == text[position]:
                    continue
                wrong = text[:position] + symbol + text[position + 1 :]
                assert not is_valid_tracking_code(wrong), (code, position, symbol)


def test_every_adjacent_transposition_is_detected() -> None:
    for code in samples(300):
        text = body(code)
        for position in range(len(text) - 1):
            if text[position] == text[position + 1]:
                continue
            swapped = text[:position] + text[position + 1] + text[position] + text[position + 2 :]
            assert not is_valid_tracking_code(swapped), (code, position)


@pytest.mark.parametrize(
    ("raw", "code"),
    [("TD-2222-2222-2222", "bad_length"), ("XX-2222-2222-2222-2", "bad_prefix"),
     ("TD-2222-2222-2220-2", "bad_character"), ("TD-2222-2222-2222-3", "bad_check")],
)
def test_invalid_codes_raise_vietnamese_errors(raw: str, code: str) -> None:
    with pytest.raises(InvalidTrackingCode) as caught:
        parse_tracking_code(raw)
    assert caught.value.code == code
    assert "Mã tra cứu" in str(caught.value)


def test_check_character_rejects_bad_data() -> None:
    with pytest.raises(InvalidTrackingCode):
        check_character("SHORT")


@given(st.randoms(use_true_random=False))
def test_generated_codes_round_trip(rng: random.Random) -> None:
    code = generate_tracking_code(rng.randrange)
    assert parse_tracking_code(code) == code
    assert parse_tracking_code(code.lower().replace("-", "")) == code
