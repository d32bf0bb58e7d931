"""Representatives of a group petition (đoàn đông người), Luật Tiếp công dân 2013 Điều 29.

When many people come about the same matter they appoint representatives: a group of 5 to 10 people
appoints 1 or 2; a group of more than 10 may appoint more, but not more than 5. The representatives
must be members of the group (người khiếu nại, tố cáo, kiến nghị, phản ánh). A gathering of fewer than
5 people is not a group in this sense: no representative is required, and those named must still be
members. (The appointment document signed by everyone is checked by the intake workflow, not here.)

Members and representatives are given as opaque ids (never names): problems point at ids so the UI can
highlight them, and messages contain counts only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InvalidDelegation

__all__ = [
    "DelegationProblem",
    "GROUP_THRESHOLD",
    "check_delegation",
    "representative_limits",
    "validate_delegation",
]

GROUP_THRESHOLD = 5
_LAW = "Luật Tiếp công dân 2013, Điều 29"


@dataclass(frozen=True, slots=True)
class DelegationProblem:
    """One broken rule: a stable ``code``, a Vietnamese message and the ids concerned (if any)."""

    code: str
    message_vi: str
    ids: tuple[str, ...] = ()


def representative_limits(headcount: int) -> tuple[int, int]:
    """``(minimum, maximum)`` number of representatives for a group of ``headcount`` people.

    Fewer than 5 people: ``(0, headcount)``; 5–10: ``(1, 2)``; more than 10: ``(1, 5)``.
    """
    if headcount < 0:
        raise InvalidDelegation("Số người trong đoàn không được âm.", code="negative_headcount")
    if headcount < GROUP_THRESHOLD:
        return (0, headcount)
    if headcount <= 10:
        return (1, 2)
    return (1, 5)


def validate_delegation(
    member_ids: Sequence[str], representative_ids: Sequence[str]
) -> tuple[DelegationProblem, ...]:
    """All problems with this delegation (empty when it is lawful)."""
    problems: list[DelegationProblem] = []
    repeated_members = sorted(i for i, n in Counter(member_ids).items() if n > 1)
    if repeated_members:
        problems.append(
            DelegationProblem(
                "duplicate_member",
                f"Danh sách thành viên đoàn có {len(repeated_members)} người bị ghi trùng.",
                tuple(repeated_members),
            )
        )
    repeated_reps = sorted(i for i, n in Counter(representative_ids).items() if n > 1)
    if repeated_reps:
        problems.append(
            DelegationProblem(
                "duplicate_representative",
                f"Danh sách người đại diện có {len(repeated_reps)} người bị ghi trùng.",
                tuple(repeated_reps),
            )
        )
    members = set(member_ids)
    outsiders = sorted({i for i in representative_ids if i not in members})
    if outsiders:
        problems.append(
            DelegationProblem(
                "representative_not_member",
                f"Người đại diện phải là người trong đoàn ({_LAW}); có {len(outsiders)} người đại diện "
                "không có trong danh sách thành viên.",
                tuple(outsiders),
            )
        )
    headcount = len(members)
    representatives = len(set(representative_ids))
    minimum, maximum = representative_limits(headcount)
    if representatives < minimum:
        problems.append(
            DelegationProblem(
                "no_representative",
                f"Đoàn có {headcount} người phải cử người đại diện (từ {minimum} đến {maximum} người, {_LAW}).",
            )
        )
    elif representatives > maximum and headcount >= GROUP_THRESHOLD:
        allowed = "01 hoặc 02" if maximum == 2 else "không quá 05"
        problems.append(
            DelegationProblem(
                "too_many_representatives",
                f"Đoàn có {headcount} người chỉ được cử {allowed} người đại diện ({_LAW}); "
                f"đã cử {representatives} người.",
            )
        )
    return tuple(problems)


def check_delegation(member_ids: Sequence[str], representative_ids: Sequence[str]) -> None:
    """Raise :class:`InvalidDelegation` (first problem's code, all messages joined) if not lawful."""
    problems = validate_delegation(member_ids, representative_ids)
    if problems:
        raise InvalidDelegation(" ".join(p.message_vi for p in problems), code=problems[0].code)
