from __future__ import annotations

import pytest

from room_console.accounts import (
    User,
    attempt_key,
    check_display_name,
    check_password,
    csrf_token_for,
    hash_password,
    login_limited,
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


def test_csrf_token_is_derived_from_the_session_but_differs_from_its_stored_hash() -> None:
    token = csrf_token_for("session-a")
    assert token == csrf_token_for("session-a")
    assert token != csrf_token_for("session-b")
    assert token != secret_hash("session-a")


def test_rate_limit_applies_per_username_and_per_address() -> None:
    limit, ip_limit = OPTIONS.login_max_failures, OPTIONS.login_ip_max_failures
    assert not login_limited(limit - 1, ip_limit - 1, OPTIONS)
    assert login_limited(limit, 0, OPTIONS)
    assert login_limited(0, ip_limit, OPTIONS)


async def test_password_hash_verifies_only_the_same_password() -> None:
    stored = await hash_password("mật khẩu đủ dài")
    assert stored.startswith("$argon2id$")
    assert await verify_password(stored, "mật khẩu đủ dài") == (True, False)
    assert (await verify_password(stored, "mật khẩu khác"))[0] is False
    assert (await verify_password("not-a-hash", "x"))[0] is False


async def test_unknown_user_is_checked_against_a_dummy_hash_and_fails() -> None:
    assert await verify_password(None, "anything at all") == (False, False)
