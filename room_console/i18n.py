"""The message catalogue: every text a person reads goes through :func:`t`.

The catalogue is a flat JSON file per language (``messages/vi.json``); keys are dotted English
names (``login.title``). A missing key is a programming error and raises ``KeyError`` (a test
checks that every key the templates use exists), never a silent English fallback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from functools import cache
from importlib import resources

__all__ = ["Catalogue", "catalogue", "t", "duration_text", "size_text", "DEFAULT_LANGUAGE"]

DEFAULT_LANGUAGE = "vi"


class Catalogue:
    def __init__(self, messages: Mapping[str, str]) -> None:
        self._messages = dict(messages)

    def __contains__(self, key: object) -> bool:
        return key in self._messages

    def keys(self) -> frozenset[str]:
        return frozenset(self._messages)

    def t(self, key: str, /, **params: object) -> str:
        """The text of ``key`` with ``{name}`` placeholders filled from ``params``."""
        text = self._messages[key]
        return text.format(**params) if params else text


@cache
def catalogue(language: str = DEFAULT_LANGUAGE) -> Catalogue:
    raw = resources.files("room_console").joinpath("messages", f"{language}.json").read_text("utf-8")
    messages = json.loads(raw)
    if not isinstance(messages, dict) or not all(isinstance(v, str) for v in messages.values()):
        raise ValueError(f"catalogue {language} must map keys to strings")
    return Catalogue(messages)


def t(key: str, /, **params: object) -> str:
    return catalogue().t(key, **params)


def duration_text(seconds: float) -> str:
    """A wait as a person reads it: whole seconds under a minute, else minutes (rounded up)."""
    whole = max(1, math.ceil(seconds))
    if whole < 60:
        return t("duration.seconds", n=whole)
    return t("duration.minutes", n=math.ceil(whole / 60))


def size_text(size: int) -> str:
    """A size limit as a person reads it (1 KB = 1024 bytes, as file managers show it)."""
    if size >= 1024 * 1024 and size % (1024 * 1024) == 0:
        return t("size.megabytes", n=size // (1024 * 1024))
    return t("size.kilobytes", n=max(1, math.ceil(size / 1024)))
