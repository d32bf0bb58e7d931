"""Hash chains: each record's hash covers its content and the previous record's hash, so editing,
removing or reordering any record breaks every hash after it.

Records are canonicalised as JSON (sorted keys, no spaces, UTF-8) before hashing; values must be
JSON-representable (str, int, bool, None, lists, dicts; dates as ISO strings). The first record
chains to :data:`GENESIS`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["GENESIS", "canonical_json", "chain_hash", "verify_chain", "ChainBreak"]

GENESIS = "0" * 64


def canonical_json(value: Any) -> bytes:
    """The one byte form of a JSON value that every hash and signature is computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def chain_hash(prev_hash: str, record: Mapping[str, Any]) -> str:
    """SHA-256 hex of ``prev_hash`` and the canonical form of ``record``."""
    h = hashlib.sha256()
    h.update(prev_hash.encode("ascii"))
    h.update(b"\n")
    h.update(canonical_json(dict(record)))
    return h.hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """The first record whose stored hash does not match; ``index`` counts from 0."""

    index: int
    record_id: Any
    reason: str


def verify_chain(
    rows: Iterable[tuple[Any, Mapping[str, Any], str, str]], *, start: str = GENESIS
) -> ChainBreak | None:
    """Check rows of (id, record, prev_hash, hash) in chain order; None when the chain is whole."""
    expected_prev = start
    for index, (row_id, record, prev_hash, stored) in enumerate(rows):
        if prev_hash != expected_prev:
            return ChainBreak(index, row_id, "previous hash does not match: a record was removed or reordered")
        if chain_hash(prev_hash, record) != stored:
            return ChainBreak(index, row_id, "content does not match its hash: the record was altered")
        expected_prev = stored
    return None
