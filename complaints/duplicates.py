"""Duplicate detection at intake: is this registration a petitioner and matter we already hold?

Two steps, so that the database never compares a new record with every stored one:

1. :func:`blocking_keys` gives a small set of strings per record. The database stores them in an
   index table and fetches the stored records sharing at least one key with the new record
   (the prefilter). Keys: the normalised ID number; the folded name tokens in sorted order; and, for
   each name token, that token and each of its one-letter deletions joined with the other tokens (so a
   one-letter typo, a missing diacritic, ``Đ`` written ``D``, spacing, case and word order all still
   share a key); and each pair of name tokens with each place the address names (village or street,
   commune, district, city): namesakes are many, namesakes in one village or commune are few.
2. The prefilter keeps at most :data:`PREFILTER_LIMIT` of the stored records sharing a key:
   first those sharing an ID or name key (a record sharing only name pairs in the place has another
   name and cannot match on it), then the highest sum of :func:`key_weight` over the shared keys,
   ties by record id. :func:`shortlist` is that rule in Python; the database runs it in SQL, in one
   pass over the key index however many namesakes there are.
3. :func:`rank` scores the shortlisted candidates against the new record and returns those above the
   match threshold, best first, each with the reasons (which field matched and how).

Matching rules, in words:

* Personal ID: equal IDs are a match whatever else differs; IDs one keystroke apart are strong
  evidence; two different IDs of the same kind mean two different people (score capped below the
  threshold). A 9-digit CMND and a 12-digit number are not compared (one person may have both).
* Without an ID match, the name must be close (similarity ≥ 0.75) and something else must agree
  (address, respondent, content): **a name alone never makes a match**.
* Comparison is diacritic-insensitive (``đ``/``Đ`` do not decompose in Unicode and are mapped to
  ``d``), case- and spacing-insensitive, ignores word order, and tolerates one-letter typos per word.
* Addresses are parsed into administrative parts; an :class:`AliasTable` (data: old unit → new unit
  after the 2025 reform) rewrites old names to new ones, and abolished district-level parts are
  dropped when a commune-level part is present. The most specific part (village, street, house number)
  weighs most.

Everything here is pure; nothing is logged (records hold personal data).
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources

from .enums import LabelledEnum
from .identity import normalize_id_number

__all__ = [
    "MATCH_THRESHOLD",
    "PLACE_KEY_PREFIX",
    "PREFILTER_LIMIT",
    "AdminAlias",
    "AliasTable",
    "default_aliases",
    "Candidate",
    "FieldMatch",
    "IntakeRecord",
    "MatchField",
    "MatchHow",
    "blocking_keys",
    "compare",
    "fold_spelling",
    "fold_text",
    "key_weight",
    "rank",
    "shortlist",
]

MATCH_THRESHOLD = 0.55
NAME_GATE = 0.75
_WEIGHTS = {"name": 0.40, "address": 0.25, "respondent": 0.15, "content": 0.20}
_TYPO_SIMILARITY = 0.8
PREFILTER_LIMIT = 50
"""How many stored records the prefilter hands to :func:`rank` at most."""
PLACE_KEY_PREFIX = "np:"
_KEY_WEIGHTS = {"id:": 1000, PLACE_KEY_PREFIX: 8}  # by key prefix; every other key weighs 1
_MAX_KEY_LENGTH = 200  # petitioner_keys.key
_MAX_PAIRED_TOKENS = 5  # longer names (organisations) pair the whole name with the place


# -- records and results --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntakeRecord:
    """The fields of a registration or stored case used for matching (any may be empty)."""

    record_id: str
    full_name: str = ""
    id_number: str = ""
    address: str = ""
    respondent: str = ""
    content: str = ""


class MatchField(LabelledEnum):
    """Which field a reason is about."""

    ID_NUMBER = ("id_number", "Số giấy tờ tùy thân")
    NAME = ("name", "Họ tên")
    ADDRESS = ("address", "Địa chỉ")
    RESPONDENT = ("respondent", "Người, cơ quan bị khiếu nại, tố cáo")
    CONTENT = ("content", "Nội dung")


class MatchHow(LabelledEnum):
    """How a field matched (or why it speaks against a match)."""

    EXACT = ("exact", "trùng khớp")
    CASE_SPACING = ("case_spacing", "trùng khi bỏ qua chữ hoa, chữ thường và khoảng trắng")
    DIACRITICS = ("diacritics", "trùng khi bỏ dấu tiếng Việt và chuẩn hóa cách viết")
    WORD_ORDER = ("word_order", "trùng nhưng khác thứ tự các từ")
    TYPO = ("typo", "gần trùng, lệch một ký tự")
    ADMIN_ALIAS = ("admin_alias", "trùng khi quy đổi tên đơn vị hành chính cũ sang mới")
    PARTIAL = ("partial", "trùng một phần")
    CONFLICT = ("conflict", "khác nhau")


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """One reason: the field, how it compared, and a similarity in [0, 1]."""

    field: MatchField
    how: MatchHow
    similarity: float

    @property
    def label_vi(self) -> str:
        """E.g. ``"Họ tên: trùng khi bỏ dấu tiếng Việt (100%)"``."""
        return f"{self.field.label_vi}: {self.how.label_vi} ({round(self.similarity * 100)}%)"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored record ranked against the query: ``score`` in [0, 1] and the reasons behind it."""

    record_id: str
    score: float
    reasons: tuple[FieldMatch, ...]

    @property
    def is_match(self) -> bool:
        """True when the score reaches :data:`MATCH_THRESHOLD`."""
        return self.score >= MATCH_THRESHOLD


# -- text normalisation ---------------------------------------------------------------------------

_NON_WORD = re.compile(r"[^0-9a-z]+")


class _StripMarks(dict[int, str]):
    """``str.translate`` table: a character → its compatibility decomposition without combining marks
    (``đ``/``Đ`` → ``d``/``D``), filled on first sight of each character. Decomposition works character
    by character and its canonical reordering moves only combining marks, which are dropped: translating
    a string gives what decomposing the whole string and dropping the marks gives."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        if char in "đĐ":
            stripped = "d" if char == "đ" else "D"
        else:
            stripped = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        self[code] = stripped
        return stripped


_STRIP_MARKS = _StripMarks()


#: Initial consonants after which a lone ``y`` is the whole rhyme and is written ``i`` as well (Sĩ/Sỹ,
#: Kì/Kỳ, Lí/Lý, Mĩ/Mỹ). Not ``qu`` (Quý: its ``u`` is a glide, the brief never folds ``uy``) nor ``gi``.
_I_Y_ONSETS = "b|c|ch|d|đ|g|gh|h|k|kh|l|m|n|ng|ngh|nh|p|ph|r|s|t|th|tr|v|x"
_FOLDED_Y = re.compile(rf"\b({_I_Y_ONSETS})y\b")
_TONES = "\u0300\u0301\u0303\u0309\u0323"  # huyền, sắc, ngã, hỏi, nặng (combining, after NFD)
_WORD = re.compile(r"[^\W\d_]+")
_Y_WORD = re.compile(rf"({_I_Y_ONSETS})y", re.IGNORECASE)
_GLIDE_WORD = re.compile(rf"({_I_Y_ONSETS}|)(o[ae]|uy)", re.IGNORECASE)


def _fold_word(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    tones = [c for c in decomposed if c in _TONES]
    if len(tones) > 1:
        return word  # not a Vietnamese syllable
    base = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in _TONES))
    if _Y_WORD.fullmatch(base):
        base = base[:-1] + ("I" if base[-1] == "Y" else "i")
    elif not tones or not _GLIDE_WORD.fullmatch(base):
        return word
    # the tone goes on the last vowel: Sỹ → Sĩ, hòa → hoà, khỏe → khoẻ, thúy → thuý
    return unicodedata.normalize("NFC", base + "".join(tones))


def fold_spelling(text: str) -> str:
    """One spelling of the Vietnamese variants that a desk sees every day, diacritics kept (NFC):

    * ``y`` as the whole rhyme after an initial consonant is written ``i`` (``Sỹ`` → ``Sĩ``, ``Kỳ`` →
      ``Kì``, ``Lý`` → ``Lí``, ``Mỹ`` → ``Mĩ``; the two spellings are interchangeable there);
    * in an open syllable with the glide ``oa``, ``oe`` or ``uy`` the tone mark sits on the last vowel,
      the "new" placement (``hòa`` → ``hoà``, ``khỏe`` → ``khoẻ``, ``Thúy`` → ``Thuý``).

    Nothing else changes: ``ay``/``ây`` (``tay`` ≠ ``tai``), ``uy`` (``Thúy`` ≠ ``Thúi``), ``quy``,
    a ``y`` that begins a word (``Yên``) or stands alone (``ý``), and syllables with a final consonant
    (``hoàng``, ``huýt``) are left as written. Idempotent; case is kept. Pure."""
    return _WORD.sub(lambda m: _fold_word(m.group(0)), unicodedata.normalize("NFC", text))


def fold_text(text: str) -> str:
    """Lower-case ASCII skeleton: diacritics removed, ``đ``/``Đ`` → ``d``, punctuation → space, spaces
    collapsed, and the ``i``/``y`` variants of :func:`fold_spelling` written ``i`` (the tone placement
    no longer matters once the marks are gone). ``fold_text("  Đặng  THỊ Hồng ") == "dang thi hong"``,
    ``fold_text("Lê Văn Sỹ") == fold_text("Lê Văn Sĩ") == "le van si"``; ``fold_text(fold_text(x)) ==
    fold_text(x)``. The stored ``*_norm`` columns hold it (migration 0011 refolded them)."""
    if not text.isascii():
        text = text.translate(_STRIP_MARKS)
    return _FOLDED_Y.sub(r"\1i", _NON_WORD.sub(" ", text.lower()).strip())


def _soft(text: str) -> str:
    """Case- and spacing-insensitive, diacritics kept."""
    return " ".join(unicodedata.normalize("NFC", text).lower().split())


def _within_one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by exactly one substitution, insertion, deletion or adjacent
    transposition (optimal string alignment distance 1)."""
    if a == b:
        return False
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        i = 0
        while a[i] == b[i]:  # a != b: a difference comes before the end
            i += 1
        if a[i + 1 :] == b[i + 1 :]:
            return True  # one substitution
        return a[i + 2 :] == b[i + 2 :] and a[i] == b[i + 1] and a[i + 1] == b[i]  # adjacent transposition
    short, long_ = (a, b) if la < lb else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]


def _token_similarity(a: str, b: str, strict: bool = False) -> float:
    """1 for equal words; partial credit for one-letter typos, less for short words (in a short word
    one wrong letter often makes another real word: Lê/Lò, Đa/Hạ). ``strict`` (place names) needs
    longer words for the same credit."""
    if a == b:
        return 1.0
    if _within_one_edit(a, b):
        length = max(len(a), len(b))
        if strict:
            return _TYPO_SIMILARITY if length >= 4 else 0.4 if length == 3 else 0.0
        return _TYPO_SIMILARITY if length >= 3 else 0.5
    return 0.0


def _fuzzy_dice(a: Sequence[str], b: Sequence[str], strict: bool = False) -> tuple[float, bool]:
    """Order-insensitive Dice similarity with one-letter typo tolerance; also whether a typo was used."""
    if not a or not b:
        return 0.0, False
    remaining = list(b)
    total = 0.0
    typo = False
    for token in sorted(a, key=len, reverse=True):
        if token in remaining:  # what the loop below would pick: the first equal word
            remaining.remove(token)
            total += 1.0
            continue
        best, best_index = 0.0, -1
        for index, other in enumerate(remaining):
            similarity = _token_similarity(token, other, strict)
            if similarity > best:
                best, best_index = similarity, index
                if similarity == 1.0:
                    break
        if best_index >= 0:
            remaining.pop(best_index)
            total += best
            typo = typo or best < 1.0
    return 2.0 * total / (len(a) + len(b)), typo


@dataclass(frozen=True, slots=True)
class _Text:
    """A field's text with the forms the comparison looks at, computed once per record."""

    stripped: str
    soft: str
    tokens: tuple[str, ...]

    @classmethod
    def of(cls, text: str, tokens: Sequence[str]) -> _Text:
        return cls(text.strip(), _soft(text), tuple(tokens))


def _compare_text(field_: MatchField, left: _Text, right: _Text) -> FieldMatch | None:
    tokens_left, tokens_right = left.tokens, right.tokens
    if not tokens_left or not tokens_right:
        return None
    if left.stripped == right.stripped:
        return FieldMatch(field_, MatchHow.EXACT, 1.0)
    if left.soft == right.soft:
        return FieldMatch(field_, MatchHow.CASE_SPACING, 1.0)
    if tokens_left == tokens_right:
        return FieldMatch(field_, MatchHow.DIACRITICS, 1.0)
    if sorted(tokens_left) == sorted(tokens_right):
        return FieldMatch(field_, MatchHow.WORD_ORDER, 1.0)
    similarity, typo = _fuzzy_dice(tokens_left, tokens_right)
    if typo and similarity >= 0.85:
        return FieldMatch(field_, MatchHow.TYPO, similarity)
    return FieldMatch(field_, MatchHow.PARTIAL, similarity)


# -- administrative names and aliases -------------------------------------------------------------

_VILLAGE, _STREET, _COMMUNE, _DISTRICT, _CITY, _PROVINCE = (
    "village", "street", "commune", "district", "city", "province",
)  # fmt: skip
_TYPE_WORDS: dict[tuple[str, ...], str] = {
    ("to", "dan", "pho"): _VILLAGE, ("khu", "pho"): _VILLAGE, ("kp",): _VILLAGE, ("thon",): _VILLAGE,
    ("xom",): _VILLAGE, ("ap",): _VILLAGE, ("ban",): _VILLAGE, ("to",): _VILLAGE, ("khom",): _VILLAGE,
    ("so", "nha"): _STREET, ("so",): _STREET, ("duong",): _STREET, ("ngo",): _STREET,
    ("ngach",): _STREET, ("hem",): _STREET, ("kiet",): _STREET,
    ("thi", "tran"): _COMMUNE, ("tt",): _COMMUNE, ("dac", "khu"): _COMMUNE, ("xa",): _COMMUNE,
    ("phuong",): _COMMUNE, ("p",): _COMMUNE, ("x",): _COMMUNE,
    ("thi", "xa"): _DISTRICT, ("tx",): _DISTRICT, ("huyen",): _DISTRICT, ("quan",): _DISTRICT,
    ("h",): _DISTRICT, ("q",): _DISTRICT,
    ("thanh", "pho"): _CITY, ("tp",): _CITY, ("tinh",): _PROVINCE,
}  # fmt: skip
_MAX_TYPE_LEN = max(len(k) for k in _TYPE_WORDS)
_DROP_WORDS = frozenset({"viet", "nam"})


@dataclass(frozen=True, slots=True)
class _Part:
    level: str | None
    name: str  # folded, without the type words


def _parse_address(text: str) -> list[_Part]:
    parts: list[_Part] = []
    for chunk in re.split(r"[,;\n]+", text):
        tokens = fold_text(chunk).split()
        level: str | None = None
        current: list[str] = []
        i = 0
        while i < len(tokens):
            matched = False
            for size in range(_MAX_TYPE_LEN, 0, -1):
                key = tuple(tokens[i : i + size])
                if len(key) == size and key in _TYPE_WORDS and i + size < len(tokens):
                    if current:
                        parts.append(_Part(level, " ".join(current)))
                    level, current = _TYPE_WORDS[key], []
                    i += size
                    matched = True
                    break
            if not matched:
                current.append(tokens[i])
                i += 1
        if current and " ".join(current) != "viet nam":
            parts.append(_Part(level, " ".join(current)))
    return parts


@dataclass(frozen=True, slots=True)
class AdminAlias:
    """One renamed or merged administrative unit: ``old`` → ``new`` (both with their type word, e.g.
    ``"huyện Tiên Du"`` → ``"xã Tiên Du"``), optionally limited to addresses naming ``province``
    (old or new name) and to addresses naming the old ``district`` (numbered wards: "Phường 12" is a
    different place in every old district). ``source`` names the resolution (e.g. NQ 1658/NQ-UBTVQH15);
    ``verified``: checked against the resolution's text (the data file says how)."""

    old: str
    new: str
    province: str = ""
    source: str = ""
    district: str = ""
    verified: bool = False


@dataclass(frozen=True)
class AliasTable:
    """Old → new administrative names, as data (loaded from the database or a file)."""

    aliases: tuple[AdminAlias, ...] = ()
    _index: dict[str, list[tuple[str | None, _Part, str, str]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for alias in self.aliases:
            old_parts, new_parts = _parse_address(alias.old), _parse_address(alias.new)
            if len(old_parts) != 1 or len(new_parts) != 1:
                raise ValueError("Mỗi dòng quy đổi địa danh phải gồm đúng một đơn vị hành chính cũ và một mới.")
            old, new = old_parts[0], new_parts[0]
            province = _parse_address(alias.province)
            district = _parse_address(alias.district)
            self._index.setdefault(old.name, []).append(
                (old.level, new, province[0].name if province else "", district[0].name if district else ""))

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, object]]) -> AliasTable:
        """Build from rows with keys ``old``, ``new`` and optional ``province``, ``district``, ``source``,
        ``verified``."""
        return cls(
            tuple(
                AdminAlias(str(row["old"]), str(row["new"]), str(row.get("province", "")), str(row.get("source", "")),
                           str(row.get("district", "")), bool(row.get("verified", False)))
                for row in rows
            )
        )

    def resolve(self, parts: Sequence[_Part]) -> tuple[list[_Part], bool]:
        """Rewrite old unit names in ``parts``; also whether anything was rewritten.

        A scoped alias applies when the address names its province, under the old or the new name, and
        its old district (a district-level part, or an untyped one: "Phường 12, Quận 3" or "P.12, Q.3").
        """
        names = {p.name for p in parts}
        names |= {new.name for p in parts for _, new, _, _ in self._index.get(p.name, ())}
        districts = {p.name for p in parts if p.level in (_DISTRICT, None)}
        has_commune = any(p.level == _COMMUNE for p in parts)
        out: list[_Part] = []
        changed = False
        for part in parts:
            replacement = None
            if has_commune and part.level == _DISTRICT:
                out.append(part)  # the commune decides; the old district is dropped when compared
                continue
            for old_level, new, province, district in self._index.get(part.name, ()):
                level_ok = old_level is None or part.level is None or part.level == old_level
                if level_ok and (not province or province in names) and (not district or district in districts):
                    replacement = new
                    break
            out.append(replacement if replacement is not None else part)
            changed = changed or replacement is not None
        return out, changed


_EMPTY_ALIASES = AliasTable()


@functools.lru_cache(maxsize=1)
def default_aliases() -> AliasTable:
    """The aliases shipped with the package (``complaints/data/admin_aliases.json``: the 2025 merger of
    provinces, Nghị quyết 202/2025/QH15); a province adds its communes' resolution to that file."""
    text = resources.files("complaints").joinpath("data/admin_aliases.json").read_text("utf-8")
    return AliasTable.from_rows(json.loads(text)["aliases"])


def _address_groups(parts: Sequence[_Part]) -> dict[str, list[str]]:
    groups: dict[str, set[str]] = {}
    for part in parts:
        if part.level in (_VILLAGE, _STREET):
            group = "specific"
        elif part.level in (_COMMUNE, _DISTRICT):
            group = part.level
        elif part.level in (_CITY, _PROVINCE):
            group = "region"
        else:
            group = "other"
        groups.setdefault(group, set()).update(part.name.split())
    return {group: sorted(tokens) for group, tokens in groups.items()}


def _address_similarity(gl: Mapping[str, list[str]], gr: Mapping[str, list[str]]) -> tuple[float, bool]:
    """Hierarchical: the unit (commune, else old district) must agree before the village counts;
    the village, street and house number then decide within the unit. ``gl``/``gr``: the addresses'
    :func:`_address_groups`."""
    specific: tuple[float, bool] | None = None
    if "specific" in gl and "specific" in gr:
        specific = _fuzzy_dice(gl["specific"], gr["specific"], strict=True)
        if specific[0] < 0.7:
            specific = (0.0, False)  # different villages, even if some syllables look alike
    for level in (_COMMUNE, _DISTRICT):
        if level in gl and level in gr:
            unit, unit_typo = _fuzzy_dice(gl[level], gr[level], strict=True)
            if unit < 0.7:
                unit = 0.0  # syllables of different unit names are often one letter apart
            if specific is None:
                return unit, unit_typo
            return unit * (0.4 + 0.6 * specific[0]), unit_typo or specific[1]
    if specific is not None:
        return specific
    tokens_left = [t for ts in gl.values() for t in ts]
    tokens_right = [t for ts in gr.values() for t in ts]
    return _fuzzy_dice(tokens_left, tokens_right, strict=True)


@dataclass(frozen=True, slots=True)
class _Address:
    """An address parsed once per record, with its parts after the alias table and their groups."""

    stripped: str
    soft: str
    folded: str
    parts: list[_Part]
    aliased: list[_Part]
    changed: bool  # the alias table rewrote a part
    _groups: dict[tuple[bool, bool], dict[str, list[str]]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, text: str, aliases: AliasTable) -> _Address:
        parts = _parse_address(text)
        aliased, changed = aliases.resolve(parts) if parts else (parts, False)
        return cls(text.strip(), _soft(text), fold_text(text), parts, aliased, changed)

    def has_commune(self, aliased: bool) -> bool:
        return any(p.level == _COMMUNE for p in (self.aliased if aliased else self.parts))

    def groups(self, aliased: bool, drop_districts: bool) -> dict[str, list[str]]:
        """The groups of the parts (after the alias table when ``aliased``), without the district-level
        parts when ``drop_districts``."""
        cached = self._groups.get((aliased, drop_districts))
        if cached is None:
            parts = self.aliased if aliased else self.parts
            if drop_districts:
                parts = [p for p in parts if p.level != _DISTRICT]
            cached = self._groups[(aliased, drop_districts)] = _address_groups(parts)
        return cached


def _address_pair_similarity(left: _Address, left_aliased: bool, right: _Address,
                             right_aliased: bool) -> tuple[float, bool]:
    """District-level parts are dropped when both addresses name a commune: the district level was
    abolished in 2025 and the commune identifies the place. When one side gives only the old district,
    both keep it so that the district can be compared."""
    drop = left.has_commune(left_aliased) and right.has_commune(right_aliased)
    return _address_similarity(left.groups(left_aliased, drop), right.groups(right_aliased, drop))


def _compare_addresses(left: _Address, right: _Address) -> FieldMatch | None:
    if not left.parts or not right.parts:
        return None
    if left.stripped == right.stripped:
        return FieldMatch(MatchField.ADDRESS, MatchHow.EXACT, 1.0)
    if left.soft == right.soft:
        return FieldMatch(MatchField.ADDRESS, MatchHow.CASE_SPACING, 1.0)
    raw_similarity, raw_typo = _address_pair_similarity(left, False, right, False)
    # Old names are translated on one side at a time: two old addresses in different old communes stay
    # different even when both communes were merged into one.
    similarity, typo = max(
        _address_pair_similarity(left, True, right, False),
        _address_pair_similarity(left, False, right, True),
    )
    changed = left.changed or right.changed
    if changed and similarity > raw_similarity + 1e-9:
        how = MatchHow.ADMIN_ALIAS
    else:
        similarity, typo = max((similarity, typo), (raw_similarity, raw_typo))
        if similarity >= 1.0 - 1e-9:
            how = MatchHow.DIACRITICS if left.folded == right.folded else MatchHow.WORD_ORDER
        elif typo and similarity >= 0.85:
            how = MatchHow.TYPO
        else:
            how = MatchHow.PARTIAL
    return FieldMatch(MatchField.ADDRESS, how, similarity)


# -- respondent and content -----------------------------------------------------------------------

_PHRASES = (
    ("uy ban nhan dan", "ubnd"),
    ("hoi dong nhan dan", "hdnd"),
    ("cong ty trach nhiem huu han", "cty tnhh"),
    ("cong ty co phan", "cty cp"),
    ("cong ty", "cty"),
    ("van phong dang ky dat dai", "vpdkdd"),
    ("thi tran", "tt"),
    ("thanh pho", "tp"),
    ("thi xa", "tx"),
)
_RESPONDENT_NOISE = frozenset({"xa", "phuong", "huyen", "quan", "tinh", "tt", "tp", "tx", "ong", "ba", "anh", "chi"})
_STOPWORDS = frozenset(
    "va cua cac nhung la co cho duoc khong da nay do thi de voi trong tai ve tu den mot nhu "
    "nhung nay ay ma neu vi boi theo ra vao len bi can viec toi chung ho ong ba anh chi em".split()
)


def _respondent_tokens(text: str) -> list[str]:
    folded = f" {fold_text(text)} "
    for phrase, short in _PHRASES:
        folded = folded.replace(f" {phrase} ", f" {short} ")
    return [t for t in folded.split() if t not in _RESPONDENT_NOISE]


def _content_tokens(text: str) -> list[str]:
    return sorted({t for t in fold_text(text).split() if t not in _STOPWORDS and len(t) > 1})


def _compare_content(left: _Text, right: _Text) -> FieldMatch | None:
    tokens_left, tokens_right = left.tokens, right.tokens
    if not tokens_left or not tokens_right:
        return None
    if left.soft == right.soft:
        return FieldMatch(MatchField.CONTENT, MatchHow.EXACT, 1.0)
    common = len(set(tokens_left) & set(tokens_right))
    similarity = 2.0 * common / (len(tokens_left) + len(tokens_right))
    how = MatchHow.DIACRITICS if tokens_left == tokens_right else MatchHow.PARTIAL
    return FieldMatch(MatchField.CONTENT, how, similarity)


# -- identity -------------------------------------------------------------------------------------


def _compare_ids(a: str, b: str) -> FieldMatch | None:
    """``a`` and ``b`` are normalised ID numbers (empty: none)."""
    if not a or not b:
        return None
    if a == b:
        return FieldMatch(MatchField.ID_NUMBER, MatchHow.EXACT, 1.0)
    if len(a) != len(b) or a.isdigit() != b.isdigit():
        return None  # different kinds of document: one person may hold both
    if _within_one_edit(a, b):
        return FieldMatch(MatchField.ID_NUMBER, MatchHow.TYPO, _TYPO_SIMILARITY)
    return FieldMatch(MatchField.ID_NUMBER, MatchHow.CONFLICT, 0.0)


# -- public API -----------------------------------------------------------------------------------


def _name_tokens(name: str) -> list[str]:
    return fold_text(name).split()


_PLACE_LEVELS = frozenset({_VILLAGE, _STREET, _COMMUNE, _DISTRICT, _CITY})


def _places(address: str) -> list[str]:
    """The folded names of the parts of ``address`` that place a person: village or street, commune,
    district, city (not the province: it holds everyone). All levels give the same kind of key: after the
    2025 reform one person's address is written with the old or the new commune, or with the old district
    or city only, and the village or street stays; a merged commune often took its old district's name.
    A bare house number places nobody. A unit renamed or merged in 2025 (:func:`default_aliases`) also
    gives its new name, so an address written before the merger shares a key with one written after."""
    parts = _parse_address(address)
    named = parts + default_aliases().resolve(parts)[0] if parts else parts
    return sorted({p.name for p in named if p.level in _PLACE_LEVELS and not p.name.replace(" ", "").isdigit()})


def blocking_keys(record: IntakeRecord) -> frozenset[str]:
    """Keys for the database prefilter; two records that :func:`rank` may match share at least one
    key, except when the name has more than one typo and no ID is shared (documented limit).

    Keys longer than the database column (:data:`_MAX_KEY_LENGTH`) are left out; a name that long
    still has its shorter keys."""
    keys: set[str] = set()
    number = normalize_id_number(record.id_number)
    if number:
        keys.add(f"id:{number}")
    tokens = _name_tokens(record.full_name)
    if tokens:
        keys.add("name:" + "-".join(sorted(tokens)))
        if len(tokens) >= 2:
            keys.add("fl:" + "-".join(sorted((tokens[0], tokens[-1]))))
        for index, token in enumerate(tokens):
            rest = "-".join(sorted(tokens[:index] + tokens[index + 1 :]))
            variants = {token} | {token[:i] + token[i + 1 :] for i in range(len(token))}
            for variant in variants:
                if variant:
                    keys.add(f"nd:{variant}|{rest}")
        places = _places(record.address)
        if places:
            distinct = sorted(set(tokens))
            if len(distinct) == 1 or len(distinct) > _MAX_PAIRED_TOKENS:
                parts = ["-".join(distinct)]
            else:
                parts = [f"{a}-{b}" for i, a in enumerate(distinct) for b in distinct[i + 1 :]]
            keys.update(f"{PLACE_KEY_PREFIX}{part}|{place}" for part in parts for place in places)
    return frozenset(k for k in keys if len(k) <= _MAX_KEY_LENGTH)


def key_weight(key: str) -> int:
    """The prefilter's weight of a shared key: an ID 1000, a name pair in the same place 8, any other
    name key 1 (the same whole name shares 15–20 keys, a one-letter typo one or two)."""
    return _KEY_WEIGHTS.get(key[: key.find(":") + 1], 1)


def shortlist(
    query_keys: Collection[str], stored: Iterable[tuple[str, Collection[str]]], limit: int = PREFILTER_LIMIT
) -> list[str]:
    """The prefilter's rule, as the database runs it: the ids of the ``stored`` records (id, keys) that
    share a key with ``query_keys``; those sharing a key other than a place key first, then by the sum of
    :func:`key_weight` over the shared keys, highest first; ties by id; at most ``limit``."""
    wanted = set(query_keys)
    scored = []
    for record_id, keys in stored:
        shared = wanted.intersection(keys)
        if shared:
            named = any(not k.startswith(PLACE_KEY_PREFIX) for k in shared)
            scored.append((not named, -sum(key_weight(k) for k in shared), record_id))
    return [record_id for *_, record_id in sorted(scored)[:limit]]


@dataclass(frozen=True, slots=True)
class _Forms:
    """What :func:`compare` looks at in one record, folded and parsed once (the query of :func:`rank`
    is compared with every candidate)."""

    record_id: str
    id_number: str
    name: _Text
    address: _Address
    respondent: _Text
    content: _Text

    @classmethod
    def of(cls, record: IntakeRecord, aliases: AliasTable) -> _Forms:
        return cls(
            record.record_id,
            normalize_id_number(record.id_number),
            _Text.of(record.full_name, _name_tokens(record.full_name)),
            _Address.of(record.address, aliases),
            _Text.of(record.respondent, _respondent_tokens(record.respondent)),
            _Text.of(record.content, _content_tokens(record.content)),
        )


def compare(query: IntakeRecord, candidate: IntakeRecord, aliases: AliasTable = _EMPTY_ALIASES) -> Candidate:
    """Score ``candidate`` against ``query`` with the reasons (see the module doc for the rules)."""
    return _compare(_Forms.of(query, aliases), _Forms.of(candidate, aliases))


def _compare(query: _Forms, candidate: _Forms) -> Candidate:
    reasons: list[FieldMatch] = []
    id_match = _compare_ids(query.id_number, candidate.id_number)
    name = _compare_text(MatchField.NAME, query.name, candidate.name)
    address = _compare_addresses(query.address, candidate.address)
    respondent = _compare_text(MatchField.RESPONDENT, query.respondent, candidate.respondent)
    content = _compare_content(query.content, candidate.content)
    base = 0.0
    for key, match in (("name", name), ("address", address), ("respondent", respondent), ("content", content)):
        if match is not None:
            base += _WEIGHTS[key] * match.similarity
            if match.similarity > 0:
                reasons.append(match)
    if id_match is not None:
        reasons.insert(0, id_match)
    name_similarity = name.similarity if name is not None else 0.0
    # Without an ID, the name must be close and the place or the matter must agree as well.
    place_agrees = address is None or address.similarity >= 0.5
    matter_agrees = (
        respondent is not None and respondent.similarity >= 0.8 and content is not None and content.similarity >= 0.5
    )
    beyond_name = base - _WEIGHTS["name"] * name_similarity
    if id_match is not None and id_match.how is MatchHow.EXACT:
        score = 0.9 + 0.1 * base
    elif id_match is not None and id_match.how is MatchHow.TYPO:
        score = 0.5 + 0.5 * base if name_similarity >= NAME_GATE else min(base, MATCH_THRESHOLD - 0.1)
    elif id_match is not None and id_match.how is MatchHow.CONFLICT:
        score = min(base, MATCH_THRESHOLD - 0.2)
    elif name_similarity < NAME_GATE or beyond_name < 0.1 or not (place_agrees or matter_agrees):
        score = min(base, MATCH_THRESHOLD - 0.1)  # a name alone, or no name, is never a match
    else:
        score = base
    return Candidate(candidate.record_id, round(min(score, 1.0), 4), tuple(reasons))


def rank(
    query: IntakeRecord,
    candidates: Iterable[IntakeRecord],
    aliases: AliasTable = _EMPTY_ALIASES,
    *,
    threshold: float = MATCH_THRESHOLD,
    limit: int | None = None,
) -> list[Candidate]:
    """Candidates scoring at least ``threshold``, best first (ties by record id), at most ``limit``.

    The query itself (same ``record_id``) is skipped.
    """
    prepared = _Forms.of(query, aliases)
    scored = [
        _compare(prepared, _Forms.of(candidate, aliases))
        for candidate in candidates
        if candidate.record_id != query.record_id
    ]
    kept = sorted((c for c in scored if c.score >= threshold), key=lambda c: (-c.score, c.record_id))
    return kept[:limit] if limit is not None else kept
