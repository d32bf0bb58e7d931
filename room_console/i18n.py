"""The message catalogue: every text a person reads goes through :func:`t`.

The catalogue is a flat JSON file per language (``messages/vi.json``); keys are dotted English
names (``login.title``). A missing key is a programming error and raises ``KeyError`` (a test
checks that every key the templates use exists), never a silent English fallback.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources

__all__ = ["Catalogue", "catalogue", "t", "DEFAULT_LANGUAGE"]

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
