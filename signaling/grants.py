"""Roles and the grants they carry: one table, enforced by the server, reflected by the UI.

A role names a person's function in the reception (ARCHITECTURE §6); a grant names one thing the
server allows. Every check in the code asks for a grant, never for a role, so the table below is the
single place where policy lives.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

__all__ = ["Role", "Grant", "ROLE_GRANTS", "grants_for", "ROLE_LABELS_VI"]


class Role(StrEnum):
    CHAIR = "chair"
    SECRETARY = "secretary"
    VENUE = "venue"
    RECEPTION = "reception"
    DISPLAY = "display"
    FOLLOW_UP = "follow_up"
    UNIT = "unit"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Grant(StrEnum):
    PUBLISH = "publish"                      # send camera and microphone into the room
    SUBSCRIBE = "subscribe"                  # receive the room's media
    MODERATE = "moderate"                    # floor, mute, lobby, remove, lock; confirm a closed segment
    CALL_QUEUE = "call_queue"                # call next, recall, skip, end case
    CLOSED_SEGMENT = "closed_segment"        # request a closed segment (phiên kín)
    APPROVE = "approve"                      # approve and sign conclusion notices
    MINUTES = "minutes"                      # write the minutes of a case
    INTAKE = "intake"                        # register citizens, issue tickets, record petitions
    IDENTITY_READ = "identity_read"          # see a denouncer's sealed identity
    IDENTITY_WRITE = "identity_write"        # record or correct a denouncer's sealed identity
    DIRECTIVES = "directives"                # follow up directives, record progress
    REPORTS = "reports"                      # produce registers and reports
    REPLAY = "replay"                        # replay ordinary recording segments
    CONFIDENTIAL_REPLAY = "confidential_replay"  # replay confidential (closed) segments
    AUDIT_READ = "audit_read"                # read the audit log
    MANAGE = "manage"                        # accounts, venues, settings
    QUEUE_BOARD = "queue_board"              # see a session's queue board (numbers and venues only)


G = Grant
ROLE_GRANTS: dict[Role, frozenset[Grant]] = {
    Role.CHAIR: frozenset(
        {G.PUBLISH, G.SUBSCRIBE, G.MODERATE, G.CALL_QUEUE, G.CLOSED_SEGMENT, G.APPROVE, G.MINUTES,
         G.IDENTITY_READ, G.DIRECTIVES, G.REPORTS, G.REPLAY, G.QUEUE_BOARD}
    ),
    Role.SECRETARY: frozenset({G.SUBSCRIBE, G.CALL_QUEUE, G.CLOSED_SEGMENT, G.MINUTES, G.DIRECTIVES, G.QUEUE_BOARD}),
    Role.VENUE: frozenset({G.PUBLISH, G.SUBSCRIBE, G.QUEUE_BOARD}),
    Role.RECEPTION: frozenset({G.INTAKE, G.IDENTITY_WRITE, G.QUEUE_BOARD}),
    Role.DISPLAY: frozenset({G.QUEUE_BOARD}),
    Role.FOLLOW_UP: frozenset({G.DIRECTIVES, G.REPORTS}),
    Role.UNIT: frozenset({G.DIRECTIVES}),
    Role.AUDITOR: frozenset({G.REPLAY, G.CONFIDENTIAL_REPLAY, G.AUDIT_READ}),
    Role.ADMIN: frozenset({G.MANAGE, G.AUDIT_READ, G.REPORTS}),
}

ROLE_LABELS_VI: dict[Role, str] = {
    Role.CHAIR: "Chủ trì",
    Role.SECRETARY: "Thư ký",
    Role.VENUE: "Cán bộ điều hành điểm cầu",
    Role.RECEPTION: "Cán bộ bàn tiếp nhận",
    Role.DISPLAY: "Bảng hiển thị số thứ tự",
    Role.FOLLOW_UP: "Cán bộ theo dõi, đôn đốc",
    Role.UNIT: "Đơn vị được giao",
    Role.AUDITOR: "Cán bộ kiểm tra / thanh tra",
    Role.ADMIN: "Quản trị hệ thống",
}


def grants_for(roles: Iterable[Role | str]) -> frozenset[Grant]:
    """The union of the grants of ``roles``; unknown role names carry no grant."""
    result: set[Grant] = set()
    for name in roles:
        try:
            result |= ROLE_GRANTS[Role(name)]
        except ValueError:
            continue
    return frozenset(result)
