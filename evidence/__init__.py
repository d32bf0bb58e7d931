"""Evidence: the keyring (signing and data keys with kid and rotation), sealing, signatures.

Standard library and ``cryptography`` only, so that every package may use it.
"""

from .errors import DecryptionFailed, DevKeyRefused, EvidenceError, KeyringError, UnknownKey
from .hashchain import GENESIS, ChainBreak, canonical_json, chain_hash, verify_chain
from .keyring import DataKey, Keyring, SealedBox, SigningKey
from .manifest import ManifestInvalid, sha256_file, sign_manifest, verify_manifest
from .stream import EncryptingWriter, StreamFormatError, StreamInfo, inspect_stream, open_decrypted

__all__ = [
    "GENESIS",
    "ChainBreak",
    "DataKey",
    "DecryptionFailed",
    "DevKeyRefused",
    "EncryptingWriter",
    "EvidenceError",
    "Keyring",
    "KeyringError",
    "ManifestInvalid",
    "SealedBox",
    "SigningKey",
    "StreamFormatError",
    "StreamInfo",
    "UnknownKey",
    "canonical_json",
    "chain_hash",
    "inspect_stream",
    "open_decrypted",
    "sha256_file",
    "sign_manifest",
    "verify_chain",
    "verify_manifest",
]
