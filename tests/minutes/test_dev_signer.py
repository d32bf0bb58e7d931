"""The development signer: in dev mode with no signer configured, a local test CA and a test certificate are
made once under the data dir, clearly named as having no legal value, and a PDF signed with them validates
(pyHanko's validator, trusting only that local root); production never gets it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from evidence.pdf_signing import Pkcs12Signer, sign_pdf, signature_facts
from minutes.options import DocumentOptions
from tiepdan.dev_signer import DEV_SIGNER_DIR, TEST_ORGANISATION, DevSigner, ensure_dev_signer, signer_for

from . import _pki

pytestmark = pytest.mark.unit


def validate_against(pdf: bytes, ca_pem: bytes) -> PdfSignatureStatus:
    """pyHanko's status of the last signature of ``pdf``, trusting only the root in ``ca_pem``."""
    _, _, der = pem.unarmor(ca_pem)
    root = asn1_x509.Certificate.load(der)
    reader = PdfFileReader(io.BytesIO(pdf))
    status = validate_pdf_signature(reader.embedded_signatures[-1], ValidationContext(trust_roots=[root]))
    assert isinstance(status, PdfSignatureStatus)
    return status


def test_the_dev_signer_is_made_once_named_as_a_test_and_its_signature_validates(tmp_path: Path, pdf: bytes) -> None:
    directory = tmp_path / "data" / DEV_SIGNER_DIR
    signer = DevSigner(directory)
    assert not directory.exists()  # nothing is made before the first signature
    signed = sign_pdf(pdf, signer, reason="Ký số thông báo kết luận", location="Bắc Ninh", field_name="ChuKySo")
    ca_pem = (directory / "dev-ca.pem").read_bytes()
    status = validate_against(signed, ca_pem)
    assert status.intact and status.valid and status.trusted and status.bottom_line
    assert status.coverage is SignatureCoverageLevel.ENTIRE_FILE
    facts = signature_facts(signed)
    assert TEST_ORGANISATION in facts.certificate.subject and "thử nghiệm" in facts.certificate.common_name
    root = x509.load_pem_x509_certificate(ca_pem)
    organisation = root.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value
    assert organisation == "CHỨNG THƯ THỬ NGHIỆM — không có giá trị pháp lý"

    p12_before = (directory / "dev-signer.p12").read_bytes()
    again = sign_pdf(pdf, DevSigner(directory), reason="Ký lại", location="Bắc Ninh", field_name="ChuKySo")
    assert (directory / "dev-signer.p12").read_bytes() == p12_before  # made once, reused
    assert signature_facts(again).certificate.fingerprint_sha256 == facts.certificate.fingerprint_sha256
    assert ensure_dev_signer(directory) == (directory / "dev-signer.p12", directory / "dev-ca.pem")

    other_ca = _pki.shared_ca()  # trusting another root: the test certificate is not trusted
    assert not validate_against(signed, other_ca.root_pem).trusted


def test_only_dev_mode_without_a_configured_signer_gets_the_test_signer(tmp_path: Path) -> None:
    unsigned = DocumentOptions(directory=tmp_path / "documents")
    dev = signer_for(unsigned, mode="dev", data_dir=tmp_path)
    assert isinstance(dev, DevSigner) and dev.directory == tmp_path / DEV_SIGNER_DIR
    assert signer_for(unsigned, mode="production", data_dir=tmp_path) is None  # drafts stay unsigned
    configured = DocumentOptions(directory=tmp_path / "documents", signer="pkcs12", pkcs12_path=tmp_path / "ky.p12",
                                 secret="x")
    for mode in ("dev", "production"):
        assert isinstance(signer_for(configured, mode=mode, data_dir=tmp_path), Pkcs12Signer)
    assert not (tmp_path / DEV_SIGNER_DIR).exists()
