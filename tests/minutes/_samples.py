"""Sample documents of the document tests (not a test module): a complaint's minutes, a denunciation's
minutes (sealed identity) and a session's conclusion notice, on both tracks."""

from __future__ import annotations

from datetime import UTC, date, datetime

from complaints.enums import PetitionKind
from minutes.documents import (
    CaseMinutesDoc,
    Citizen,
    ConclusionNoticeDoc,
    DirectiveLine,
    DocumentHeader,
    NoticeCase,
    Official,
    SignatureBlock,
    Track,
)

ID_NUMBER = "027085012345"
ADDRESS = "Thôn Đông Sơn, xã Tiên Du, tỉnh Bắc Ninh"
PHONE = "0912345678"
DENOUNCER = "Lê Thị Bảo Ngọc"
DENOUNCER_ID = "027190054321"
DENOUNCER_ADDRESS = "Số 12 phố Hàng Bè, phường Kinh Bắc"
COMPLAINANT = "Nguyễn Văn Hùng"


def header(track: Track = Track.PARTY, number: str = "15") -> DocumentHeader:
    if track is Track.PARTY:
        return DocumentHeader(track=track, parent_body="TỈNH ỦY BẮC NINH", issuing_body="BAN NỘI CHÍNH",
                              number=number, symbol="TB/BNCTU", place="Bắc Ninh", issued_on=date(2026, 12, 10))
    return DocumentHeader(track=track, parent_body="UBND TỈNH BẮC NINH", issuing_body="BAN TIẾP CÔNG DÂN",
                          number=number, symbol="TB-BTCD", place="Bắc Ninh", issued_on=date(2026, 12, 10))


def minutes(*, track: Track = Track.PARTY, sealed: bool = False, text: str | None = None,
            request: str | None = None) -> CaseMinutesDoc:
    person = (Citizen(DENOUNCER, id_number=DENOUNCER_ID, address=DENOUNCER_ADDRESS, phone=PHONE, birth_year=1990)
              if sealed else Citizen(COMPLAINANT, id_number=ID_NUMBER, address=ADDRESS, phone=PHONE, birth_year=1985))
    filler = text if text is not None else ""
    said = request if request is not None else (
        f"Bà {DENOUNCER} tố cáo ông Trần Văn B, cán bộ địa chính xã, nhận tiền khi cấp giấy chứng nhận. "
        f"Liên hệ {DENOUNCER_ID}, {DENOUNCER_ADDRESS}. Mọi người gọi bà là Ngọc." if sealed else
        f"Ông {COMPLAINANT} (CCCD {ID_NUMBER}, trú tại {ADDRESS}) khiếu nại quyết định thu hồi đất.")
    return CaseMinutesDoc(
        header=header(track),
        session_id="2026-12-10-bt", session_title="phiên tiếp công dân định kỳ tháng 12/2026 của Bí thư Tỉnh ủy",
        held_at=datetime(2026, 12, 10, 1, 30, tzinfo=UTC), venue="Trụ sở Tiếp công dân tỉnh (điểm cầu chính)",
        case_id="c-0001", tracking_code="TD-2026-0001-0001-7", petition_kind=(
            PetitionKind.DENUNCIATION if sealed else PetitionKind.COMPLAINT),
        hosts=(Official("Nguyễn Văn Chủ Trì", "Bí thư Tỉnh ủy"),),
        attendees=(Official("Phạm Văn Cường", "Trưởng Ban Nội chính Tỉnh ủy"),
                   Official("Hoàng Thị Dung", "Chủ tịch UBND xã Tiên Du")),
        petitioners=(person,), identity_sealed=sealed, request=said + filler,
        local_report="UBND xã báo cáo đã thu hồi đất đúng quy định." + filler,
        discussion="Trao đổi về hồ sơ đo đạc." + filler,
        conclusion="Giao UBND xã Tiên Du kiểm tra, rà soát hồ sơ." + filler,
        handling_direction="Thụ lý giải quyết",
        directives=(DirectiveLine("UBND xã Tiên Du", "Kiểm tra, báo cáo kết quả." + filler, date(2027, 1, 8)),),
        documents_received=("Đơn khiếu nại (01 bản)", "Bản sao quyết định thu hồi đất" + filler),
        confirmation="Công dân đã ký xác nhận trên màn hình lúc 09 giờ 42." + filler,
        secretary=Official("Đỗ Thị Thư", "Chuyên viên Ban Nội chính"),
        signature=SignatureBlock("", "NGƯỜI CHỦ TRÌ", "Nguyễn Văn Chủ Trì"),
        recipients=("Công dân", "UBND xã Tiên Du", "Lưu hồ sơ vụ việc" + filler),
    )


def notice(*, track: Track = Track.PARTY, text: str = "", url: str = "") -> ConclusionNoticeDoc:
    return ConclusionNoticeDoc(
        header=header(track),
        subject="Kết luận của đồng chí Bí thư Tỉnh ủy tại buổi tiếp công dân định kỳ tháng 12/2026" + text,
        session_id="2026-12-10-bt", held_on=date(2026, 12, 10),
        host=Official("đồng chí Nguyễn Văn Chủ Trì", "Bí thư Tỉnh ủy"),
        venues=("Trụ sở Tiếp công dân tỉnh", "xã Tiên Du" + text),
        attending_bodies=("Ban Nội chính Tỉnh ủy", "Thanh tra tỉnh"),
        cases=(
            NoticeCase(order=1, tracking_code="TD-2026-0001-0001-7", venue="xã Tiên Du",
                       petition_kind=PetitionKind.COMPLAINT,
                       petitioners=(Citizen(COMPLAINANT, id_number=ID_NUMBER, address=ADDRESS, phone=PHONE),),
                       identity_sealed=False,
                       content=f"Ông {COMPLAINANT}, trú tại {ADDRESS}, khiếu nại quyết định thu hồi đất." + text,
                       conclusion="Giao UBND xã Tiên Du kiểm tra." + text,
                       directives=(DirectiveLine("UBND xã Tiên Du", "Kiểm tra, báo cáo." + text,
                                                 date(2027, 1, 8)),)),
            NoticeCase(order=2, tracking_code="TD-2026-0002-0002-3", venue="phường Kinh Bắc",
                       petition_kind=PetitionKind.DENUNCIATION,
                       petitioners=(Citizen(DENOUNCER, id_number=DENOUNCER_ID, address=DENOUNCER_ADDRESS),),
                       identity_sealed=True,
                       content=f"Bà {DENOUNCER} tố cáo cán bộ địa chính nhận tiền. Bà Ngọc đề nghị giữ bí mật." + text,
                       conclusion="Giao Thanh tra tỉnh xác minh, giữ bí mật người tố cáo." + text,
                       directives=(DirectiveLine("Thanh tra tỉnh", "Xác minh nội dung tố cáo." + text,
                                                 date(2027, 2, 10)),)),
        ),
        closing="Ban Nội chính Tỉnh ủy thông báo để các cơ quan, đơn vị, địa phương biết, thực hiện." + text,
        signature=SignatureBlock("T/L BAN THƯỜNG VỤ", "TRƯỞNG BAN NỘI CHÍNH", "Phạm Văn Cường"),
        recipients=("Thường trực Tỉnh ủy (để b/c)", "UBND xã Tiên Du", "Thanh tra tỉnh", "Lưu Văn phòng" + text),
        verification_url=url,
    )
