"""Signatures inside PDF documents (ký số): PAdES with pyHanko, from a PKCS#12 file or a PKCS#11 token.

Theory of operation
-------------------
A :class:`Signer` is where a signing key and its X.509 certificate live. :meth:`Signer.open` gives a
pyHanko signer for one signature and releases what it holds afterwards (a PKCS#11 session is opened with
the PIN and closed again, so a USB token may be unplugged between two documents). Two backends:

* :class:`Pkcs12Signer` — a ``.p12``/``.pfx`` file and its passphrase;
* :class:`Pkcs11Signer` — a PKCS#11 module (the driver of a USB token, e.g. SoftHSM2 in the tests), the
  token's label, the user PIN and the label of the key (its certificate carries the same label).

:func:`sign_pdf` appends one signature to a PDF as an incremental update: a PAdES baseline B-B signature
(``ETSI.CAdES.detached``, SHA-256) covering the whole file, with the signing time in the signature
dictionary (``/M``). Before signing it checks that the certificate is valid at that time.

What goes wrong is said in Vietnamese, for the official at the desk, and never echoes the PIN or the
passphrase: :class:`SignerUnavailable` (no token, no module, wrong or locked PIN, no key or certificate,
an unreadable file) and :class:`SignerCertificateInvalid` (expired, not yet valid). Every call blocks
(the token, RSA, asyncio inside pyHanko): callers run it in a worker thread, never on the event loop.

This module loads pyHanko and python-pkcs11, so ``evidence/__init__`` does not import it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .errors import EvidenceError

__all__ = [
    "CertificateFacts",
    "Pkcs11Signer",
    "Pkcs12Signer",
    "PdfSigningError",
    "Signer",
    "SignerCertificateInvalid",
    "SignerUnavailable",
    "SignatureFacts",
    "certificate_facts",
    "sign_pdf",
    "signature_facts",
]


class PdfSigningError(EvidenceError):
    """Base of the signing errors; ``message_vi`` is for people, ``code`` for programs and tests."""

    code = "signing_error"

    def __init__(self, message_vi: str, *, code: str | None = None) -> None:
        super().__init__(message_vi)
        self.message_vi = message_vi
        if code is not None:
            self.code = code


class SignerUnavailable(PdfSigningError):
    """The key cannot be used now: token absent, module missing, PIN wrong or locked, key not found, file
    unreadable. Nothing was signed; plugging the token in (or fixing the setting) and retrying will do."""

    code = "signer_unavailable"


class SignerCertificateInvalid(PdfSigningError):
    """The signer's certificate is not valid at the signing time (expired, or not yet valid)."""

    code = "certificate_invalid"


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """What a verification page may show of a signer's certificate (a public document anyway)."""

    subject: str            # RFC 4514 string, e.g. "CN=Nguyễn Văn A,O=Tỉnh ủy Bắc Ninh,C=VN"
    common_name: str
    issuer: str
    serial: str             # hexadecimal
    fingerprint_sha256: str  # of the DER certificate, hexadecimal
    not_before: datetime
    not_after: datetime


def certificate_facts(cert: x509.Certificate) -> CertificateFacts:
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    common = names[0].value if names else ""
    return CertificateFacts(
        subject=cert.subject.rfc4514_string(),
        common_name=common if isinstance(common, str) else common.decode("utf-8", "replace"),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        fingerprint_sha256=hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


@runtime_checkable
class Signer(Protocol):
    """Where a signing key and its certificate live."""

    @property
    def kind(self) -> str:
        """``pkcs12`` or ``pkcs11`` (for logs and the audit, never a secret)."""
        ...

    def open(self) -> AbstractContextManager[Any]:
        """A pyHanko ``Signer`` for one or more signatures; released on exit. Raises
        :class:`SignerUnavailable` when the key cannot be reached."""
        ...


def _to_pyca(asn1_cert: Any) -> x509.Certificate:
    return x509.load_der_x509_certificate(asn1_cert.dump())


class Pkcs12Signer:
    """A key and certificate (with its chain) from a PKCS#12 file (``.p12`` / ``.pfx``)."""

    kind = "pkcs12"

    def __init__(self, path: Path, passphrase: str | None) -> None:
        self.path = Path(path)
        self._passphrase = passphrase

    def __repr__(self) -> str:  # never the passphrase
        return f"Pkcs12Signer(path={str(self.path)!r})"

    @contextmanager
    def open(self) -> Iterator[Any]:
        from pyhanko.sign import signers

        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise SignerUnavailable("Không đọc được tệp chứng thư số (PKCS#12) đã cấu hình.",
                                    code="pkcs12_unreadable") from exc
        passphrase = self._passphrase.encode("utf-8") if self._passphrase is not None else None
        try:
            signer = signers.SimpleSigner.load_pkcs12_data(data, other_certs=(), passphrase=passphrase)
        except (ValueError, TypeError) as exc:
            raise SignerUnavailable("Không mở được tệp chứng thư số (PKCS#12): sai mật khẩu hoặc tệp hỏng.",
                                    code="pkcs12_invalid") from exc
        if signer is None:  # older pyHanko answers None instead of raising
            raise SignerUnavailable("Không mở được tệp chứng thư số (PKCS#12): sai mật khẩu hoặc tệp hỏng.",
                                    code="pkcs12_invalid")
        yield signer


_NO_TOKEN = "Không tìm thấy thiết bị ký số (USB token). Hãy cắm thiết bị rồi ký lại."


def _pkcs11_unavailable(exc: BaseException) -> SignerUnavailable:
    """The Vietnamese error for a python-pkcs11 / pyHanko failure to reach the token or its key."""
    from pkcs11 import exceptions as p11

    table: list[tuple[type[BaseException], str, str]] = [
        (p11.PinLocked, "Thiết bị ký số (USB token) đã bị khóa do nhập sai mã PIN nhiều lần. "
                        "Liên hệ quản trị để mở khóa.", "pin_locked"),
        (p11.PinIncorrect, "Mã PIN của thiết bị ký số không đúng.", "pin_incorrect"),
        (p11.PinExpired, "Mã PIN của thiết bị ký số đã hết hạn; cần đổi mã PIN trước khi ký.", "pin_expired"),
        (p11.UserPinNotInitialized, "Thiết bị ký số chưa được đặt mã PIN người dùng.", "pin_not_initialized"),
        (p11.TokenNotPresent, _NO_TOKEN, "token_absent"),
        (p11.NoSuchToken, _NO_TOKEN, "token_absent"),
        (p11.TokenNotRecognised, "Thiết bị ký số không được nhận dạng. Hãy cắm lại thiết bị rồi ký lại.",
         "token_absent"),
        (p11.DeviceRemoved, "Thiết bị ký số đã bị rút ra trong khi ký. Hãy cắm thiết bị rồi ký lại.",
         "token_absent"),
        (p11.DeviceError, "Thiết bị ký số báo lỗi. Hãy cắm lại thiết bị rồi ký lại.", "token_error"),
    ]
    for kind, message, code in table:
        if isinstance(exc, kind):
            return SignerUnavailable(message, code=code)
    return SignerUnavailable("Không sử dụng được thiết bị ký số (USB token) đã cấu hình.", code="token_error")


class Pkcs11Signer:
    """A key and certificate on a PKCS#11 token (the USB tokens of Vietnamese certification authorities).

    ``module_path`` is the token's PKCS#11 library (e.g. ``/usr/lib/softhsm/libsofthsm2.so``); the token is
    found by ``token_label``; the key by ``key_label`` (its certificate carries the same label, as the
    certification authorities' tools write them)."""

    kind = "pkcs11"

    def __init__(self, module_path: str, token_label: str, pin: str, key_label: str) -> None:
        self.module_path = module_path
        self.token_label = token_label
        self.key_label = key_label
        self._pin = pin

    def __repr__(self) -> str:  # never the PIN
        return f"Pkcs11Signer(module_path={self.module_path!r}, token_label={self.token_label!r}, " \
               f"key_label={self.key_label!r})"

    @contextmanager
    def open(self) -> Iterator[Any]:
        import pkcs11
        from pyhanko.config.pkcs11 import TokenCriteria
        from pyhanko.sign import pkcs11 as hanko_p11
        from pyhanko.sign.general import SigningError

        if not Path(self.module_path).is_file():
            raise SignerUnavailable("Không tìm thấy thư viện PKCS#11 của thiết bị ký số đã cấu hình.",
                                    code="module_missing")
        try:
            session = hanko_p11.open_pkcs11_session(self.module_path,
                                                    token_criteria=TokenCriteria(label=self.token_label),
                                                    user_pin=self._pin)
        except pkcs11.PKCS11Error as exc:
            if "OS exception while loading" in str(exc):
                raise SignerUnavailable("Không nạp được thư viện PKCS#11 của thiết bị ký số đã cấu hình.",
                                        code="module_missing") from exc
            if type(exc) is pkcs11.PKCS11Error and str(exc).startswith("No token"):  # pyHanko: no label match
                raise SignerUnavailable(_NO_TOKEN, code="token_absent") from exc
            raise _pkcs11_unavailable(exc) from exc
        try:
            signer = hanko_p11.PKCS11Signer(session, key_label=self.key_label, cert_label=self.key_label)
            try:
                signer.signing_cert  # noqa: B018 - loads key and certificate now, to fail here and clearly
            except (SigningError, pkcs11.PKCS11Error) as exc:
                # pyHanko raises the base PKCS11Error when no object (or more than one) carries the label
                if isinstance(exc, SigningError) or type(exc) is pkcs11.PKCS11Error:
                    raise SignerUnavailable("Trên thiết bị ký số không có khóa hoặc chứng thư số với nhãn đã "
                                            "cấu hình.", code="key_missing") from exc
                raise _pkcs11_unavailable(exc) from exc
            yield signer
        finally:
            try:
                session.close()
            except pkcs11.PKCS11Error:
                pass  # the token went away: nothing left to release


def _check_validity(cert: x509.Certificate, at: datetime) -> None:
    if at < cert.not_valid_before_utc:
        raise SignerCertificateInvalid(
            f"Chứng thư số của người ký chưa có hiệu lực (hiệu lực từ {cert.not_valid_before_utc:%d/%m/%Y}).",
            code="certificate_not_yet_valid")
    if at > cert.not_valid_after_utc:
        raise SignerCertificateInvalid(
            f"Chứng thư số của người ký đã hết hạn ngày {cert.not_valid_after_utc:%d/%m/%Y}; "
            "cần gia hạn hoặc dùng chứng thư số khác.", code="certificate_expired")


def sign_pdf(pdf: bytes, signer: Signer, *, reason: str, location: str, field_name: str,
             now: datetime | None = None) -> bytes:
    """``pdf`` with one more signature: PAdES B-B, SHA-256, covering the whole file, signing time in ``/M``.

    ``now`` is the time the certificate must be valid at (default: the clock; pyHanko stamps the signature
    with its own clock). Raises :class:`SignerUnavailable`, :class:`SignerCertificateInvalid`, or
    :class:`PdfSigningError` when ``pdf`` is not a PDF. Blocking: call it from a worker thread.
    """
    import pkcs11
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign import fields, signers

    at = (now or datetime.now(UTC)).astimezone(UTC)
    with signer.open() as hanko_signer:
        _check_validity(_to_pyca(hanko_signer.signing_cert), at)
        try:
            writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        except (PdfError, ValueError) as exc:
            raise PdfSigningError("Tệp cần ký không phải là tệp PDF hợp lệ.", code="not_a_pdf") from exc
        meta = signers.PdfSignatureMetadata(
            field_name=field_name, reason=reason, location=location, md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES, use_pades_lta=False, embed_validation_info=False)
        try:
            out = signers.PdfSigner(meta, signer=hanko_signer).sign_pdf(writer)
        except pkcs11.PKCS11Error as exc:  # the token pulled out mid-signature
            raise _pkcs11_unavailable(exc) from exc
        signed: bytes = out.getvalue()
    return signed


@dataclass(frozen=True, slots=True)
class SignatureFacts:
    """The last signature of a PDF as the file states it (not validated: pyHanko's validator does that)."""

    field_name: str
    certificate: CertificateFacts
    signed_at: datetime | None  # the signature dictionary's /M


def signature_facts(pdf: bytes) -> SignatureFacts:
    """The signer's certificate and signing time of the last signature in ``pdf``; raises
    :class:`PdfSigningError` when it carries none."""
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        embedded = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_signatures
    except (PdfError, ValueError) as exc:
        raise PdfSigningError("Tệp không phải là tệp PDF hợp lệ.", code="not_a_pdf") from exc
    if not embedded:
        raise PdfSigningError("Tệp PDF không có chữ ký số.", code="unsigned")
    last = embedded[-1]
    return SignatureFacts(field_name=str(last.field_name), certificate=certificate_facts(_to_pyca(last.signer_cert)),
                          signed_at=last.self_reported_timestamp)
