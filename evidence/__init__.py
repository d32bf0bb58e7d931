"""Evidence: the keyring (signing and data keys with kid and rotation), sealing, signatures.

Standard library and ``cryptography`` only, so that every package may use it.
"""

from .errors import DecryptionFailed, DevKeyRefused, EvidenceError, KeyringError, UnknownKey
from .hashchain import GENESIS, ChainBreak, canonical_json, chain_hash, verify_chain
from .keyring import DataKey, Keyring, SealedBox, SigningKey
from .manifest import ManifestInvalid, sha256_file, sign_manifest, verify_manifest

__all__ = [
    "GENESIS",
    "ChainBreak",
    "DataKey",
    "DecryptionFailed",
    "DevKeyRefused",
    "EvidenceError",
    "Keyring",
    "KeyringError",
    "ManifestInvalid",
    "SealedBox",
    "SigningKey",
    "UnknownKey",
    "canonical_json",
    "chain_hash",
    "sha256_file",
    "sign_manifest",
    "verify_chain",
    "verify_manifest",
]
