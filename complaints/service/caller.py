"""Who writes: the :class:`Caller` every service function takes, and the grants each use needs.

A caller is whoever acts on the complaint database: a signed-in official or a service token (the
console builds one from its actor), the minutes writer, the CLI, the seed (:meth:`Caller.system`).
``label`` is what the audit log and the events record (``user:<id>``, ``service:<id>``,
``system:<what>``: an id, never a name); ``name`` is what the records themselves carry (the officer of
a reception, who decided, who issued a directive).

Authorisation lives here, not in the console: a service function refuses (:class:`NotAuthorized`)
whatever the grants do not allow, whoever calls it. The console may check the same sets first to
answer with its own pages.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from signaling.grants import Grant

from ..errors import NotAuthorized

__all__ = ["Caller", "CASE_VIEW_GRANTS", "CASE_EDIT_GRANTS", "DECISION_GRANTS", "DIRECTIVE_GRANTS", "INTAKE_GRANTS",
           "RECEPTION_GRANTS", "SEGMENT_GRANTS", "require"]

# Seeing cases in full (search, case file): the people who handle them.
CASE_VIEW_GRANTS = frozenset({Grant.INTAKE, Grant.MINUTES, Grant.REPORTS, Grant.APPROVE})
# Editing a case (status, summary, kind…): intake staff and the secretary writing the minutes.
CASE_EDIT_GRANTS = frozenset({Grant.INTAKE, Grant.MINUTES})
# Recording a handling decision (xử lý đơn): intake staff and the approving leader.
DECISION_GRANTS = frozenset({Grant.INTAKE, Grant.APPROVE})
# Issuing a directive: holders of ``directives`` who are not a unit's officer (a unit reports back).
DIRECTIVE_GRANTS = frozenset({Grant.DIRECTIVES})
# Petitions, petitioners, groups, attachments: intake staff.
INTAKE_GRANTS = frozenset({Grant.INTAKE})
# A reception entry (lượt tiếp): intake staff, and the secretary of a session's minutes.
RECEPTION_GRANTS = frozenset({Grant.INTAKE, Grant.MINUTES})
# Referencing a case's recording segments in its record: the minutes writer, and the recordings consumer
# acting for it (complaints.service.segments).
SEGMENT_GRANTS = frozenset({Grant.MINUTES})


@dataclass(frozen=True)
class Caller:
    label: str
    name: str
    grants: frozenset[Grant]
    unit: str | None = None
    venue: str | None = None

    @classmethod
    def system(cls, label: str, grants: Collection[Grant], *, name: str | None = None,
               unit: str | None = None) -> Caller:
        """A program acting on its own (``label`` such as ``system:seed``)."""
        if not label.startswith("system:"):
            raise ValueError("a system caller's label starts with 'system:'")
        return cls(label=label, name=name or label, grants=frozenset(grants), unit=unit)

    def has(self, grant: Grant) -> bool:
        return grant in self.grants

    def has_any(self, grants: Iterable[Grant]) -> bool:
        return not self.grants.isdisjoint(grants)

    @property
    def unit_scope(self) -> str | None:
        """For a caller who follows directives only (a unit's officer): the unit whose cases and
        directives they may see ("" when no unit is named: nothing). None: no restriction."""
        if self.has_any(CASE_VIEW_GRANTS) or not self.has(Grant.DIRECTIVES):
            return None
        return self.unit or ""

    @property
    def may_view_cases(self) -> bool:
        return self.has_any(CASE_VIEW_GRANTS) or self.has(Grant.DIRECTIVES)

    @property
    def may_issue_directives(self) -> bool:
        return self.has_any(DIRECTIVE_GRANTS) and self.unit_scope is None


def require(caller: Caller, grants: Iterable[Grant]) -> None:
    """Raise :class:`NotAuthorized` unless ``caller`` holds one of ``grants``."""
    if not caller.has_any(grants):
        raise NotAuthorized("Bạn không có quyền thực hiện thao tác này.")
