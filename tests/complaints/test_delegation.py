"""Group representatives (LTCD Điều 29)."""

from __future__ import annotations

import pytest

from complaints.delegation import check_delegation, representative_limits, validate_delegation
from complaints.errors import InvalidDelegation

pytestmark = pytest.mark.unit


def members(n: int) -> list[str]:
    return [f"m{i}" for i in range(n)]


@pytest.mark.parametrize(("n", "limits"), [(0, (0, 0)), (4, (0, 4)), (5, (1, 2)), (10, (1, 2)), (11, (1, 5)),
                                           (200, (1, 5))])
def test_limits_follow_the_law(n: int, limits: tuple[int, int]) -> None:
    assert representative_limits(n) == limits


def test_lawful_delegations_pass() -> None:
    check_delegation(members(5), ["m0"])
    check_delegation(members(10), ["m0", "m9"])
    check_delegation(members(30), ["m0", "m1", "m2", "m3", "m4"])
    check_delegation(members(3), [])


def test_eight_people_with_three_representatives_are_too_many() -> None:
    with pytest.raises(InvalidDelegation) as caught:
        check_delegation(members(8), ["m0", "m1", "m2"])
    assert caught.value.code == "too_many_representatives"
    assert "01 hoặc 02" in str(caught.value) and "Điều 29" in str(caught.value)


def test_more_than_ten_people_may_send_at_most_five() -> None:
    problems = validate_delegation(members(12), members(6))
    assert [p.code for p in problems] == ["too_many_representatives"]
    assert "không quá 05" in problems[0].message_vi


def test_a_group_must_send_a_representative() -> None:
    assert [p.code for p in validate_delegation(members(6), [])] == ["no_representative"]


def test_representatives_must_be_members_and_are_pointed_at_by_id() -> None:
    problems = validate_delegation(members(6), ["m0", "outsider"])
    assert [p.code for p in problems] == ["representative_not_member"]
    assert problems[0].ids == ("outsider",)
    assert "outsider" not in problems[0].message_vi


def test_duplicates_in_lists_are_reported() -> None:
    codes = {p.code for p in validate_delegation(["a", "a", "b", "c", "d", "e"], ["a", "a"])}
    assert codes == {"duplicate_member", "duplicate_representative"}
