"""Case tracking codes (mã tra cứu) that citizens read, type and say over the phone.

Format: ``TD-XXXX-XXXX-XXXX-C``: the prefix ``TD`` (tiếp dân), twelve random characters in groups of
four, and one check character.

* Alphabet: the 29 symbols ``23456789ABCDEFGHJKMNPQRSTVWXY``. Left out as ambiguous: 0/O, 1/I/L, U
  (read as V), Z (read as 2). 29 is prime, which is what makes the check character work.
* Randomness: 12 × log2(29) ≈ 58.3 bits, drawn from the random source the caller passes (in
  production ``secrets.randbelow``), so codes cannot be guessed or enumerated.
* Check character: with values v₁…v₁₂ for the data and c for the check, Σ (i+1)·vᵢ + c ≡ 0 (mod 29).
  Every weight (1…13) is non-zero mod 29 and neighbouring weights differ, so every single-character
  substitution and every transposition of two adjacent different characters (including the last data
  character with the check character) changes the sum and is detected.

Parsing is forgiving about presentation: case, spaces, hyphens and a missing ``TD`` prefix.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import InvalidTrackingCode

__all__ = [
    "TRACKING_ALPHABET",
    "TRACKING_PREFIX",
    "check_character",
    "format_tracking_code",
    "generate_tracking_code",
    "is_valid_tracking_code",
    "parse_tracking_code",
]

TRACKING_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXY"
TRACKING_PREFIX = "TD"
DATA_LENGTH = 12
_MODULUS = len(TRACKING_ALPHABET)
_VALUES = {symbol: index for index, symbol in enumerate(TRACKING_ALPHABET)}
_GROUP = 4


def check_character(data: str) -> str:
    """Return the check character for ``data`` (12 characters of the alphabet, upper case)."""
    if len(data) != DATA_LENGTH or any(symbol not in _VALUES for symbol in data):
        raise InvalidTrackingCode(
            f"Phần dữ liệu của mã tra cứu phải gồm {DATA_LENGTH} ký tự trong bảng ký tự cho phép.",
            code="bad_data",
        )
    total = sum((position + 2) * _VALUES[symbol] for position, symbol in enumerate(data))
    return TRACKING_ALPHABET[(-total) % _MODULUS]


def format_tracking_code(body: str) -> str:
    """Format the 13 canonical characters (data + check) as ``TD-XXXX-XXXX-XXXX-C``."""
    groups = [body[i : i + _GROUP] for i in range(0, DATA_LENGTH, _GROUP)]
    return "-".join([TRACKING_PREFIX, *groups, body[DATA_LENGTH:]])


def generate_tracking_code(randbelow: Callable[[int], int]) -> str:
    """Return a new formatted tracking code.

    ``randbelow(n)`` must return a uniform integer in ``[0, n)``: pass ``secrets.randbelow`` in
    production and a seeded ``random.Random(...).randrange`` in tests. Uniqueness against the database
    is the caller's job (a collision is astronomically unlikely but must be retried, not ignored).
    """
    data = "".join(TRACKING_ALPHABET[randbelow(_MODULUS)] for _ in range(DATA_LENGTH))
    return format_tracking_code(data + check_character(data))


def parse_tracking_code(raw: str) -> str:
    """Validate ``raw`` and return it in canonical form ``TD-XXXX-XXXX-XXXX-C``.

    Accepts lower case, spaces and hyphens anywhere, and the code with or without the ``TD`` prefix.
    Raises :class:`InvalidTrackingCode` (Vietnamese message) when a character is outside the alphabet,
    the length is wrong or the check character does not match.
    """
    compact = "".join(raw.split()).replace("-", "").upper()
    if len(compact) == DATA_LENGTH + 1 + len(TRACKING_PREFIX):
        if not compact.startswith(TRACKING_PREFIX):
            raise InvalidTrackingCode(
                f"Mã tra cứu phải bắt đầu bằng {TRACKING_PREFIX}.", code="bad_prefix"
            )
        compact = compact[len(TRACKING_PREFIX) :]
    if len(compact) != DATA_LENGTH + 1:
        raise InvalidTrackingCode(
            "Mã tra cứu phải có dạng TD-XXXX-XXXX-XXXX-X (13 ký tự sau tiền tố TD).", code="bad_length"
        )
    bad = sorted({symbol for symbol in compact if symbol not in _VALUES})
    if bad:
        raise InvalidTrackingCode(
            f"Mã tra cứu có ký tự không hợp lệ: {', '.join(bad)}. Mã không dùng các ký tự dễ nhầm "
            "0, O, 1, I, L, U, Z.",
            code="bad_character",
        )
    data, check = compact[:DATA_LENGTH], compact[DATA_LENGTH]
    if check_character(data) != check:
        raise InvalidTrackingCode(
            "Mã tra cứu không đúng (ký tự kiểm tra không khớp); vui lòng kiểm tra lại từng ký tự.",
            code="bad_check",
        )
    return format_tracking_code(compact)


def is_valid_tracking_code(raw: str) -> bool:
    """True when :func:`parse_tracking_code` accepts ``raw``."""
    try:
        parse_tracking_code(raw)
    except InvalidTrackingCode:
        return False
    return True
