"""Case search (tra cứu vụ việc): diacritic-insensitive full text plus filters, with paging.

Text matching, the same on every database: the query is folded (:func:`complaints.duplicates.fold_text`:
lower case, no diacritics, ``đ`` → ``d``, punctuation → space) into words; **every** query word must be
the beginning of a word of the case's search document (``cases.search_norm``): the folded case summary,
petition contents, respondents' names and the names of open (not sealed) petitioners, rebuilt by
:func:`refresh_search_document` whenever one of them changes. A sealed denouncer's name is never
searchable (it is not stored in clear), and a confidential case (:mod:`complaints.confidentiality`)
has no petitioner's name in its document at all, so a name never finds a denunciation. A query that
is a valid tracking code finds that case.

One index answers a whole query: on PostgreSQL ``to_tsvector('simple', coalesce(search_norm, '')) @@
to_tsquery('simple', 'w1:* & w2:*')`` over a GIN index (:data:`complaints.tables.SEARCH_INDEXES`); on
SQLite the FTS5 table ``cases_fts`` with ``"w1"* AND "w2"*``. Folded words hold only ``[0-9a-z]``, and
the query is a bound parameter, so text that looks like SQL or like a pattern is only text: a query
made only of punctuation (``%``, ``_``, ``\\``) has no word and matches nothing. Totals are counted
up to :data:`COUNT_CAP`; past it ``SearchResult.more`` is set (a broad word on a million cases).

The count decides how the page is read (PostgreSQL): up to :data:`COUNT_CAP` matches are gathered and
sorted; more are read newest first from ``ix_cases_created_at_id``, which stops after one page. The
planner cannot estimate a prefix's selectivity, so it is not left to choose (bench/README.md has the
measurements).

Filters: kind, status, venue, unit (a directive to that unit), the period a petition or reception entry
was received, the period the case was created, and ``unit_scope`` (a unit's officials see only cases
directed to their unit). Results are ordered newest first, with the total for paging.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, literal, literal_column, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from . import confidentiality
from .duplicates import fold_text
from .enums import CaseStatus, PetitionKind
from .errors import InvalidTrackingCode
from .tables import cases, directives, petition_parties, petitioners, petitions, reception_entries, respondents
from .tracking import parse_tracking_code

__all__ = ["CaseQuery", "CaseHit", "SearchResult", "search_cases", "query_words", "refresh_search_document",
           "MAX_LIMIT", "COUNT_CAP"]

MAX_LIMIT = 100
COUNT_CAP = 10_000
_MAX_WORDS = 12


@dataclass(frozen=True)
class CaseQuery:
    text: str = ""
    kind: PetitionKind | None = None
    status: CaseStatus | None = None
    venue: str | None = None
    unit: str | None = None
    received_from: date | None = None
    received_to: date | None = None
    created_from: date | None = None
    created_to: date | None = None
    unit_scope: str | None = None  # set: only cases with a directive to this unit
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True)
class CaseHit:
    id: str
    tracking_code: str
    kind: PetitionKind
    status: CaseStatus
    summary: str
    venue: str | None
    confidential: bool
    created_at: datetime
    first_received_on: date | None
    version: int


@dataclass(frozen=True)
class SearchResult:
    total: int
    items: list[CaseHit]
    limit: int
    offset: int
    more: bool = False
    """True when more than ``total`` (= :data:`COUNT_CAP`) cases match."""


def query_words(text: str) -> list[str]:
    """The folded words of a query (at most 12, duplicates removed, order kept)."""
    seen: list[str] = []
    for word in fold_text(text).split():
        if word not in seen:
            seen.append(word)
    return seen[:_MAX_WORDS]


async def refresh_search_document(conn: AsyncConnection, case_id: str) -> None:
    """Rebuild ``cases.search_norm`` of one case from its parts (call after any of them changed); the
    petitioners' names only when the case is not confidential."""
    row = (await conn.execute(select(cases.c.summary_norm, confidentiality.confidential_clause())
                              .where(cases.c.id == case_id))).first()
    if row is None:
        return
    summary, confidential = row
    parts = [summary]
    parts += [r[0] for r in await conn.execute(
        select(petitions.c.content_norm).where(petitions.c.case_id == case_id).order_by(petitions.c.created_at))]
    parts += [r[0] for r in await conn.execute(
        select(respondents.c.name_norm).where(respondents.c.case_id == case_id).order_by(respondents.c.id))]
    if not confidential:
        parts += [r[0] for r in await conn.execute(
            select(petitioners.c.name_norm).distinct()
            .select_from(petition_parties.join(petitions, petitions.c.id == petition_parties.c.petition_id)
                         .join(petitioners, petitioners.c.id == petition_parties.c.petitioner_id))
            .where(petitions.c.case_id == case_id, petitioners.c.sealed.is_(False),
                   petitioners.c.name_norm.is_not(None))
            .order_by(petitioners.c.name_norm))]
    document = " ".join(p for p in parts if p)
    await conn.execute(update(cases).where(cases.c.id == case_id).values(search_norm=document))


def _text_condition(words: list[str], dialect: str) -> ColumnElement[bool]:
    if dialect == "postgresql":
        vector = func.to_tsvector(literal_column("'simple'"), func.coalesce(cases.c.search_norm, literal_column("''")))
        query = func.to_tsquery(literal_column("'simple'"), literal(" & ".join(f"{w}:*" for w in words)))
        return vector.op("@@")(query)  # type: ignore[no-any-return]
    if dialect == "sqlite":
        match = " AND ".join(f'"{w}"*' for w in words)
        return literal_column("cases.rowid").in_(
            select(literal_column("rowid")).select_from(text("cases_fts"))
            .where(literal_column("cases_fts").op("MATCH")(literal(match))))
    escaped = [w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for w in words]
    padded = literal(" ") + func.coalesce(cases.c.search_norm, "")
    return and_(*(padded.like(f"% {w}%", escape="\\") for w in escaped))


def _start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _filters(query: CaseQuery, dialect: str) -> list[ColumnElement[bool]] | None:
    """The WHERE conditions, or None when the query can match nothing."""
    conditions: list[ColumnElement[bool]] = []
    text = query.text.strip()
    if text:
        code: str | None
        try:
            code = parse_tracking_code(text)
        except InvalidTrackingCode:
            code = None
        words = query_words(text)
        if code is not None:
            conditions.append(cases.c.tracking_code == code)
        elif not words:
            return None
        else:
            conditions.append(_text_condition(words, dialect))
    if query.kind is not None:
        conditions.append(cases.c.kind == query.kind.value)
    if query.status is not None:
        conditions.append(cases.c.status == query.status.value)
    if query.venue:
        conditions.append(cases.c.venue == query.venue)
    for unit in (query.unit, query.unit_scope):
        if unit is not None:
            conditions.append(exists(select(1).select_from(directives).where(
                directives.c.case_id == cases.c.id, directives.c.unit_id == unit)))
    if query.received_from is not None or query.received_to is not None:
        def within(column: Any) -> ColumnElement[bool]:
            parts = []
            if query.received_from is not None:
                parts.append(column >= query.received_from)
            if query.received_to is not None:
                parts.append(column <= query.received_to)
            return and_(*parts)

        conditions.append(or_(
            exists(select(1).select_from(petitions).where(petitions.c.case_id == cases.c.id,
                                                          within(petitions.c.received_on))),
            exists(select(1).select_from(reception_entries).where(reception_entries.c.case_id == cases.c.id,
                                                                  within(reception_entries.c.received_on))),
        ))
    # Whole days of creation, in UTC.
    if query.created_from is not None:
        conditions.append(cases.c.created_at >= _start(query.created_from))
    if query.created_to is not None:
        conditions.append(cases.c.created_at < _start(query.created_to + timedelta(days=1)))
    return conditions


async def search_cases(conn: AsyncConnection, query: CaseQuery) -> SearchResult:
    """Cases matching ``query``, newest first, with the total count (see the module doc)."""
    limit = max(1, min(query.limit, MAX_LIMIT))
    offset = max(0, query.offset)
    dialect = conn.dialect.name
    conditions = _filters(query, dialect)
    if conditions is None:
        return SearchResult(0, [], limit, offset)
    matching = select(cases.c.id).where(*conditions).limit(COUNT_CAP + 1).subquery()
    postgres = dialect == "postgresql"
    previous: str | None = None
    if postgres:  # count through the indexes: a sequential scan recomputes to_tsvector() for every row
        previous = str((await conn.execute(text("SELECT current_setting('enable_seqscan')"))).scalar_one())
        await conn.execute(text("SELECT set_config('enable_seqscan', 'off', true)"))
    try:
        total = int((await conn.execute(select(func.count()).select_from(matching))).scalar_one())
    finally:
        if previous is not None:
            await conn.execute(text("SELECT set_config('enable_seqscan', :value, true)"), {"value": previous})
    more = total > COUNT_CAP
    total = min(total, COUNT_CAP)
    first_received = (select(func.min(petitions.c.received_on)).where(petitions.c.case_id == cases.c.id)
                      .correlate(cases).scalar_subquery())
    confidential = confidentiality.confidential_clause().label("confidential_by_rule")
    page: Select[Any]
    if postgres and not more:
        # Few matches (the count says so): gather them and sort them. Left to itself the planner may walk
        # ix_cases_created_at_id for a word it cannot estimate and read every case for one that matches none.
        found = (select(cases.c.id, cases.c.created_at).where(*conditions)
                 .cte("matches").prefix_with("MATERIALIZED"))
        page = (select(cases, first_received.label("first_received_on"), confidential)
                .join(found, found.c.id == cases.c.id)
                .order_by(found.c.created_at.desc(), found.c.id).limit(limit).offset(offset))
    else:
        # Many matches (or SQLite): newest first from ix_cases_created_at_id stops after the first page.
        page = (select(cases, first_received.label("first_received_on"), confidential).where(*conditions)
                .order_by(cases.c.created_at.desc(), cases.c.id).limit(limit).offset(offset))
    rows = (await conn.execute(page)).mappings().all()
    items = [CaseHit(
        id=r["id"], tracking_code=r["tracking_code"], kind=PetitionKind.parse(r["kind"]),
        status=CaseStatus.parse(r["status"]), summary=r["summary"], venue=r["venue"],
        confidential=bool(r["confidential_by_rule"]), created_at=r["created_at"],
        first_received_on=r["first_received_on"],
        version=r["version"],
    ) for r in rows]
    return SearchResult(total, items, limit, offset, more)
