"""Domain enumerations of the complaint database (domain.md §2.2).

Each member's value is a stable English identifier (stored in the database, sent over the API); each
member also carries its Vietnamese legal term in ``label_vi`` (what a person reads). ``parse`` turns an
English value (or the exact Vietnamese label) into a member and raises :class:`UnknownEnumValue` with a
Vietnamese message otherwise.

The subject-area list is the coarse split of the report forms; the fine, hierarchical list belongs to
the form definitions (TT 06/2025) and is loaded as data later, not hard-coded here.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from typing import Self

from .errors import UnknownEnumValue

__all__ = [
    "Admissibility",
    "CaseFlag",
    "CaseNovelty",
    "CaseStatus",
    "ComplaintRejectionReason",
    "Competence",
    "CompetentSystem",
    "HandlingDirection",
    "IdDocumentKind",
    "LabelledEnum",
    "PetitionKind",
    "PetitionSource",
    "PetitionerRole",
    "PetitionerType",
    "PriorHandling",
    "ReceptionForm",
    "IssuingTrack",
    "ReceptionOutcome",
    "ReceptionType",
    "RefusalReason",
    "ResolutionResult",
    "Sex",
    "Signatories",
    "SubjectArea",
]

_MAX_ECHO = 40


class LabelledEnum(StrEnum):
    """A string enumeration whose members carry a Vietnamese label.

    Members are declared as ``NAME = ("english_value", "Nhãn tiếng Việt")``; the member's value is the
    English string. ``title_vi`` (a class-level docstring-like name of the enumeration) is returned by
    :meth:`enum_title_vi`.
    """

    _label_vi: str

    def __new__(cls, value: str, label_vi: str) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member._label_vi = label_vi
        return member

    @property
    def label_vi(self) -> str:
        """The Vietnamese legal term shown to people."""
        return self._label_vi

    @classmethod
    def enum_title_vi(cls) -> str:
        """The Vietnamese name of the enumeration itself (used in error messages and form labels)."""
        return _TITLES_VI.get(cls.__name__, cls.__name__)

    @classmethod
    def parse(cls, raw: str | Self) -> Self:
        """Return the member whose English value (or exact Vietnamese label, NFC) is ``raw``.

        Surrounding white space is ignored; English values are matched case-insensitively.
        Raises :class:`UnknownEnumValue` (Vietnamese message listing the accepted values) otherwise.
        """
        if isinstance(raw, cls):
            return raw
        if not isinstance(raw, str):
            raise UnknownEnumValue(
                f"{cls.enum_title_vi()}: giá trị phải là một chuỗi ký tự.", code="unknown_enum_value"
            )
        text = unicodedata.normalize("NFC", raw).strip()
        for member in cls:
            if member.value == text.lower() or member.label_vi == text:
                return member
        shown = text if len(text) <= _MAX_ECHO else text[:_MAX_ECHO] + "…"
        accepted = ", ".join(f"{m.value} ({m.label_vi})" for m in cls)
        raise UnknownEnumValue(
            f"Giá trị «{shown}» không hợp lệ cho «{cls.enum_title_vi()}». Các giá trị hợp lệ: {accepted}."
        )


class PetitionKind(LabelledEnum):
    """Loại đơn theo nội dung (TT 05/2021): classify by content, not by the title of the petition."""

    COMPLAINT = ("complaint", "Khiếu nại")
    DENUNCIATION = ("denunciation", "Tố cáo")
    PROPOSAL_FEEDBACK = ("proposal_feedback", "Kiến nghị, phản ánh")
    MIXED = ("mixed", "Đơn có nhiều nội dung khác nhau")

    @property
    def must_be_split(self) -> bool:
        """A mixed petition must be split into separate petitions (LTCD Điều 25 k3)."""
        return self is PetitionKind.MIXED

    @property
    def identity_is_secret(self) -> bool:
        """The denouncer's identity is secret by law (LTC Điều 9 k1b, Điều 47)."""
        return self is PetitionKind.DENUNCIATION


class SubjectArea(LabelledEnum):
    """Lĩnh vực: the coarse split of the report forms (fine codes come from the form definition)."""

    LAND = ("land", "Đất đai")
    HOUSING_PROPERTY = ("housing_property", "Nhà ở, tài sản")
    POLICIES_BENEFITS = ("policies_benefits", "Chế độ, chính sách")
    OTHER_ADMINISTRATIVE = ("other_administrative", "Hành chính khác")
    JUDICIAL = ("judicial", "Tư pháp")
    PARTY_MASS_ORGANISATIONS = ("party_mass_organisations", "Đảng, đoàn thể")
    CORRUPTION = ("corruption", "Tham nhũng")
    OTHER = ("other", "Khác")

    @property
    def is_administrative(self) -> bool:
        """True for the areas the forms group under "Hành chính"."""
        return self in _ADMINISTRATIVE_AREAS


_ADMINISTRATIVE_AREAS = frozenset(
    {
        SubjectArea.LAND,
        SubjectArea.HOUSING_PROPERTY,
        SubjectArea.POLICIES_BENEFITS,
        SubjectArea.OTHER_ADMINISTRATIVE,
    }
)


class HandlingDirection(LabelledEnum):
    """Hướng xử lý đơn (TT 05/2021, report 01/XLD)."""

    PROPOSE_ACCEPTANCE = ("propose_acceptance", "Đề xuất thụ lý")
    GUIDE = ("guide", "Hướng dẫn")
    FORWARD = ("forward", "Chuyển đơn")
    URGE = ("urge", "Đôn đốc giải quyết")
    RETURN = ("return", "Trả lại đơn")
    FILE_WITHOUT_ACTION = ("file_without_action", "Lưu đơn")


class ReceptionOutcome(LabelledEnum):
    """Hướng xử lý tại tiếp công dân (Sổ tiếp công dân, TT 04/2021 Mẫu số 03, plus operational ones)."""

    ACCEPT_FOR_RESOLUTION = ("accept_for_resolution", "Thụ lý để giải quyết")
    RETURN_WITH_GUIDANCE = ("return_with_guidance", "Trả lại đơn và hướng dẫn")
    FORWARD_TO_COMPETENT_BODY = ("forward_to_competent_body", "Chuyển đơn đến cơ quan có thẩm quyền")
    ANSWERED_ON_THE_SPOT = ("answered_on_the_spot", "Giải quyết ngay")
    PENDING = ("pending", "Chờ giải quyết")
    ASSIGNED_TO_UNIT = ("assigned_to_unit", "Giao đơn vị kiểm tra và đề xuất")
    MEET_LEADER = ("meet_leader", "Yêu cầu gặp lãnh đạo")
    MORE_INFORMATION = ("more_information", "Bổ sung thông tin")
    REFUSED = ("refused", "Từ chối tiếp")
    # A denunciation raised in an online session is heard in a closed segment or rescheduled in person: the
    # denouncer's identity is secret (Luật Tố cáo Điều 9 k1b, 47 k2, 56; domain.md §6.3).
    RESCHEDULE_IN_PERSON = ("reschedule_in_person", "Hẹn tiếp trực tiếp")

    @property
    def register_column(self) -> int | None:
        """The column of Mẫu số 03 ticked for this outcome (8, 9 or 10), or None if it has none."""
        return _REGISTER_COLUMNS.get(self)


_REGISTER_COLUMNS = {
    ReceptionOutcome.ACCEPT_FOR_RESOLUTION: 8,
    ReceptionOutcome.RETURN_WITH_GUIDANCE: 9,
    ReceptionOutcome.FORWARD_TO_COMPETENT_BODY: 10,
}


class ReceptionType(LabelledEnum):
    """Loại tiếp (form 01/TCD)."""

    ROUTINE = ("routine", "Tiếp thường xuyên")
    PERIODIC = ("periodic", "Tiếp định kỳ của lãnh đạo")
    AD_HOC = ("ad_hoc", "Tiếp đột xuất của lãnh đạo")


class ReceptionForm(LabelledEnum):
    """Hình thức tiếp (Luật 136/2025/QH15, Điều 3a)."""

    IN_PERSON = ("in_person", "Trực tiếp")
    ONLINE = ("online", "Trực tuyến")


class IssuingTrack(LabelledEnum):
    """Khối ban hành văn bản of a reception session: the leader receives as a Party official (the documents
    are issued by a Party body, Quy định 66-QĐ/TW) or as a State official (a State body, NĐ 30/2020)."""

    PARTY = ("party", "Khối Đảng")
    STATE = ("state", "Khối chính quyền")


class PetitionerType(LabelledEnum):
    """Loại người khiếu nại, tố cáo, kiến nghị, phản ánh."""

    INDIVIDUAL = ("individual", "Cá nhân")
    GROUP = ("group", "Đoàn đông người")
    ORGANISATION = ("organisation", "Cơ quan, tổ chức")


class PetitionerRole(LabelledEnum):
    """Vai trò của người trong đơn."""

    SIGNATORY = ("signatory", "Người đứng đơn")
    AUTHORISED_AGENT = ("authorised_agent", "Người được ủy quyền")
    REPRESENTATIVE = ("representative", "Người đại diện")
    LAWYER = ("lawyer", "Luật sư")


class PetitionSource(LabelledEnum):
    """Nguồn đơn."""

    IN_PERSON = ("in_person", "Trực tiếp tại nơi tiếp công dân")
    POST = ("post", "Qua dịch vụ bưu chính")
    FORWARDED = ("forwarded", "Cơ quan, tổ chức khác chuyển đến")
    LEADER_ASSIGNED = ("leader_assigned", "Lãnh đạo giao")
    PRESS = ("press", "Cơ quan báo chí chuyển đến")
    ONLINE = ("online", "Trực tuyến, cổng thông tin điện tử")
    OTHER = ("other", "Nguồn khác")


class Admissibility(LabelledEnum):
    """Điều kiện xử lý (TT 05/2021)."""

    ADMISSIBLE = ("admissible", "Đủ điều kiện xử lý")
    INADMISSIBLE = ("inadmissible", "Không đủ điều kiện xử lý")


class Competence(LabelledEnum):
    """Thẩm quyền giải quyết của cơ quan tiếp nhận."""

    WITHIN = ("within", "Thuộc thẩm quyền")
    OUTSIDE = ("outside", "Không thuộc thẩm quyền")


class CompetentSystem(LabelledEnum):
    """Hệ thống cơ quan có thẩm quyền (Bến Tre codes H / G / A)."""

    ADMINISTRATIVE = ("administrative", "Cơ quan hành chính các cấp")
    JUDICIAL = ("judicial", "Cơ quan tư pháp")
    PARTY = ("party", "Cơ quan Đảng")


class PriorHandling(LabelledEnum):
    """Tình trạng giải quyết trước đó (form 01/XLD)."""

    NOT_HANDLED = ("not_handled", "Chưa được giải quyết")
    IN_PROGRESS = ("in_progress", "Đang được giải quyết")
    FIRST_DECISION = ("first_decision", "Đã giải quyết lần đầu")
    SECOND_DECISION = ("second_decision", "Đã giải quyết lần hai")
    COURT_JUDGMENT = ("court_judgment", "Đã có bản án của Tòa án")


class Signatories(LabelledEnum):
    """Số người đứng tên (form 01/XLD)."""

    SINGLE = ("single", "Đơn có họ tên, chữ ký của một người")
    MULTIPLE = ("multiple", "Đơn có họ tên, chữ ký của nhiều người")
    OTHER_OR_ANONYMOUS = ("other_or_anonymous", "Đơn khác (nặc danh, mạo danh)")


class CaseStatus(LabelledEnum):
    """Trạng thái vụ việc in the system (not a legal list; ordered roughly by progress)."""

    DRAFT = ("draft", "Đăng ký, chờ tiếp nhận")
    RECEIVED = ("received", "Đã tiếp nhận")
    IN_HANDLING = ("in_handling", "Đang xử lý đơn")
    ACCEPTED = ("accepted", "Đã thụ lý")
    FORWARDED = ("forwarded", "Đã chuyển đơn")
    GUIDED = ("guided", "Đã hướng dẫn")
    RESOLVED = ("resolved", "Đã giải quyết")
    SUSPENDED = ("suspended", "Tạm đình chỉ")
    WITHDRAWN = ("withdrawn", "Đã rút đơn")
    FILED = ("filed", "Lưu đơn")
    CLOSED = ("closed", "Đã kết thúc")

    @property
    def is_terminal(self) -> bool:
        """True when no further handling is expected (follow-up stops)."""
        return self in _TERMINAL_STATUSES


_TERMINAL_STATUSES = frozenset({CaseStatus.WITHDRAWN, CaseStatus.FILED, CaseStatus.CLOSED})


class CaseNovelty(LabelledEnum):
    """Vụ việc cũ / mới phát sinh (form 01/TCD: tiếp lần đầu / tiếp nhiều lần)."""

    EXISTING = ("existing", "Vụ việc cũ")
    NEW = ("new", "Vụ việc mới phát sinh")


class CaseFlag(LabelledEnum):
    """Markers of a case that change how it is handled and reported."""

    COMPLEX_PROTRACTED = ("complex_protracted", "Phức tạp, kéo dài")
    CROWD = ("crowd", "Đông người")


class ResolutionResult(LabelledEnum):
    """Kết quả giải quyết."""

    COMPLAINT_RIGHT = ("complaint_right", "Khiếu nại đúng toàn bộ")
    COMPLAINT_PARTLY_RIGHT = ("complaint_partly_right", "Khiếu nại đúng một phần")
    COMPLAINT_WRONG = ("complaint_wrong", "Khiếu nại sai toàn bộ")
    DENUNCIATION_CORRECT = ("denunciation_correct", "Tố cáo đúng")
    DENUNCIATION_PARTLY_CORRECT = ("denunciation_partly_correct", "Tố cáo đúng một phần")
    DENUNCIATION_INCORRECT = ("denunciation_incorrect", "Tố cáo sai")
    DELIBERATELY_FALSE = ("deliberately_false", "Người tố cáo cố ý tố cáo sai sự thật")
    SENT_TO_INVESTIGATORS = ("sent_to_investigators", "Chuyển cơ quan điều tra")
    WITHDRAWN = ("withdrawn", "Rút đơn")
    SUSPENDED = ("suspended", "Đình chỉ giải quyết")


class RefusalReason(LabelledEnum):
    """Trường hợp từ chối tiếp công dân (LTCD Điều 9)."""

    INCAPACITATED = (
        "incapacitated",
        "Người trong tình trạng say do dùng chất kích thích, mắc bệnh tâm thần hoặc bệnh khác làm mất "
        "khả năng nhận thức hoặc khả năng điều khiển hành vi của mình",
    )
    THREATENING = (
        "threatening",
        "Người có hành vi đe dọa, xúc phạm cơ quan, tổ chức, đơn vị, người tiếp công dân, người thi "
        "hành công vụ hoặc có hành vi khác vi phạm nội quy nơi tiếp công dân",
    )
    ALREADY_RESOLVED = (
        "already_resolved",
        "Người khiếu nại, tố cáo về vụ việc đã giải quyết đúng chính sách, pháp luật, được cơ quan nhà "
        "nước có thẩm quyền kiểm tra, rà soát, thông báo bằng văn bản và đã được tiếp, giải thích, "
        "hướng dẫn nhưng vẫn cố tình khiếu nại, tố cáo kéo dài",
    )
    OTHER_LEGAL_GROUND = ("other_legal_ground", "Trường hợp khác theo quy định của pháp luật")


class ComplaintRejectionReason(LabelledEnum):
    """Các khiếu nại không được thụ lý giải quyết (Luật Khiếu nại 2011, Điều 11)."""

    INTERNAL_OR_NORMATIVE_ACT = (
        "internal_or_normative_act",
        "Quyết định hành chính, hành vi hành chính trong nội bộ cơ quan để chỉ đạo, tổ chức thực hiện "
        "nhiệm vụ; quyết định hành chính có chứa đựng các quy phạm pháp luật",
    )
    NO_DIRECT_INTEREST = (
        "no_direct_interest",
        "Quyết định, hành vi hành chính bị khiếu nại không liên quan trực tiếp đến quyền, lợi ích hợp "
        "pháp của người khiếu nại",
    )
    NO_LEGAL_CAPACITY = (
        "no_legal_capacity",
        "Người khiếu nại không có năng lực hành vi dân sự đầy đủ mà không có người đại diện hợp pháp",
    )
    UNLAWFUL_REPRESENTATIVE = ("unlawful_representative", "Người đại diện không hợp pháp")
    UNSIGNED = ("unsigned", "Đơn khiếu nại không có chữ ký hoặc điểm chỉ của người khiếu nại")
    TIME_LIMIT_EXPIRED = (
        "time_limit_expired",
        "Thời hiệu, thời hạn khiếu nại đã hết mà không có lý do chính đáng",
    )
    SECOND_DECISION_EXISTS = ("second_decision_exists", "Khiếu nại đã có quyết định giải quyết lần hai")
    NOT_CONTINUED_AFTER_SUSPENSION = (
        "not_continued_after_suspension",
        "Có văn bản thông báo đình chỉ việc giải quyết khiếu nại mà sau 30 ngày người khiếu nại không "
        "tiếp tục khiếu nại",
    )
    BEFORE_COURT = (
        "before_court",
        "Việc khiếu nại đã được Tòa án thụ lý hoặc đã được giải quyết bằng bản án, quyết định của Tòa án",
    )


class IdDocumentKind(LabelledEnum):
    """Loại giấy tờ tùy thân."""

    PERSONAL_ID = ("personal_id", "Số định danh cá nhân (thẻ căn cước, căn cước công dân)")
    OLD_ID_CARD = ("old_id_card", "Chứng minh nhân dân (9 số)")
    PASSPORT = ("passport", "Hộ chiếu")


class Sex(LabelledEnum):
    """Giới tính as encoded in the personal ID number."""

    MALE = ("male", "Nam")
    FEMALE = ("female", "Nữ")


_TITLES_VI = {
    "PetitionKind": "Loại đơn",
    "SubjectArea": "Lĩnh vực",
    "HandlingDirection": "Hướng xử lý đơn",
    "ReceptionOutcome": "Hướng xử lý tại tiếp công dân",
    "ReceptionType": "Loại tiếp",
    "ReceptionForm": "Hình thức tiếp",
    "IssuingTrack": "Khối ban hành văn bản",
    "PetitionerType": "Loại người đứng đơn",
    "PetitionerRole": "Vai trò trong đơn",
    "PetitionSource": "Nguồn đơn",
    "Admissibility": "Điều kiện xử lý",
    "Competence": "Thẩm quyền",
    "CompetentSystem": "Hệ thống cơ quan có thẩm quyền",
    "PriorHandling": "Tình trạng giải quyết trước đó",
    "Signatories": "Số người đứng tên",
    "CaseStatus": "Trạng thái vụ việc",
    "CaseNovelty": "Loại vụ việc",
    "CaseFlag": "Đặc điểm vụ việc",
    "ResolutionResult": "Kết quả giải quyết",
    "RefusalReason": "Lý do từ chối tiếp",
    "ComplaintRejectionReason": "Lý do không thụ lý khiếu nại",
    "IdDocumentKind": "Loại giấy tờ tùy thân",
    "Sex": "Giới tính",
    # Enumerations defined beside the logic that uses them.
    "MatchField": "Trường so khớp",
    "MatchHow": "Cách so khớp",
    "DurationUnit": "Đơn vị thời hạn",
    "DeadlineKind": "Loại thời hạn",
    "DueStatus": "Tình trạng thời hạn",
}
