"""The variants a desk sees every day, as pure rules: i/y spellings and the tone-mark placement
(:func:`complaints.duplicates.fold_spelling`, :func:`fold_text`), and communes or wards renamed or merged
in 2025 (the shipped alias data: its sources, and old ↔ new addresses comparing as one place)."""

from __future__ import annotations

import json
import re
import unicodedata
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from complaints.duplicates import (
    AliasTable,
    IntakeRecord,
    MatchField,
    MatchHow,
    blocking_keys,
    compare,
    default_aliases,
    fold_spelling,
    fold_text,
)

pytestmark = pytest.mark.unit

#: Pairs a desk meets: i/y after a consonant, and the old/new tone placement in oa/oe/uy.
SAME = [("Sĩ", "Sỹ"), ("Kỳ", "Kì"), ("Lý", "Lí"), ("Mỹ", "Mĩ"), ("Thúy", "Thuý"), ("Hòa", "Hoà"), ("khỏe", "khoẻ"),
        ("Thủy", "Thuỷ"), ("Ly", "Li"), ("Tỵ", "Tị"), ("Lê Văn Sĩ", "LÊ VĂN SỸ"), ("Kỳ Anh", "Kì Anh"),
        ("Mỹ Tho", "Mĩ Tho"), ("Nguyễn Thị Thúy Hòa", "Nguyễn Thị Thuý Hoà")]
#: Never the same: ay/ây is not ai/âi, uy is not ui, and a y that begins a word or stands alone stays.
DIFFERENT = [("tay", "tai"), ("Thúy", "Thúi"), ("cây", "cai"), ("bày", "bài"), ("Huy", "Hui"), ("Quý", "Quí"),
             ("Yên", "In"), ("ý", "í"), ("Thúy", "Thí"), ("may", "mai")]

SYLLABLE = st.text(alphabet="bcdghklmnpqrstvxđaăâeêioôơuưyáàảãạýỳỷỹỵíìỉĩịóòỏõọúùủũụéèẻẽẹ", min_size=1, max_size=6)
TEXT = st.lists(st.one_of(SYLLABLE, st.sampled_from([a for pair in SAME + DIFFERENT for a in pair])),
                max_size=6).map(" ".join)


@pytest.mark.parametrize(("left", "right"), SAME)
def test_interchangeable_spellings_fold_to_one(left: str, right: str) -> None:
    assert fold_spelling(left).lower() == fold_spelling(right).lower()
    assert fold_text(left) == fold_text(right)


@pytest.mark.parametrize(("left", "right"), DIFFERENT)
def test_spellings_that_are_other_words_stay_apart(left: str, right: str) -> None:
    assert fold_text(left) != fold_text(right)
    assert fold_spelling(left).lower() != fold_spelling(right).lower()


def test_the_new_spelling_and_placement_are_the_ones_written() -> None:
    assert fold_spelling("Lê Văn Sỹ, Kỳ Anh, Thúy, hòa, KHỎE") == "Lê Văn Sĩ, Kì Anh, Thuý, hoà, KHOẺ"
    assert fold_spelling("Hoàng, huýt, Quỳnh, Yên, ý, tay, Thúy Hằng") == "Hoàng, huýt, Quỳnh, Yên, ý, tay, Thuý Hằng"
    assert fold_text("  Lê Văn Sỹ ") == "le van si" and fold_text("") == ""


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_folding_is_idempotent_and_agrees_with_the_ascii_fold(text: str) -> None:
    once = fold_spelling(text)
    assert fold_spelling(once) == once
    assert fold_text(fold_text(text)) == fold_text(text)
    assert fold_text(once) == fold_text(text)  # the stored ASCII columns need no tone placement


def skeleton(text: str) -> list[str]:
    """The diacritic-free words, computed independently of the code under test and without any i/y rule."""
    decomposed = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return re.sub(r"[^0-9a-z]+", " ", plain).split()


ONSET_Y = re.compile(r"(b|c|ch|d|g|gh|h|k|kh|l|m|n|ng|ngh|nh|p|ph|r|s|t|th|tr|v|x)y")


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_folding_changes_only_the_y_of_a_consonant_plus_y_syllable(text: str) -> None:
    plain, folded = skeleton(text), fold_text(text).split()
    assert len(plain) == len(folded)
    for before, after in zip(plain, folded, strict=True):
        if ONSET_Y.fullmatch(before):
            assert after == before[:-1] + "i"
        else:
            assert after == before  # ay, ây, uy, quy, a leading or lone y: never folded
        if "ay" in before or "uy" in before:
            assert after == before


def test_folded_words_keep_ay_and_uy_exactly() -> None:
    for word in ("tay", "thuy", "quy", "huy", "may", "bay", "tuy", "nguy", "khuy"):
        assert fold_text(word) == word, word
    for word in ("sy", "ky", "ly", "my", "ty", "hy", "vy", "thy", "chy"):
        assert fold_text(word) == word[:-1] + "i", word


def test_the_shipped_commune_data_names_its_resolution_date_and_address() -> None:
    data = json.loads(resources.files("complaints").joinpath("data/admin_aliases.json").read_text("utf-8"))
    documented = {s["resolution"]: s for s in data["sources"] if isinstance(s, dict)}
    assert {"Nghị quyết 1658/NQ-UBTVQH15", "Nghị quyết 1685/NQ-UBTVQH15"} <= documented.keys()
    for source in documented.values():
        assert source["url"].startswith("https://") and source.get("note")
    communes = [a for a in data["aliases"] if "UBTVQH15" in a["source"]]
    assert len(communes) >= 30
    for alias in communes:
        assert isinstance(alias["verified"], bool) and alias["checked"]
        assert any(resolution in alias["source"] for resolution in documented), alias
        assert alias.get("province") or alias.get("district"), alias  # every commune entry is scoped


def record(address: str, name: str = "Lê Văn Sĩ") -> IntakeRecord:
    return IntakeRecord(address, full_name=name, address=address, content="Khiếu nại thu hồi đất")


@pytest.mark.parametrize(("old", "new"), [
    ("Phường 12, Quận 3, TP. Hồ Chí Minh", "phường Nhiêu Lộc, Thành phố Hồ Chí Minh"),
    ("12 Trần Quốc Thảo, P.12, Q.3", "12 Trần Quốc Thảo, phường Nhiêu Lộc"),
    ("Phường 2, Quận 3", "phường Bàn Cờ, TP HCM"),
    ("thôn Đông Phù, xã Phú Lâm, huyện Tiên Du, tỉnh Bắc Ninh", "thôn Đông Phù, xã Tiên Du, tỉnh Bắc Ninh"),
    ("phường Đồng Kỵ, thành phố Từ Sơn, Bắc Ninh", "phường Đồng Nguyên, tỉnh Bắc Ninh"),
])
def test_an_old_ward_and_the_new_one_it_became_are_the_same_place(old: str, new: str) -> None:
    table = default_aliases()
    for left, right in ((record(old), record(new, "Lê Văn Sỹ")), (record(new), record(old, "LE VAN SY"))):
        candidate = compare(left, right, table)
        reasons = {r.field: r for r in candidate.reasons}
        assert reasons[MatchField.ADDRESS].how is MatchHow.ADMIN_ALIAS and reasons[MatchField.ADDRESS].similarity == 1
        assert reasons[MatchField.NAME].similarity == 1 and candidate.is_match
        assert not compare(left, right).is_match or compare(left, right).score < candidate.score


@pytest.mark.parametrize(("old", "new"), [
    ("Phường 12, Quận 5", "phường Nhiêu Lộc"),  # the same number in another old district
    ("Phường 12", "phường Nhiêu Lộc"),  # no district: "Phường 12" is a place in every district
    ("xã Phú Lâm, huyện Tiên Du, tỉnh Bình Định", "xã Tiên Du, tỉnh Bắc Ninh"),  # the same name elsewhere
    ("Phường 12, Quận 3", "phường Bàn Cờ"),  # another ward of the same old district
])
def test_a_rename_applies_only_where_the_resolution_says(old: str, new: str) -> None:
    reasons = {r.field: r for r in compare(record(old), record(new), default_aliases()).reasons}
    address = reasons.get(MatchField.ADDRESS)
    assert address is None or address.how is not MatchHow.ADMIN_ALIAS


def test_a_district_scoped_alias_needs_its_district() -> None:
    table = AliasTable.from_rows([{"old": "Phường 7", "new": "phường Mới", "district": "Quận 9", "verified": True}])
    assert table.aliases[0].verified and table.aliases[0].district == "Quận 9"
    near = compare(record("Phường 7, Quận 9"), record("phường Mới"), table)
    far = compare(record("Phường 7, Quận 8"), record("phường Mới"), table)
    assert near.score > far.score


def test_blocking_keys_of_i_and_y_spellings_are_shared() -> None:
    left = blocking_keys(IntakeRecord("a", full_name="Lê Văn Sỹ", address="xã Kỳ Sơn"))
    right = blocking_keys(IntakeRecord("b", full_name="Lê Văn Sĩ", address="xã Kì Sơn"))
    assert left == right


def test_an_address_before_the_merger_shares_a_place_key_with_the_new_ward() -> None:
    old = blocking_keys(IntakeRecord("a", full_name="Nguyễn Văn An", address="45 Trần Quốc Thảo, Phường 12, Quận 3"))
    new = blocking_keys(IntakeRecord("b", full_name="Nguyễn Văn An", address="phường Nhiêu Lộc, TP Hồ Chí Minh"))
    shared = {k for k in old & new if k.startswith("np:")}
    assert shared and all(k.endswith("|nhieu loc") for k in shared)
