"""The event catalogue of docs/bus.md and the events of signaling/events.py name the same types, and the
case-file events carry no free text (a denouncer's identity can never travel on the bus)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from signaling.events import (
    EVENT_TYPES,
    CaseCreated,
    CaseUpdated,
    DirectiveIssued,
    DirectiveReported,
    HandlingDecisionRecorded,
    dump_event,
    parse_event,
)

pytestmark = pytest.mark.unit

BUS_MD = Path(__file__).resolve().parents[2] / "docs" / "bus.md"
CASE_FILE_EVENTS = (CaseCreated, CaseUpdated, HandlingDecisionRecorded, DirectiveIssued, DirectiveReported)


def _documented_types() -> set[str]:
    text = BUS_MD.read_text("utf-8")
    catalogue = text[text.index("## The event catalogue"):]
    return set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", catalogue, flags=re.MULTILINE))


def test_every_event_type_is_in_the_catalogue_of_docs_bus_md_and_nothing_else() -> None:
    documented = _documented_types()
    assert sorted(EVENT_TYPES - documented) == []
    assert sorted(documented - EVENT_TYPES) == []


def test_case_file_events_have_no_field_that_could_hold_a_name_or_free_text() -> None:
    allowed = {"event_id", "occurred_at", "version", "type", "case", "by", "kind", "status", "confidential",
               "venue", "case_version", "changed", "previous_status", "subject_area", "decision", "direction",
               "decided_on", "petition", "directive", "unit", "issued_on", "deadline", "directive_version",
               "reported_on", "completed"}
    for cls in CASE_FILE_EVENTS:
        assert set(cls.model_fields) <= allowed, cls.__name__


def test_case_file_events_refuse_text_where_an_id_belongs_and_round_trip() -> None:
    with pytest.raises(ValidationError):
        CaseCreated(case="Nguyễn Văn Hùng", by="user:1", kind="complaint", status="received")
    with pytest.raises(ValidationError):
        CaseUpdated(case="c1", by="user:1", case_version=2, changed=("tóm tắt có dấu",), kind="complaint",
                    status="received")
    with pytest.raises(ValidationError):
        CaseUpdated(case="c1", by="user:1", case_version=2, changed=(), kind="complaint", status="received")
    event = DirectiveIssued(case="c1", by="user:u1", directive="d1", unit="so-xd", issued_on=date(2026, 11, 20),
                            deadline=date(2026, 12, 7))
    again = parse_event(dump_event(event))
    assert again == event and again.key == "directive:d1:issued" and again.aggregate == "case:c1"
    report = DirectiveReported(case="c1", by="user:u2", directive="d1", unit="so-xd", directive_version=2,
                               reported_on=date(2026, 11, 25), completed=True)
    assert report.key == "directive:d1:reported:2" and report.version == 1  # the event schema version
