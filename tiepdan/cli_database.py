"""The server's database, as the command-line tools find it: from the settings, never created by them.

``tiepdan serve`` (and ``seed``, ``demo``) create the embedded SQLite file on first start. The other
commands work on the server's data: run from another directory, or without the server's
``TIEPDAN_DATA_DIR`` / ``TIEPDAN_DATABASE_URL``, they would otherwise create an empty database beside
them and report success on it. :func:`open_server_database` refuses instead, naming the file (or the
database server and database, without the password) it looked for.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from .db import make_engine, prepare_database
from .settings import Settings

__all__ = ["DatabaseMissing", "database_location", "open_server_database"]


class DatabaseMissing(Exception):
    """The settings name no existing database (the message is in Vietnamese, for the operator)."""


def database_location(settings: Settings) -> str:
    """The SQLite file, or the database URL without its password."""
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        return str(Path(url.database or "").resolve())
    return url.render_as_string(hide_password=True)


async def open_server_database(settings: Settings) -> AsyncEngine:
    """An engine on the server's existing database, migrated to the current schema; :class:`DatabaseMissing`
    when the SQLite file does not exist or the database server cannot be reached (nothing is created)."""
    url = make_url(settings.resolved_database_url)
    where = database_location(settings)
    if url.get_backend_name() == "sqlite" and not Path(where).is_file():
        raise DatabaseMissing(
            f"không tìm thấy cơ sở dữ liệu của máy chủ tại {where}. Hãy chạy lệnh trong thư mục của máy chủ, hoặc "
            "đặt TIEPDAN_DATA_DIR (hay TIEPDAN_DATABASE_URL) như khi chạy máy chủ; cơ sở dữ liệu được tạo khi máy "
            "chủ khởi động lần đầu (tiepdan serve) hoặc bằng tiepdan seed.")
    engine = make_engine(settings.resolved_database_url)
    try:
        async with engine.connect():
            pass
    except (SQLAlchemyError, OSError) as exc:
        await engine.dispose()
        raise DatabaseMissing(
            f"không kết nối được cơ sở dữ liệu của máy chủ {where} ({type(exc).__name__}); kiểm tra "
            "TIEPDAN_DATABASE_URL và máy chủ cơ sở dữ liệu.") from exc
    try:
        await prepare_database(engine)
    except BaseException:
        await engine.dispose()
        raise
    return engine
