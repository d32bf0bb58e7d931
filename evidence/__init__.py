"""Evidence: the keyring (signing and data keys with kid and rotation), sealing, signatures.

Standard library and ``cryptography`` only, so that every package may use it.
"""

from .errors import DecryptionFailed, DevKeyRefused, EvidenceError, KeyringError, UnknownKey
from .keyring import DataKey, Keyring, SealedBox, SigningKey

__all__ = [
    "DataKey",
    "DecryptionFailed",
    "DevKeyRefused",
    "EvidenceError",
    "Keyring",
    "KeyringError",
    "SealedBox",
    "SigningKey",
    "UnknownKey",
]
