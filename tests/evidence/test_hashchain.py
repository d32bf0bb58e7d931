from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evidence import (
    GENESIS,
    Keyring,
    ManifestInvalid,
    chain_hash,
    sha256_file,
    sign_manifest,
    verify_chain,
    verify_manifest,
)

pytestmark = pytest.mark.unit


def _chain(records: list[dict[str, object]]) -> list[tuple[int, dict[str, object], str, str]]:
    rows, prev = [], GENESIS
    for i, rec in enumerate(records):
        h = chain_hash(prev, rec)
        rows.append((i + 1, rec, prev, h))
        prev = h
    return rows


RECORDS: list[dict[str, object]] = [{"actor": "u1", "action": "identity.view", "case": f"c{i}"} for i in range(6)]


def test_whole_chain_verifies() -> None:
    assert verify_chain(_chain(RECORDS)) is None


def test_an_edited_record_is_named() -> None:
    rows = _chain(RECORDS)
    rid, rec, prev, h = rows[3]
    rows[3] = (rid, {**rec, "action": "identity.edit"}, prev, h)
    bad = verify_chain(rows)
    assert bad is not None and bad.index == 3 and bad.record_id == 4 and "altered" in bad.reason


def test_a_removed_or_reordered_record_is_named() -> None:
    rows = _chain(RECORDS)
    del rows[2]
    bad = verify_chain(rows)
    assert bad is not None and bad.index == 2 and "removed or reordered" in bad.reason
    rows = _chain(RECORDS)
    rows[1], rows[2] = rows[2], rows[1]
    bad = verify_chain(rows)
    assert bad is not None and bad.index == 1


@given(st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=10) | st.integers(), max_size=4),
                min_size=1, max_size=8), st.data())
def test_any_single_change_breaks_the_chain(records: list[dict[str, object]], data: st.DataObject) -> None:
    rows = _chain(records)
    i = data.draw(st.integers(0, len(rows) - 1))
    rid, rec, prev, h = rows[i]
    rows[i] = (rid, {**rec, "\x00tampered": True}, prev, h)
    bad = verify_chain(rows)
    assert bad is not None and bad.index == i


def test_manifest_signed_before_rotation_still_verifies_and_tampering_is_refused(tmp_path: Path) -> None:
    ring = Keyring.generate(dev=True)
    media = tmp_path / "case.webm"
    media.write_bytes(b"\x1a\x45\xdf\xa3" * 1000)
    signed = sign_manifest(ring, {"case": "c1", "files": {"case.webm": sha256_file(media)}})
    ring.rotate()
    assert verify_manifest(ring, signed)["case"] == "c1"
    forged = {**signed, "manifest": {**signed["manifest"], "case": "c2"}}
    with pytest.raises(ManifestInvalid, match="does not verify"):
        verify_manifest(ring, forged)
    with pytest.raises(ManifestInvalid, match="malformed"):
        verify_manifest(ring, {"manifest": {}})
    with pytest.raises(ManifestInvalid):
        verify_manifest(Keyring.generate(dev=True), signed)
