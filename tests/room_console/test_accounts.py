from __future__ import annotations

import pytest

from room_console.accounts import (
    User,
    attempt_key,
    check_display_name,
    check_password,
    hash_password,
    login_wait,
    normalize_username,
    parse_roles,
    secret_hash,
    verify_password,
)
from room_console.errors import InvalidDisplayName, InvalidRoles, InvalidUsername, WeakPassword
from room_console.options import ConsoleOptions
from signaling.grants import Grant, Role

pytestmark = pytest.mark.unit

OPTIONS = ConsoleOptions()


def test_username_is_canonicalised_to_lowercase_ascii() -> None:
    assert normalize_username("  ThuKy.Huyen_1 ") == "thuky.huyen_1"


@pytest.mark.parametrize("raw", ["", "a", "x" * 65, "admin' OR '1'='1", "quản_trị", "a b", "-admin", "a;--"])
def test_username_outside_the_alphabet_is_refused(raw: str) -> None:
    with pytest.raises(InvalidUsername):
        normalize_username(raw)


def test_attempt_key_counts_even_unusable_names_under_a_bounded_key() -> None:
    assert attempt_key("  ADMIN' OR 1=1 --" + "x" * 100) == ("admin' or 1=1 --" + "x" * 100)[:64]


def test_display_name_keeps_vietnamese_and_collapses_spaces() -> None:
    assert check_display_name("  Nguyễn   Văn  An ") == "Nguyễn Văn An"


@pytest.mark.parametrize("raw", ["", "   ", "a\x00b", "x" * 201])
def test_display_name_empty_or_with_control_characters_is_refused(raw: str) -> None:
    with pytest.raises(InvalidDisplayName):
        check_display_name(raw)


@pytest.mark.parametrize("password", ["short", " " * 12, "x" * 257])
def test_password_too_short_blank_or_too_long_is_refused(password: str) -> None:
    with pytest.raises(WeakPassword):
        check_password(password, OPTIONS)


def test_password_of_the_minimum_length_is_accepted() -> None:
    check_password("m" * OPTIONS.min_password_length, OPTIONS)


def test_roles_are_deduplicated_in_table_order() -> None:
    assert parse_roles(["admin", "chair", "admin"]) == (Role.CHAIR, Role.ADMIN)


@pytest.mark.parametrize("roles", [[], ["superuser"], ["chair", "root"]])
def test_no_role_or_an_unknown_role_is_refused(roles: list[str]) -> None:
    with pytest.raises(InvalidRoles):
        parse_roles(roles)


def test_user_grants_and_vietnamese_role_labels_follow_the_grant_table() -> None:
    user = User(id="u1", username="chutri", display_name="Trần Văn Chủ", roles=(Role.CHAIR,))
    assert user.has(Grant.MODERATE) and not user.has(Grant.MANAGE)
    assert user.role_labels == ("Chủ trì",)


def test_secret_hash_is_sha256_hex_and_differs_per_secret() -> None:
    assert secret_hash("session-a") != secret_hash("session-b")
    assert len(secret_hash("session-a")) == 64


def _wait(pair: int, last: float | None, address: list[float] | None = None, now: float = 1000.0) -> float:
    return login_wait(pair, last, address or [], now=now, options=OPTIONS)


def test_first_failures_of_a_name_from_an_address_cost_no_wait() -> None:
    assert OPTIONS.login_free_failures == 3
    assert [_wait(n, 1000.0) for n in range(3)] == [0.0, 0.0, 0.0]


def test_each_further_failure_doubles_the_wait_after_the_last_one_up_to_the_cap() -> None:
    assert [_wait(n, 1000.0) for n in range(3, 8)] == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert _wait(3, 998.5) == 0.5  # counted from the last failure
    assert _wait(3, 990.0) == 0.0
    assert _wait(40, 1000.0) == OPTIONS.login_backoff_cap_s


def test_address_limit_waits_until_enough_failures_leave_the_window() -> None:
    limit, window = OPTIONS.login_ip_max_failures, OPTIONS.login_window_s
    times = [900.0 + i for i in range(limit)]
    assert _wait(0, None, times[:-1]) == 0.0
    assert _wait(0, None, times) == 900.0 + window - 1000.0  # the oldest leaves the window then
    assert _wait(0, None, [*times, 950.0]) == 901.0 + window - 1000.0  # one over: the second oldest
    assert _wait(4, 1000.0, times) == 900.0 + window - 1000.0  # the longer of the two waits


async def test_password_hash_verifies_only_the_same_password() -> None:
    stored = await hash_password("mật khẩu đủ dài")
    assert stored.startswith("$argon2id$")
    assert await verify_password(stored, "mật khẩu đủ dài") == (True, False)
    assert (await verify_password(stored, "mật khẩu khác"))[0] is False
    assert (await verify_password("not-a-hash", "x"))[0] is False


async def test_unknown_user_is_checked_against_a_dummy_hash_and_fails() -> None:
    assert await verify_password(None, "anything at all") == (False, False)
