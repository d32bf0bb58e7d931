"""The pure rules of the case dossier: "lần tiếp thứ n", directive progress, the LTCD Điều 9 k3 flag."""

from __future__ import annotations

from dataclasses import replace

import pytest

from complaints import (
    CaseNovelty,
    CaseStatus,
    DirectiveProgress,
    DueStatus,
    Finding,
    HandlingDirection,
    PetitionKind,
    PriorHandling,
    ReceptionFact,
    ReceptionOutcome,
    RefusalCondition,
    RefusalFacts,
    RefusalLevel,
    RefusalReason,
    assess_refusal,
    directive_progress,
    reception_number,
)

pytestmark = pytest.mark.unit

# A complaint settled by a second-instance decision, filed after review, explained at an earlier
# reception, and marked "vụ việc cũ": every condition of Điều 9 k3 the data can show.
SETTLED = RefusalFacts(
    kind=PetitionKind.COMPLAINT, status=CaseStatus.IN_HANDLING, novelty=CaseNovelty.EXISTING,
    prior_handlings=(PriorHandling.SECOND_DECISION,), decisions=(HandlingDirection.FILE_WITHOUT_ACTION,),
    earlier_outcomes=(ReceptionOutcome.RETURN_WITH_GUIDANCE,), directives_done=0,
)


def findings(facts: RefusalFacts) -> dict[RefusalCondition, Finding]:
    return {check.condition: check.finding for check in assess_refusal(facts).checks}


def test_reception_number_counts_earlier_entries_and_keeps_this_sessions_own_number() -> None:
    entries = [ReceptionFact(1, None), ReceptionFact(2, "phien-2026-09-10"), ReceptionFact(3, "phien-2026-12-10")]
    assert reception_number([]) == 1
    assert reception_number(entries[:2], "phien-2026-12-10") == 3  # no entry yet in this session: the next
    assert reception_number(entries, "phien-2026-12-10") == 3      # the desk's entry of this session
    assert reception_number(entries, "phien-2026-09-10") == 2      # an earlier session read back
    assert reception_number(entries) == 4                           # no session: the next reception


def test_directive_progress_folds_follow_up_into_done_overdue_in_progress() -> None:
    assert directive_progress(DueStatus.DONE_ON_TIME) is DirectiveProgress.DONE
    assert directive_progress(DueStatus.DONE_LATE) is DirectiveProgress.DONE
    assert directive_progress(DueStatus.OVERDUE) is DirectiveProgress.OVERDUE
    assert directive_progress(DueStatus.DUE_SOON) is DirectiveProgress.IN_PROGRESS
    assert directive_progress(DueStatus.ON_TRACK) is DirectiveProgress.IN_PROGRESS


def test_a_settled_reviewed_explained_old_complaint_is_flagged_under_khoan_3() -> None:
    result = assess_refusal(SETTLED)
    assert result.level is RefusalLevel.LIKELY and result.flagged
    assert result.reason is RefusalReason.ALREADY_RESOLVED
    assert [c.condition for c in result.checks] == list(RefusalCondition)
    assert all(c.finding is Finding.MET for c in result.checks)


def test_new_facts_a_first_decision_or_no_explanation_lift_the_flag() -> None:
    for facts, condition in [
        (replace(SETTLED, novelty=CaseNovelty.NEW), RefusalCondition.NO_NEW_FACTS),
        (replace(SETTLED, prior_handlings=(PriorHandling.FIRST_DECISION,)), RefusalCondition.SETTLED),
        (replace(SETTLED, earlier_outcomes=(ReceptionOutcome.FORWARD_TO_COMPETENT_BODY, None)),
         RefusalCondition.RECEIVED_AND_EXPLAINED),
        (replace(SETTLED, kind=PetitionKind.PROPOSAL_FEEDBACK), RefusalCondition.COMPLAINT_OR_DENUNCIATION),
    ]:
        result = assess_refusal(facts)
        assert result.level is RefusalLevel.NONE and result.reason is None and not result.flagged, condition
        assert findings(facts)[condition] is Finding.NOT_MET


def test_what_the_register_cannot_tell_asks_the_chair_to_check() -> None:
    unknown = replace(SETTLED, decisions=(), novelty=None)
    result = assess_refusal(unknown)
    assert result.level is RefusalLevel.CHECK and result.reason is RefusalReason.ALREADY_RESOLVED
    assert findings(unknown)[RefusalCondition.REVIEWED_IN_WRITING] is Finding.UNKNOWN
    assert findings(unknown)[RefusalCondition.NO_NEW_FACTS] is Finding.UNKNOWN
    # a completed directive is a check made and reported: the review is on file
    reported = replace(unknown, directives_done=1, novelty=CaseNovelty.EXISTING)
    assert assess_refusal(reported).level is RefusalLevel.LIKELY


def test_settlement_by_court_case_status_or_a_denunciations_conclusion() -> None:
    assert findings(replace(SETTLED, prior_handlings=(PriorHandling.COURT_JUDGMENT,)))[RefusalCondition.SETTLED] \
        is Finding.MET
    assert findings(replace(SETTLED, prior_handlings=(), status=CaseStatus.RESOLVED))[RefusalCondition.SETTLED] \
        is Finding.MET
    denunciation = replace(SETTLED, kind=PetitionKind.DENUNCIATION, prior_handlings=(PriorHandling.FIRST_DECISION,))
    assert assess_refusal(denunciation).level is RefusalLevel.LIKELY
    nothing = replace(SETTLED, prior_handlings=(PriorHandling.IN_PROGRESS,))
    assert findings(nothing)[RefusalCondition.SETTLED] is Finding.NOT_MET


def test_explanations_are_counted_from_receptions_and_guidance_decisions() -> None:
    facts = replace(SETTLED, decisions=(HandlingDirection.GUIDE,),
                    earlier_outcomes=(ReceptionOutcome.ANSWERED_ON_THE_SPOT, ReceptionOutcome.REFUSED, None))
    explained = next(c for c in assess_refusal(facts).checks if c.condition is RefusalCondition.RECEIVED_AND_EXPLAINED)
    assert (explained.finding, explained.count) == (Finding.MET, 3)
