"""A Hypothesis state machine over the console's HTTP API (SQLite and PostgreSQL): intakes of new and
known citizens of every petition kind, attached to cases or not, re-classifications, edits, directives,
searches, case views (API and page), attachment uploads and downloads and duplicate checks, by every
console role. After every step:

* no answer to a role without ``identity_read`` holds the name, ID number, phone or address of anybody
  but the parties of the open case it is about (searched in the raw bytes and in the decoded text, in
  NFC and NFD, upper and lower case); a name search never finds a confidential case; the duplicate check
  never names a confidential case or a sealed record to them; a confidential case's files never
  download for them;
* every case holding a denunciation (or re-classified as one) is confidential, no confidential case
  refers to a petitioner in clear, and no sealed handle is shared by two cases.

The app, its accounts and their sessions are made once per database; each example starts from empty
complaint tables (the audit log is append-only and simply grows). The app's clock advances a
millisecond at every reading, so records are ordered by creation and a sequence replays the same way.
A failing run prints its sequence as generated (at most 11 steps): shrinking would replay hundreds of
HTTP sequences, past the suite's time limit per test."""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import unicodedata
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, select, union_all

from complaints.directives import add_unit
from complaints.duplicates import fold_text
from complaints.enums import PetitionKind
from complaints.tables import (
    attachments,
    cases,
    delegation_members,
    delegations,
    directive_reports,
    directives,
    handling_decisions,
    identity_vault,
    petition_parties,
    petitioner_keys,
    petitioners,
    petitions,
    reception_entries,
    respondents,
    segment_refs,
)
from room_console.accounts import add_user
from room_console.context import ConsoleContext
from signaling.grants import Role
from tiepdan.app import create_app

from ._helpers import PASSWORD, page_token, sign_in

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 2, 0, tzinfo=UTC).timestamp()  # 09:00 in Viet Nam, a Friday
T = TypeVar("T")


@dataclass(frozen=True)
class Person:
    full_name: str
    id_number: str
    phone: str
    address: str

    def secrets(self) -> tuple[str, ...]:
        return (self.full_name, self.id_number, self.phone, self.address)


# Names share no word with one another's full name, the contents, the summaries or the respondents.
PEOPLE = (
    Person("Nguyễn Văn Hùng", "027085012345", "0912345678", "Thôn Đông Khê, xã Tiên Du, tỉnh Bắc Ninh"),
    Person("Trần Thị Mai", "027190054321", "0987654321", "Xóm Mới, xã Yên Phong, tỉnh Bắc Ninh"),
    Person("Lê Ánh Tuyết", "001188023456", "0903456789", "Số 12 phố Hàng Bạc, phường Hoàn Kiếm, Hà Nội"),
    Person("Đặng Quốc Khánh", "036092034567", "0978123456", "Ấp Mỹ Lợi, xã Phú Mỹ, tỉnh Đồng Tháp"),
)
KINDS = [kind.value for kind in PetitionKind]
KIND = st.sampled_from([*KINDS, "denunciation"])  # every kind, a denunciation two times in five
CONTENTS = ("Đề nghị xem xét việc bồi thường đất nông nghiệp", "Phản ánh việc cấp giấy chứng nhận chậm",
            "Cán bộ địa chính nhận tiền khi làm thủ tục", "Tranh chấp lối đi chung giữa các hộ")
SUMMARIES = ("Bồi thường khi thu hồi đất", "Cấp giấy chứng nhận quyền sử dụng đất", "Vi phạm của cán bộ xã")
STATUSES = ("received", "in_handling", "accepted")
ROLES = [role.value for role in Role]
READERS = [role for role in ROLES if role != Role.CHAIR.value]  # every role without identity_read
FILE = b"%PDF-1.4 ban scan don"


class Harness:
    """The app on one event loop, with one signed-in client per role, driven from synchronous rules."""

    def __init__(self, make_settings: Callable[..., Any], database_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.app: FastAPI = create_app(make_settings(database_url=database_url))
        self._lifespan = self.app.router.lifespan_context(self.app)
        self.clients: dict[str, httpx.AsyncClient] = {}
        self.csrf: dict[str, str] = {}
        self.run(self._start())

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    @property
    def console(self) -> ConsoleContext:
        console: ConsoleContext = self.app.state.console
        return console

    async def _start(self) -> None:
        await self._lifespan.__aenter__()
        ticks = itertools.count()
        self.console.clock = lambda: NOW + next(ticks) / 1000
        for role in ROLES:
            await add_user(self.console.engine, username=role, display_name=f"Cán bộ {role}", roles=(role,),
                           password=PASSWORD, unit="so-xd" if role == Role.UNIT.value else None,
                           options=self.console.options, now=NOW)
        async with self.console.engine.begin() as conn:
            await add_unit(conn, "so-xd", "Sở Xây dựng", track="state")
        for role in ROLES:
            http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://testserver")
            await sign_in(http, role)
            self.clients[role] = http
            self.csrf[role] = page_token((await http.get("/")).text)

    async def reset(self) -> None:
        async with self.console.engine.begin() as conn:
            for table in (attachments, directive_reports, directives, handling_decisions, segment_refs,
                          reception_entries, delegation_members, delegations, petition_parties, respondents,
                          petitions, cases, petitioner_keys, identity_vault, petitioners):
                await conn.execute(delete(table))

    async def call(self, role: str, method: str, url: str, **kw: Any) -> httpx.Response:
        if method != "GET":
            kw["headers"] = {"x-csrf-token": self.csrf[role], **kw.get("headers", {})}
        return await self.clients[role].request(method, url, **kw)

    def close(self) -> None:
        async def stop() -> None:
            for http in self.clients.values():
                await http.aclose()
            await self._lifespan.__aexit__(None, None, None)

        try:
            self.run(stop())
        finally:
            self.loop.close()


def _forms(value: str) -> set[str]:
    out = set()
    for form in ("NFC", "NFD"):
        text = unicodedata.normalize(form, value)
        out |= {text, text.upper(), text.lower()}
    return out


def revealed(response: httpx.Response, people: Collection[Person]) -> list[str]:
    """The secrets of ``people`` found in ``response``: its raw bytes and headers, and its text with
    JSON and HTML escapes undone."""
    raw = response.content + b"\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items()).encode()
    texts = [raw]
    decoded = response.content.decode("utf-8", errors="replace")
    if response.headers.get("content-type", "").startswith("application/json"):
        texts.append(json.dumps(json.loads(decoded), ensure_ascii=False).encode())
    texts.append(html.unescape(decoded).encode())
    found = []
    for person in people:
        for value in person.secrets():
            if any(form.encode() in text for form in _forms(value) for text in texts):
                found.append(value)
    return found


@dataclass
class CaseModel:
    id: str
    code: str
    must_be_confidential: bool
    people: set[int] = field(default_factory=set)     # parties
    named: set[int] = field(default_factory=set)      # named by the case's own file names
    petitions: list[str] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)


class ConfidentialityMachine(RuleBasedStateMachine):
    harness: Harness

    def __init__(self) -> None:
        super().__init__()
        self.h = self.harness
        self.h.run(self.h.reset())
        self.cases: list[CaseModel] = []
        self.ids: list[tuple[int, str]] = []  # (person, petitioner id) as intakes answered them
        self.sealed_ids: set[str] = set()

    # -- helpers -------------------------------------------------------------------------------------

    def call(self, role: str, method: str, url: str, **kw: Any) -> httpx.Response:
        return self.h.run(self.h.call(role, method, url, **kw))

    def confidential_ids(self) -> set[str]:
        return {c.id for c in self.cases if c.must_be_confidential}

    def check(self, role: str, response: httpx.Response, allowed: Collection[int] = ()) -> None:
        """No secret of anybody but ``allowed`` in an answer to ``role`` (if it lacks identity_read)."""
        if role not in READERS:
            return
        others = tuple(p for i, p in enumerate(PEOPLE) if i not in allowed)
        leaked = revealed(response, others)
        assert leaked == [], (role, response.request.method, response.request.url.path, leaked)

    def allowed_in(self, case: CaseModel) -> set[int]:
        """Whose identity an answer about ``case`` may hold: its parties (and the people its files are
        named after) while it is open; nobody's once it is confidential."""
        return set() if case.must_be_confidential else case.people | case.named

    def pick(self, index: int) -> CaseModel:
        return self.cases[index % len(self.cases)]

    # -- rules ---------------------------------------------------------------------------------------

    def _intake(self, person: int, kind: str, content: str, *, petitioner_id: str | None = None,
                case: CaseModel | None = None) -> None:
        who = PEOPLE[person]
        body: dict[str, Any] = {
            "petition": {"kind": kind, "source": "in_person", "received_on": "2026-11-19", "content": content},
            "respondent": {"kind": "organisation", "name": "Ủy ban nhân dân phường Kinh Bắc"},
            "reception": {"reception_type": "routine", "form": "in_person"},
        }
        if petitioner_id is not None:
            body["petitioner_id"] = petitioner_id
        else:
            body["petitioner"] = {"full_name": who.full_name, "id_number": who.id_number, "phone": who.phone,
                                  "address_detail": who.address}
        if case is not None:
            body["case_id"] = case.id
        response = self.call(Role.RECEPTION.value, "POST", "/api/intake", json=body)
        assert response.status_code == 201, response.text
        self.check(Role.RECEPTION.value, response)
        result = response.json()
        if case is None:
            case = CaseModel(result["case_id"], result["tracking_code"], kind == "denunciation")
            self.cases.append(case)
        case.must_be_confidential |= kind == "denunciation"
        case.people.add(person)
        case.petitions.append(result["petition_id"])
        self.ids.append((person, result["petitioner_id"]))
        assert result["confidential"] == case.must_be_confidential

    @initialize(person=st.integers(0, len(PEOPLE) - 1), kind=KIND, content=st.sampled_from(CONTENTS))
    def first_intake(self, person: int, kind: str, content: str) -> None:
        self._intake(person, kind, content)

    @rule(person=st.integers(0, len(PEOPLE) - 1), kind=KIND, content=st.sampled_from(CONTENTS))
    def intake_new_person(self, person: int, kind: str, content: str) -> None:
        self._intake(person, kind, content)

    @precondition(lambda self: self.ids)
    @rule(which=st.integers(0, 40), kind=KIND, content=st.sampled_from(CONTENTS))
    def intake_known_person(self, which: int, kind: str, content: str) -> None:
        """A citizen on file (any record the desk has seen: open, or a handle of some case)."""
        person, petitioner_id = self.ids[which % len(self.ids)]
        self._intake(person, kind, content, petitioner_id=petitioner_id)

    @precondition(lambda self: self.ids)
    @rule(which=st.integers(0, 40), content=st.sampled_from(CONTENTS))
    def known_person_denounces(self, which: int, content: str) -> None:
        """The case of issue 9: somebody with an open record files a denunciation."""
        person, petitioner_id = self.ids[which % len(self.ids)]
        self._intake(person, "denunciation", content, petitioner_id=petitioner_id)

    @precondition(lambda self: self.cases)
    @rule(index=st.integers(0, 20), person=st.integers(0, len(PEOPLE) - 1), known=st.booleans(),
          which=st.integers(0, 40), kind=KIND, content=st.sampled_from(CONTENTS))
    def attach(self, index: int, person: int, known: bool, which: int, kind: str, content: str) -> None:
        """Attach a petition to an existing case ("Gắn vào vụ việc này"), of a new or a known citizen."""
        petitioner_id = None
        if known:
            person, petitioner_id = self.ids[which % len(self.ids)]
        self._intake(person, kind, content, petitioner_id=petitioner_id, case=self.pick(index))

    @precondition(lambda self: self.cases)
    @rule(index=st.integers(0, 20), kind=KIND)
    def reclassify(self, index: int, kind: str) -> None:
        case = self.pick(index)
        seen = self.call(Role.SECRETARY.value, "GET", f"/api/cases/{case.id}")
        self.check(Role.SECRETARY.value, seen, self.allowed_in(case))
        edited = self.call(Role.SECRETARY.value, "PATCH", f"/api/cases/{case.id}",
                           json={"kind": kind, "version": seen.json()["version"]})
        assert edited.status_code == 200, edited.text
        case.must_be_confidential |= kind == "denunciation"
        self.check(Role.SECRETARY.value, edited, self.allowed_in(case))
        assert edited.json()["confidential"] == case.must_be_confidential

    @precondition(lambda self: self.cases)
    @rule(index=st.integers(0, 20), status=st.sampled_from(STATUSES), summary=st.sampled_from(SUMMARIES))
    def edit(self, index: int, status: str, summary: str) -> None:
        case = self.pick(index)
        seen = self.call(Role.RECEPTION.value, "GET", f"/api/cases/{case.id}")
        self.check(Role.RECEPTION.value, seen, self.allowed_in(case))
        edited = self.call(Role.RECEPTION.value, "PATCH", f"/api/cases/{case.id}",
                           json={"status": status, "summary": summary, "version": seen.json()["version"]})
        assert edited.status_code == 200, edited.text
        self.check(Role.RECEPTION.value, edited, self.allowed_in(case))

    @precondition(lambda self: self.cases)
    @rule(index=st.integers(0, 20))
    def direct(self, index: int) -> None:
        """A directive to the unit's account: the unit may then read the case."""
        case = self.pick(index)
        issued = self.call(Role.CHAIR.value, "POST", f"/api/cases/{case.id}/directives", json={
            "unit_id": "so-xd", "content": "Kiểm tra, báo cáo kết quả", "issued_on": "2026-11-20",
            "working_days": 10})
        assert issued.status_code == 201, issued.text

    @precondition(lambda self: self.cases)
    @rule(index=st.integers(0, 20))
    def view(self, index: int) -> None:
        """The case file (API and page) and the download of each of its files, by every role."""
        case = self.pick(index)
        for role in ROLES:
            for url in (f"/api/cases/{case.id}", f"/cases/{case.id}"):
                response = self.call(role, "GET", url)
                assert response.status_code in (200, 403, 404), (role, url, response.status_code)
                self.check(role, response, self.allowed_in(case) if response.status_code == 200 else ())
            for attachment in case.attachments:
                self.download(role, case, attachment)
        chair = self.call(Role.CHAIR.value, "GET", f"/api/cases/{case.id}").json()
        self.sealed_ids |= {p["petitioner_id"] for pet in chair["petitions"] for p in pet["parties"] if p["sealed"]}

    @precondition(lambda self: self.ids)
    @rule(which=st.integers(0, 40), role=st.sampled_from(ROLES))
    def search(self, which: int, role: str) -> None:
        person = self.ids[which % len(self.ids)][0]
        name = PEOPLE[person].full_name
        response = self.call(role, "GET", "/api/cases", params={"q": name})
        assert response.status_code in (200, 403), response.text
        self.check(role, response)
        # The page echoes its query in the form: ask it without diacritics (the search ignores them), so
        # the echo is no secret form of the name while the name itself would still be seen.
        page = self.call(role, "GET", "/cases", params={"q": fold_text(name)})
        self.check(role, page)
        if response.status_code != 200:
            return
        found = {item["id"] for item in response.json()["items"]}
        listed = set(re.findall(r'href="/cases/([0-9a-f-]{36})"', page.text))
        may_find = {c.id for c in self.cases if person in c.people and not c.must_be_confidential}
        assert found <= may_find and listed <= may_find, (role, found - may_find, listed - may_find)

    def download(self, role: str, case: CaseModel, attachment: str) -> None:
        response = self.call(role, "GET", f"/api/attachments/{attachment}")
        if role in READERS and case.must_be_confidential:
            assert response.status_code in (403, 404), (role, response.status_code)
        self.check(role, response, self.allowed_in(case) if response.status_code == 200 else ())

    @precondition(lambda self: self.cases)
    @rule(index=st.integers(0, 20), which=st.integers(0, 20), person=st.integers(0, len(PEOPLE) - 1))
    def upload(self, index: int, which: int, person: int) -> None:
        """A file handed in with a petition, then downloaded by every role."""
        case = self.pick(index)
        petition_id = case.petitions[which % len(case.petitions)]
        name = f"Đơn của {PEOPLE[person].full_name}.pdf"  # a file name may name the citizen
        response = self.call(Role.RECEPTION.value, "POST", f"/api/petitions/{petition_id}/attachments",
                             params={"name": name}, content=FILE, headers={"content-type": "application/pdf"})
        assert response.status_code == 201, response.text
        case.named.add(person)
        self.check(Role.RECEPTION.value, response, self.allowed_in(case))
        case.attachments.append(response.json()["id"])
        for role in ROLES:
            self.download(role, case, response.json()["id"])

    @precondition(lambda self: self.ids)
    @rule(which=st.integers(0, 40), exact=st.booleans(), with_name=st.booleans())
    def duplicates(self, which: int, exact: bool, with_name: bool) -> None:
        who = PEOPLE[self.ids[which % len(self.ids)][0]]
        number = who.id_number if exact else who.id_number[:-1] + str((int(who.id_number[-1]) + 1) % 10)
        response = self.call(Role.RECEPTION.value, "POST", "/api/intake/duplicates", json={
            "full_name": who.full_name if with_name else "", "id_number": number,
            "address": who.address if with_name else ""})
        assert response.status_code == 200, response.text
        answer = response.json()
        on_file = set().union(*(c.people for c in self.cases if not c.must_be_confidential))
        self.check(Role.RECEPTION.value, response, on_file)
        for hidden in self.confidential_ids() | {c.code for c in self.cases if c.must_be_confidential}:
            assert hidden not in response.text
        for sealed in self.sealed_ids:
            assert sealed not in response.text
        assert not any(c["sealed"] for c in answer["candidates"])
        assert set(answer) == {"candidates", "sealed_match", "sealed_notice"}
        assert (answer["sealed_notice"] is not None) == answer["sealed_match"]

    # -- invariants ----------------------------------------------------------------------------------

    @invariant()
    def every_denunciation_is_confidential_and_sealed_for_its_case_alone(self) -> None:
        async def read() -> tuple[dict[str, bool], list[tuple[str, str, bool]]]:
            async with self.h.console.engine.connect() as conn:
                flags = {r.id: bool(r.confidential)
                         for r in await conn.execute(select(cases.c.id, cases.c.confidential))}
                refs = union_all(
                    select(petitions.c.case_id, petition_parties.c.petitioner_id)
                    .join(petitions, petitions.c.id == petition_parties.c.petition_id),
                    select(reception_entries.c.case_id, reception_entries.c.petitioner_id)
                    .where(reception_entries.c.petitioner_id.is_not(None)),
                ).subquery()
                rows = [(r[0], r[1], bool(r[2])) for r in await conn.execute(
                    select(refs.c.case_id, refs.c.petitioner_id, petitioners.c.sealed)
                    .join(petitioners, petitioners.c.id == refs.c.petitioner_id))]
            return flags, rows

        flags, refs = self.h.run(read())
        assert {c.id: c.must_be_confidential for c in self.cases} == flags
        owners: dict[str, set[str]] = {}
        for case_id, pid, sealed in refs:
            assert sealed or not flags[case_id], f"a confidential case refers to a petitioner in clear: {case_id}"
            if sealed:
                owners.setdefault(pid, set()).add(case_id)
        assert all(len(found) == 1 for found in owners.values()), "a sealed handle is shared by two cases"


def test_no_denouncer_identity_leaks_by_any_path(make_settings, database_url: str) -> None:  # type: ignore[no-untyped-def]
    harness = Harness(make_settings, database_url)
    try:
        machine = type("Machine", (ConfidentialityMachine,), {"harness": harness})
        run_state_machine_as_test(machine, settings=settings(
            max_examples=20, stateful_step_count=10, deadline=None, database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    finally:
        harness.close()
