from __future__ import annotations

import json
from pathlib import Path

import pytest

from evidence import DecryptionFailed, DevKeyRefused, Keyring, KeyringError

pytestmark = pytest.mark.unit


def test_signature_by_a_retired_key_still_verifies_after_rotation(tmp_path: Path) -> None:
    ring = Keyring.generate(dev=False, path=tmp_path / "k.json")
    kid, sig = ring.sign(b"manifest")
    ring.rotate()
    reloaded = Keyring.load(tmp_path / "k.json")
    assert reloaded.active_signing.kid != kid
    assert reloaded.signing_key(kid).retired_at is not None
    assert reloaded.verify(kid, b"manifest", sig)
    assert not reloaded.verify(kid, b"manifest!", sig)
    assert not reloaded.verify("sig-unknown", b"manifest", sig)


def test_sealed_value_opens_after_rotation_and_refuses_tampering(tmp_path: Path) -> None:
    ring = Keyring.generate(dev=False, path=tmp_path / "k.json")
    sealed = ring.seal("Nguyễn Văn A".encode(), context=b"identity:1")
    ring.rotate()
    assert ring.open(sealed, context=b"identity:1").decode() == "Nguyễn Văn A"
    with pytest.raises(DecryptionFailed):
        ring.open(sealed, context=b"identity:2")
    kid, nonce, ct = sealed.split(".")
    tampered = f"{kid}.{nonce}.{ct[:-4]}AAAA"
    with pytest.raises(DecryptionFailed):
        ring.open(tampered)
    with pytest.raises(DecryptionFailed):
        ring.open("not-a-sealed-value")


def test_value_sealed_by_another_keyring_gives_a_clear_error() -> None:
    a, b = Keyring.generate(dev=True), Keyring.generate(dev=True)
    with pytest.raises(DecryptionFailed, match="lacks"):
        b.open(a.seal(b"x"))


def test_passphrase_sealed_keyring_needs_the_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    Keyring.generate(dev=False, path=path, passphrase="correct horse")
    raw = path.read_text()
    assert "PRIVATE KEY" not in raw
    with pytest.raises(KeyringError, match="passphrase"):
        Keyring.load(path)
    with pytest.raises(KeyringError, match="wrong keyring passphrase"):
        Keyring.load(path, passphrase="wrong")
    assert Keyring.load(path, passphrase="correct horse").active_signing.private is not None


def test_production_refuses_dev_keys_until_rotated(tmp_path: Path) -> None:
    ring = Keyring.generate(dev=True, path=tmp_path / "k.json")
    with pytest.raises(DevKeyRefused):
        ring.require_production_keys()
    ring.rotate(dev=False)
    ring.require_production_keys()


def test_corrupt_or_missing_keyring_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="no keyring"):
        Keyring.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(KeyringError, match="cannot be read"):
        Keyring.load(bad)
    bad.write_text(json.dumps({"format": 99}))
    with pytest.raises(KeyringError, match="unknown format"):
        Keyring.load(bad)


def test_keyring_file_is_private_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    Keyring.generate(dev=True, path=path)
    assert path.stat().st_mode & 0o077 == 0
