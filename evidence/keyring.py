"""The keyring: signing keys (Ed25519) and data keys (AES-256-GCM), each named by a ``kid``.

Theory of operation
-------------------
The keyring holds one *active* signing key and one *active* data key, plus every key that was
active before (``retired``). ``rotate()`` makes new active keys and retires the old ones; retired
public keys are kept for ever so that a token, a manifest or a document signed years ago still
verifies, and retired data keys are kept so old ciphertext can be read and re-encrypted.

The keyring lives in one JSON file. Public material is stored in clear; secret material (private
keys, data keys) is sealed with AES-GCM under a key derived (scrypt) from a passphrase when one is
given. Keys generated automatically for the embedded development mode are marked ``dev`` and a
production start refuses them (:meth:`Keyring.require_production_keys`).

Only the standard library and ``cryptography`` are used, so every package may import this module.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import DecryptionFailed, DevKeyRefused, KeyringError, UnknownKey

__all__ = ["Keyring", "SigningKey", "DataKey", "SealedBox"]

_FORMAT = 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode("ascii"))


def _new_kid(prefix: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return f"{prefix}-{stamp}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 key pair; ``private`` is None when only the public half is known."""

    kid: str
    public: Ed25519PublicKey
    private: Ed25519PrivateKey | None
    created_at: str
    retired_at: str | None = None
    dev: bool = False

    def public_pem(self) -> bytes:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def private_pem(self) -> bytes:
        if self.private is None:
            raise KeyringError(f"signing key {self.kid} has no private half")
        return self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


@dataclass(frozen=True)
class DataKey:
    """A 256-bit AES-GCM key."""

    kid: str
    secret: bytes = field(repr=False)
    created_at: str
    retired_at: str | None = None
    dev: bool = False


@dataclass(frozen=True)
class SealedBox:
    """Ciphertext with the kid of the key that sealed it, serialised as ``kid.nonce.ciphertext``."""

    kid: str
    nonce: bytes
    ciphertext: bytes

    def encode(self) -> str:
        return f"{self.kid}.{_b64(self.nonce)}.{_b64(self.ciphertext)}"

    @classmethod
    def decode(cls, text: str) -> SealedBox:
        try:
            kid, nonce, ct = text.split(".")
            return cls(kid=kid, nonce=_unb64(nonce), ciphertext=_unb64(ct))
        except (ValueError, TypeError) as exc:
            raise DecryptionFailed("sealed value is malformed") from exc


class Keyring:
    """Signing and data keys with rotation. Thread-safe; the file is written atomically."""

    def __init__(
        self,
        signing: list[SigningKey],
        data: list[DataKey],
        *,
        path: Path | None = None,
        passphrase: str | None = None,
    ) -> None:
        if not any(k.retired_at is None and k.private is not None for k in signing):
            raise KeyringError("the keyring has no active signing key")
        if not any(k.retired_at is None for k in data):
            raise KeyringError("the keyring has no active data key")
        self._signing = {k.kid: k for k in signing}
        self._data = {k.kid: k for k in data}
        self._path = path
        self._passphrase = passphrase
        self._lock = threading.Lock()

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def generate(cls, *, dev: bool, path: Path | None = None, passphrase: str | None = None) -> Keyring:
        """A fresh keyring with one active key of each kind (written to ``path`` when given)."""
        now = datetime.now(UTC).isoformat()
        priv = Ed25519PrivateKey.generate()
        ring = cls(
            [SigningKey(_new_kid("sig"), priv.public_key(), priv, now, dev=dev)],
            [DataKey(_new_kid("data"), AESGCM.generate_key(bit_length=256), now, dev=dev)],
            path=path,
            passphrase=passphrase,
        )
        if path is not None:
            ring.save()
        return ring

    @classmethod
    def load(cls, path: Path, *, passphrase: str | None = None) -> Keyring:
        try:
            doc = json.loads(path.read_text("utf-8"))
        except FileNotFoundError as exc:
            raise KeyringError(f"no keyring at {path}") from exc
        except (OSError, ValueError) as exc:
            raise KeyringError(f"keyring at {path} cannot be read: {exc}") from exc
        if doc.get("format") != _FORMAT:
            raise KeyringError(f"keyring at {path} has an unknown format")
        secrets_doc = cls._open_secrets(doc, passphrase)
        signing: list[SigningKey] = []
        for entry in doc["signing"]:
            public = serialization.load_pem_public_key(entry["public_pem"].encode("ascii"))
            if not isinstance(public, Ed25519PublicKey):
                raise KeyringError(f"signing key {entry['kid']} is not Ed25519")
            private = None
            pem = secrets_doc.get("signing", {}).get(entry["kid"])
            if pem is not None:
                loaded = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
                if not isinstance(loaded, Ed25519PrivateKey):
                    raise KeyringError(f"signing key {entry['kid']} is not Ed25519")
                private = loaded
            signing.append(
                SigningKey(
                    entry["kid"], public, private, entry["created_at"], entry.get("retired_at"),
                    entry.get("dev", False),
                )
            )
        data = [
            DataKey(
                e["kid"], _unb64(secrets_doc["data"][e["kid"]]), e["created_at"], e.get("retired_at"),
                e.get("dev", False),
            )
            for e in doc["data"]
        ]
        return cls(signing, data, path=path, passphrase=passphrase)

    @classmethod
    def load_or_create_dev(cls, path: Path) -> Keyring:
        """The embedded default: load ``path``, or generate a development keyring there."""
        if path.exists():
            return cls.load(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls.generate(dev=True, path=path)

    # -- persistence ----------------------------------------------------------------------------

    @staticmethod
    def _derive(passphrase: str, salt: bytes) -> bytes:
        return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode("utf-8"))

    @classmethod
    def _open_secrets(cls, doc: dict[str, object], passphrase: str | None) -> dict[str, dict[str, str]]:
        sealed = doc["secrets"]
        if not isinstance(sealed, dict):
            raise KeyringError("keyring secrets are malformed")
        if sealed.get("sealed"):
            if not passphrase:
                raise KeyringError("the keyring is sealed with a passphrase; set TIEPDAN_KEYRING_PASSPHRASE")
            key = cls._derive(passphrase, _unb64(sealed["salt"]))
            try:
                clear = AESGCM(key).decrypt(_unb64(sealed["nonce"]), _unb64(sealed["ciphertext"]), b"keyring")
            except InvalidTag as exc:
                raise KeyringError("wrong keyring passphrase, or the keyring file was altered") from exc
            result: dict[str, dict[str, str]] = json.loads(clear)
            return result
        clear_doc: dict[str, dict[str, str]] = sealed["clear"]
        return clear_doc

    def save(self) -> None:
        if self._path is None:
            return
        clear = {
            "signing": {k.kid: k.private_pem().decode("ascii") for k in self._signing.values() if k.private},
            "data": {k.kid: _b64(k.secret) for k in self._data.values()},
        }
        if self._passphrase:
            salt, nonce = os.urandom(16), os.urandom(12)
            ct = AESGCM(self._derive(self._passphrase, salt)).encrypt(
                nonce, json.dumps(clear).encode("utf-8"), b"keyring"
            )
            sealed: dict[str, object] = {
                "sealed": True, "salt": _b64(salt), "nonce": _b64(nonce), "ciphertext": _b64(ct)
            }
        else:
            sealed = {"sealed": False, "clear": clear}
        doc = {
            "format": _FORMAT,
            "signing": [
                {
                    "kid": k.kid, "public_pem": k.public_pem().decode("ascii"), "created_at": k.created_at,
                    "retired_at": k.retired_at, "dev": k.dev,
                }
                for k in self._signing.values()
            ],
            "data": [
                {"kid": k.kid, "created_at": k.created_at, "retired_at": k.retired_at, "dev": k.dev}
                for k in self._data.values()
            ],
            "secrets": sealed,
        }
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".keyring-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self._path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- queries --------------------------------------------------------------------------------

    @property
    def active_signing(self) -> SigningKey:
        return next(k for k in self._signing.values() if k.retired_at is None and k.private is not None)

    @property
    def active_data(self) -> DataKey:
        return next(k for k in self._data.values() if k.retired_at is None)

    def signing_key(self, kid: str) -> SigningKey:
        try:
            return self._signing[kid]
        except KeyError:
            raise UnknownKey(f"no signing key {kid!r}") from None

    def data_key(self, kid: str) -> DataKey:
        try:
            return self._data[kid]
        except KeyError:
            raise UnknownKey(f"no data key {kid!r}") from None

    def signing_keys(self) -> list[SigningKey]:
        return list(self._signing.values())

    def data_keys(self) -> list[DataKey]:
        return list(self._data.values())

    @property
    def has_dev_keys(self) -> bool:
        return any(k.dev and k.retired_at is None for k in self._signing.values()) or any(
            k.dev and k.retired_at is None for k in self._data.values()
        )

    def require_production_keys(self) -> None:
        """Raise :class:`DevKeyRefused` when an active key was generated for development."""
        if self.has_dev_keys:
            raise DevKeyRefused(
                "the active keys were generated for development; run `tiepdan keys rotate` "
                "with TIEPDAN_MODE=production to make production keys"
            )

    # -- operations -----------------------------------------------------------------------------

    def rotate(self, *, dev: bool = False) -> tuple[str, str]:
        """Retire the active keys, make new ones, save; returns the new (signing kid, data kid)."""
        with self._lock:
            now = datetime.now(UTC).isoformat()
            old_sig, old_data = self.active_signing, self.active_data
            self._signing[old_sig.kid] = SigningKey(
                old_sig.kid, old_sig.public, old_sig.private, old_sig.created_at, now, old_sig.dev
            )
            self._data[old_data.kid] = DataKey(old_data.kid, old_data.secret, old_data.created_at, now, old_data.dev)
            priv = Ed25519PrivateKey.generate()
            sig = SigningKey(_new_kid("sig"), priv.public_key(), priv, now, dev=dev)
            data = DataKey(_new_kid("data"), AESGCM.generate_key(bit_length=256), now, dev=dev)
            self._signing[sig.kid] = sig
            self._data[data.kid] = data
            self.save()
            return sig.kid, data.kid

    def sign(self, message: bytes) -> tuple[str, bytes]:
        """Sign with the active key; returns (kid, signature)."""
        key = self.active_signing
        assert key.private is not None
        return key.kid, key.private.sign(message)

    def verify(self, kid: str, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` is valid for ``message`` under the (possibly retired) key ``kid``."""
        try:
            self.signing_key(kid).public.verify(signature, message)
        except (InvalidSignature, UnknownKey):
            return False
        return True

    def seal(self, plaintext: bytes, *, context: bytes = b"") -> str:
        """Encrypt with the active data key; ``context`` is authenticated but not stored."""
        key = self.active_data
        nonce = os.urandom(12)
        ct = AESGCM(key.secret).encrypt(nonce, plaintext, context)
        return SealedBox(key.kid, nonce, ct).encode()

    def open(self, sealed: str, *, context: bytes = b"") -> bytes:
        """Decrypt a value made by :meth:`seal` (with any key still in the keyring)."""
        box = SealedBox.decode(sealed)
        try:
            key = self.data_key(box.kid)
        except UnknownKey as exc:
            raise DecryptionFailed(f"the value was sealed with key {box.kid!r}, which this keyring lacks") from exc
        try:
            return AESGCM(key.secret).decrypt(box.nonce, box.ciphertext, context)
        except InvalidTag as exc:
            raise DecryptionFailed("wrong key, or the sealed value was altered") from exc
