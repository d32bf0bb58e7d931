from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest

from room_console.errors import ConsoleError
from room_console.i18n import catalogue, t
from room_console.navigation import NAV_ITEMS
from signaling.grants import Grant

pytestmark = pytest.mark.unit

PACKAGE = Path(str(resources.files("room_console")))
KEY_USE = re.compile(r"""\bt\(\s*["']([a-z0-9_.]+)["']""")


def _used_keys() -> set[str]:
    keys: set[str] = set()
    for path in [*PACKAGE.rglob("*.html"), *PACKAGE.rglob("*.py"), *(PACKAGE.parent / "tiepdan").rglob("*.py")]:
        keys |= set(KEY_USE.findall(path.read_text("utf-8")))
    return keys


def test_every_key_used_in_templates_and_code_is_in_the_catalogue() -> None:
    used = _used_keys()
    assert "login.title" in used
    assert sorted(used - catalogue().keys()) == []


def test_every_error_grant_and_menu_entry_has_a_text() -> None:
    keys = catalogue().keys()
    errors = {cls.message_key for cls in [ConsoleError, *_subclasses(ConsoleError)]}
    grants = {f"grant.{g.value}" for g in Grant}
    menu = {item.label_key for item in NAV_ITEMS}
    assert sorted((errors | grants | menu) - keys) == []


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def test_texts_are_vietnamese_with_diacritics() -> None:
    assert t("login.title") == "Đăng nhập"
    assert t("home.title") == "Tổng quan"
    assert t("home.welcome", name="An") == "Xin chào, An."
    assert all(text.strip() for text in (catalogue().t(k) for k in catalogue().keys()) if "{" not in text)


def test_unknown_key_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        t("no.such.key")
