"""Domain enumerations: English values, Vietnamese labels, strict parsing."""

from __future__ import annotations

import pytest

from complaints import enums
from complaints.enums import (
    CaseStatus,
    HandlingDirection,
    LabelledEnum,
    PetitionerRole,
    PetitionKind,
    ReceptionForm,
    ReceptionOutcome,
    SubjectArea,
)
from complaints.errors import UnknownEnumValue

pytestmark = pytest.mark.unit

ALL_ENUMS: list[type[LabelledEnum]] = [
    obj for obj in vars(enums).values()
    if isinstance(obj, type) and issubclass(obj, LabelledEnum) and obj is not LabelledEnum
]


def test_members_have_english_values_and_vietnamese_labels() -> None:
    assert PetitionKind.COMPLAINT.value == "complaint"
    assert PetitionKind.COMPLAINT.label_vi == "Khiếu nại"
    assert PetitionKind.DENUNCIATION.label_vi == "Tố cáo"
    assert HandlingDirection.FILE_WITHOUT_ACTION.label_vi == "Lưu đơn"
    assert ReceptionOutcome.RETURN_WITH_GUIDANCE.label_vi == "Trả lại đơn và hướng dẫn"
    assert ReceptionForm.ONLINE.label_vi == "Trực tuyến"
    assert PetitionerRole.AUTHORISED_AGENT.label_vi == "Người được ủy quyền"
    assert SubjectArea.LAND.label_vi == "Đất đai"


@pytest.mark.parametrize("enum", ALL_ENUMS, ids=lambda e: e.__name__)
def test_every_enumeration_round_trips_and_is_titled(enum: type[LabelledEnum]) -> None:
    assert enum.enum_title_vi() != enum.__name__
    for member in enum:
        assert member.value.isascii() and member.value == member.value.lower()
        assert enum.parse(member.value) is member
        assert enum.parse(member.label_vi) is member
        assert enum(member.value) is member
    assert len({m.label_vi for m in enum}) == len(enum)


def test_parse_forgives_case_and_surrounding_space() -> None:
    assert PetitionKind.parse("  Complaint ") is PetitionKind.COMPLAINT


def test_unknown_value_raises_a_vietnamese_error_listing_the_accepted_values() -> None:
    with pytest.raises(UnknownEnumValue) as caught:
        PetitionKind.parse("grievance")
    message = str(caught.value)
    assert "không hợp lệ" in message and "Loại đơn" in message and "complaint (Khiếu nại)" in message
    assert caught.value.code == "unknown_enum_value"
    assert isinstance(caught.value, ValueError)


def test_unknown_value_is_truncated_in_the_message() -> None:
    with pytest.raises(UnknownEnumValue) as caught:
        CaseStatus.parse("x" * 500)
    assert len(str(caught.value)) < 900


def test_domain_properties() -> None:
    assert PetitionKind.MIXED.must_be_split and not PetitionKind.COMPLAINT.must_be_split
    assert PetitionKind.DENUNCIATION.identity_is_secret
    assert ReceptionOutcome.ACCEPT_FOR_RESOLUTION.register_column == 8
    assert ReceptionOutcome.FORWARD_TO_COMPETENT_BODY.register_column == 10
    assert ReceptionOutcome.MEET_LEADER.register_column is None
    assert SubjectArea.LAND.is_administrative and not SubjectArea.CORRUPTION.is_administrative
    assert CaseStatus.CLOSED.is_terminal and not CaseStatus.ACCEPTED.is_terminal
