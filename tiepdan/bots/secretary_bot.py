"""The secretary (thư ký) as a bot: writes a called case's minutes through the pages and JSON a secretary's
browser uses, signed in with a console account of the role ``secretary`` (:class:`~tiepdan.bots.console.ConsoleClient`).

For one case (:meth:`SecretaryBot.take_minutes`), while it is heard:

1. finds the case's draft the call opened: the minutes list ``GET /bien-ban`` (the page the secretary opens)
   links each draft as ``/bien-ban/<session>/<case>``; the newest link of the session not handled yet whose
   draft (``GET /api/minutes/<session>/<case>``) names the called venue among its attendees;
2. the first time, reads the units a directive may go to from the minutes page's directive row
   (``GET /bien-ban/<session>/<case>``: the ``<select>`` of active units);
3. saves the whole form once (``PUT /api/minutes/<session>/<case>`` on the version it read): the prefilled
   request and history kept, the attendees, the local report, the discussion, the chair's conclusion, the
   answer "directed to units", the outcome, the handling direction and one directive to a unit with a
   deadline in working days (:func:`minutes_content`);
4. reads it back to the citizen (``POST /api/minutes-approval/<session>/<case>/readback``) and marks it
   "confirmed verbally" with the time in the case's recording (``…/verbal``, ``mm:ss`` since the call).

The chair approves with :meth:`~tiepdan.bots.console.ChairBot.approve` (the chair's own account and API).
A refused request raises :class:`~tiepdan.bots.console.ConsoleRefused`; none of this reads the database.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .console import ConsoleClient, ConsoleRefused

__all__ = ["SecretaryBot", "TakenMinutes", "WORKING_DAYS", "draft_links", "unit_options", "minutes_content",
           "media_time"]

#: the directive's deadline, in working days after the reception
WORKING_DAYS = 15
_POLL_S = 0.2
_TEMPLATE = re.compile(r'<template id="directive-row">(.*?)</template>', re.S)
_OPTION = re.compile(r'<option value="([^"]+)"[^>]*>([^<]*)</option>')


@dataclass(frozen=True)
class TakenMinutes:
    """What the secretary did for one case: the draft's case id and version saved, the read-back's hash the
    citizen confirmed, the recording time noted, and the unit the directive went to (id, name)."""

    case_id: str
    version: int
    confirmed_sha256: str
    media_time: str
    unit: str
    unit_name: str


def draft_links(page: str, session_id: str) -> list[str]:
    """The case ids the minutes list links for ``session_id``, in the page's order (the latest saved first),
    each once."""
    found = re.findall(rf'href="/bien-ban/{re.escape(session_id)}/([A-Za-z0-9-]{{1,36}})"', page)
    return list(dict.fromkeys(found))


def unit_options(page: str) -> list[tuple[str, str]]:
    """(unit id, name) a directive may go to, from the minutes page's directive row template."""
    template = _TEMPLATE.search(page)
    if template is None:
        return []
    return [(html.unescape(value), html.unescape(name)) for value, name in _OPTION.findall(template.group(1))]


def media_time(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` from an hour), as the approval API takes a time in the recording."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _authority(venue_name: str) -> str:
    """"Xã Tiên Du" → "Ủy ban nhân dân xã Tiên Du"."""
    return f"Ủy ban nhân dân {venue_name[:1].lower()}{venue_name[1:]}" if venue_name else "Ủy ban nhân dân cấp xã"


def minutes_content(prefilled: dict[str, Any], *, venue: str, venue_name: str, main: str, unit: str,
                    unit_name: str, working_days: int = WORKING_DAYS) -> dict[str, Any]:
    """The whole form as the secretary saves it: the prefilled request and history kept, the rest typed."""
    authority = _authority(venue_name)
    request = str(prefilled.get("citizen_request") or "").strip() or "Công dân trình bày nội dung đơn đã đăng ký."
    return {
        **prefilled,
        "attendees": [
            {"venue": main, "people": f"Chủ trì phiên tiếp công dân; đại diện {unit_name}; thư ký ghi biên bản."},
            {"venue": venue, "people": f"Công dân; Chủ tịch {authority}; công chức địa chính - xây dựng."},
        ],
        "citizen_request": request,
        "local_report": (f"Đại diện {authority} báo cáo: địa phương đã tiếp nhận đơn, kiểm tra hồ sơ và trả lời "
                         "công dân bằng văn bản; công dân chưa đồng ý với nội dung trả lời."),
        "discussion": (f"Công dân trình bày bổ sung. Đại diện {unit_name} nêu căn cứ pháp lý và đề nghị kiểm tra "
                       "lại hồ sơ tại địa phương."),
        "conclusion": (f"Giao {unit_name} chủ trì, phối hợp với {authority} kiểm tra, rà soát toàn bộ hồ sơ vụ "
                       f"việc, báo cáo kết quả và đề xuất hướng giải quyết trong {working_days} ngày làm việc; "
                       "thông báo kết quả cho công dân theo quy định."),
        "answer": "directed",
        "outcome": "assigned_to_unit",
        "handling_direction": "propose_acceptance",
        "directives": [{"unit": unit, "working_days": working_days,
                        "content": (f"Kiểm tra, rà soát hồ sơ vụ việc, phối hợp với {authority} đề xuất hướng "
                                    "giải quyết, báo cáo kết quả.")}],
    }


class SecretaryBot:
    """One secretary taking the minutes of ``session_id``'s called cases (see the module docstring)."""

    def __init__(self, client: ConsoleClient, session_id: str, *, main: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.session_id = session_id
        self.main = main
        self.clock = clock
        self.handled: set[str] = set()
        self.units: list[tuple[str, str]] = []
        self._taken = 0
        self._tab = f"thu-ky-may-{session_id}"[:64]

    def _api(self, case_id: str) -> str:
        return f"/api/minutes/{self.session_id}/{case_id}"

    async def _page(self, url: str) -> str:
        response = await self.client.http.get(url)
        if response.status_code != 200:
            raise ConsoleRefused(f"GET {url}", response.status_code, "page_refused")
        return response.text

    async def find_draft(self, venue: str, *, timeout: float) -> dict[str, Any]:
        """The draft the call of ``venue`` opened (not handled before), as ``GET /api/minutes/…`` answers it;
        :class:`TimeoutError` when none appears within ``timeout`` seconds."""
        deadline = self.clock() + timeout
        looked: set[str] = set()
        while True:
            for case_id in draft_links(await self._page("/bien-ban"), self.session_id):
                if case_id in self.handled or case_id in looked:
                    continue
                draft = await self.client.get_json(self._api(case_id))
                looked.add(case_id)
                attendees = draft["content"].get("attendees") or []
                if draft["state"] == "open" and any(a.get("venue") == venue for a in attendees):
                    return draft
            if self.clock() >= deadline:
                raise TimeoutError(f"no minutes draft opened for the call of {venue}")
            await asyncio.sleep(_POLL_S)

    async def _units(self, case_id: str) -> list[tuple[str, str]]:
        if not self.units:
            self.units = unit_options(await self._page(f"/bien-ban/{self.session_id}/{case_id}"))
            if not self.units:
                raise ConsoleRefused("minutes page", 200, "no_unit")
        return self.units

    async def take_minutes(self, venue: str, venue_name: str, *, called_at: float,
                           timeout: float = 15.0) -> TakenMinutes:
        """Write, read back and mark confirmed the minutes of the case just called at ``venue`` (at
        ``called_at`` on :attr:`clock`: the recording time is counted from it)."""
        draft = await self.find_draft(venue, timeout=timeout)
        case_id = str(draft["case"])
        self.handled.add(case_id)
        units = await self._units(case_id)
        unit, unit_name = units[self._taken % len(units)]
        self._taken += 1
        content = minutes_content(draft["content"], venue=venue, venue_name=venue_name, main=self.main, unit=unit,
                                  unit_name=unit_name)
        saved = await self.client.put_json(self._api(case_id), {"base_version": int(draft["version"]),
                                                                 "client": self._tab, "content": content})
        version = int(saved["version"])
        approval = f"/api/minutes-approval/{self.session_id}/{case_id}"
        read = await self.client.post_json(f"{approval}/readback", {"version": version})
        heard = media_time(self.clock() - called_at)
        confirmed = await self.client.post_json(f"{approval}/verbal", {"readback_sha256": read["readback_sha256"],
                                                                       "media_time": heard})
        return TakenMinutes(case_id, version, str(confirmed["confirmed_sha256"]), heard, unit, unit_name)
