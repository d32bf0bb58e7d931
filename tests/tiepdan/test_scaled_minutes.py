"""The minutes chain in the scaled topology (issue #12): a ``--role control`` process (console, the minutes
consumers, documents) and a ``--role media`` process (room server) on PostgreSQL + Redis. Over HTTP, as the
officials do: the chair calls a case on the control process and the ``minutes-drafts`` consumer opens its draft;
the secretary finds it on ``/bien-ban`` and saves the form (versions; a stale base is a 409 conflict); read back,
the citizen's signature sent from the called venue, the chair's approval; the chair ends the case and the
``minutes-closing`` consumer writes it into the complaint database (reception entry, handling decision, directive,
the case's recording segment) with one ``case.recorded``; after a restart of the control process a redelivered
``case.closed`` and a recall's ``case.closed`` write nothing more; the biên bản and the conclusion notice are
issued and signed (a PKCS#12 signer from a throwaway CA, validated by pyHanko), downloaded with their public twins,
and the public page ``/xac-minh`` finds them by their hashes."""

from __future__ import annotations

import hashlib
import html
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from sqlalchemy import func, select

from signaling.events import CaseClosed
from tests.harness import TEST_USERS, LiveServer, _settings, run_coroutine
from tests.minutes import _pki
from tests.minutes._approvals import signature_png
from tests.minutes._pdftext import everything, page_text
from tiepdan.bots.secretary_bot import draft_links, minutes_content, unit_options

from .test_scaled_console import ROOM, VENUES, _connected, _until

pytestmark = pytest.mark.system

UNIT, UNIT_NAME = "ubnd-tien-du", "UBND xã Tiên Du"
REQUEST = "Đề nghị cấp giấy chứng nhận quyền sử dụng đất cho thửa 112."
PASSPHRASE = "mat-khau-ky-so"
ID_NUMBER = "001203012346"


async def _seed(env: dict[str, str]) -> str:
    """The directive's unit, a case registered at the desk, its ticket at Tiên Du and the roll call (library calls,
    as the desk and the roll-call page do); the case id."""
    from complaints.directives import add_unit
    from complaints.enums import PetitionerType, PetitionKind, PetitionSource
    from complaints.intake import Intake, record_intake
    from complaints.petitioners import NewPetitioner
    from complaints.petitions import NewPetition
    from evidence import Keyring
    from schedules import issue_ticket
    from signaling.grants import ROLE_GRANTS, Role, grants_for
    from tests.schedules._roll_call import record_all_present
    from tiepdan.db import make_engine

    settings = _settings(env)
    keyring = Keyring.load(settings.resolved_keyring_path)
    now = datetime.now(UTC)
    engine = make_engine(settings.resolved_database_url)
    try:
        async with engine.begin() as conn:
            await add_unit(conn, UNIT, UNIT_NAME, track="state")
            intake = await record_intake(conn, keyring, Intake(
                petition=NewPetition(source=PetitionSource.IN_PERSON, kind=PetitionKind.COMPLAINT,
                                     received_on=now.date(), content="Nội dung đơn về đất đai tại thửa 112.",
                                     request=REQUEST),
                petitioner=NewPetitioner(kind=PetitionerType.INDIVIDUAL, full_name="Nguyễn Văn An",
                                         id_number=ID_NUMBER, address_detail="Thôn Tây, xã Tiên Du"),
                venue="tien-du"), actor="user:ban-tiep-dan", grants=grants_for(["reception"]), now=now)
            await issue_ticket(conn, ROOM, venue="tien-du", case=intake.case_id, actor="user:ban-tiep-dan",
                               grants=frozenset(ROLE_GRANTS[Role.RECEPTION]), clock=lambda: datetime.now(UTC))
            await record_all_present(conn, ROOM, clock=lambda: datetime.now(UTC))
        return intake.case_id
    finally:
        await engine.dispose()


async def _written(env: dict[str, str], case_id: str) -> dict[str, Any]:
    """What the complaint database holds of the case once the minutes closed (counts and the rows)."""
    from complaints.tables import directives, handling_decisions, reception_entries, recording_segments, segment_refs
    from minutes.tables import minutes_case_records, minutes_drafts
    from signaling.consumers import processed_events
    from signaling.outbox import outbox
    from tiepdan.db import make_engine

    engine = make_engine(_settings(env).resolved_database_url)
    try:
        async with engine.connect() as conn:
            def rows(table: Any) -> Any:
                return select(table).where(table.c.case_id == case_id)

            return {
                "records": (await conn.execute(rows(minutes_case_records))).mappings().all(),
                "receptions": (await conn.execute(rows(reception_entries))).mappings().all(),
                "decisions": (await conn.execute(rows(handling_decisions))).mappings().all(),
                "directives": (await conn.execute(rows(directives))).mappings().all(),
                "segments": (await conn.execute(rows(recording_segments))).mappings().all(),
                "segment_refs": (await conn.execute(rows(segment_refs))).mappings().all(),
                "draft_state": (await conn.execute(select(minutes_drafts.c.state).where(
                    minutes_drafts.c.case_id == case_id))).scalar_one_or_none(),
                "recorded_events": (await conn.execute(select(func.count()).select_from(outbox).where(
                    outbox.c.type == "case.recorded", outbox.c.aggregate == f"case:{case_id}"))).scalar_one(),
                "closing_keys": set((await conn.execute(select(processed_events.c.event_key).where(
                    processed_events.c.consumer == "minutes.closing"))).scalars()),
            }
    finally:
        await engine.dispose()


async def _relayed(env: dict[str, str], event_id: str) -> bool:
    """Whether the outbox row of ``event_id`` was published on the bus."""
    from signaling.outbox import outbox
    from tiepdan.db import make_engine

    engine = make_engine(_settings(env).resolved_database_url)
    try:
        async with engine.connect() as conn:
            relayed = (await conn.execute(select(outbox.c.relayed_at).where(outbox.c.event_id == event_id)))
            return relayed.scalar_one_or_none() is not None
    finally:
        await engine.dispose()


def _json(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: " \
                                           f"{response.status_code} {response.text[:500]}"
    body: dict[str, Any] = response.json()
    return body


def _issued(client: httpx.Client, csrf: str, action: str) -> None:
    done = client.post(action, data={"csrf_token": csrf})
    assert done.status_code == 303, f"{action}: {done.status_code} {done.text[:800]}"
    assert done.headers["location"] == f"/van-ban/{ROOM}?ok=signed"


def _documents(page: str) -> dict[str, str]:
    """The session's documents the page lists: id → kind."""
    rows = re.findall(r'data-testid="document-row" data-document="([^"]+)">\s*<td>([^<]*?) <span', page)
    return {document: html.unescape(kind) for document, kind in rows}


def _valid(pdf: bytes, ca: _pki.TestCA) -> None:
    assert pdf.startswith(b"%PDF-")
    status = _pki.validate(pdf, ca)
    assert isinstance(status, PdfSignatureStatus)
    assert status.intact and status.valid and status.trusted and status.bottom_line
    assert status.coverage is SignatureCoverageLevel.ENTIRE_FILE


def test_minutes_from_the_call_to_the_signed_notice_with_control_and_media_in_separate_processes(
        server_factory: Callable[..., LiveServer], module_pg_url: str, redis_base_url: str, redis_run_prefix: str,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    started = time.monotonic()
    secrets_dir: Path = tmp_path_factory.mktemp("minutes-keys")
    ca = _pki.make_ca()
    p12 = _pki.write_pkcs12(secrets_dir / "ky-so.p12", ca.signer, ca, PASSPHRASE)
    env = {"TIEPDAN_DATABASE_URL": module_pg_url, "TIEPDAN_REDIS_URL": redis_base_url,
           "TIEPDAN_REDIS_PREFIX": f"{redis_run_prefix}{secrets.token_hex(3)}:",
           "TIEPDAN_KEYRING_PATH": str(secrets_dir / "keyring.json"),
           "TIEPDAN_SIGNER": "pkcs12", "TIEPDAN_SIGNER_PKCS12_PATH": str(p12), "TIEPDAN_SIGNER_PIN": PASSPHRASE}
    control = server_factory(env=env, args=("--role", "control"))
    media = server_factory(env=env, users=[], args=("--role", "media"))
    marks = {"servers up": time.monotonic()}
    done = control.cli("session", "open", ROOM, *VENUES, "--host", "bi-thu-tinh-uy")
    assert done.returncode == 0, done.stderr
    case_id = run_coroutine(_seed(control.env))

    with control.http_client("chair") as (chair, chair_csrf), \
            control.http_client("secretary") as (secretary, csrf), \
            control.http_client("venue") as (venue, venue_csrf):
        # the media process has the room open (its state in Redis): it records the case from the call on
        _until(lambda: _connected(chair.get("/phien").text) == 0, "the media process to open the room", timeout=20)
        marks["room open"] = time.monotonic()
        # 1. the chair calls; the control process's minutes-drafts consumer opens the draft (version 1)
        _json(chair.post(f"/api/sessions/{ROOM}/queue/call-next", headers={"X-CSRF-Token": chair_csrf}))
        _until(lambda: case_id in draft_links(secretary.get("/bien-ban").text, ROOM), "the call to open the draft",
               timeout=20)
        api = f"/api/minutes/{ROOM}/{case_id}"
        draft = _json(secretary.get(api))
        assert draft["version"] == 1 and draft["state"] == "open"
        assert draft["content"]["citizen_request"] == REQUEST  # prefilled from the registration
        assert "tien-du" in {a["venue"] for a in draft["content"]["attendees"]}

        # 2. the secretary's page, then autosaves: versions 2 and 3; a save on version 2 from another tab: 409
        page = secretary.get(f"/bien-ban/{ROOM}/{case_id}")
        assert page.status_code == 200, page.text[:500]
        assert (UNIT, UNIT_NAME) in unit_options(page.text)
        content = minutes_content(draft["content"], venue="tien-du", venue_name="Xã Tiên Du", main="main",
                                  unit=UNIT, unit_name=UNIT_NAME)
        headers = {"X-CSRF-Token": csrf}
        first = _json(secretary.put(api, headers=headers, json={"base_version": 1, "client": "tab-a",
                                                                "content": {**content, "discussion": "Công dân"}}))
        assert first["version"] == 2 and first["created"]
        saved = _json(secretary.put(api, headers=headers, json={"base_version": 2, "client": "tab-a",
                                                                "content": content}))
        assert saved["version"] == 3 and saved["created"]
        stale = _json(secretary.put(api, headers=headers, json={"base_version": 2, "client": "tab-b",
                                                                "content": {**content, "discussion": "ghi đè"}}), 409)
        assert stale["error"] == "conflict" and stale["current"]["version"] == 3
        assert _json(secretary.get(api))["content"]["discussion"] == content["discussion"]  # nothing overwritten

        # 3. read back; the citizen signs on the called venue's page; the chair approves
        approval = f"/api/minutes-approval/{ROOM}/{case_id}"
        read = _json(secretary.post(f"{approval}/readback", headers=headers, json={"version": 3}))
        shown = _json(venue.get(f"/api/minutes-approval/{ROOM}"))["readback"]
        assert shown is not None and shown["case"] == case_id
        assert shown["content"]["conclusion"] == content["conclusion"]
        signed = _json(venue.post(f"{approval}/signature", params={"readback": read["readback_sha256"]},
                                  headers={"X-CSRF-Token": venue_csrf, "content-type": "image/png"},
                                  content=signature_png()))
        assert signed["state"] == "confirmed" and signed["confirmed_sha256"] == read["readback_sha256"]
        assert signed["signature_sha256"] == hashlib.sha256(signature_png()).hexdigest()
        approved = _json(chair.post(f"{approval}/approve", headers={"X-CSRF-Token": chair_csrf},
                                    json={"confirmed_sha256": signed["confirmed_sha256"]}))
        assert approved["state"] == "approved" and not approved["problems"]

        # 4. the chair ends the case: the control process's minutes-closing consumer writes it
        _json(chair.post(f"/api/sessions/{ROOM}/queue/end", headers={"X-CSRF-Token": chair_csrf}))
        _until(lambda: _json(secretary.get(approval))["state"] == "recorded", "the case to be written", timeout=20)
        written = run_coroutine(_written(control.env, case_id))
        closed_key = f"{case_id}:1:case.closed"
        assert closed_key in written["closing_keys"]

    # the control process restarts (another consumer of the same groups): the closed case stays written once
    first_control = control
    assert '"logger": "minutes.drafts"' in first_control.log_text()  # the minutes consumers run on control only
    marks["recorded"] = time.monotonic()
    first_control.stop()
    control = server_factory(env=env, users=[], args=("--role", "control"))
    marks["restarted"] = time.monotonic()
    # case.closed again, to the new process: the same one redelivered (a new event id, the same key), then a
    # recall's closing (a new key); once the latter is handled, the former — published before it — was too
    redelivered = CaseClosed(session=ROOM, case=case_id, ticket_no=1, venue="tien-du", call_seq=1,
                             by="user:chutri")
    assert redelivered.key == closed_key
    control.publish(redelivered)
    _until(lambda: run_coroutine(_relayed(control.env, redelivered.event_id)),
           "the redelivered case.closed on the bus")
    control.publish(CaseClosed(session=ROOM, case=case_id, ticket_no=1, venue="tien-du", call_seq=2,
                               by="user:chutri"))
    _until(lambda: f"{case_id}:2:case.closed" in run_coroutine(_written(control.env, case_id))["closing_keys"],
           "the second case.closed handled", timeout=20)
    again = run_coroutine(_written(control.env, case_id))
    for what in ("records", "receptions", "decisions", "directives"):
        assert len(again[what]) == 1, (what, again[what])
    assert again["recorded_events"] == 1 and again["draft_state"] == "closed"
    record, reception = again["records"][0], again["receptions"][0]
    directive, decision = again["directives"][0], again["decisions"][0]
    assert record["content_sha256"] == signed["confirmed_sha256"] and record["reception_id"] == reception["id"]
    assert record["directives"] == [directive["id"]]
    assert reception["session_id"] == ROOM and reception["venue"] == "tien-du"
    assert reception["outcome"] == "assigned_to_unit" and signed["confirmed_sha256"] in reception["notes"]
    assert reception["officer"] == TEST_USERS["chair"].name
    assert directive["unit_id"] == UNIT and directive["deadline"] is not None
    assert directive["deadline"] > datetime.now(UTC).date()
    assert decision["direction"] == "propose_acceptance"
    # recording is on: the media process opened and closed the case's segment, the control process kept it;
    # the minutes name it, and the complaint database references it once it is complete
    segment = f"c1-{case_id}"
    assert record["segments"] == [segment]
    _until(lambda: len(run_coroutine(_written(control.env, case_id))["segment_refs"]) == 1,
           "the case's segment referenced", timeout=20)
    final = run_coroutine(_written(control.env, case_id))
    assert [s["segment"] for s in final["segments"]] == [segment]
    assert final["segment_refs"][0]["segment_id"] == segment
    assert final["segment_refs"][0]["sha256"] == final["segments"][0]["manifest_sha256"]
    assert len(final["receptions"]) == 1 and final["recorded_events"] == 1

    marks["replays checked"] = time.monotonic()
    with control.http_client(TEST_USERS["chair"]) as (chair, chair_csrf), \
            control.http_client(TEST_USERS["secretary"]) as (secretary, csrf):
        # 5. the biên bản (the secretary) and the conclusion notice (the chair), signed, with their public twins
        index = secretary.get("/van-ban")
        assert index.status_code == 200 and f'href="/van-ban/{ROOM}"' in index.text, index.text[:500]
        _issued(secretary, csrf, f"/van-ban/{ROOM}/bien-ban/{case_id}")
        _issued(chair, chair_csrf, f"/van-ban/{ROOM}/thong-bao")
        listing = chair.get(f"/van-ban/{ROOM}")
        assert listing.status_code == 200, listing.text[:500]
        documents = _documents(listing.text)
        assert sorted(documents.values()) == ["Biên bản tiếp công dân", "Thông báo kết luận"], listing.text[:2000]
        assert "documents-error" not in listing.text
        digests: dict[str, str] = {}
        pdfs: dict[tuple[str, str], bytes] = {}
        for document, kind in documents.items():
            for edition in ("ban-goc", "ban-cong-khai"):
                pdf = chair.get(f"/van-ban/tai-lieu/{document}/{edition}")
                assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf", pdf.text[:300]
                _valid(pdf.content, ca)
                digests[f"{document}/{edition}"] = hashlib.sha256(pdf.content).hexdigest()
                pdfs[kind, edition] = pdf.content
        original = " ".join(page_text(pdfs["Biên bản tiếp công dân", "ban-goc"]).split())
        assert ID_NUMBER in original and "Thôn Tây" in original and signed["signature_sha256"] in original
        for kind in documents.values():  # the public twins: no ID number, no address
            public_text = " ".join(everything(pdfs[kind, "ban-cong-khai"]).split())
            assert ID_NUMBER not in public_text and "Thôn Tây" not in public_text
            assert content["conclusion"][:40] in public_text

    marks["documents"] = time.monotonic()
    # 6. the public verification page (no login) finds each file by its hash, and the notice where its QR points
    with httpx.Client(base_url=control.base_url, timeout=10) as public:
        for key, digest in digests.items():
            document, edition = key.split("/")
            answer = public.get("/xac-minh", params={"ma-bam": digest})
            assert answer.status_code == 200, answer.text[:300]
            shown_kind = re.search(r'data-testid="verify-kind">([^<]*)<', answer.text)
            assert shown_kind is not None, f"{key}: not found"
            assert html.unescape(shown_kind.group(1)) == documents[document]
            field = "verify-public-sha256" if edition == "ban-cong-khai" else "verify-sha256"
            assert f'data-testid="{field}">{digest}<' in answer.text
            assert "Nguyễn Văn Chủ Trì" in answer.text  # the signer's common name
        notice = next(d for d, kind in documents.items() if kind == "Thông báo kết luận")
        assert "Nguyễn Văn Chủ Trì" in public.get(f"/xac-minh/{notice}").text
        unknown = public.get("/xac-minh", params={"ma-bam": "0" * 64})
        assert unknown.status_code == 200 and 'data-testid="verify-kind"' not in unknown.text
    assert '"logger": "minutes.' not in media.log_text()
    done = control.cli("session", "close", ROOM)
    assert done.returncode == 0, done.stderr
    media.stop()  # before the fixtures drop the test's schema and Redis keys under them
    control.stop()
    steps, last = [], started
    for what, at in marks.items():
        steps.append(f"{what} {at - last:.1f} s")
        last = at
    print(f"control + media, call → draft → saves → signature → approval → recorded → signed documents → verified: "
          f"{time.monotonic() - started:.1f} s ({', '.join(steps)})")
