"""Complaint database at scale: duplicate check, tracking-code lookup and full-text search.

Generates ``--cases`` cases (default 1,000,000), each with an open petitioner (blocking keys
included), a petition and a respondent, bulk-inserted into a fresh database migrated with the real
migrations, then times the real query functions:

* duplicate check at intake (``complaints.petitioners.find_duplicates``): half the queries are
  existing people written another way (no diacritics, upper case, one-letter typo), half are new
  people with common names;
* tracking-code lookup (``complaints.cases.find_case_by_tracking_code``) with codes typed sloppily;
* full-text search (``complaints.search.search_cases``) for one or two diacritic-free words.

Usage: ``.venv/bin/python bench/complaints.py [--cases N] [--db sqlite|postgresql|both] [--queries Q]
[--keep]``. PostgreSQL: a database ``tiepdan_bench_<hex>`` is created on 127.0.0.1:5432 (user postgres)
and dropped at the end. SQLite: a file under /tmp, removed at the end (``--keep`` keeps both).
Results are printed; the ones recorded for the team are in ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from complaints.cases import find_case_by_tracking_code  # noqa: E402
from complaints.duplicates import IntakeRecord, blocking_keys, fold_text  # noqa: E402
from complaints.petitioners import find_duplicates  # noqa: E402
from complaints.search import CaseQuery, search_cases  # noqa: E402
from complaints.seed import COMMUNES, GIVEN_F, GIVEN_M, HAMLETS, MIDDLE_F, MIDDLE_M, SURNAMES, TOPICS  # noqa: E402
from complaints.tables import cases, petition_parties, petitioner_keys, petitioners, petitions, respondents  # noqa: E402
from complaints.tracking import generate_tracking_code  # noqa: E402
from evidence import Keyring  # noqa: E402
from signaling.grants import ROLE_GRANTS, Role  # noqa: E402
from tiepdan.db import make_engine, prepare_database  # noqa: E402

BATCH = 20_000
DESK = ROLE_GRANTS[Role.RECEPTION]  # the duplicate check as the intake desk runs it
# Columns written by the generator, in the order of the row tuples (what the store functions write).
COLUMNS: dict[str, tuple[str, ...]] = {
    "petitioners": ("id", "kind", "handle", "sealed", "full_name", "name_norm", "id_number", "address_detail",
                    "address_norm", "created_at"),
    "cases": ("id", "tracking_code", "kind", "status", "search_norm", "subject_area", "summary", "summary_norm",
              "complex", "crowd", "confidential", "venue", "version", "created_at", "updated_at"),
    "petitions": ("id", "case_id", "source", "kind", "received_on", "content", "content_norm", "request",
                  "prior_bodies", "anonymous", "created_at"),
    "petition_parties": ("petition_id", "petitioner_id", "role"),
    "respondents": ("id", "case_id", "name", "name_norm", "kind"),
    "petitioner_keys": ("petitioner_id", "key"),
}
TABLES = {t.name: t for t in (petitioners, cases, petitions, petition_parties, respondents, petitioner_keys)}


def _strip(text: str) -> str:
    import unicodedata

    text = text.replace("đ", "d").replace("Đ", "D")
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def make_person(rng: random.Random, i: int) -> dict[str, Any]:
    female = rng.random() < 0.45
    name = " ".join((rng.choice(SURNAMES), rng.choice(MIDDLE_F if female else MIDDLE_M),
                     rng.choice(GIVEN_F if female else GIVEN_M)))
    commune, _ = rng.choice(COMMUNES)
    return {"i": i, "name": name, "id_number": f"0{i:011d}", "commune": commune,
            "address": f"{rng.choice(HAMLETS)} {rng.randrange(1, 40)}, xã {commune}, tỉnh Bắc Ninh"}


class Generator:
    """Rows of ``n`` cases in batches, as the store functions write them: each case has an open petitioner
    with its blocking keys (:func:`complaints.duplicates.blocking_keys` of name, ID number and address, as
    ``register_petitioner``), a petition, a respondent, and its search document (the parts and order of
    ``complaints.search.refresh_search_document``)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.now = datetime(2026, 11, 20, 8, tzinfo=UTC)
        self.sample: list[dict[str, Any]] = []
        self.codes: set[str] = set()
        self.keys = 0

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def batch(self, start: int, stop: int) -> dict[str, list[tuple[Any, ...]]]:
        rng, now = self.rng, self.now
        rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in COLUMNS}
        for i in range(start, stop):
            person = make_person(rng, i)
            area, kind, summary, respondent = rng.choice(TOPICS)
            pid, cid, peid, rid = self._uuid(), self._uuid(), self._uuid(), self._uuid()
            code = generate_tracking_code(rng.randrange)
            while code in self.codes:  # the store retries a taken code
                code = generate_tracking_code(rng.randrange)
            self.codes.add(code)
            text = f"{summary} tại xã {person['commune']}"
            received = date(2026, 11, 20) - timedelta(days=rng.randrange(0, 2000))
            name_norm = fold_text(person["name"])
            rows["petitioners"].append((
                pid, "individual", f"NTC-{i:09d}", False, person["name"], name_norm, person["id_number"],
                person["address"], fold_text(person["address"]), now))
            keys = blocking_keys(IntakeRecord(pid, full_name=person["name"], id_number=person["id_number"],
                                              address=person["address"]))
            rows["petitioner_keys"].extend((pid, k) for k in sorted(keys))
            self.keys += len(keys)
            respondent_name = respondent.format(c=person["commune"])
            text_norm, respondent_norm = fold_text(text), fold_text(respondent_name)
            document = " ".join((text_norm, text_norm, respondent_norm, name_norm))
            rows["cases"].append((
                cid, code, kind.value, "received", document, area.value, text, text_norm, False, False,
                kind.value == "denunciation", fold_text(person["commune"]), 1,
                now - timedelta(days=rng.randrange(0, 2000)), now))
            rows["petitions"].append(
                (peid, cid, "in_person", kind.value, received, text, text_norm, "", [], False, now))
            rows["petition_parties"].append((peid, pid, "signatory"))
            rows["respondents"].append((rid, cid, respondent_name, respondent_norm, "organisation"))
            if len(self.sample) < 5000 and rng.random() < 0.01:
                self.sample.append({**person, "code": code, "respondent": respondent_name, "summary": text})
        return rows


class Loader:
    """Bulk writes for the bench only: one transaction per batch, secondary indexes dropped before the
    load and rebuilt after it with their own DDL, foreign keys not checked row by row (the rows are
    consistent by construction); COPY on PostgreSQL (asyncpg), executemany with fast pragmas on SQLite.
    Values go through the dialect's own bind processing, so the stored values are what SQLAlchemy writes."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.conn: AsyncConnection | None = None
        self.driver: Any = None
        self.indexes: list[str] = []
        self.processors: dict[str, list[tuple[int, Any]]] = {}
        for name, columns in COLUMNS.items():
            table = TABLES[name]
            procs = [(i, proc) for i, column in enumerate(columns)
                     if (proc := table.c[column].type._cached_bind_processor(engine.dialect)) is not None]
            self.processors[name] = procs
        self.seconds: dict[str, float] = dict.fromkeys(COLUMNS, 0.0)

    async def __aenter__(self) -> Loader:
        self.conn = await self.engine.connect()
        raw = await self.conn.get_raw_connection()
        self.driver = raw.driver_connection
        names = list(COLUMNS)
        if self.dialect == "postgresql":
            await self.driver.execute("SET session_replication_role = replica")  # no FK triggers per row
            await self.driver.execute("SET maintenance_work_mem = '512MB'")
            rows = await self.driver.fetch(
                "SELECT indexname, indexdef FROM pg_indexes i WHERE schemaname = 'public' AND tablename = ANY($1) "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)", names)
            for index_name, ddl in rows:
                await self.driver.execute(f'DROP INDEX "{index_name}"')
                self.indexes.append(ddl)
            # Primary keys and unique constraints no foreign key depends on: rebuilt after the load too.
            rows = await self.driver.fetch(
                "SELECT t.relname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                "JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
                "WHERE n.nspname = 'public' AND t.relname = ANY($1) AND c.contype IN ('p', 'u') AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.confrelid = c.conrelid)", names)
            for table, constraint, definition in rows:
                await self.driver.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{constraint}"')
                self.indexes.insert(0, f'ALTER TABLE "{table}" ADD CONSTRAINT "{constraint}" {definition}')
        else:
            for pragma in ("journal_mode=OFF", "synchronous=OFF", "foreign_keys=OFF", "cache_size=-1000000",
                           "temp_store=MEMORY"):
                await self.driver.execute(f"PRAGMA {pragma}")
            marks = ",".join("?" * len(names))
            cursor = await self.driver.execute(
                f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                f"AND tbl_name IN ({marks})", names)
            for index_name, ddl in await cursor.fetchall():
                await self.driver.execute(f'DROP INDEX "{index_name}"')
                self.indexes.append(ddl)
            await self.driver.commit()
        return self

    def _processed(self, name: str, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        procs = self.processors[name]
        if not procs:
            return rows
        out = []
        for row in rows:
            values = list(row)
            for i, proc in procs:
                values[i] = proc(values[i])
            out.append(tuple(values))
        return out

    async def write(self, batch: dict[str, list[tuple[Any, ...]]]) -> None:
        if self.dialect == "postgresql":
            async with self.driver.transaction():
                for name, rows in batch.items():
                    t0 = time.perf_counter()
                    await self.driver.copy_records_to_table(name, records=self._processed(name, rows),
                                                            columns=COLUMNS[name])
                    self.seconds[name] += time.perf_counter() - t0
        else:
            for name, rows in batch.items():
                t0 = time.perf_counter()
                columns = COLUMNS[name]
                await self.driver.executemany(
                    f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                    self._processed(name, rows))
                self.seconds[name] += time.perf_counter() - t0
            await self.driver.commit()

    async def __aexit__(self, *exc: object) -> None:
        t0 = time.perf_counter()
        for ddl in self.indexes:
            await self.driver.execute(ddl)
        self.seconds["indexes"] = time.perf_counter() - t0
        if self.dialect == "postgresql":
            t0 = time.perf_counter()
            await self.driver.execute("RESET session_replication_role")
            await self.driver.execute("VACUUM ANALYZE")  # what autovacuum does to a settled database
            self.seconds["vacuum analyze"] = time.perf_counter() - t0
        else:
            await self.driver.commit()
        assert self.conn is not None
        await self.conn.invalidate()  # its pragmas and settings are the load's, not the application's
        await self.conn.close()


async def generate(engine: AsyncEngine, n: int, seed: int) -> list[dict[str, Any]]:
    """Insert n cases; returns a sample of the generated people (for the queries)."""
    generator = Generator(n, seed)
    started = time.perf_counter()
    python_s = 0.0
    async with Loader(engine) as loader:
        for start in range(0, n, BATCH):
            t0 = time.perf_counter()
            batch = generator.batch(start, min(n, start + BATCH))
            python_s += time.perf_counter() - t0
            await loader.write(batch)
            done = min(n, start + BATCH)
            if done % 100_000 == 0 or done == n:
                rate = done / (time.perf_counter() - started)
                print(f"  generated {done:>9,} cases ({rate:,.0f}/s)", flush=True)
    total = time.perf_counter() - started
    detail = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in loader.seconds.items())
    print(f"  {n:,} cases ({generator.keys:,} blocking keys) in {total:.0f} s = {n / total:,.0f} cases/s "
          f"(rows built in Python {python_s:.0f} s; writing: {detail})", flush=True)
    return generator.sample


def variant(rng: random.Random, person: dict[str, Any]) -> IntakeRecord:
    name = person["name"]
    choice = rng.randrange(3)
    if choice == 0:
        name = _strip(name)
    elif choice == 1:
        name = name.upper()
    else:
        parts = name.split()
        last = parts[-1]
        pos = rng.randrange(len(last))
        parts[-1] = last[:pos] + last[pos + 1:] if len(last) > 2 else last
        name = " ".join(parts)
    return IntakeRecord("query", full_name=name, address=_strip(person["address"]), respondent=person["respondent"],
                        content=person["summary"])


async def timed(fn: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        t0 = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def summary(label: str, samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return f"| {label} | {len(samples)} | {statistics.median(samples):.1f} | {q[98]:.1f} | {max(samples):.1f} |"


async def run(db: str, url: str, n: int, queries: int, seed: int) -> list[str]:
    engine = make_engine(url)
    await prepare_database(engine)
    print(f"[{db}] generating {n:,} cases …", flush=True)
    t0 = time.perf_counter()
    sample = await generate(engine, n, seed)
    gen_s = time.perf_counter() - t0
    ring = Keyring.generate(dev=True)
    rng = random.Random(seed + 1)
    found = 0

    async def dup_existing() -> None:
        nonlocal found
        person = rng.choice(sample)
        async with engine.connect() as conn:
            hits = await find_duplicates(conn, ring, variant(rng, person), actor="bench", grants=DESK)
        found += bool(hits.candidates)

    async def dup_new() -> None:
        person = make_person(rng, 10**10 + rng.randrange(10**6))
        async with engine.connect() as conn:
            await find_duplicates(conn, ring, IntakeRecord("q", full_name=person["name"], address=person["address"],
                                                           content="đề nghị giải quyết"), actor="bench", grants=DESK)

    async def lookup() -> None:
        code = rng.choice(sample)["code"].lower().replace("-", " ")
        async with engine.connect() as conn:
            await find_case_by_tracking_code(conn, code)

    words = ["dat", "boi thuong", "thu hoi dat", "che do", "o nhiem", "tien du", "giay chung nhan", "cuong che"]

    async def search() -> None:
        async with engine.connect() as conn:
            await search_cases(conn, CaseQuery(text=rng.choice(words), limit=20))

    lines = [f"### {db}: {n:,} cases (generated in {gen_s:,.0f} s)", "",
             "| query | count | p50 (ms) | p99 (ms) | max (ms) |", "| --- | ---: | ---: | ---: | ---: |"]
    existing = await timed(dup_existing, queries)
    lines.append(summary("duplicate check, existing person written differently", existing))
    lines.append(summary("duplicate check, new person with a common name", await timed(dup_new, queries)))
    lines.append(summary("tracking-code lookup", await timed(lookup, queries)))
    lines.append(summary("full-text search (first page + total)", await timed(search, max(20, queries // 5))))
    lines += ["", f"Existing people found by the duplicate check: {found}/{queries}.", ""]
    await engine.dispose()
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true",
                        help="keep the generated databases (printed) for EXPLAIN; drop them yourself")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}; "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    out: list[str] = []
    if args.db in ("sqlite", "both"):
        path = Path(f"/tmp/tiepdan-bench-{secrets.token_hex(3)}.db")
        try:
            out += await run("sqlite", f"sqlite+aiosqlite:///{path}", args.cases, args.queries, args.seed)
            print("\n".join(out), flush=True)  # shown at once: a long run may be stopped later
        finally:
            if args.keep:
                print(f"kept: {path}", flush=True)
            else:
                for p in path.parent.glob(path.name + "*"):
                    p.unlink()
    if args.db in ("postgresql", "both"):
        import asyncpg  # type: ignore[import-untyped]

        name = f"tiepdan_bench_{secrets.token_hex(3)}"
        admin = await asyncpg.connect(host="127.0.0.1", user="postgres", database="test")
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            pg = await run("postgresql", f"postgresql+asyncpg://postgres@127.0.0.1/{name}", args.cases,
                           args.queries, args.seed)
            print("\n".join(pg), flush=True)
            out += pg
        finally:
            if args.keep:
                print(f"kept: postgresql://postgres@127.0.0.1/{name}", flush=True)
            else:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    print("\n--- summary ---\n" + "\n".join(out))


if __name__ == "__main__":
    asyncio.run(main())
