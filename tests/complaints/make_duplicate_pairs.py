"""Generate the labelled duplicate-detection set ``data/duplicate_pairs.json`` (deterministic).

Run from the repository root: ``.venv/bin/python tests/complaints/make_duplicate_pairs.py``.
The output is committed; ``test_duplicates.py`` checks that it is what this script produces.

Everything is synthetic: people, ID numbers, addresses, respondents and matters are made up. The alias
table is an *illustrative* old → new mapping in the style of the 2025 reform (district abolished,
communes merged, Bắc Giang merged into Bắc Ninh); it is not the official list.

Each pair is ``{"a": record, "b": record, "duplicate": bool, "variations": [...]}``. Positives are the
same petitioner and matter registered twice with the variations named; negatives are different people
who look alike (same name, family members at one address, a one-letter name difference, neighbours
with the same matter). ``distractors`` adds 50 different people all named "Nguyễn Văn Hùng".
"""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path
from typing import Any

SEED = 20250701
OUTPUT = Path(__file__).parent / "data" / "duplicate_pairs.json"
POSITIVES = 160

SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
            "Hồ", "Ngô", "Dương", "Lý", "Đào", "Đinh", "Trịnh", "Lương"]
MIDDLE_MALE = ["Văn", "Đức", "Minh", "Hữu", "Quang", "Ngọc", "Thanh", "Xuân", "Công", "Đình"]
MIDDLE_FEMALE = ["Thị", "Ngọc", "Thanh", "Thu", "Minh", "Kim", "Hồng", "Phương"]
GIVEN_MALE = ["Hùng", "Dũng", "Đạt", "Tuấn", "Hải", "Sơn", "Đông", "Nam", "Bình", "Cường", "Đức", "Giang",
              "Khánh", "Long", "Thắng", "Quyết", "Trường", "Hiếu", "Toàn", "Phúc", "Lâm", "Thịnh"]
GIVEN_FEMALE = ["Lan", "Hương", "Hà", "Phương", "Thảo", "Mai", "Hạnh", "Loan", "Nhung", "Yến", "Huyền",
                "Trang", "Dung", "Oanh", "Liên", "Ngân", "Thủy", "Hằng"]

# old district -> (province, {old commune: new commune}); illustrative, not the official list.
GEOGRAPHY: dict[str, tuple[str, str, dict[str, str]]] = {
    "huyện Tiên Du": ("tỉnh Bắc Ninh", "xã Tiên Du",
                      {"xã Hoàn Sơn": "xã Tiên Du", "xã Liên Bão": "xã Tiên Du", "xã Phú Lâm": "xã Đại Đồng",
                       "xã Nội Duệ": "xã Đại Đồng"}),
    "huyện Quế Võ": ("tỉnh Bắc Ninh", "xã Quế Võ",
                     {"xã Phượng Mao": "xã Quế Võ", "xã Việt Hùng": "xã Quế Võ", "xã Bằng An": "xã Bồng Lai",
                      "xã Chi Lăng": "xã Bồng Lai"}),
    "huyện Gia Bình": ("tỉnh Bắc Ninh", "xã Gia Bình",
                       {"xã Đông Cứu": "xã Đông Cứu", "xã Giang Sơn": "xã Đông Cứu", "xã Lãng Ngâm": "xã Gia Bình",
                        "xã Xuân Lai": "xã Gia Bình"}),
    "thành phố Từ Sơn": ("tỉnh Bắc Ninh", "phường Từ Sơn",
                         {"phường Đình Bảng": "phường Đình Bảng", "phường Đồng Kỵ": "phường Từ Sơn",
                          "phường Trang Hạ": "phường Từ Sơn", "phường Tân Hồng": "phường Đình Bảng"}),
    "huyện Lục Nam": ("tỉnh Bắc Giang", "xã Lục Nam",
                      {"xã Đông Phú": "xã Lục Nam", "xã Đông Hưng": "xã Lục Nam", "xã Bảo Đài": "xã Bảo Đài",
                       "xã Tam Dị": "xã Bảo Đài"}),
}  # fmt: skip
NEW_PROVINCE = {"tỉnh Bắc Ninh": "tỉnh Bắc Ninh", "tỉnh Bắc Giang": "tỉnh Bắc Ninh"}
VILLAGES = ["thôn Đông", "thôn Đoài", "thôn Trung", "thôn Thượng", "thôn Hạ", "xóm Mới", "thôn Đình",
            "thôn Đức Thắng", "thôn Yên Mỹ", "thôn Lũng Giang", "thôn Đại Vi", "thôn Ngọc Khám",
            "khu phố Đa Hội", "tổ dân phố Đặng Xá", "thôn Phù Lưu", "thôn Xuân Ổ", "thôn Cẩm Giang",
            "thôn Mai Động", "thôn Hữu Chấp", "thôn Quảng Bố"]
COMPANIES = ["Công ty TNHH Minh Phát", "Công ty cổ phần Đầu tư Hoàng Long", "Công ty TNHH Xây dựng Đức Anh",
             "Ban Quản lý dự án đầu tư xây dựng huyện"]
MATTERS = [
    ("Khiếu nại việc thu hồi đất và bồi thường không thỏa đáng thửa đất số {n} tờ bản đồ số {m} để làm dự án "
     "khu công nghiệp năm {y}",
     "Đề nghị xem xét lại mức bồi thường khi thu hồi thửa đất số {n}, tờ bản đồ {m} làm khu công nghiệp năm {y}"),
    ("Tố cáo cán bộ địa chính xã nhận tiền khi làm thủ tục cấp giấy chứng nhận quyền sử dụng đất thửa số {n} "
     "năm {y}",
     "Tố cáo việc cán bộ địa chính nhận tiền để cấp giấy chứng nhận quyền sử dụng đất cho thửa {n} năm {y}"),
    ("Kiến nghị giải quyết tranh chấp lối đi chung giữa hộ gia đình và hộ liền kề tại thửa đất số {n}",
     "Đề nghị chính quyền giải quyết tranh chấp lối đi chung với hộ liền kề, thửa {n}"),
    ("Khiếu nại quyết định xử phạt vi phạm hành chính số {n}/QĐ-XPHC ngày {m} về xây dựng công trình "
     "trên đất nông nghiệp",
     "Không đồng ý với quyết định xử phạt số {n}/QĐ-XPHC về xây dựng trên đất nông nghiệp, đề nghị hủy bỏ"),
    ("Đề nghị giải quyết chế độ chính sách người có công với cách mạng cho gia đình, hồ sơ số {n} nộp năm {y}",
     "Gia đình đề nghị xem xét chế độ người có công với cách mạng, hồ sơ {n} đã nộp từ năm {y} chưa được "
     "giải quyết"),
    ("Phản ánh công ty xả nước thải gây ô nhiễm môi trường ruộng lúa của {n} hộ dân từ năm {y}",
     "Phản ánh tình trạng xả thải gây ô nhiễm ruộng lúa, ảnh hưởng {n} hộ dân từ năm {y}"),
    ("Khiếu nại việc không được giao đất tái định cư sau khi bị thu hồi nhà ở tại thửa số {n} tờ {m}",
     "Đề nghị được giao đất tái định cư vì nhà ở thửa {n} tờ {m} đã bị thu hồi"),
    ("Tố cáo trưởng thôn thu tiền đóng góp xây dựng nhà văn hóa sai quy định, tổng số tiền {n} triệu đồng",
     "Tố cáo việc trưởng thôn thu sai quy định {n} triệu đồng tiền xây nhà văn hóa thôn"),
]  # fmt: skip


def strip_diacritics(text: str) -> str:
    text = text.replace("đ", "d").replace("Đ", "D")
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))


def only_d(text: str) -> str:
    return text.replace("đ", "d").replace("Đ", "D")


class Maker:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.serial = 0
        self.used_ids: set[str] = set()

    def record_id(self) -> str:
        self.serial += 1
        return f"r{self.serial:04d}"

    def id_number(self, province: str, year: int, female: bool) -> str:
        while True:
            code = "027" if province == "tỉnh Bắc Ninh" else "024"
            century = (year // 100 - 19) * 2 + (1 if female else 0)
            number = f"{code}{century}{year % 100:02d}{self.rng.randrange(10**6):06d}"
            if number not in self.used_ids:
                self.used_ids.add(number)
                return number

    def name(self, female: bool, surname: str | None = None, given: str | None = None) -> str:
        rng = self.rng
        middle = rng.choice(MIDDLE_FEMALE if female else MIDDLE_MALE)
        return " ".join([surname or rng.choice(SURNAMES), middle,
                         given or rng.choice(GIVEN_FEMALE if female else GIVEN_MALE)])

    def place(self, district: str | None = None, commune: str | None = None) -> dict[str, str]:
        rng = self.rng
        district = district or rng.choice(sorted(GEOGRAPHY))
        province, _, communes = GEOGRAPHY[district]
        commune = commune or rng.choice(sorted(communes))
        village = rng.choice(VILLAGES)
        return {"village": village, "commune": commune, "district": district, "province": province}

    def matter(self, place: dict[str, str]) -> dict[str, Any]:
        rng = self.rng
        index = rng.randrange(len(MATTERS))
        values = {"n": rng.randrange(12, 999), "m": rng.randrange(1, 60), "y": rng.randrange(2005, 2025)}
        kind = rng.randrange(3)
        if kind == 0:
            respondent = f"UBND {place['commune']}"
        elif kind == 1:
            respondent = rng.choice(COMPANIES)
        else:
            respondent = f"Chủ tịch UBND {place['district']}"
        return {"index": index, "values": values, "respondent": respondent}

    def person(self, female: bool | None = None, **name_parts: str) -> dict[str, Any]:
        rng = self.rng
        female = rng.random() < 0.5 if female is None else female
        place = self.place()
        year = rng.randrange(1940, 2005)
        return {"name": self.name(female, **name_parts), "female": female, "year": year, "place": place,
                "id": self.id_number(place["province"], year, female), "matter": self.matter(place)}


def old_address(place: dict[str, str], house: str = "") -> str:
    prefix = f"{house}, " if house else ""
    return f"{prefix}{place['village']}, {place['commune']}, {place['district']}, {place['province']}"


def new_address(place: dict[str, str]) -> str:
    _, _, communes = GEOGRAPHY[place["district"]]
    return f"{place['village']}, {communes[place['commune']]}, {NEW_PROVINCE[place['province']]}"


def district_only_address(place: dict[str, str]) -> str:
    return f"{place['village']}, {place['district']}, {place['province']}"


def content(matter: dict[str, Any], variant: int) -> str:
    return MATTERS[matter["index"]][variant].format(**matter["values"])


def record(rid: str, person: dict[str, Any], *, address: str, with_id: bool, variant: int,
           name: str | None = None, respondent: str | None = None) -> dict[str, str]:
    return {"record_id": rid, "full_name": name if name is not None else person["name"],
            "id_number": person["id"] if with_id else "", "address": address,
            "respondent": respondent if respondent is not None else person["matter"]["respondent"],
            "content": content(person["matter"], variant)}


def typo(rng: random.Random, word: str) -> str:
    letters = "abcdeghiklmnopqrstuvxy"
    i = rng.randrange(len(word))
    action = rng.randrange(4) if len(word) > 2 else 0
    if action == 0:
        replacement = rng.choice([c for c in letters if c != word[i].lower()])
        return word[:i] + replacement + word[i + 1 :]
    if action == 1:
        return word[:i] + word[i + 1 :] if len(word) > 3 else word[:i] + rng.choice(letters) + word[i:]
    if action == 2:
        return word[:i] + rng.choice(letters) + word[i:]
    j = min(i, len(word) - 2)
    if word[j] == word[j + 1]:
        return word[:j] + rng.choice(letters) + word[j + 1 :]
    return word[:j] + word[j + 1] + word[j] + word[j + 2 :]


VARIATIONS = ["no_diacritics", "d_for_dj", "double_spaces", "upper_case", "swapped_name_order",
              "old_vs_new_admin", "typo_name", "typo_address", "respondent_variant", "district_only_address"]


def make_positive(maker: Maker, index: int) -> dict[str, Any]:
    rng = maker.rng
    primary = VARIATIONS[index % len(VARIATIONS)]
    extras = rng.sample([v for v in VARIATIONS if v != primary], k=rng.randrange(0, 3))
    variations = [primary, *sorted(extras)]
    if "no_diacritics" in variations and "d_for_dj" in variations:
        variations.remove("d_for_dj")
    person = maker.person(surname=rng.choice(["Đặng", "Đỗ", "Đinh", "Đào"])) if "d_for_dj" in variations \
        else maker.person()
    id_mode = ["both", "b_missing", "b_missing", "a_missing", "none"][index % 5]
    place = person["place"]
    a_address = old_address(place)
    if "old_vs_new_admin" in variations:
        b_address = new_address(place)
    elif "district_only_address" in variations:
        b_address = district_only_address(place)
    else:
        b_address = old_address(place)
    name = person["name"]
    respondent = person["matter"]["respondent"]
    if "swapped_name_order" in variations:
        parts = name.split()
        name = " ".join(parts[1:] + parts[:1])
    if "typo_name" in variations:
        parts = name.split()
        k = rng.randrange(len(parts))
        parts[k] = typo(rng, parts[k])
        name = " ".join(parts)
    if "typo_address" in variations:
        village = place["village"].split()
        village[-1] = typo(rng, village[-1])
        b_address = b_address.replace(place["village"], " ".join(village), 1)
    if "respondent_variant" in variations:
        respondent = respondent.replace("UBND", "Ủy ban nhân dân").replace("Công ty TNHH", "Cty TNHH")
    if "d_for_dj" in variations:
        name, b_address = only_d(name), only_d(b_address)
    if "no_diacritics" in variations:
        name, b_address, respondent = strip_diacritics(name), strip_diacritics(b_address), strip_diacritics(
            respondent)
    if "upper_case" in variations:
        name, b_address = name.upper(), b_address.upper()
    if "double_spaces" in variations:
        name, b_address = name.replace(" ", "  "), b_address.replace(", ", " ,  ")
    a = record(maker.record_id(), person, address=a_address, with_id=id_mode in ("both", "b_missing"),
               variant=0)
    b = record(maker.record_id(), person, address=b_address, with_id=id_mode in ("both", "a_missing"),
               variant=1, name=name, respondent=respondent)
    return {"a": a, "b": b, "duplicate": True, "variations": [*variations, f"id_{id_mode}"]}


def make_negative(maker: Maker, index: int) -> dict[str, Any]:
    rng = maker.rng
    kind = ["same_name_other_person", "family_member", "similar_name", "same_matter_neighbour"][index % 4]
    first = maker.person()
    with_ids = rng.random() < 0.5
    a = record(maker.record_id(), first, address=old_address(first["place"]), with_id=with_ids, variant=0)
    if kind == "same_name_other_person":
        other = maker.person(female=first["female"])
        while other["place"]["commune"] == first["place"]["commune"]:
            other["place"] = maker.place()
        b = record(maker.record_id(), other, address=old_address(other["place"]), with_id=with_ids, variant=0,
                   name=first["name"])
    elif kind == "family_member":
        other = maker.person(surname=first["name"].split()[0])
        other["place"], other["matter"] = first["place"], first["matter"]
        while other["name"].split()[-1] == first["name"].split()[-1]:
            other["name"] = maker.name(other["female"], surname=first["name"].split()[0])
        b = record(maker.record_id(), other, address=old_address(other["place"]), with_id=with_ids, variant=1)
    elif kind == "similar_name":
        other = maker.person()
        parts = first["name"].split()
        parts[-1] = typo(rng, parts[-1])
        b = record(maker.record_id(), other, address=old_address(other["place"]), with_id=with_ids, variant=0,
                   name=" ".join(parts))
    else:
        other = maker.person()
        other["matter"] = first["matter"]
        other["place"] = dict(first["place"])
        while other["place"]["village"] == first["place"]["village"]:
            other["place"]["village"] = rng.choice(VILLAGES)
        b = record(maker.record_id(), other, address=old_address(other["place"]), with_id=with_ids, variant=1)
    return {"a": a, "b": b, "duplicate": False, "variations": [kind, "ids" if with_ids else "no_ids"]}


def make_distractors(maker: Maker) -> list[dict[str, str]]:
    people = []
    for _ in range(50):
        person = maker.person(female=False, surname="Nguyễn", given="Hùng")
        person["name"] = "Nguyễn Văn Hùng"
        people.append(record(maker.record_id(), person, address=old_address(person["place"]), with_id=True,
                             variant=0))
    return people


def aliases() -> list[dict[str, str]]:
    rows = []
    for district, (province, district_commune, communes) in sorted(GEOGRAPHY.items()):
        rows.append({"old": district, "new": district_commune, "province": province})
        for old, new in sorted(communes.items()):
            if old != new:
                rows.append({"old": old, "new": new, "province": province})
    rows.append({"old": "tỉnh Bắc Giang", "new": "tỉnh Bắc Ninh"})
    return rows


def build() -> dict[str, Any]:
    maker = Maker(SEED)
    pairs = [make_positive(maker, i) for i in range(POSITIVES)]
    pairs += [make_negative(maker, i) for i in range(80)]
    for number, pair in enumerate(pairs):
        pair["pair_id"] = f"p{number:03d}"
    return {
        "generated_by": "tests/complaints/make_duplicate_pairs.py",
        "seed": SEED,
        "note_vi": "Dữ liệu tổng hợp để kiểm thử; bảng quy đổi địa danh chỉ mang tính minh họa, không phải "
        "danh mục chính thức.",
        "aliases": aliases(),
        "pairs": pairs,
        "distractors": make_distractors(maker),
    }


def render() -> str:
    return json.dumps(build(), ensure_ascii=False, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    OUTPUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUTPUT}")
