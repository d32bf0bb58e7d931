"""PAdES signatures from a PKCS#12 file and from a PKCS#11 token (SoftHSM2), validated by pyHanko's own
validator against a throwaway CA; an expired certificate, an absent token, a wrong PIN, a locked PIN, a
missing module or key each give a clear Vietnamese error and sign nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pkcs11 import exceptions as p11
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel

from evidence.errors import EvidenceError
from evidence.pdf_signing import (
    PdfSigningError,
    Pkcs11Signer,
    Pkcs12Signer,
    SignerCertificateInvalid,
    SignerUnavailable,
    _pkcs11_unavailable,
    sign_pdf,
    signature_facts,
)

from . import _pki

pytestmark = pytest.mark.unit

PASSPHRASE = "mat-khau-p12"


@pytest.fixture(scope="module")
def p12_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("p12")


@pytest.fixture(scope="module")
def token() -> Path:
    if not _pki.softhsm_available():
        pytest.fail("SoftHSM2 is missing: scripts/ensure-system-packages.sh installs softhsm2")
    return _pki.shared_softhsm()


def _assert_valid(signed: bytes, ca: _pki.TestCA) -> PdfSignatureStatus:
    status = _pki.validate(signed, ca)
    assert isinstance(status, PdfSignatureStatus)
    assert status.intact and status.valid and status.trusted and status.bottom_line
    assert status.coverage is SignatureCoverageLevel.ENTIRE_FILE
    assert status.signer_reported_dt is not None
    assert abs(status.signer_reported_dt - datetime.now(UTC)) < timedelta(minutes=5)
    return status


def test_pkcs12_signature_validates_against_the_ca_and_covers_the_whole_file(
        ca: _pki.TestCA, pdf: bytes, p12_dir: Path) -> None:
    signer = Pkcs12Signer(_pki.write_pkcs12(p12_dir / "ky.p12", ca.signer, ca, PASSPHRASE), PASSPHRASE)
    signed = sign_pdf(pdf, signer, reason="Ký số thông báo kết luận", location="Bắc Ninh", field_name="ChuKySo")
    assert signed.startswith(pdf)  # an incremental update: the original bytes are kept as they were
    _assert_valid(signed, ca)
    facts = signature_facts(signed)
    assert facts.field_name == "ChuKySo" and facts.certificate.common_name == "Nguyễn Văn Chủ Trì"
    assert PASSPHRASE not in repr(signer)
    tampered = bytearray(signed)
    tampered[len(pdf) // 2] ^= 0x01  # one bit of the signed range
    assert not _pki.validate(bytes(tampered), ca).intact  # type: ignore[attr-defined]


def test_pkcs11_signature_on_softhsm2_validates(ca: _pki.TestCA, pdf: bytes, token: Path) -> None:
    signer = Pkcs11Signer(_pki.SOFTHSM_MODULE, _pki.TOKEN_LABEL, _pki.USER_PIN, _pki.KEY_LABEL)
    signed = sign_pdf(pdf, signer, reason="Ký số biên bản", location="Bắc Ninh", field_name="ChuKySo")
    _assert_valid(signed, ca)
    assert _pki.USER_PIN not in repr(signer)
    twice = sign_pdf(signed, signer, reason="Ký lần hai", location="Bắc Ninh", field_name="ChuKySo2")
    assert signature_facts(twice).field_name == "ChuKySo2"
    _assert_valid(twice, ca)


def test_an_expired_certificate_is_refused_in_vietnamese_and_nothing_is_signed(
        ca: _pki.TestCA, pdf: bytes, p12_dir: Path) -> None:
    signer = Pkcs12Signer(_pki.write_pkcs12(p12_dir / "het-han.p12", ca.expired, ca, PASSPHRASE), PASSPHRASE)
    with pytest.raises(SignerCertificateInvalid) as caught:
        sign_pdf(pdf, signer, reason="r", location="l", field_name="f")
    assert caught.value.code == "certificate_expired" and "đã hết hạn" in caught.value.message_vi
    assert isinstance(caught.value, EvidenceError)
    before = datetime.now(UTC) - timedelta(days=60)  # before the signer's certificate began
    good = Pkcs12Signer(_pki.write_pkcs12(p12_dir / "moi.p12", ca.signer, ca, PASSPHRASE), PASSPHRASE)
    with pytest.raises(SignerCertificateInvalid) as early:
        sign_pdf(pdf, good, reason="r", location="l", field_name="f", now=before)
    assert early.value.code == "certificate_not_yet_valid"


@pytest.mark.parametrize(("label", "pin", "key", "code", "words"), [
    ("khong-co-token", _pki.USER_PIN, _pki.KEY_LABEL, "token_absent", "Hãy cắm thiết bị"),
    (_pki.TOKEN_LABEL, "000000", _pki.KEY_LABEL, "pin_incorrect", "Mã PIN"),
    (_pki.TOKEN_LABEL, _pki.USER_PIN, "khong-co-khoa", "key_missing", "không có khóa"),
])
def test_an_unusable_token_gives_a_clear_vietnamese_error(pdf: bytes, token: Path, label: str, pin: str, key: str,
                                                          code: str, words: str) -> None:
    signer = Pkcs11Signer(_pki.SOFTHSM_MODULE, label, pin, key)
    with pytest.raises(SignerUnavailable) as caught:
        sign_pdf(pdf, signer, reason="r", location="l", field_name="f")
    assert caught.value.code == code and words in caught.value.message_vi
    assert pin not in caught.value.message_vi


def test_a_missing_module_a_locked_pin_and_a_bad_passphrase_are_named(pdf: bytes, p12_dir: Path,
                                                                        ca: _pki.TestCA) -> None:
    with pytest.raises(SignerUnavailable) as missing:
        sign_pdf(pdf, Pkcs11Signer("/usr/lib/khong-co/libtoken.so", "t", "1", "k"), reason="r", location="l",
                 field_name="f")
    assert missing.value.code == "module_missing"
    locked = _pkcs11_unavailable(p11.PinLocked())  # what python-pkcs11 raises for CKR_PIN_LOCKED
    assert locked.code == "pin_locked" and "đã bị khóa" in locked.message_vi
    absent = _pkcs11_unavailable(p11.TokenNotPresent())
    assert absent.code == "token_absent"
    path = _pki.write_pkcs12(p12_dir / "sai.p12", ca.signer, ca, PASSPHRASE)
    with pytest.raises(SignerUnavailable) as wrong:
        sign_pdf(pdf, Pkcs12Signer(path, "sai-mat-khau"), reason="r", location="l", field_name="f")
    assert wrong.value.code == "pkcs12_invalid" and "sai-mat-khau" not in wrong.value.message_vi
    with pytest.raises(SignerUnavailable) as unreadable:
        sign_pdf(pdf, Pkcs12Signer(p12_dir / "khong-co.p12", PASSPHRASE), reason="r", location="l", field_name="f")
    assert unreadable.value.code == "pkcs12_unreadable"
    with pytest.raises(PdfSigningError) as not_pdf:
        sign_pdf(b"khong phai pdf", Pkcs12Signer(path, PASSPHRASE), reason="r", location="l", field_name="f")
    assert not_pdf.value.code == "not_a_pdf"
