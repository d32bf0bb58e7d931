"""Helpers of the console tests (not a test module)."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

PASSWORD = "mat-khau-thu-nghiem"
_FORM_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_META_TOKEN = re.compile(r'name="csrf-token" content="([^"]+)"')


def form_token(html: str) -> str:
    found = _FORM_TOKEN.search(html)
    assert found is not None, "no csrf_token field in the page"
    return found.group(1)


def page_token(html: str) -> str:
    found = _META_TOKEN.search(html)
    assert found is not None and found.group(1), "no csrf-token meta in the page"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, username: str, password: str = PASSWORD,
                  next_path: str = "/") -> httpx.Response:
    page = await client.get("/login")
    return await client.post("/login", data={"username": username, "password": password, "next": next_path,
                                             "csrf_token": form_token(page.text)})


async def outbox_texts(engine: AsyncEngine) -> list[str]:
    """Every row of the outbox tables, as text (the outbox's own columns are its business)."""
    from signaling.outbox import metadata

    rows: list[str] = []
    async with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows += [str(tuple(r)) for r in (await conn.execute(select(table))).all()]
    return rows
