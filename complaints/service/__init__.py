"""The service layer of the complaint database: every write to it, one function per use case.

Theory of operation. The complaint database owns its writes (ARCHITECTURE §2): the console's routes
and pages, the CLI, the seed and the minutes writer change cases only through these functions. Each
takes the caller's open connection (the caller owns the transaction), the :class:`Caller` (who, with
which grants) and the use case's data, and in that one transaction

1. refuses what the caller's grants do not allow (:class:`~complaints.errors.NotAuthorized`; a unit's
   officer gets "not found" for what is not the unit's), whoever calls — the console may check first
   for a nicer page, it cannot skip the check;
2. makes the change through the domain modules (:mod:`complaints.intake`, :mod:`complaints.cases`,
   :mod:`complaints.directives` …), which keep the rules (confidentiality, deadlines, versions);
3. appends its audit row (:mod:`complaints.audit`: ids and codes, never a name or free text);
4. puts its event into the outbox (:mod:`signaling.outbox`; ``signaling.events``: ``CaseCreated``,
   ``CaseUpdated``, ``PetitionAdded``, ``ReceptionRecorded``, ``DelegationRecorded``,
   ``AttachmentAdded``, ``PetitionerRegistered``, ``HandlingDecisionRecorded``, ``DirectiveIssued``,
   ``DirectiveReported``, ``SegmentReferenced``).

So the change, its audit row and its announcement commit together or not at all: a failure of any
of them rolls the whole back. Errors are :mod:`complaints.errors` types with Vietnamese messages.
A refusal to reveal or write a sealed identity (:class:`~complaints.errors.IdentityAccessDenied`) is
raised after its audit row, and nothing else has been written: the caller may commit to keep it.

Reads that are part of a use case live here too: the case-visibility rule
(:func:`ensure_case_visible`), the audited read of a case file (:func:`record_case_view`), opening
an attachment (:func:`open_attachment`) and the citizen's public status (:func:`public_status`).
Other reads (the case file, search, follow-up, the dossier) are the domain modules' own.
"""

from __future__ import annotations

from .attachments import AddedAttachment, add_attachment, open_attachment
from .caller import (
    CASE_EDIT_GRANTS,
    CASE_VIEW_GRANTS,
    DECISION_GRANTS,
    DIRECTIVE_GRANTS,
    INTAKE_GRANTS,
    RECEPTION_GRANTS,
    SEGMENT_GRANTS,
    Caller,
    require,
)
from .cases import ensure_case_visible, record_case_view, record_handling_decision, seal_pending, update_case
from .directives import issue_directive, report_on_directive
from .intake import add_petition, add_reception, record_delegation, record_intake, register_petitioner
from .public import PublicStatus, public_status
from .segments import reference_segments

__all__ = [
    "AddedAttachment",
    "CASE_EDIT_GRANTS",
    "CASE_VIEW_GRANTS",
    "Caller",
    "DECISION_GRANTS",
    "DIRECTIVE_GRANTS",
    "INTAKE_GRANTS",
    "PublicStatus",
    "RECEPTION_GRANTS",
    "SEGMENT_GRANTS",
    "WRITES",
    "add_attachment",
    "add_petition",
    "add_reception",
    "ensure_case_visible",
    "issue_directive",
    "open_attachment",
    "public_status",
    "record_case_view",
    "record_delegation",
    "record_handling_decision",
    "record_intake",
    "reference_segments",
    "register_petitioner",
    "report_on_directive",
    "require",
    "seal_pending",
    "update_case",
]

# Every write of the service and the event types it announces (a test walks the modules' public
# functions and holds each to its entry).
WRITES: dict[str, frozenset[str]] = {
    "record_intake": frozenset({"case.created", "case.petition_added", "case.reception_recorded", "case.updated"}),
    "register_petitioner": frozenset({"petitioner.registered"}),
    "add_petition": frozenset({"case.petition_added", "case.updated"}),
    "add_reception": frozenset({"case.reception_recorded", "case.updated"}),
    "record_delegation": frozenset({"case.delegation_recorded", "case.updated"}),
    "update_case": frozenset({"case.updated"}),
    "record_handling_decision": frozenset({"case.handling_decision_recorded"}),
    "issue_directive": frozenset({"case.directive_issued"}),
    "report_on_directive": frozenset({"case.directive_reported"}),
    "add_attachment": frozenset({"case.attachment_added"}),
    "seal_pending": frozenset({"case.updated"}),
    "reference_segments": frozenset({"case.segment_referenced"}),
}
