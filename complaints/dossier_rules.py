"""The pure rules of the case dossier (:mod:`complaints.dossier`): "lần tiếp thứ n", whether an earlier
directive was done, and the refusal-condition flag of LTCD Điều 9. No I/O, no clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from .deadlines import DueStatus
from .enums import (
    CaseNovelty,
    CaseStatus,
    HandlingDirection,
    PetitionKind,
    PriorHandling,
    ReceptionOutcome,
    RefusalReason,
)

__all__ = ["DirectiveProgress", "Finding", "ReceptionFact", "RefusalAssessment", "RefusalCheck", "RefusalCondition",
           "RefusalFacts", "RefusalLevel", "assess_refusal", "directive_progress", "reception_number"]


# -- "lần tiếp thứ n" ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceptionFact:
    """A reception entry as the count needs it: its number in the case and the session it belongs to."""

    nth: int
    session_id: str | None


def reception_number(entries: Iterable[ReceptionFact], session_id: str | None = None) -> int:
    """Which reception of the case the one in ``session_id`` is ("lần tiếp thứ n").

    When the session already has an entry of the case (the desk records one at triage), its number is
    that entry's; otherwise the reception being held is the next one: the earlier entries plus one.
    Without a session (the brief printed before a session), the next reception's number."""
    facts = list(entries)
    if session_id is not None:
        own = [e.nth for e in facts if e.session_id == session_id]
        if own:
            return min(own)
    return len(facts) + 1


# -- directives --------------------------------------------------------------------------------------------


class DirectiveProgress(StrEnum):
    """Whether an earlier directive was carried out, as the chair needs to know it."""

    DONE = "done"                # a unit reported it completed (on time or late)
    OVERDUE = "overdue"          # not completed, deadline passed (working-day calendar)
    IN_PROGRESS = "in_progress"  # not completed, still within its deadline (due soon included)


def directive_progress(status: DueStatus) -> DirectiveProgress:
    """Fold the follow-up status of :func:`complaints.deadlines.classify_due` into done / overdue / in
    progress."""
    if status in (DueStatus.DONE_ON_TIME, DueStatus.DONE_LATE):
        return DirectiveProgress.DONE
    if status is DueStatus.OVERDUE:
        return DirectiveProgress.OVERDUE
    return DirectiveProgress.IN_PROGRESS


# -- the refusal-condition flag (LTCD Điều 9) ----------------------------------------------------------------


class RefusalCondition(StrEnum):
    """The parts of LTCD Điều 9 k3 that the case data can speak to, in the order of the law's sentence:
    "người khiếu nại, tố cáo về vụ việc đã giải quyết đúng chính sách, pháp luật, được cơ quan nhà nước
    có thẩm quyền kiểm tra, rà soát, thông báo bằng văn bản và đã được tiếp, giải thích, hướng dẫn nhưng
    vẫn cố tình khiếu nại, tố cáo kéo dài"."""

    COMPLAINT_OR_DENUNCIATION = "complaint_or_denunciation"
    SETTLED = "settled"
    REVIEWED_IN_WRITING = "reviewed_in_writing"
    RECEIVED_AND_EXPLAINED = "received_and_explained"
    NO_NEW_FACTS = "no_new_facts"


class Finding(StrEnum):
    MET = "met"
    NOT_MET = "not_met"
    UNKNOWN = "unknown"   # the register holds nothing either way: the chair checks the file


class RefusalLevel(StrEnum):
    LIKELY = "likely"     # every condition is met by the data
    CHECK = "check"       # none is contradicted, some cannot be read from the data
    NONE = "none"         # a condition is not met: Điều 9 k3 does not apply


@dataclass(frozen=True)
class RefusalFacts:
    """What the case register says that bears on LTCD Điều 9 k3."""

    kind: PetitionKind
    status: CaseStatus
    novelty: CaseNovelty | None
    prior_handlings: tuple[PriorHandling, ...]        # of the case's petitions (tình trạng giải quyết trước)
    decisions: tuple[HandlingDirection, ...]          # handling decisions on the case
    earlier_outcomes: tuple[ReceptionOutcome | None, ...]  # outcomes of the earlier receptions
    directives_done: int                              # directives a unit reported completed


@dataclass(frozen=True)
class RefusalCheck:
    condition: RefusalCondition
    finding: Finding
    count: int = 0   # how many records support it (receptions explained, reviews), 0 when not counted


@dataclass(frozen=True)
class RefusalAssessment:
    """The flag: its level, the ground of Điều 9 it points to (None when it does not apply) and why."""

    level: RefusalLevel
    reason: RefusalReason | None
    checks: tuple[RefusalCheck, ...]

    @property
    def flagged(self) -> bool:
        return self.level is not RefusalLevel.NONE


_FINAL = frozenset({PriorHandling.SECOND_DECISION, PriorHandling.COURT_JUDGMENT})
_SETTLED_STATUSES = frozenset({CaseStatus.RESOLVED, CaseStatus.CLOSED})
_REVIEW_DECISIONS = frozenset({HandlingDirection.FILE_WITHOUT_ACTION, HandlingDirection.RETURN,
                               HandlingDirection.GUIDE})
_EXPLAINED = frozenset({ReceptionOutcome.RETURN_WITH_GUIDANCE, ReceptionOutcome.ANSWERED_ON_THE_SPOT,
                        ReceptionOutcome.REFUSED})


def assess_refusal(facts: RefusalFacts) -> RefusalAssessment:
    """The refusal-condition flag of LTCD Điều 9 for a case, from its register data alone.

    Only khoản 3 (a matter already settled lawfully, reviewed and answered in writing, the person
    received and explained to, yet re-raising it) can be read from the data; khoản 1 and 2 (a person
    intoxicated or without capacity, threats or insults) concern the person at the session and are the
    chair's own judgement. Each condition is judged as follows:

    * complaint or denunciation: the case's kind is a complaint, a denunciation or a mixed petition
      (k3 speaks of "người khiếu nại, tố cáo"; a proposal or feedback is not covered);
    * settled: a petition records a second-instance decision or a court judgment (a first decision
      still leaves a complaint its second instance, LKN; for a denunciation its conclusion settles it),
      or the case itself is resolved or ended;
    * reviewed and answered in writing: a handling decision that files, returns or guides, or a
      directive a unit reported completed (a check was made and reported); when none is recorded the
      register cannot tell, and the finding is *unknown*;
    * received and explained: an earlier reception ended answered on the spot, returned with guidance
      or refused (or a handling decision guided the citizen);
    * no new facts: the case is marked "vụ việc cũ"; "mới phát sinh" contradicts it; unmarked is
      *unknown*.

    Any condition not met: level NONE. All met: LIKELY. Otherwise CHECK. A flagged case names
    :attr:`RefusalReason.ALREADY_RESOLVED`; the chair decides, the system never refuses by itself.
    """
    checks: list[RefusalCheck] = []
    covered = facts.kind in (PetitionKind.COMPLAINT, PetitionKind.DENUNCIATION, PetitionKind.MIXED)
    checks.append(RefusalCheck(RefusalCondition.COMPLAINT_OR_DENUNCIATION, Finding.MET if covered else Finding.NOT_MET))

    final = [p for p in facts.prior_handlings if p in _FINAL or (
        facts.kind is PetitionKind.DENUNCIATION and p is PriorHandling.FIRST_DECISION)]
    settled = bool(final) or facts.status in _SETTLED_STATUSES
    checks.append(RefusalCheck(RefusalCondition.SETTLED, Finding.MET if settled else Finding.NOT_MET, len(final)))

    reviews = sum(1 for d in facts.decisions if d in _REVIEW_DECISIONS) + facts.directives_done
    checks.append(RefusalCheck(RefusalCondition.REVIEWED_IN_WRITING, Finding.MET if reviews else Finding.UNKNOWN,
                               reviews))

    explained = sum(1 for o in facts.earlier_outcomes if o in _EXPLAINED) + sum(
        1 for d in facts.decisions if d is HandlingDirection.GUIDE)
    checks.append(RefusalCheck(RefusalCondition.RECEIVED_AND_EXPLAINED,
                               Finding.MET if explained else Finding.NOT_MET, explained))

    novelty = (Finding.UNKNOWN if facts.novelty is None
               else Finding.MET if facts.novelty is CaseNovelty.EXISTING else Finding.NOT_MET)
    checks.append(RefusalCheck(RefusalCondition.NO_NEW_FACTS, novelty))

    findings = {c.finding for c in checks}
    if Finding.NOT_MET in findings:
        return RefusalAssessment(RefusalLevel.NONE, None, tuple(checks))
    level = RefusalLevel.LIKELY if findings == {Finding.MET} else RefusalLevel.CHECK
    return RefusalAssessment(level, RefusalReason.ALREADY_RESOLVED, tuple(checks))
