"""Errors of the evidence package."""


class EvidenceError(Exception):
    """Base of every evidence error."""


class KeyringError(EvidenceError):
    """The keyring cannot be read, written or used as asked."""


class UnknownKey(KeyringError):
    """No key with this kid is in the keyring (never issued here, or the keyring was replaced)."""


class DevKeyRefused(KeyringError):
    """A production start found keys generated for development."""


class DecryptionFailed(EvidenceError):
    """Authenticated decryption failed: wrong key, or the ciphertext was altered."""
