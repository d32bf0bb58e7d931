"""A throwaway certification authority for the signing tests (not a test module): a root, a signer
certificate valid now, an expired one, PKCS#12 files, and a SoftHSM2 token holding a key and its
certificate (python-pkcs11 imports them; ``softhsm2-util`` initialises the token)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "tiepdan-test"
KEY_LABEL = "ky-so-chu-tri"
USER_PIN = "246810"
SO_PIN = "13579135"


@dataclass(frozen=True)
class Identity:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate


@dataclass(frozen=True)
class TestCA:
    root: Identity
    signer: Identity
    expired: Identity

    @property
    def root_pem(self) -> bytes:
        return self.root.cert.public_bytes(serialization.Encoding.PEM)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tỉnh ủy Bắc Ninh (thử nghiệm)"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(subject: str, key: rsa.RSAPrivateKey, issuer: Identity | None, *, ca: bool, start: datetime,
           end: datetime) -> x509.Certificate:
    issuer_name = issuer.cert.subject if issuer else _name(subject)
    signing_key = issuer.key if issuer else key
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    else:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False),
            critical=True).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def make_ca() -> TestCA:
    now = datetime.now(UTC)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = Identity(root_key, _issue("CA thử nghiệm tiepdan", root_key, None, ca=True,
                                     start=now - timedelta(days=3650), end=now + timedelta(days=3650)))
    signer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = Identity(signer_key, _issue("Nguyễn Văn Chủ Trì", signer_key, root, ca=False,
                                         start=now - timedelta(days=30), end=now + timedelta(days=365)))
    old_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    expired = Identity(old_key, _issue("Trần Văn Hết Hạn", old_key, root, ca=False,
                                       start=now - timedelta(days=800), end=now - timedelta(days=2)))
    return TestCA(root, signer, expired)


def write_pkcs12(path: Path, who: Identity, ca: TestCA, passphrase: str) -> Path:
    data = pkcs12.serialize_key_and_certificates(
        b"signer", who.key, who.cert, [ca.root.cert],
        serialization.BestAvailableEncryption(passphrase.encode("utf-8")))
    path.write_bytes(data)
    return path


def softhsm_available() -> bool:
    return Path(SOFTHSM_MODULE).is_file() and shutil.which("softhsm2-util") is not None


def init_softhsm_token(directory: Path, who: Identity) -> Path:
    """A SoftHSM2 configuration under ``directory`` with one token (:data:`TOKEN_LABEL`) holding ``who``'s key
    and certificate under :data:`KEY_LABEL`; returns the configuration file (for ``SOFTHSM2_CONF``, which
    must be set before the module is first loaded in the process)."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL, "--so-pin", SO_PIN,
                    "--pin", USER_PIN], check=True, env=env, capture_output=True)
    key_der = who.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    cert_der = who.cert.public_bytes(serialization.Encoding.DER)
    script = directory / "import.py"
    # In a child process: python-pkcs11 reads SOFTHSM2_CONF once per process, and the test process must load
    # the module with the final configuration.
    script.write_text(_IMPORT_SCRIPT)
    (directory / "key.der").write_bytes(key_der)
    (directory / "cert.der").write_bytes(cert_der)
    import sys

    subprocess.run([sys.executable, str(script), SOFTHSM_MODULE, TOKEN_LABEL, USER_PIN, KEY_LABEL,
                    str(directory / "key.der"), str(directory / "cert.der")], check=True, env=env,
                   capture_output=True)
    (directory / "key.der").unlink()
    return conf


_IMPORT_SCRIPT = '''
import sys
import pkcs11
from pkcs11 import Attribute, ObjectClass, CertificateType
from pkcs11.util.rsa import decode_rsa_private_key
from cryptography.hazmat.primitives import serialization
from cryptography import x509

module, token_label, pin, label, key_path, cert_path = sys.argv[1:]
key = serialization.load_der_private_key(open(key_path, "rb").read(), None)
cert = x509.load_der_x509_certificate(open(cert_path, "rb").read())
pkcs1 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                          serialization.NoEncryption())
token = pkcs11.lib(module).get_token(token_label=token_label)
with token.open(user_pin=pin, rw=True) as session:
    attrs = decode_rsa_private_key(pkcs1)
    attrs.update({Attribute.LABEL: label, Attribute.ID: b"\\x01", Attribute.TOKEN: True,
                  Attribute.SENSITIVE: True, Attribute.SIGN: True, Attribute.PRIVATE: True})
    session.create_object(attrs)
    session.create_object({
        Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
        Attribute.LABEL: label, Attribute.ID: b"\\x01", Attribute.TOKEN: True,
        Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER),
        Attribute.SUBJECT: cert.subject.public_bytes(),
    })
'''


# -- one CA and one SoftHSM2 token per test process ----------------------------------------------------------
# SoftHSM2 reads SOFTHSM2_CONF once, when the module is first loaded in the process: every test module of
# the process shares this token (and so the CA whose signer key it holds).

_shared: dict[str, object] = {}


def shared_ca() -> TestCA:
    if "ca" not in _shared:
        _shared["ca"] = make_ca()
    ca = _shared["ca"]
    assert isinstance(ca, TestCA)
    return ca


def shared_softhsm() -> Path:
    """The SoftHSM2 configuration of the process (``SOFTHSM2_CONF`` set), holding :func:`shared_ca`'s signer."""
    if "softhsm" not in _shared:
        import atexit
        import tempfile

        directory = Path(tempfile.mkdtemp(prefix="tiepdan-softhsm-"))
        atexit.register(shutil.rmtree, directory, True)
        made = init_softhsm_token(directory, shared_ca().signer)
        os.environ["SOFTHSM2_CONF"] = str(made)
        _shared["softhsm"] = made
    conf = _shared["softhsm"]
    assert isinstance(conf, Path)
    return conf


def validate(pdf: bytes, ca: TestCA) -> object:
    """pyHanko's validation status of the last signature of ``pdf``, trusting only ``ca``'s root."""
    import io

    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    root = asn1_x509.Certificate.load(ca.root.cert.public_bytes(serialization.Encoding.DER))
    reader = PdfFileReader(io.BytesIO(pdf))
    return validate_pdf_signature(reader.embedded_signatures[-1], ValidationContext(trust_roots=[root]))
