"""Signed manifests: a JSON document (what files, which hashes, which case) signed with the keyring.

A signed manifest is ``{"manifest": {...}, "kid": "...", "signature": "<base64url>"}``; the signature
covers the canonical JSON of ``manifest``. Verification uses the kid's public key, retired or not,
so a manifest signed years ago still verifies after key rotations.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import EvidenceError
from .hashchain import canonical_json
from .keyring import Keyring

__all__ = ["sign_manifest", "verify_manifest", "sha256_file", "ManifestInvalid"]


class ManifestInvalid(EvidenceError):
    """The manifest is malformed, or its signature does not verify."""


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    """SHA-256 hex of a file, read in chunks (call it from a thread for big files)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sign_manifest(keyring: Keyring, manifest: Mapping[str, Any]) -> dict[str, Any]:
    kid, signature = keyring.sign(canonical_json(dict(manifest)))
    return {"manifest": dict(manifest), "kid": kid,
            "signature": base64.urlsafe_b64encode(signature).decode("ascii")}


def verify_manifest(keyring: Keyring, signed: Mapping[str, Any]) -> Mapping[str, Any]:
    """The manifest when its signature verifies; raises :class:`ManifestInvalid` otherwise."""
    try:
        manifest, kid, sig_text = signed["manifest"], signed["kid"], signed["signature"]
        signature = base64.urlsafe_b64decode(str(sig_text).encode("ascii"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestInvalid("the signed manifest is malformed") from exc
    if not isinstance(manifest, Mapping) or not isinstance(kid, str):
        raise ManifestInvalid("the signed manifest is malformed")
    if not keyring.verify(kid, canonical_json(dict(manifest)), signature):
        raise ManifestInvalid(f"the signature does not verify under key {kid!r}")
    return manifest
