"""Fixtures of the minutes tests: a database with every table per test (SQLite and PostgreSQL), a dev keyring, and
the console app with its real lifespan, its officials and units, once per test module and database.

The app is module-scoped (its lifespan migrates a database and starts the bus consumers: the most expensive set-up
here): its tests run in the module's event loop (``_console.MODULE_LOOP``), each on cases (and, where it reads a
whole session, a session) of its own. ``engine`` stays per test: those tests count rows of whole tables, and the
audit log is append-only (a shared database cannot be emptied between tests)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from complaints.directives import add_unit
from evidence import Keyring
from room_console import accounts
from room_console.accounts import add_user
from room_console.context import ConsoleContext
from tiepdan.app import create_app
from tiepdan.db import make_engine
from tiepdan.settings import Settings

from ..room_console._helpers import PASSWORD
from . import _pki
from ._console import UNITS, USERS
from ._drafts import VENUE, create_tables


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """A database of the test's own with every table and the units (:func:`._drafts.create_tables`)."""
    eng = make_engine(database_url)
    await create_tables(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
def keyring() -> Keyring:
    return Keyring.generate(dev=True)


@pytest.fixture(scope="session")
def ca() -> _pki.TestCA:
    """The test CA of the process (its signer's key is also on the SoftHSM2 token, :func:`._pki.shared_softhsm`)."""
    return _pki.shared_ca()


@pytest.fixture(scope="session")
def pdf() -> bytes:
    """A one-page PDF to sign (read only)."""
    import weasyprint

    data: bytes = weasyprint.HTML(string="<p>Thông báo kết luận thử nghiệm</p>").write_pdf()
    return data


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database of the test module's own, on SQLite and on PostgreSQL (a schema of its own)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('minutes-db') / 'test.db'}"
    url: str = request.getfixturevalue("module_pg_url")
    return url


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def app(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    """The app with its real lifespan on the module's database, with :data:`._console.USERS` and
    :data:`._console.UNITS`."""
    data_dir = tmp_path_factory.mktemp("minutes-app") / "data"
    application = create_app(Settings(data_dir=data_dir, log_json=False, database_url=module_database_url))
    async with application.router.lifespan_context(application):
        ctx: ConsoleContext = application.state.console
        with pytest.MonkeyPatch.context() as patch:  # the cheap hashing of tests/conftest.py, for the module
            patch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
            for username, roles in USERS.items():
                await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=roles,
                               password=PASSWORD, venue=VENUE if "venue" in roles else None, options=ctx.options,
                               now=time.time())
        async with ctx.engine.begin() as conn:
            for unit, name in UNITS.items():
                await add_unit(conn, unit, name, track="state")
        yield application
