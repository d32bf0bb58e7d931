"""What the complaint pages share: the actor of a signed-in user, the enumerations for select boxes."""

from __future__ import annotations

from typing import Any

from complaints.enums import LabelledEnum

from ..actor import Actor
from ..routes import SignedIn

__all__ = ["actor_of", "choices", "form_value"]


def actor_of(signed: SignedIn) -> Actor:
    user = signed.user
    return Actor(user.id, user.display_name, user.grants, user.unit, signed.session_id, user.venue)


def choices(enum: type[LabelledEnum]) -> list[tuple[str, str]]:
    return [(member.value, member.label_vi) for member in enum]


def form_value(form: Any, name: str, limit: int = 2000) -> str:
    value = form.get(name)
    return value[:limit].strip() if isinstance(value, str) else ""
