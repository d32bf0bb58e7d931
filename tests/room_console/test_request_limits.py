"""The HTTP edge (room_console.request_limits): one table of body caps and callers that covers every
route, bodies refused before they are read, and an anonymous caller refused before its body.

The middleware alone runs around a tiny app whose receive calls are counted; the real console runs
in-process (ASGI); and a real ``tiepdan serve`` shows that a 2 GB announcement or a 32 MiB body
leaves the server's memory where it was."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send

from complaints.schemas import IntakeIn
from room_console.accounts import add_user
from room_console.errors import ConsoleError, NotSignedIn
from room_console.request_limits import (
    DOCUMENT_JSON,
    ROUTE_LIMITS,
    TEXT_FORM,
    Access,
    RequestLimitMiddleware,
    RouteLimit,
    RouteLimits,
)
from tests.harness import LiveServer
from tiepdan.app import create_app

from ._helpers import PASSWORD, page_token, sign_in

KIB, MIB = 1024, 1024 * 1024


# -- the table --------------------------------------------------------------------------------------


def _declared_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every HTTP route of ``app`` (a mount: its whole subtree)."""
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, WebSocketRoute) or type(route).__name__ == "APIWebSocketRoute":
            continue  # /ws: a handshake has no body (signaling.room.api authenticates it)
        if isinstance(route, Mount):
            found |= {("GET", route.path + "/{path:path}")}
            continue
        assert context.path is not None and context.methods, f"route without path or methods: {route!r}"
        found |= {(method, context.path) for method in context.methods if method != "HEAD"}
    return found


@pytest.mark.unit
def test_every_route_of_the_app_has_exactly_one_row_and_every_row_a_route(make_settings) -> None:  # type: ignore[no-untyped-def]
    declared = _declared_routes(create_app(make_settings()))
    rows = {(method, row.path) for row in ROUTE_LIMITS.rows for method in row.methods}
    assert len(declared) > 40
    assert sorted(declared - rows) == [], "routes without a row in room_console.request_limits.ROUTE_LIMITS"
    assert sorted(rows - declared) == [], "rows naming no route"
    assert len(rows) == sum(len(row.methods) for row in ROUTE_LIMITS.rows), "a route with two rows"


@pytest.mark.unit
def test_rows_are_found_by_method_and_concrete_path() -> None:
    found = ROUTE_LIMITS.find("POST", "/api/cases/c-1/petitions")
    assert found is not None and (found.path, found.max_body) == ("/api/cases/{case_id}/petitions", DOCUMENT_JSON)
    assert ROUTE_LIMITS.find("PATCH", "/api/cases/c-1") is not None
    assert ROUTE_LIMITS.find("DELETE", "/api/cases/c-1") is None
    static = ROUTE_LIMITS.find("HEAD", "/static/live/room.js")
    assert static is not None and static.access is Access.PUBLIC
    assert ROUTE_LIMITS.find("POST", "/api/cases/c-1/petitions/x") is None


@pytest.mark.unit
def test_the_largest_valid_intake_fits_its_caps_as_json_and_as_a_form() -> None:
    text = "Đề nghị giải quyết dứt điểm việc bồi thường đất ở " * 400
    text = text[:20000]
    body = {"petitioner": {"full_name": "Nguyễn Thị Hường" * 12, "address_detail": "ấp Phước Hưng " * 21},
            "petition": {"kind": "complaint", "received_on": "2026-03-02", "content": text, "request": text},
            "respondent": {"name": "Ủy ban nhân dân xã " * 10, "position": "ử" * 300, "workplace": "ử" * 300},
            "summary": "ệ" * 1000}
    IntakeIn.model_validate(body)  # a valid intake at the schema's maxima
    as_json = json.dumps(body).encode()  # \\u escapes: the longest spelling
    assert len(as_json) <= DOCUMENT_JSON
    as_form = httpx.QueryParams({"content": text, **{f"field{i}": "ệ" * 500 for i in range(20)}})
    assert len(str(as_form).encode()) <= TEXT_FORM


# -- the middleware alone ---------------------------------------------------------------------------


class _Counted:
    """An ASGI app behind the middleware under test: echoes the body length; counts bytes received."""

    def __init__(self) -> None:
        self.received = 0
        self.calls = 0

    async def echo(self, request: Request) -> Response:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return PlainTextResponse(f"{size}")

    def app(self) -> Callable[[Scope, Receive, Send], object]:
        inner = Starlette(routes=[Route("/open", self.echo, methods=["POST", "GET"]),
                                  Route("/closed", self.echo, methods=["POST"])])
        limits = RouteLimits([RouteLimit(frozenset({"POST", "GET"}), "/open", 64 * KIB, Access.PUBLIC),
                              RouteLimit(frozenset({"POST"}), "/closed", 64 * KIB, Access.ACTOR)])

        async def authenticate(request: Request, access: Access) -> None:
            if request.headers.get("x-caller") != "ok":
                raise NotSignedIn("nobody")

        async def reject(request: Request, exc: ConsoleError) -> Response:
            return JSONResponse({"error": type(exc).__name__, "params": exc.params},
                                status_code=413 if exc.message_key == "error.body_too_large" else 401)

        guarded = RequestLimitMiddleware(inner, limits=limits, authenticate=authenticate, reject=reject)

        async def counting(scope: Scope, receive: Receive, send: Send) -> None:
            async def counted_receive() -> Message:
                self.calls += 1
                message = await receive()
                self.received += len(message.get("body", b""))
                return message

            await guarded(scope, counted_receive, send)

        return counting


def _chunks(count: int, size: int = 16 * KIB) -> Callable[[], AsyncIterator[bytes]]:
    async def stream() -> AsyncIterator[bytes]:
        for _ in range(count):
            yield b"x" * size

    return stream


def _client(target: _Counted) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=target.app()), base_url="http://testserver")


@pytest.mark.unit
async def test_a_body_within_the_cap_reaches_the_app() -> None:
    target = _Counted()
    async with _client(target) as client:
        response = await client.post("/open", content=b"y" * (64 * KIB))
    assert (response.status_code, response.text) == (200, str(64 * KIB))
    assert "connection" not in response.headers


@pytest.mark.unit
async def test_a_declared_length_over_the_cap_is_refused_before_one_byte_is_read() -> None:
    target = _Counted()
    async with _client(target) as client:
        response = await client.post("/open", content=_chunks(100)(), headers={"content-length": "2000000000"})
    assert response.status_code == 413 and response.json()["params"] == {"limit": "64 KB"}
    assert response.headers["connection"] == "close"
    assert target.calls == 0 and target.received == 0


@pytest.mark.unit
async def test_a_streamed_body_is_cut_at_the_cap_and_not_read_further() -> None:
    target = _Counted()
    async with _client(target) as client:  # no Content-Length: chunked
        response = await client.post("/open", content=_chunks(200)())
    assert response.status_code == 413 and response.headers["connection"] == "close"
    assert 64 * KIB < target.received <= 64 * KIB + 16 * KIB  # the chunk that passed the cap, no more


@pytest.mark.unit
async def test_an_anonymous_body_to_a_closed_route_is_refused_before_it_is_read() -> None:
    target = _Counted()
    async with _client(target) as client:
        anonymous = await client.post("/closed", content=b"z" * (8 * KIB))
        caller = await client.post("/closed", content=b"z" * (8 * KIB), headers={"x-caller": "ok"})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "NotSignedIn"
    assert caller.status_code == 200
    assert target.received == 8 * KIB  # the caller's body only


@pytest.mark.unit
async def test_a_body_to_a_route_without_a_body_or_an_unknown_path_is_never_read() -> None:
    target = _Counted()
    async with _client(target) as client:
        unknown = await client.post("/khong-co", content=b"z" * 100)
        unknown_method = await client.put("/open", content=b"z" * 100)
    assert (unknown.status_code, unknown_method.status_code) == (404, 405)
    assert unknown.headers["connection"] == "close"  # answered with the body unread
    assert target.received == 0


# -- the console, in-process ------------------------------------------------------------------------


@pytest.fixture
async def app(make_settings) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = create_app(make_settings())
    async with application.router.lifespan_context(application):
        ctx = application.state.console
        await add_user(ctx.engine, username="tiepnhan", display_name="Cán bộ tiếp nhận", roles=["reception"],
                       password=PASSWORD, options=ctx.options, now=ctx.clock())
        yield application


class _Pulled:
    """A request body whose bytes are only produced when the server reads them."""

    def __init__(self, total: int, chunk: int = 64 * KIB) -> None:
        self.total, self.chunk, self.pulled = total, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            size = min(self.chunk, self.total - self.pulled)
            self.pulled += size
            yield b" " * size


def _asgi(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@pytest.mark.integration
async def test_bogus_bearer_with_a_large_body_gets_401_without_the_body_being_read(app: FastAPI) -> None:
    body = _Pulled(MIB)
    async with _asgi(app) as client:
        response = await client.post("/api/intake", content=body, headers={
            "authorization": "Bearer not-a-token", "content-type": "application/json",
            "content-length": str(MIB)})
        anonymous_page = await client.post("/intake", content=_Pulled(MIB), headers={
            "content-type": "application/x-www-form-urlencoded", "content-length": str(MIB)})
    assert response.status_code == 401 and response.json()["error"] == "not_signed_in"
    assert body.pulled == 0
    assert (anonymous_page.status_code, anonymous_page.headers["location"]) == (303, "/login")


@pytest.mark.integration
async def test_signed_in_bodies_past_the_cap_get_a_vietnamese_413_declared_or_streamed(app: FastAPI) -> None:
    async with _asgi(app) as client:
        await sign_in(client, "tiepnhan")
        token = page_token((await client.get("/")).text)
        headers = {"x-csrf-token": token, "content-type": "application/json"}
        declared = _Pulled(2 * MIB)
        announced = await client.post("/api/intake", content=declared,
                                      headers={**headers, "content-length": "2000000000"})
        streamed = _Pulled(4 * MIB)
        chunked = await client.post("/api/intake", content=streamed, headers=headers)
        small = await client.post("/api/intake", json={}, headers=headers)
    assert announced.status_code == 413 and declared.pulled == 0
    assert announced.json() == {"error": "body_too_large",
                                "message": "Dữ liệu gửi lên quá lớn: thao tác này nhận tối đa 1 MB."}
    assert chunked.status_code == 413 and chunked.json()["error"] == "body_too_large"
    assert DOCUMENT_JSON < streamed.pulled <= DOCUMENT_JSON + 64 * KIB
    assert small.status_code == 422  # within the cap: the route validates it as before


@pytest.mark.integration
async def test_a_page_form_past_its_cap_gets_a_vietnamese_413_page(app: FastAPI) -> None:
    async with _asgi(app) as client:
        response = await client.post("/login", content=b"username=" + b"a" * (64 * KIB), headers={
            "content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413 and '<html lang="vi">' in response.text
    assert "thao tác này nhận tối đa 16 KB" in response.text


# -- a real server ----------------------------------------------------------------------------------


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert found is not None
    return int(found.group(1))


def _raw_post(server: LiveServer, path: str, headers: dict[str, str], body_size: int, *,
              declared: int | None = None, chunked: bool = False) -> tuple[int, dict[str, str], int]:
    """POST ``body_size`` bytes (announcing ``declared`` bytes, default the size; or chunked) over a raw
    socket while reading the answer: (status, headers, bytes the client got to send before the
    connection closed)."""
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {declared or body_size}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    sent = [0]

    def write() -> None:
        piece = b" " * (64 * KIB)
        try:
            while sent[0] < body_size:
                data = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
                sock.sendall(data)
                sent[0] += len(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed: what we expect

    writer = threading.Thread(target=write, name="raw-body-writer")
    writer.start()
    answer = b""
    try:
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # unblocks the writer
        except OSError:
            pass  # the server closed it first
        writer.join(timeout=30)
        sock.close()
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    response_headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
    return status, response_headers, sent[0]


@pytest.mark.integration
def test_real_server_refuses_huge_bodies_before_reading_and_its_memory_stays_put(
    server_factory: Callable[..., LiveServer],
) -> None:
    server = server_factory()
    with server.http_client("admin") as (client, csrf):
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    signed_in = {"Cookie": cookie, "X-CSRF-Token": csrf, "Content-Type": "application/json"}
    anonymous = {"Authorization": "Bearer not-a-token", "Content-Type": "application/json"}
    # warm up the code paths once (imports, caches) before measuring
    assert _raw_post(server, "/api/intake", signed_in, 2 * MIB)[0] == 413
    assert _raw_post(server, "/api/intake", anonymous, 2 * MIB)[0] == 401
    before = _rss_kib(server.process.pid)
    started = time.monotonic()
    huge = _raw_post(server, "/api/intake", signed_in, 32 * MIB, declared=2_000_000_000)
    big = _raw_post(server, "/api/intake", signed_in, 32 * MIB)
    streamed = _raw_post(server, "/api/intake", signed_in, 32 * MIB, chunked=True)
    unread = _raw_post(server, "/api/intake", anonymous, 32 * MIB)
    elapsed = time.monotonic() - started
    after = _rss_kib(server.process.pid)
    assert [r[0] for r in (huge, big, streamed, unread)] == [413, 413, 413, 401]
    assert all(r[1].get("connection") == "close" for r in (huge, big, streamed, unread))
    assert after - before < 4 * 1024, f"RSS grew from {before} to {after} KiB"
    print(f"RSS before {before} KiB, after {after} KiB ({after - before:+d} KiB); "
          f"sent before the answer: {[r[2] // KIB for r in (big, streamed, unread)]} KiB; {elapsed:.2f} s")
