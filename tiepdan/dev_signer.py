"""The development signer: a throwaway local certification authority and a test signing certificate, so that
``make run`` and ``tiepdan demo`` produce signed documents whose signatures validate — against that local CA
only. Never used in production (``TIEPDAN_MODE=production`` with no ``TIEPDAN_SIGNER`` keeps documents as
unsigned drafts).

Theory of operation
-------------------
In dev mode with ``TIEPDAN_SIGNER`` unset (``none``), :func:`signer_for` returns a :class:`DevSigner`: a
PKCS#12 signer whose files are made on first use, under ``<data_dir>/dev-signer/``:

* ``dev-ca.pem`` — the root certificate of the local CA (to validate the signatures, e.g. with pyHanko);
* ``dev-signer.p12`` — the signer's key and certificate (with the root), no passphrase.

Both names say what they are: the subject's organisation is :data:`TEST_ORGANISATION` ("CHỨNG THƯ THỬ
NGHIỆM — không có giá trị pháp lý"). The files are made once (a lock; written to a temporary name and
renamed) and reused; the CA's key is not kept (nothing more is ever issued from it). Making them costs two
RSA keys, so nothing is made before the first document is signed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from evidence.pdf_signing import Pkcs12Signer, Signer
from minutes.documents_store import signer_from_options
from minutes.options import DocumentOptions

__all__ = ["DEV_SIGNER_DIR", "DevSigner", "TEST_ORGANISATION", "ensure_dev_signer", "signer_for"]

log = logging.getLogger("tiepdan.dev_signer")

#: The organisation of every certificate of the local CA: no one may take them for real ones.
TEST_ORGANISATION = "CHỨNG THƯ THỬ NGHIỆM — không có giá trị pháp lý"
DEV_SIGNER_DIR = "dev-signer"
CA_FILE = "dev-ca.pem"
P12_FILE = "dev-signer.p12"
_VALID_DAYS = 3650
_lock = threading.Lock()


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, TEST_ORGANISATION),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=not ca, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                         encipher_only=False, decipher_only=False)


def _make(directory: Path, now: datetime) -> None:
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = _name("CA thử nghiệm cục bộ tiepdan (chỉ dùng thử)")
    root = (x509.CertificateBuilder().subject_name(root_name).issuer_name(root_name)
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=_VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder().subject_name(_name("Người ký thử nghiệm (không có giá trị pháp lý)"))
            .issuer_name(root_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=_VALID_DAYS - 1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    bundle = pkcs12.serialize_key_and_certificates(b"tiepdan-dev-signer", key, cert, [root],
                                                   serialization.NoEncryption())
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in ((CA_FILE, root.public_bytes(serialization.Encoding.PEM)), (P12_FILE, bundle)):
        tmp = directory / f"{name}.tmp"
        tmp.write_bytes(data)
        tmp.chmod(0o600)
        tmp.replace(directory / name)


def ensure_dev_signer(directory: Path, *, now: datetime | None = None) -> tuple[Path, Path]:
    """The PKCS#12 file and the root certificate (PEM) of the local test CA under ``directory``, made on the
    first call (blocking: RSA key generation)."""
    p12, ca = directory / P12_FILE, directory / CA_FILE
    with _lock:
        if not (p12.is_file() and ca.is_file()):
            _make(directory, (now or datetime.now(UTC)).astimezone(UTC))
            log.warning("made a local test certificate for signing documents (dev mode; no legal value)",
                        extra={"ctx": {"path": str(p12)}})
    return p12, ca


class DevSigner:
    """A :class:`~evidence.pdf_signing.Signer` with the local test certificate, made when first opened."""

    kind = "pkcs12"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"DevSigner(directory={str(self.directory)!r})"

    @property
    def ca_path(self) -> Path:
        return self.directory / CA_FILE

    @contextmanager
    def open(self) -> Iterator[Any]:
        p12, _ = ensure_dev_signer(self.directory)
        with Pkcs12Signer(p12, None).open() as signer:
            yield signer


def signer_for(options: DocumentOptions, *, mode: str, data_dir: Path) -> Signer | None:
    """The signer the app uses: the configured one; in dev mode with none configured, the local test signer;
    in production with none configured, None (documents stay unsigned drafts)."""
    configured = signer_from_options(options)
    if configured is not None or options.signer != "none" or mode != "dev":
        return configured
    return DevSigner(data_dir / DEV_SIGNER_DIR)
