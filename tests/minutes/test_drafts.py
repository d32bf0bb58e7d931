"""The live minutes' drafts on SQLite and PostgreSQL: opening on a call (idempotent), versions, conflicts
between two secretaries (never a silent overwrite), limits, text kept as typed, grants, and a denouncer's
identity sealed in the vault and never in a draft or a version."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from complaints.audit import verify_audit_log
from complaints.enums import HandlingDirection, PetitionKind
from complaints.errors import IdentityAccessDenied, NotFound
from complaints.tables import audit_events, identity_vault, petitioners
from complaints.vault import read_identity
from evidence import Keyring
from minutes.drafts import (
    Author,
    DraftConflict,
    DraftForbidden,
    DraftInvalid,
    SessionReception,
    list_versions,
    load_draft,
    load_version,
    open_draft,
    save_draft,
)
from minutes.drafts_consumer import drafts_handler
from minutes.drafts_content import MAX_TEXT_CHARS, DenouncerIdentity
from minutes.tables import minutes_draft_versions, minutes_drafts
from signaling.events import CaseCalled
from signaling.grants import Grant, grants_for

from ._approvals import CAL, CHAIR, SECRETARY, VENUE_OP, opened
from ._drafts import DENOUNCER, NOW, RECEPTION, REQUEST, SESSION, VENUE, register_case

pytestmark = pytest.mark.integration
SECOND = Author("user:thuky2", grants_for(["secretary"]))


async def _save(engine: AsyncEngine, keyring: Keyring, case_id: str, base: int, content: Mapping[str, object], *,
                author: Author = SECRETARY, client: str | None = "tab-a", identity: DenouncerIdentity | None = None,
                minutes: int = 1) -> int:
    async with engine.begin() as conn:
        saved = await save_draft(conn, session_id=SESSION, case_id=case_id, base_version=base, content=content,
                                 author=author, keyring=keyring, calendar=CAL, client=client, identity=identity,
                                 now=NOW + timedelta(minutes=minutes))
    return saved.draft.version


async def test_a_call_opens_one_prefilled_draft_however_often_it_is_delivered(engine: AsyncEngine,
                                                                               keyring: Keyring) -> None:
    async with engine.begin() as conn:
        case_id = await register_case(conn, keyring)
    async def lookup(conn: AsyncConnection, session_id: str) -> SessionReception | None:
        return RECEPTION if session_id == SESSION else None

    handle = drafts_handler(engine, CAL, lookup, clock=lambda: NOW)
    called = CaseCalled(session=SESSION, case=case_id, ticket_no=3, venue=VENUE, call_seq=1,
                        announcement_text="Mời công dân có số thứ tự 3")
    await handle(called)
    await handle(called)  # a redelivery
    await handle(called.model_copy(update={"event_id": "replayed"}))  # the outbox publishing again: same key
    await handle(CaseCalled(session=SESSION, case="no-such-case", ticket_no=4, venue=VENUE, call_seq=2,
                            announcement_text="x"))  # an unknown case is dropped, not retried for ever
    await handle(CaseCalled(session="no-such-session", case=case_id, ticket_no=5, venue=VENUE, call_seq=1,
                            announcement_text="x"))  # so is a session the scheduler does not hold
    async with engine.begin() as conn:
        again, opened = await open_draft(conn, session_id=SESSION, case_id=case_id, call_seq=5, venue=VENUE,
                                         reception=RECEPTION, calendar=CAL, now=NOW)  # a recall: the draft is open
        assert not opened
        draft = await load_draft(conn, session_id=SESSION, case_id=case_id, author=SECRETARY)
        assert (await conn.execute(select(minutes_drafts.c.id))).scalars().all() == [draft.id] == [again.id]
        assert len((await conn.execute(select(minutes_draft_versions))).all()) == 1
        actions = (await conn.execute(select(audit_events.c.action))).scalars().all()
        assert actions.count("minutes.draft_opened") == 1
        assert await verify_audit_log(conn) is None
    assert draft.version == 1 and draft.call_seq == 1 and draft.venue == VENUE and draft.state == "open"
    assert draft.reception == RECEPTION  # what the scheduler said of the session, for the reception entry
    assert draft.content.citizen_request == REQUEST
    assert draft.content.prior_handling.startswith("Tiếp lần đầu.") and "01/12/2026" in draft.content.prior_handling
    assert [a.venue for a in draft.content.attendees] == [VENUE]
    assert draft.issued_on == date(2026, 12, 10) and not draft.holds_identity and draft.sealed_handle is None


async def test_saves_make_versions_and_a_second_secretary_gets_a_conflict_not_an_overwrite(
        engine: AsyncEngine, keyring: Keyring) -> None:
    case_id = await opened(engine, keyring)
    first = {"discussion": "Công dân trình bày", "handling_direction": "guide"}
    assert await _save(engine, keyring, case_id, 1, first) == 2
    assert await _save(engine, keyring, case_id, 2, first) == 2  # nothing changed: no new version
    mine = {"discussion": "Công dân trình bày; UBND xã báo cáo", "handling_direction": "guide"}
    assert await _save(engine, keyring, case_id, 2, mine, minutes=2) == 3
    with pytest.raises(DraftConflict) as caught:  # the second secretary was still on version 2
        await _save(engine, keyring, case_id, 2, {"discussion": "Bản khác"}, author=SECOND, client="tab-b")
    current = caught.value.current
    assert (current.version, current.saved_by) == (3, SECRETARY.label)
    assert current.saved_at == NOW + timedelta(minutes=2) and current.content is not None
    assert current.content.discussion == mine["discussion"]
    assert "phiên bản 3 lúc 09:02:00" in caught.value.message_vi
    with pytest.raises(DraftConflict):  # a page without an id is no exception
        await _save(engine, keyring, case_id, 2, {"discussion": "Bản khác"}, author=SECOND, client=None)
    with pytest.raises(DraftConflict):  # a base from the future is no base
        await _save(engine, keyring, case_id, 9, {"discussion": "Bản khác"})
    # The page whose answer was lost (it saved 3 but never heard so) saves again on its base 2: its own line.
    assert await _save(engine, keyring, case_id, 2, {"discussion": mine["discussion"] + " thêm"}, minutes=3) == 4
    # Once the second secretary has seen version 4, their save goes through.
    assert await _save(engine, keyring, case_id, 4, {"discussion": "Bản khác"}, author=SECOND, client="tab-b") == 5
    async with engine.connect() as conn:
        versions = await list_versions(conn, session_id=SESSION, case_id=case_id, author=CHAIR)
        assert [(v.version, v.saved_by, v.base_version) for v in versions] == [
            (5, SECOND.label, 4), (4, SECRETARY.label, 2), (3, SECRETARY.label, 2), (2, SECRETARY.label, 1),
            (1, "service:minutes", None)]
        three = await load_version(conn, session_id=SESSION, case_id=case_id, version=3, author=SECRETARY)
        assert three.content is not None and three.content.discussion == mine["discussion"]
        assert three.content.handling_direction is HandlingDirection.GUIDE
        with pytest.raises(NotFound):
            await load_version(conn, session_id=SESSION, case_id=case_id, version=9, author=SECRETARY)


async def test_limits_text_as_typed_directives_and_grants(engine: AsyncEngine, keyring: Keyring) -> None:
    case_id = await opened(engine, keyring)
    markup = '<script>alert("x")</script><b onmouseover=alert(1)>&amp; "đậm"</b>'
    full = "đ" * MAX_TEXT_CHARS
    content = {"conclusion": markup, "local_report": full,
               "directives": [{"unit": "so-tnmt", "content": markup, "working_days": 5}, {"content": "chưa chọn"}],
               "documents": [{"title": "Bản sao quyết định", "pages": 3, "original": False}],
               "receipt_issued": True, "answer": "directed", "outcome": "assigned_to_unit"}
    assert await _save(engine, keyring, case_id, 1, content) == 2
    with pytest.raises(DraftInvalid) as too_long:
        await _save(engine, keyring, case_id, 2, {**content, "discussion": "x" * (MAX_TEXT_CHARS + 1)})
    assert too_long.value.field == "discussion" and "10000" in too_long.value.message_vi
    assert too_long.value.message_vi.startswith("Biên bản chưa được lưu: Ý kiến trao đổi:")
    with pytest.raises(DraftInvalid) as unknown_unit:
        await _save(engine, keyring, case_id, 2, {**content, "directives": [{"unit": "so-khong-co"}]})
    assert unknown_unit.value.errors == [{"field": "directives.0.unit", "message": "Không tìm thấy đơn vị được giao."}]
    with pytest.raises(DraftInvalid) as bad_enum:
        await _save(engine, keyring, case_id, 2, {**content, "handling_direction": "burn"})
    assert bad_enum.value.field == "handling_direction"
    with pytest.raises(DraftInvalid):
        await _save(engine, keyring, case_id, 2, {**content, "directives": [{"working_days": 0}]})
    with pytest.raises(DraftInvalid):
        await _save(engine, keyring, case_id, 2, {**content, "surprise": 1})
    with pytest.raises(DraftForbidden):
        await _save(engine, keyring, case_id, 2, content, author=VENUE_OP)
    async with engine.connect() as conn:
        with pytest.raises(DraftForbidden):
            await load_draft(conn, session_id=SESSION, case_id=case_id, author=VENUE_OP)
        draft = await load_draft(conn, session_id=SESSION, case_id=case_id, author=CHAIR)
    assert draft.version == 2  # every refusal stored nothing
    assert draft.content.conclusion == markup and draft.content.local_report == full
    first, second = draft.content.directives
    assert first.content == markup and first.deadline == date(2026, 12, 17)  # 5 working days after Thu 10/12
    assert second.unit == "" and second.deadline is None
    assert draft.content.documents[0].pages == 3 and draft.content.receipt_issued


async def test_a_denouncers_identity_is_sealed_never_in_a_draft_or_version(engine: AsyncEngine,
                                                                          keyring: Keyring) -> None:
    complaint = await opened(engine, keyring)
    with pytest.raises(DraftInvalid) as wrong_case:
        await _save(engine, keyring, complaint, 1, {}, identity=DenouncerIdentity(**DENOUNCER))
    assert wrong_case.value.field == "identity"
    case_id = await opened(engine, keyring, PetitionKind.DENUNCIATION)
    typed = {"discussion": "Người tố cáo trình bày nội dung tố cáo", "conclusion": "Giao xác minh"}
    assert await _save(engine, keyring, case_id, 1, typed, identity=DenouncerIdentity(**DENOUNCER)) == 2
    assert await _save(engine, keyring, case_id, 2, typed, identity=DenouncerIdentity()) == 2  # no change
    changed = {**DENOUNCER, "phone": "0987654321"}
    assert await _save(engine, keyring, case_id, 2, typed, identity=DenouncerIdentity(**changed)) == 3
    async with engine.connect() as conn:
        draft = await load_draft(conn, session_id=SESSION, case_id=case_id, author=SECRETARY)
        assert draft.holds_identity and draft.sealed_handle is not None and draft.sealed_handle.startswith("NTC-")
        rows = [str(tuple(r)) for t in (minutes_drafts, minutes_draft_versions)
                for r in (await conn.execute(select(t))).all()]
        pid = (await conn.execute(select(minutes_drafts.c.sealed_petitioner)
                                  .where(minutes_drafts.c.case_id == case_id))).scalar_one()
        sealed_row = (await conn.execute(select(petitioners).where(petitioners.c.id == pid))).mappings().one()
        assert sealed_row["sealed"] and sealed_row["full_name"] is None and sealed_row["id_number"] is None
        assert (await conn.execute(select(identity_vault.c.kid).where(identity_vault.c.petitioner_id == pid))).first()
    texts = " ".join(rows)
    for value in (*DENOUNCER.values(), "0987654321", "Tố Giác", "001203012345"):
        assert value not in texts
    assert "Giao xác minh" in texts  # the rows were read: the check can fail
    async with engine.begin() as conn:
        with pytest.raises(IdentityAccessDenied):  # the secretary cannot read it back
            await read_identity(conn, keyring, pid, actor=SECRETARY.label, grants=SECRETARY.grants)
    async with engine.begin() as conn:
        identity = await read_identity(conn, keyring, pid, actor=CHAIR.label, grants=CHAIR.grants, purpose="test")
    assert (identity.full_name, identity.id_number, identity.phone) == (DENOUNCER["full_name"], "001203012345",
                                                                        "0987654321")
    assert Grant.IDENTITY_WRITE not in SECRETARY.grants  # implied for the draft's own record only
