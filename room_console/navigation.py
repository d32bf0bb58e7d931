"""The console's navigation: each entry needs one grant; the header and the dashboard show the
entries the signed-in user holds. Later pages add their entry to :data:`NAV_ITEMS`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from signaling.grants import Grant

__all__ = ["NavItem", "NAV_ITEMS", "navigation_for", "grant_keys_for"]


@dataclass(frozen=True)
class NavItem:
    href: str
    label_key: str
    grant: Grant | None = None  # None: every signed-in user
    any_of: frozenset[Grant] = frozenset()  # instead of ``grant``: one of these suffices


NAV_ITEMS: list[NavItem] = [
    NavItem("/", "nav.home"),
    NavItem("/cases", "nav.cases", any_of=frozenset({Grant.INTAKE, Grant.MINUTES, Grant.REPORTS, Grant.APPROVE,
                                                      Grant.DIRECTIVES})),
    NavItem("/intake", "nav.intake", Grant.INTAKE),
    NavItem("/ban-tiep-nhan", "nav.desk", Grant.INTAKE),
    NavItem("/follow-up", "nav.follow_up", Grant.DIRECTIVES),
    NavItem("/phien", "nav.live", Grant.SUBSCRIBE),
    NavItem("/bien-ban", "nav.minutes", Grant.MINUTES),
    NavItem("/van-ban", "nav.documents", any_of=frozenset({Grant.MINUTES, Grant.APPROVE})),
    NavItem("/bang-so", "nav.board", Grant.QUEUE_BOARD),
    NavItem("/xem-lai", "nav.replay", any_of=frozenset({Grant.REPLAY, Grant.CONFIDENTIAL_REPLAY})),
    NavItem("/lich", "nav.calendar", Grant.MANAGE),  # planning needs manage (schedules.plan_session)
    NavItem("/admin/users", "nav.admin_users", Grant.MANAGE),
    NavItem("/admin/venues", "nav.admin_venues", Grant.MANAGE),
]


def navigation_for(grants: Iterable[Grant]) -> list[NavItem]:
    held = frozenset(grants)
    return [item for item in NAV_ITEMS
            if (item.any_of and not held.isdisjoint(item.any_of)) or (not item.any_of and item.grant is None)
            or item.grant in held]


def grant_keys_for(grants: Iterable[Grant]) -> list[str]:
    """Catalogue keys describing ``grants``, in the order of the grant table."""
    held = frozenset(grants)
    return [f"grant.{g.value}" for g in Grant if g in held]
