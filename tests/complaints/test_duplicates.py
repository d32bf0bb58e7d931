"""Duplicate detection at intake, measured on the committed labelled set."""

from __future__ import annotations

import json
import random
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from complaints.duplicates import (
    MATCH_THRESHOLD,
    PREFILTER_LIMIT,
    AliasTable,
    IntakeRecord,
    MatchField,
    MatchHow,
    blocking_keys,
    compare,
    default_aliases,
    fold_text,
    key_weight,
    rank,
    shortlist,
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
    """What the database does with the blocking keys: the best-weighted few sharing a key."""
    by_id = {r.record_id: r for r in records}
    ids = shortlist(blocking_keys(query), [(r.record_id, blocking_keys(r)) for r in records])
    return [by_id[i] for i in ids]


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


def test_recall_at_5_holds_when_namesakes_outnumber_what_the_prefilter_takes() -> None:
    records = pool()
    stored = [(r.record_id, blocking_keys(r)) for r in records]
    by_id = {r.record_id: r for r in records}
    positives = [p for p in PAIRS if p["duplicate"]]
    found = 0
    for pair in positives:
        person = rec(pair["a"])
        crowd = [IntakeRecord(f"crowd-{i:03d}", full_name=person.full_name, address=f"Thôn {i}, xã Khác {i % 7}",
                              respondent=f"Công ty {i}", content=f"việc riêng số {i}")
                 for i in range(3 * PREFILTER_LIMIT)]
        crowd_stored = [(r.record_id, blocking_keys(r)) for r in crowd]
        query = rec(pair["b"])
        ids = shortlist(blocking_keys(query), stored + crowd_stored)
        assert len(ids) == PREFILTER_LIMIT  # the cap binds: more namesakes share a key than it takes
        candidates = [by_id.get(i) or crowd[int(i.removeprefix("crowd-"))] for i in ids]
        found += person.record_id in [c.record_id for c in rank(query, candidates, ALIASES, limit=5)]
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


def test_the_shipped_aliases_map_every_province_merged_in_2025_to_its_new_province() -> None:
    table = default_aliases()
    provinces = [a for a in table.aliases if a.source == "Nghị quyết 202/2025/QH15"]
    assert len(provinces) == 29  # 63 provinces became 34
    assert all(a.old.startswith("tỉnh ") for a in provinces)
    # an old petition that names only its province, and the same person's new one
    for old_place, new_place in (("tỉnh Bắc Giang", "tỉnh Bắc Ninh"),
                                 ("tỉnh Bà Rịa - Vũng Tàu", "thành phố Hồ Chí Minh"),
                                 ("tinh Hau Giang", "TP Cần Thơ")):
        old = IntakeRecord("old", "Trần Thị Mai", "", old_place, "", "Khiếu nại về thu hồi đất")
        new = IntakeRecord("new", "Tran Thi Mai", "", new_place, "", "Khiếu nại thu hồi đất")
        candidate = compare(new, old, table)
        assert {r.field: r.how for r in candidate.reasons}[MatchField.ADDRESS] is MatchHow.ADMIN_ALIAS, old_place
        assert compare(new, old).score < candidate.score
    unrelated = IntakeRecord("far", "Tran Thi Mai", "", "tỉnh Phú Thọ", "", "Khiếu nại thu hồi đất")
    old = IntakeRecord("old", "Trần Thị Mai", "", "tỉnh Bắc Giang", "", "Khiếu nại về thu hồi đất")
    assert compare(unrelated, old, table).score == compare(unrelated, old).score


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


def _fold_by_definition(text: str) -> str:
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    words = "".join(ch if ch.isascii() and ch.isalnum() else " " for ch in stripped).split()
    # the y that is the whole rhyme after an initial consonant is written i (Sỹ/Sĩ, Kỳ/Kì)
    onsets = "b c ch d g gh h k kh l m n ng ngh nh p ph r s t th tr v x".split()
    return " ".join(w[:-1] + "i" if w.endswith("y") and w[:-1] in onsets else w for w in words)


@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("ĐđƯươăâêôÀẠẢÃÁẰẶẲẴẮẦẬẨẪẤỳỵỷỹýĩ\u0301\u0323")))
def test_fold_text_is_the_decomposition_without_marks_whatever_the_text(text: str) -> None:
    assert fold_text(text) == _fold_by_definition(text)


def test_name_words_are_paired_with_the_places_of_the_address() -> None:
    stored = IntakeRecord("a", full_name="Nguyễn Văn Hùng", address="Thôn Đông 12, xã Tiên Du, tỉnh Bắc Ninh")
    place_keys = {k for k in blocking_keys(stored) if k.startswith("np:")}
    assert place_keys == {f"np:{pair}|{place}" for pair in ("hung-nguyen", "hung-van", "nguyen-van")
                          for place in ("dong 12", "tien du")}  # the village and the commune, not the province
    typo_here = IntakeRecord("b", full_name="NGUYEN VAN HUNH", address="xa Tien Du")
    same_name_elsewhere = IntakeRecord("c", full_name="Nguyễn Văn Hùng", address="Số 12, xã Yên Phong, Bắc Ninh")
    assert {k for k in blocking_keys(typo_here) & blocking_keys(stored) if k.startswith("np:")} == {
        "np:nguyen-van|tien du"}
    assert not {k for k in blocking_keys(same_name_elsewhere) & blocking_keys(stored) if k.startswith("np:")}
    # Old and new names of one place: the old district named like the new commune, the city, the village.
    old = IntakeRecord("d", full_name="Nguyễn Văn Hùng", address="Thôn Đông 12, xã Hoàn Sơn, huyện Tiên Du")
    assert "np:hung-nguyen|tien du" in blocking_keys(old) and "np:hung-nguyen|dong 12" in blocking_keys(old)
    city = IntakeRecord("e", full_name="Đỗ Ngọc Yến", address="thôn Trung, phường Tân Hồng, thành phố Từ Sơn")
    city_only = IntakeRecord("f", full_name="Do Ngoc Yen", address="thon Trung, TP Tu Son")
    assert {k for k in blocking_keys(city) & blocking_keys(city_only) if k.startswith("np:")} == {
        f"np:{pair}|{place}" for pair in ("do-ngoc", "do-yen", "ngoc-yen") for place in ("trung", "tu son")}
    assert not any(k.startswith("np:") for k in blocking_keys(IntakeRecord("g", full_name="Hùng", address="")))
    assert not any(k.startswith("np:") for k in blocking_keys(IntakeRecord("h", full_name="Lê Lan", address="Số 5")))


def test_blocking_keys_fit_the_database_column_whatever_the_name() -> None:
    long_name = " ".join(["Nguyễn"] + ["Thịnhvượngphátđạt"] * 12)
    keys = blocking_keys(IntakeRecord("a", full_name=long_name, id_number="001203012345", address="xã Tiên Du"))
    assert keys and all(len(k) <= 200 for k in keys)
    assert "id:001203012345" in keys


def test_shortlist_takes_the_best_weighted_records_first_and_caps_them() -> None:
    assert key_weight("id:001203012345") > key_weight("np:hung-van|tien du") > key_weight("nd:hung|nguyen-van") == 1
    query = IntakeRecord("q", full_name="NGUYEN VAN HUNH", address="thon Dong 12, xa Tien Du")
    namesakes = [IntakeRecord(f"n{i:03d}", full_name="Nguyễn Văn Hùng", address=f"xã Yên Phong {i}")
                 for i in range(3 * PREFILTER_LIMIT)]
    same_commune_other_name = [IntakeRecord(f"m{i:03d}", full_name="Nguyễn Văn Dũng", address="xã Tiên Du")
                               for i in range(3 * PREFILTER_LIMIT)]
    person = IntakeRecord("zz-the-person", full_name="Nguyễn Văn Hùng", address="Thôn Đông 12, xã Tiên Du")
    by_id = IntakeRecord("zz-by-id", full_name="Trần Thị Lan", id_number="001203012345")
    stored = [(r.record_id, blocking_keys(r)) for r in [*namesakes, *same_commune_other_name, person, by_id]]
    ids = shortlist(blocking_keys(query), stored)
    assert len(ids) == PREFILTER_LIMIT
    assert ids[0] == "zz-the-person"  # shares a typo key and a name pair in the commune
    assert ids[1:] == sorted(ids[1:])[: PREFILTER_LIMIT - 1]  # ties by id
    # A namesake far away (typo-level name keys) before another name in the commune (place keys only).
    assert all(i.startswith("n") for i in ids[1:])
    only_here = shortlist(blocking_keys(query), [(r.record_id, blocking_keys(r)) for r in same_commune_other_name])
    assert only_here == sorted(r.record_id for r in same_commune_other_name)[:PREFILTER_LIMIT]
    with_id = IntakeRecord("q2", full_name="Trần Lan", id_number="001 203 012 345")
    assert shortlist(blocking_keys(with_id), stored, limit=1) == ["zz-by-id"]
    assert shortlist(blocking_keys(IntakeRecord("q3", full_name="Lò Văn Páo")), stored) == []


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
