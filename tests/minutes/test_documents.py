"""The documents as printed: Party and State headers, A4 in Liberation Serif, fields escaped (HTML and script
stay text, in the HTML and in the PDF), a 10,000-character paste laid out over pages without loss, the QR
code to the verification page, and the redacted public twin with no ID number, address, phone or trace of a
denouncer in its text, metadata, XMP or attachments."""

from __future__ import annotations

import dataclasses
import io
import re
from enum import StrEnum
from typing import Any

import pypdf
import pytest
import segno

from minutes.documents import (
    MAX_FIELD_CHARS,
    QR_BORDER,
    QR_SCALE,
    REDACTION_MARK,
    SEALED_PETITIONER_VI,
    Edition,
    Track,
    redacted,
    render_html,
    render_pdf,
)

from . import _samples as S
from ._pdftext import everything, fold, page_text

pytestmark = pytest.mark.unit

URL = "https://tiepdan.example.vn/xac-minh/0123456789abcdef0123456789abcdef"


def test_party_and_state_tracks_print_their_own_headers_on_a4_in_liberation_serif() -> None:
    party = render_pdf(S.notice(track=Track.PARTY))
    state = render_pdf(S.minutes(track=Track.STATE))
    party_text, state_text = page_text(party), page_text(state)
    assert "ĐẢNG CỘNG SẢN VIỆT NAM" in party_text and "Số 15-TB/BNCTU" in party_text
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" not in party_text
    assert "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM" in state_text and "Độc lập - Tự do - Hạnh phúc" in state_text
    assert "Số: 15/TB-BTCD" in state_text and "ĐẢNG CỘNG SẢN VIỆT NAM" not in state_text
    assert "Bắc Ninh, ngày 10 tháng 12 năm 2026" in party_text and "Nơi nhận:" in party_text
    reader = pypdf.PdfReader(io.BytesIO(party))
    box = reader.pages[0].mediabox
    assert (round(float(box.width) / 72 * 25.4), round(float(box.height) / 72 * 25.4)) == (210, 297)
    fonts = {str(f["/BaseFont"]) for p in reader.pages for f in p["/Resources"]["/Font"].values()}
    assert fonts and all("+Liberation-Serif" in f for f in fonts), fonts
    assert reader.metadata is not None and reader.metadata.title == "Thông báo kết luận Số 15-TB/BNCTU"


def _poison(value: Any, evil: str) -> Any:
    """Every text of a document (header, names, lists, free texts) with ``evil`` appended."""
    if isinstance(value, str) and not isinstance(value, StrEnum):
        return value + evil
    if isinstance(value, tuple):
        return tuple(_poison(v, evil) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _poison(getattr(value, f.name), evil)
                                             for f in dataclasses.fields(value) if f.init})
    return value


def test_html_and_script_in_every_field_stay_text_in_the_html_and_the_pdf() -> None:
    evil = '<script>alert("x")</script><b>đậm</b><img src=x onerror=alert(1)>'
    for doc in (_poison(S.minutes(), evil), _poison(S.notice(), evil)):
        html = render_html(doc)
        assert "<script" not in html and "<img src=x" not in html and "<b>đậm" not in html
        assert html.count("&lt;script&gt;") >= 25  # every field carried it, escaped
        flat = "".join(page_text(render_pdf(doc)).split())
        assert flat.count("".join(evil.split())) >= 20  # printed as typed, nothing interpreted


def test_a_10000_character_paste_is_laid_out_over_pages_without_loss() -> None:
    words = " ".join(f"đoạn{n:05d}" for n in range(1200))  # 10,799 characters, accented, no repeat
    unbroken = "x" * 10_000  # one "word" with no space: it must wrap, not run off the page
    doc = S.minutes(request=words + "\n" + unbroken)
    pdf = render_pdf(doc)
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 5
    pages = [page.extract_text() for page in reader.pages]
    # from page 2 on, the page number (top centre, NĐ 30/2020) is extracted last: not part of the text
    for number, text in enumerate(pages[1:], start=2):
        rest, _, last = text.rpartition("\n")
        assert last.strip() == str(number)
        pages[number - 1] = rest
    flat = "".join("".join(pages).split())
    assert "".join(words.split()) in flat
    assert unbroken in flat
    with pytest.raises(ValueError):
        render_html(S.minutes(request="x" * (MAX_FIELD_CHARS + 1)))


def test_the_qr_code_on_the_notice_encodes_the_address_of_its_verification_page() -> None:
    pdf = render_pdf(S.notice(url=URL))
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert URL in "".join(page_text(pdf).split())
    images = list(reader.pages[-1].images)  # (WeasyPrint shares one resource dictionary between pages)
    assert len(images) == 1
    picture = images[0].image.convert("L")
    matrix = segno.make(URL, error="m", micro=False).matrix  # what a scanner must read back
    side = len(matrix) + 2 * QR_BORDER
    assert picture.size == (side * QR_SCALE, side * QR_SCALE)
    for row, modules in enumerate(matrix):
        for col, dark in enumerate(modules):
            x, y = ((col + QR_BORDER) * QR_SCALE + QR_SCALE // 2, (row + QR_BORDER) * QR_SCALE + QR_SCALE // 2)
            assert (picture.getpixel((x, y)) < 128) == bool(dark), (row, col)
    assert not [image for page in pypdf.PdfReader(io.BytesIO(render_pdf(S.notice()))).pages for image in page.images]


def _assert_no_trace(pdf: bytes, *values: str) -> None:
    haystack = fold(everything(pdf))
    for value in values:
        assert fold(value) not in haystack, value


def test_the_public_twin_of_a_denunciation_minutes_carries_no_trace_of_the_denouncer() -> None:
    doc = S.minutes(sealed=True)
    full = render_pdf(doc)
    assert S.DENOUNCER in page_text(full) and "MẬT" in page_text(full)  # the internal original keeps it
    twin = redacted(doc)
    assert twin.edition is Edition.PUBLIC
    pdf = render_pdf(twin)
    _assert_no_trace(pdf, S.DENOUNCER, S.DENOUNCER_ID, S.DENOUNCER_ADDRESS, S.PHONE, "Bảo Ngọc", "Ngọc")
    text = page_text(pdf)
    assert SEALED_PETITIONER_VI in " ".join(text.split()) and REDACTION_MARK in text
    assert "Trần Văn B" in text  # the person denounced is not protected by this rule
    assert "Bản công khai" in text and "MẬT" not in text


def test_the_public_twin_of_a_complaint_keeps_the_name_but_no_id_number_address_or_phone() -> None:
    pdf = render_pdf(redacted(S.minutes()))
    _assert_no_trace(pdf, S.ID_NUMBER, S.ADDRESS, S.PHONE, "1985")
    assert S.COMPLAINANT in page_text(pdf)
    spaced = redacted(S.minutes(request="Số CCCD 027 085 012 345, điện thoại 0912.345.678, mã TD-2026-0001"))
    assert spaced.request.count(REDACTION_MARK) == 2 and "TD-2026-0001" in spaced.request


def test_the_notice_never_names_a_denouncer_and_its_twin_drops_every_address_and_number() -> None:
    full = render_pdf(S.notice(url=URL))
    _assert_no_trace(full, S.DENOUNCER, S.DENOUNCER_ID, S.DENOUNCER_ADDRESS, "Bảo Ngọc")
    assert S.COMPLAINANT in page_text(full)
    twin = render_pdf(redacted(S.notice(url=URL)))
    _assert_no_trace(twin, S.DENOUNCER, S.DENOUNCER_ID, S.DENOUNCER_ADDRESS, S.ID_NUMBER, S.ADDRESS, S.PHONE,
                     "Bảo Ngọc")
    assert URL in "".join(page_text(twin).split())
    assert re.search(r"Bà \[đã ẩn\] tố cáo", page_text(twin))
