"""Shared fixtures: per-run PostgreSQL database and Redis key prefix, settings factories.

Every test run makes its own PostgreSQL database and Redis key prefix and removes them at the end:
CI shares these servers with earlier runs. With ``CI`` set, tests that need PostgreSQL or Redis
fail when the server is missing instead of skipping.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.harness"]

PG_HOST = os.environ.get("TIEPDAN_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TIEPDAN_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("TIEPDAN_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("TIEPDAN_TEST_PG_DB", "test")
REDIS_HOST = os.environ.get("TIEPDAN_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TIEPDAN_TEST_REDIS_PORT", "6379"))
RUN_ID = secrets.token_hex(4)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _unavailable(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required when CI is set, and it does not answer")
    pytest.skip(f"{what} does not answer here")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of this run (asyncpg URL), dropped at the end."""
    if not _listening(PG_HOST, PG_PORT):
        _unavailable("PostgreSQL")
    import asyncpg

    name = f"tiepdan_test_{RUN_ID}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_base_url() -> Iterator[str]:
    if not _listening(REDIS_HOST, REDIS_PORT):
        _unavailable("Redis")
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture(scope="session")
def redis_run_prefix(redis_base_url: str) -> Iterator[str]:
    """The Redis key prefix of this run; every key under it is deleted at the end."""
    prefix = f"tiepdan-test-{RUN_ID}:"
    yield prefix
    import redis

    client = redis.Redis.from_url(redis_base_url)
    try:
        batch = list(client.scan_iter(match=f"{prefix}*", count=500))
        while batch:
            client.delete(*batch[:500])
            batch = batch[500:]
    finally:
        client.close()


@pytest.fixture
def redis_prefix(redis_run_prefix: str) -> str:
    """A fresh prefix per test, under the run's prefix."""
    return f"{redis_run_prefix}{secrets.token_hex(3)}:"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run the test against SQLite and against PostgreSQL (a fresh schema per test on PostgreSQL)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    base: str = request.getfixturevalue("pg_url")
    return _fresh_pg_database(base)


@pytest.fixture(scope="module")
def module_pg_url(pg_url: str) -> str:
    """A PostgreSQL database of its own for one test module (e.g. for servers in subprocesses that its tests
    share), dropped at the end of the run."""
    return _fresh_pg_database(pg_url)


def _fresh_pg_database(base: str) -> str:
    """A PostgreSQL database of a test's own: a role and its schema in the run's database.

    The role logs in (trust auth) with ``search_path`` set to its schema alone, so everything the test and
    the servers it starts create lands there, and nothing of another test is visible. A schema costs
    milliseconds where ``CREATE DATABASE`` + ``DROP DATABASE`` cost about a second on a busy machine, for
    some 260 tests. The run's database is dropped at the end (``pg_url``), then the roles."""
    import asyncpg

    database = base.rsplit("/", 1)[1]
    role = f"tiepdan_t_{RUN_ID}_{secrets.token_hex(3)}"

    async def create() -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=database)
        try:
            await conn.execute(f'CREATE ROLE "{role}" LOGIN')
            await conn.execute(f'ALTER ROLE "{role}" SET search_path = "{role}"')
            await conn.execute(f'CREATE SCHEMA "{role}" AUTHORIZATION "{role}"')
        finally:
            await conn.close()

    asyncio.run(create())
    _created_pg_roles.append(role)
    return f"postgresql+asyncpg://{role}@{PG_HOST}:{PG_PORT}/{database}"


def pg_schema_of(url: str) -> str:
    """The schema (and role) of a URL from :func:`_fresh_pg_database`."""
    return url.split("://", 1)[1].split("@", 1)[0]


_created_pg_roles: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def _drop_per_test_pg_roles() -> Iterator[None]:
    yield
    if not _created_pg_roles:
        return
    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
        try:
            # the run's database, where the roles own their schemas, is gone by now (pg_url is torn down
            # first); in case it is not, drop it here
            await conn.execute(f'DROP DATABASE IF EXISTS "tiepdan_test_{RUN_ID}" WITH (FORCE)')
            for role in _created_pg_roles:
                await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture
def make_settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Build Settings for a test: embedded defaults under tmp_path, overrides by keyword."""
    from tiepdan.settings import Settings

    def factory(**overrides: object) -> Settings:
        values: dict[str, object] = {"data_dir": tmp_path / "data", "log_json": False}
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return factory


@pytest.fixture
async def anyio_backend() -> AsyncIterator[str]:
    yield "asyncio"


@pytest.fixture(autouse=True)
def _collect_garbage_per_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Collect garbage after every ``media`` test (after every test with TIEPDAN_TEST_GC=1), so that a leaked
    socket, peer connection or task warns in the teardown of the test that leaked it instead of in whatever
    test the collector happens to run in later. This runs after the test's event loop is closed (pytest-asyncio
    tears its loop down first). Media tests are few and slow: a collection each costs them little."""
    yield
    from tests.harness import kind_of

    if os.environ.get("TIEPDAN_TEST_GC") == "1" or kind_of(request.node) == "media":
        import gc

        gc.collect()


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests hash passwords with argon2's smallest cost (still argon2id: every hash verifies
    the same way). The product's cost stays argon2-cffi's default (~0.17 s a hash here), which made each
    console test spend a second or more creating its accounts. Servers started as subprocesses keep it."""
    from argon2 import PasswordHasher

    from room_console import accounts

    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
