"""Duplicate detection at intake, measured on the committed labelled set."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from complaints.duplicates import (
    MATCH_THRESHOLD,
    AliasTable,
    IntakeRecord,
    MatchField,
    MatchHow,
    blocking_keys,
    compare,
    fold_text,
    rank,
)

from . import make_duplicate_pairs

pytestmark = pytest.mark.unit
DATA_FILE = Path(__file__).parent / "data" / "duplicate_pairs.json"
DATA: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))
ALIASES = AliasTable.from_rows(DATA["aliases"])
PAIRS: list[dict[str, Any]] = DATA["pairs"]


def rec(fields: dict[str, str]) -> IntakeRecord:
    return IntakeRecord(**fields)


def pool() -> list[IntakeRecord]:
    records = [rec(p["a"]) for p in PAIRS]
    records += [rec(p["b"]) for p in PAIRS if not p["duplicate"]]
    records += [rec(d) for d in DATA["distractors"]]
    return records


def prefilter(query: IntakeRecord, records: Sequence[IntakeRecord]) -> list[IntakeRecord]:
    """What the database does with the blocking keys."""
    keys = blocking_keys(query)
    return [r for r in records if blocking_keys(r) & keys]


def test_committed_set_is_what_the_script_generates() -> None:
    assert DATA_FILE.read_text(encoding="utf-8") == make_duplicate_pairs.render()


def test_labelled_set_is_large_and_covers_the_variations() -> None:
    assert len(PAIRS) >= 200
    variations = {v for p in PAIRS for v in p["variations"]}
    assert set(make_duplicate_pairs.VARIATIONS) <= variations
    assert {"same_name_other_person", "family_member", "similar_name", "same_matter_neighbour"} <= variations
    assert sum(not p["duplicate"] for p in PAIRS) >= 60


def test_recall_at_5_over_a_pool_of_distractors_is_at_least_95_percent() -> None:
    records = pool()
    positives = [p for p in PAIRS if p["duplicate"]]
    found = 0
    for pair in positives:
        query = rec(pair["b"])
        top = [c.record_id for c in rank(query, prefilter(query, records), ALIASES, limit=5)]
        found += pair["a"]["record_id"] in top
    assert found / len(positives) >= 0.95


def test_blocking_keys_never_lose_a_labelled_duplicate() -> None:
    for pair in PAIRS:
        if pair["duplicate"]:
            assert blocking_keys(rec(pair["a"])) & blocking_keys(rec(pair["b"])), pair["pair_id"]


def test_labelled_non_duplicates_are_not_matched() -> None:
    false_matches = [p["pair_id"] for p in PAIRS if not p["duplicate"]
                     and compare(rec(p["b"]), rec(p["a"]), ALIASES).is_match]
    assert false_matches == []


def test_fifty_people_named_nguyen_van_hung_are_never_matched_on_the_name_alone() -> None:
    people = [rec(d) for d in DATA["distractors"]]
    assert len(people) == 50 and {p.full_name for p in people} == {"Nguyễn Văn Hùng"}
    assert len({p.id_number for p in people}) == 50
    for person in people:
        assert rank(person, people, ALIASES) == []
        name_only = IntakeRecord("q", full_name=person.full_name)
        assert rank(name_only, people, ALIASES) == []
        without_id = IntakeRecord("q2", full_name="NGUYEN VAN HUNG", address=person.address)
        # Same name and same address, no ID: only that one person (and namesakes at the very same address).
        matched = {c.record_id for c in rank(without_id, people, ALIASES)}
        assert person.record_id in matched
        assert all(p.address == person.address for p in people if p.record_id in matched)


def test_exact_id_matches_whatever_else_differs() -> None:
    a = IntakeRecord("a", full_name="Trần Thị Lan", id_number="027185012345")
    b = IntakeRecord("b", full_name="Lan", id_number="027 185 012 345")
    candidate = compare(a, b)
    assert candidate.is_match and candidate.reasons[0].field is MatchField.ID_NUMBER
    assert candidate.reasons[0].how is MatchHow.EXACT


def test_different_ids_of_the_same_kind_are_different_people() -> None:
    a = IntakeRecord("a", "Trần Thị Lan", "027185012345", "thôn Đông, xã Phú Lâm", "UBND xã Phú Lâm", "đất")
    b = IntakeRecord("b", "Trần Thị Lan", "027185099999", "thôn Đông, xã Phú Lâm", "UBND xã Phú Lâm", "đất")
    candidate = compare(a, b)
    assert not candidate.is_match
    assert any(r.how is MatchHow.CONFLICT for r in candidate.reasons)


def test_reasons_say_how_each_field_matched() -> None:
    a = IntakeRecord("a", "Đặng Văn Hùng", "", "thôn Đông, xã Hoàn Sơn, huyện Tiên Du, tỉnh Bắc Ninh",
                     "UBND xã Hoàn Sơn", "Khiếu nại bồi thường thửa đất số 123 tờ bản đồ số 5")
    b = IntakeRecord("b", "hung  DANG van", "", "Thôn Đông, xã Tiên Du, tỉnh Bắc Ninh",
                     "Ủy ban nhân dân xã Hoàn Sơn", "Khiếu nại về bồi thường thửa đất 123, tờ bản đồ 5")
    candidate = compare(b, a, ALIASES)
    how = {r.field: r.how for r in candidate.reasons}
    assert candidate.is_match
    assert how[MatchField.NAME] is MatchHow.WORD_ORDER
    assert how[MatchField.ADDRESS] is MatchHow.ADMIN_ALIAS
    assert all(r.label_vi.startswith(r.field.label_vi) for r in candidate.reasons)
    # Without the alias table the old and new commune do not match.
    assert compare(b, a).score < candidate.score


def test_rank_orders_best_first_skips_the_query_and_respects_the_limit() -> None:
    records = pool()
    query = rec(PAIRS[0]["b"])
    ranked = rank(query, [*records, query], ALIASES)
    assert all(c.score >= MATCH_THRESHOLD for c in ranked)
    assert [c.score for c in ranked] == sorted((c.score for c in ranked), reverse=True)
    assert query.record_id not in {c.record_id for c in ranked}
    assert len(rank(query, records, ALIASES, threshold=0.0, limit=3)) == 3


def test_fold_text_maps_d_bar_and_strips_everything_else() -> None:
    assert fold_text("  Đặng  THỊ Hồng, đường Lê Lợi ") == "dang thi hong duong le loi"
    assert fold_text("ĐÀO") == "dao"


names = st.lists(st.sampled_from(["Nguyễn", "Văn", "Thị", "Hùng", "Đặng", "Lan", "Đức", "Phương", "Anh"]),
                 min_size=2, max_size=4)


@given(names, st.randoms(use_true_random=False))
def test_spelling_variants_of_a_name_share_a_blocking_key(parts: list[str], rng: random.Random) -> None:
    original = IntakeRecord("a", full_name=" ".join(parts))
    shuffled = parts[:]
    rng.shuffle(shuffled)
    variant = make_duplicate_pairs.strip_diacritics("  ".join(shuffled)).upper()
    k = rng.randrange(len(shuffled))
    typo = shuffled[:]
    typo[k] = make_duplicate_pairs.typo(rng, typo[k])
    for other in (variant, " ".join(typo)):
        assert blocking_keys(original) & blocking_keys(IntakeRecord("b", full_name=other))
