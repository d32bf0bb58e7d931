from __future__ import annotations

import pytest

from signaling.grants import ROLE_GRANTS, ROLE_LABELS_VI, Grant, Role, grants_for

pytestmark = pytest.mark.unit

G = Grant
# The policy, written out once more by hand: a change to ROLE_GRANTS must change this table too.
EXPECTED: dict[Role, set[Grant]] = {
    Role.CHAIR: {G.PUBLISH, G.SUBSCRIBE, G.MODERATE, G.CALL_QUEUE, G.CLOSED_SEGMENT, G.APPROVE, G.MINUTES,
                 G.IDENTITY_READ, G.DIRECTIVES, G.REPORTS, G.REPLAY, G.QUEUE_BOARD},
    Role.SECRETARY: {G.SUBSCRIBE, G.CALL_QUEUE, G.CLOSED_SEGMENT, G.MINUTES, G.DIRECTIVES, G.QUEUE_BOARD},
    Role.VENUE: {G.PUBLISH, G.SUBSCRIBE, G.QUEUE_BOARD},
    Role.RECEPTION: {G.INTAKE, G.IDENTITY_WRITE, G.QUEUE_BOARD},
    Role.DISPLAY: {G.QUEUE_BOARD},
    Role.FOLLOW_UP: {G.DIRECTIVES, G.REPORTS},
    Role.UNIT: {G.DIRECTIVES},
    Role.AUDITOR: {G.REPLAY, G.CONFIDENTIAL_REPLAY, G.AUDIT_READ},
    Role.ADMIN: {G.MANAGE, G.AUDIT_READ, G.REPORTS},
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("grant", list(Grant))
def test_every_role_grant_pair_is_as_the_policy_says(role: Role, grant: Grant) -> None:
    assert (grant in ROLE_GRANTS[role]) == (grant in EXPECTED[role])


def test_every_role_has_a_vietnamese_label_and_an_entry() -> None:
    assert set(ROLE_GRANTS) == set(Role) == set(ROLE_LABELS_VI)


def test_only_auditors_replay_confidential_segments_and_nobody_but_admin_manages() -> None:
    assert [r for r in Role if G.CONFIDENTIAL_REPLAY in ROLE_GRANTS[r]] == [Role.AUDITOR]
    assert [r for r in Role if G.MANAGE in ROLE_GRANTS[r]] == [Role.ADMIN]
    assert [r for r in Role if G.MODERATE in ROLE_GRANTS[r]] == [Role.CHAIR]


def test_grants_for_is_a_union_and_ignores_unknown_role_names() -> None:
    assert grants_for(["venue", "auditor"]) == ROLE_GRANTS[Role.VENUE] | ROLE_GRANTS[Role.AUDITOR]
    assert grants_for(["root", "superuser"]) == frozenset()
    assert grants_for([]) == frozenset()
