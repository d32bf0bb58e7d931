"""Complaint database at scale: duplicate check, tracking-code lookup and full-text search.

Generates ``--cases`` cases (default 1,000,000), each with an open petitioner (blocking keys
included), a petition and a respondent, bulk-inserted into a fresh database migrated with the real
migrations, then times the real query functions:

* duplicate check at intake (``complaints.petitioners.find_duplicates``): half the queries are
  existing people written another way (no diacritics, upper case, one-letter typo), half are new
  people with common names;
* tracking-code lookup (``complaints.cases.find_case_by_tracking_code``) with codes typed sloppily;
* full-text search (``complaints.search.search_cases``) for one or two diacritic-free words.

Usage: ``.venv/bin/python bench/complaints.py [--cases N] [--db sqlite|postgresql|both] [--queries Q]``.
PostgreSQL: a database ``tiepdan_bench_<hex>`` is created on 127.0.0.1:5432 (user postgres) and
dropped at the end. SQLite: a file under /tmp, removed at the end. Results are printed; the ones
recorded for the team are in ``bench/README.md``.
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
from tiepdan.db import make_engine, prepare_database  # noqa: E402

BATCH = 2000


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


async def generate(engine: Any, n: int, seed: int) -> list[dict[str, Any]]:
    """Insert n cases; returns a sample of the generated people (for the queries)."""
    rng = random.Random(seed)
    now = datetime(2026, 11, 20, 8, tzinfo=UTC)
    sample: list[dict[str, Any]] = []
    started = time.perf_counter()
    for start in range(0, n, BATCH):
        rows: dict[str, list[dict[str, Any]]] = {"p": [], "k": [], "c": [], "pe": [], "pp": [], "r": []}
        for i in range(start, min(n, start + BATCH)):
            person = make_person(rng, i)
            area, kind, summary, respondent = rng.choice(TOPICS)
            pid, cid, peid = str(uuid.UUID(int=rng.getrandbits(128))), str(uuid.UUID(int=rng.getrandbits(128))), \
                str(uuid.UUID(int=rng.getrandbits(128)))
            code = generate_tracking_code(rng.randrange)
            text = f"{summary} tại xã {person['commune']}"
            received = date(2026, 11, 20) - timedelta(days=rng.randrange(0, 2000))
            rows["p"].append({
                "id": pid, "kind": "individual", "handle": f"NTC-{i:09d}", "sealed": False,
                "full_name": person["name"], "name_norm": fold_text(person["name"]), "id_number": person["id_number"],
                "address_detail": person["address"], "address_norm": fold_text(person["address"]), "created_at": now,
            })
            rows["k"].extend({"petitioner_id": pid, "key": k} for k in blocking_keys(
                IntakeRecord(pid, full_name=person["name"], id_number=person["id_number"])))
            name = respondent.format(c=person["commune"])
            document = " ".join((fold_text(text), fold_text(text), fold_text(name), fold_text(person["name"])))
            rows["c"].append({
                "id": cid, "tracking_code": code, "kind": kind.value, "status": "received", "search_norm": document,
                "subject_area": area.value, "summary": text, "summary_norm": fold_text(text), "complex": False,
                "crowd": False, "confidential": kind.value == "denunciation", "venue": fold_text(person["commune"]),
                "version": 1, "created_at": now - timedelta(days=rng.randrange(0, 2000)), "updated_at": now,
            })
            rows["pe"].append({
                "id": peid, "case_id": cid, "source": "in_person", "kind": kind.value, "received_on": received,
                "content": text, "content_norm": fold_text(text), "request": "", "prior_bodies": [],
                "anonymous": False, "created_at": now,
            })
            rows["pp"].append({"petition_id": peid, "petitioner_id": pid, "role": "signatory"})
            rows["r"].append({"id": str(uuid.UUID(int=rng.getrandbits(128))), "case_id": cid, "name": name,
                              "name_norm": fold_text(name), "kind": "organisation"})
            if len(sample) < 5000 and rng.random() < 0.01:
                sample.append({**person, "code": code, "respondent": name, "summary": text})
        async with engine.begin() as conn:
            for table, key in ((petitioners, "p"), (cases, "c"), (petitions, "pe"), (petition_parties, "pp"),
                               (respondents, "r"), (petitioner_keys, "k")):
                await conn.execute(table.insert(), rows[key])
        done = min(n, start + BATCH)
        if done % 100_000 == 0 or done == n:
            rate = done / (time.perf_counter() - started)
            print(f"  generated {done:>9,} cases ({rate:,.0f}/s)", flush=True)
    return sample


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
    if db == "postgresql":
        async with engine.begin() as conn:
            from sqlalchemy import text

            await conn.execute(text("ANALYZE"))
    ring = Keyring.generate(dev=True)
    rng = random.Random(seed + 1)
    found = 0

    async def dup_existing() -> None:
        nonlocal found
        person = rng.choice(sample)
        async with engine.connect() as conn:
            hits = await find_duplicates(conn, ring, variant(rng, person))
        found += bool(hits)

    async def dup_new() -> None:
        person = make_person(rng, 10**10 + rng.randrange(10**6))
        async with engine.connect() as conn:
            await find_duplicates(conn, ring, IntakeRecord("q", full_name=person["name"], address=person["address"],
                                                           content="đề nghị giải quyết"))

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
            for p in path.parent.glob(path.name + "*"):
                p.unlink()
    if args.db in ("postgresql", "both"):
        import asyncpg

        name = f"tiepdan_bench_{secrets.token_hex(3)}"
        admin = await asyncpg.connect(host="127.0.0.1", user="postgres", database="test")
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            pg = await run("postgresql", f"postgresql+asyncpg://postgres@127.0.0.1/{name}", args.cases,
                           args.queries, args.seed)
            print("\n".join(pg), flush=True)
            out += pg
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
    print("\n--- summary ---\n" + "\n".join(out))


if __name__ == "__main__":
    asyncio.run(main())
