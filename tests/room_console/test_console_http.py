"""The console over HTTP (ASGI, real lifespan, SQLite): login, sessions, CSRF, headers, roles,
account administration, invitations, connect tickets for /ws and login rate limiting."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from room_console.accounts import User, add_user
from room_console.context import ConsoleContext
from room_console.tables import users as users_table
from tiepdan.app import create_app
from tiepdan.wiring import announce_first_admin

from ._helpers import PASSWORD, form_token, outbox_texts, page_token, sign_in

pytestmark = pytest.mark.integration


@pytest.fixture
async def app(make_settings) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    application = create_app(make_settings())
    async with application.router.lifespan_context(application):
        yield application


def console(app: FastAPI) -> ConsoleContext:
    ctx: ConsoleContext = app.state.console
    return ctx


def client_for(app: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 50000)),
                             base_url="http://testserver")


def drive_clock(app: FastAPI) -> list[float]:
    """Freeze the console's clock; the test moves it by changing the returned cell."""
    ctx = console(app)
    now = [ctx.clock()]
    ctx.clock = lambda: now[0]
    return now


async def make_user(app: FastAPI, username: str, *roles: str, venue: str | None = None) -> User:
    ctx = console(app)
    return await add_user(ctx.engine, username=username, display_name=f"Cán bộ {username}", roles=roles or ["chair"],
                          password=PASSWORD, venue=venue, options=ctx.options, now=ctx.clock())


@pytest.fixture
async def admin(app: FastAPI) -> User:
    return await make_user(app, "quantri", "admin")


@pytest.fixture
async def chair(app: FastAPI) -> User:
    return await make_user(app, "chutri", "chair", venue="main")


# -- first start ------------------------------------------------------------------------------------


async def test_first_dev_start_prints_a_one_time_setup_link_that_creates_the_administrator(
    make_settings, capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    settings = make_settings()
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        printed = capsys.readouterr().err
        link = re.search(r"http://\S+/invite/(\S+)", printed)
        assert link is not None and "tài khoản quản trị" in printed
        async with client_for(application) as client:
            form = await client.get(f"/invite/{link.group(1)}")
            assert form.status_code == 200 and "Kích hoạt tài khoản" in form.text
            done = await client.post(f"/invite/{link.group(1)}", data={
                "password": PASSWORD, "password_again": PASSWORD, "csrf_token": form_token(form.text)})
            assert (done.status_code, done.headers["location"]) == (303, "/")
            assert (await client.get("/admin/users")).status_code == 200
            again = await client.get(f"/invite/{link.group(1)}")
            assert again.status_code == 410 and "đã được sử dụng" in again.text
    restarted = create_app(settings)
    async with restarted.router.lifespan_context(restarted):
        assert "/invite/" not in capsys.readouterr().err  # an account exists: no new link


async def test_production_start_without_accounts_prints_the_command_and_creates_nothing(
    app: FastAPI, make_settings, capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    capsys.readouterr()
    assert await announce_first_admin(make_settings(mode="production"), console(app)) is None
    printed = capsys.readouterr().err
    assert "tiepdan user add" in printed and "/invite/" not in printed


# -- login, session, logout -------------------------------------------------------------------------


async def test_login_sets_a_strict_httponly_cookie_and_home_shows_name_and_vietnamese_role(
    app: FastAPI, chair: User,
) -> None:
    async with client_for(app) as client:
        response = await sign_in(client, "ChuTri", next_path="/admin/users")
        assert response.status_code == 303 and response.headers["location"] == "/admin/users"
        cookie = next(v for k, v in response.headers.multi_items()
                      if k == "set-cookie" and v.startswith("tiepdan_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        home = await client.get("/")
    assert home.status_code == 200
    assert "Cán bộ chutri" in home.text and "Chủ trì" in home.text and "Tổng quan" in home.text
    assert "Gọi số tiếp theo" in home.text  # the chair's grants, in words
    assert "Quản lý tài khoản" not in home.text  # no menu entry without the grant


async def test_wrong_password_shows_one_vietnamese_error_for_unknown_and_known_users(
    app: FastAPI, chair: User,
) -> None:
    async with client_for(app) as client:
        wrong = await sign_in(client, "chutri", "sai-mat-khau-roi")
        unknown = await sign_in(client, "khong-co-ai", "sai-mat-khau-roi")
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Tên đăng nhập hoặc mật khẩu không đúng." in response.text
        assert "tiepdan_session" not in response.headers.get("set-cookie", "")


async def test_signed_out_visitor_is_sent_to_login_and_the_api_answers_401(app: FastAPI) -> None:
    async with client_for(app) as client:
        page = await client.get("/admin/users")
        api = await client.get("/api/me")
    assert (page.status_code, page.headers["location"]) == (303, "/login?next=/admin/users")
    assert api.status_code == 401 and api.json()["error"] == "not_signed_in"
    assert "đăng nhập" in api.json()["message"]


async def test_logout_ends_the_session_on_the_server(app: FastAPI, chair: User) -> None:
    async with client_for(app) as client:
        await sign_in(client, "chutri")
        stolen = client.cookies["tiepdan_session"]
        home = await client.get("/")
        out = await client.post("/logout", data={"csrf_token": page_token(home.text)})
        assert (out.status_code, out.headers["location"]) == (303, "/login?signed_out=1")
    async with client_for(app) as replay:
        replay.cookies.set("tiepdan_session", stolen)
        assert (await replay.get("/")).status_code == 303


async def test_idle_session_expires(app: FastAPI, chair: User) -> None:
    ctx = console(app)
    async with client_for(app) as client:
        await sign_in(client, "chutri")
        start = ctx.clock()
        ctx.clock = lambda: start + ctx.options.session_idle_s + 1
        assert (await client.get("/")).status_code == 303


# -- CSRF and headers -------------------------------------------------------------------------------


async def test_unsafe_request_without_csrf_token_is_refused_with_a_vietnamese_page(
    app: FastAPI, chair: User,
) -> None:
    async with client_for(app) as client:
        await sign_in(client, "chutri")
        logout = await client.post("/logout", data={})
        connect_ticket = await client.post("/api/live/connect-ticket", json={"room": "s1"})
        foreign = await client.post("/logout", data={"csrf_token": page_token((await client.get("/")).text)},
                                    headers={"Origin": "https://evil.example"})
        still_in = await client.get("/")
    assert logout.status_code == 403 and "tải lại trang" in logout.text
    assert connect_ticket.status_code == 403 and connect_ticket.json()["error"] == "error.csrf"
    assert foreign.status_code == 403
    assert still_in.status_code == 200


async def test_login_form_itself_needs_its_double_submit_token(app: FastAPI, chair: User) -> None:
    async with client_for(app) as client:
        response = await client.post("/login", data={"username": "chutri", "password": PASSWORD})
    assert response.status_code == 403


async def test_a_csrf_cookie_and_header_the_client_chose_do_not_stand_in_for_the_sessions_token(
    app: FastAPI, chair: User,
) -> None:
    chosen = "a" * 43
    async with client_for(app) as client:
        await sign_in(client, "chutri")
        own = page_token((await client.get("/")).text)
        client.cookies.set("tiepdan_csrf", chosen)
        forged = await client.post("/api/live/connect-ticket", json={"room": "s1"},
                                   headers={"X-CSRF-Token": chosen})
        forged_form = await client.post("/logout", data={"csrf_token": chosen})
        still_in = await client.get("/")
        genuine = await client.post("/api/live/connect-ticket", json={"room": "s1"}, headers={"X-CSRF-Token": own})
    assert forged.status_code == 403 and forged.json()["error"] == "error.csrf"
    assert forged_form.status_code == 403 and still_in.status_code == 200
    assert genuine.status_code == 200


async def test_login_form_refuses_a_double_submit_pair_the_client_made_up(app: FastAPI, chair: User) -> None:
    chosen = "b" * 43
    async with client_for(app) as client:
        client.cookies.set("tiepdan_csrf", chosen)
        made_up = await client.post("/login", data={"username": "chutri", "password": PASSWORD, "csrf_token": chosen})
        signed = form_token((await client.get("/login")).text)
    assert made_up.status_code == 403 and "tiepdan_session" not in client.cookies
    assert signed != chosen and signed.count(".") == 2  # the server replaced it with a token it signed


async def test_pre_session_token_expires(app: FastAPI, chair: User) -> None:
    now = drive_clock(app)
    async with client_for(app) as client:
        token = form_token((await client.get("/login")).text)
        now[0] += console(app).csrf.form_ttl_s + 1
        late = await client.post("/login", data={"username": "chutri", "password": PASSWORD, "csrf_token": token})
        fresh = form_token((await client.get("/login")).text)
    assert late.status_code == 403 and fresh != token


async def test_pages_and_errors_carry_security_headers(app: FastAPI) -> None:
    async with client_for(app) as client:
        for response in (await client.get("/login"), await client.get("/khong-co-trang-nay"),
                         await client.get("/static/console.css")):
            assert "script-src 'self'" in response.headers["content-security-policy"]
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "same-origin"
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "microphone=(self)" in response.headers["permissions-policy"]


async def test_unknown_page_is_a_vietnamese_404_and_unknown_api_stays_json(app: FastAPI) -> None:
    async with client_for(app) as client:
        page = await client.get("/khong-co-trang-nay")
        api = await client.get("/api/khong-co")
    assert page.status_code == 404 and "Không tìm thấy trang" in page.text and '<html lang="vi">' in page.text
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}


# -- roles and administration -----------------------------------------------------------------------


async def test_admin_page_is_403_for_a_signed_in_non_admin(app: FastAPI, chair: User) -> None:
    async with client_for(app) as client:
        await sign_in(client, "chutri")
        response = await client.get("/admin/users")
    assert response.status_code == 403 and "Bạn không có quyền truy cập trang này." in response.text


async def test_admin_adds_a_user_and_bad_input_changes_nothing(app: FastAPI, admin: User) -> None:
    async with client_for(app) as client:
        await sign_in(client, "quantri")
        token = page_token((await client.get("/admin/users")).text)
        added = await client.post("/admin/users", data={
            "username": "thuky", "display_name": "Lê Thị Thư", "roles": ["secretary"], "password": PASSWORD,
            "csrf_token": token})
        sql = await client.post("/admin/users", data={
            "username": "x'; DROP TABLE console_users; --", "display_name": "X", "roles": ["admin"],
            "password": PASSWORD, "csrf_token": token})
        again = await client.post("/admin/users", data={
            "username": "thuky", "display_name": "Trùng", "roles": ["chair"], "password": PASSWORD,
            "csrf_token": token})
        no_role = await client.post("/admin/users", data={
            "username": "ai-do", "display_name": "Ai Đó", "password": PASSWORD, "csrf_token": token})
    assert added.status_code == 200 and "Đã thêm tài khoản thuky." in added.text
    assert sql.status_code == 422 and "Tên đăng nhập chỉ gồm" in sql.text
    assert again.status_code == 409 and "đã được sử dụng" in again.text
    assert no_role.status_code == 422
    async with console(app).engine.connect() as conn:
        names = (await conn.execute(select(users_table.c.username).order_by(users_table.c.username))).scalars()
        assert list(names) == ["quantri", "thuky"]


async def test_disabling_a_user_ends_its_session_at_the_next_request_and_tells_the_bus(
    app: FastAPI, admin: User, chair: User,
) -> None:
    async with client_for(app) as chair_client, client_for(app) as admin_client:
        await sign_in(chair_client, "chutri")
        assert (await chair_client.get("/")).status_code == 200
        await sign_in(admin_client, "quantri")
        token = page_token((await admin_client.get("/admin/users")).text)
        done = await admin_client.post(f"/admin/users/{chair.id}/disable", data={"csrf_token": token})
        assert done.status_code == 200 and "Đã khóa tài khoản chutri" in done.text
        assert (await chair_client.get("/")).status_code == 303
        assert (await chair_client.get("/api/me")).status_code == 401
        assert (await sign_in(chair_client, "chutri")).status_code == 401
        self_disable = await admin_client.post(f"/admin/users/{admin.id}/disable", data={"csrf_token": token})
        assert self_disable.status_code == 409
    rows = [r for r in await outbox_texts(console(app).engine) if "account.user_disabled" in r]
    assert len(rows) == 1 and chair.id in rows[0]


# -- invitations ------------------------------------------------------------------------------------


async def _invite(client: httpx.AsyncClient, username: str = "diemcau-tiendu") -> str:
    await sign_in(client, "quantri")
    token = page_token((await client.get("/admin/users")).text)
    response = await client.post("/admin/invitations", data={
        "username": username, "display_name": "Phạm Văn Điểm", "venue": "tien-du", "csrf_token": token})
    assert response.status_code == 200, response.text
    found = re.search(r'value="http://testserver/invite/([^"]+)" data-testid="invite-link"', response.text)
    assert found is not None and "chỉ hiển thị lần này" in response.text
    return found.group(1)


async def test_invitation_link_works_once_and_makes_a_venue_operator(app: FastAPI, admin: User) -> None:
    async with client_for(app) as admin_client:
        token = await _invite(admin_client)
    async with client_for(app) as operator:
        form = await operator.get(f"/invite/{token}")
        assert form.status_code == 200 and "Cán bộ điều hành điểm cầu" in form.text
        mismatch = await operator.post(f"/invite/{token}", data={
            "password": PASSWORD, "password_again": PASSWORD + "x", "csrf_token": form_token(form.text)})
        assert mismatch.status_code == 422 and "không khớp" in mismatch.text
        weak = await operator.post(f"/invite/{token}", data={
            "password": "ngan", "password_again": "ngan", "csrf_token": form_token(form.text)})
        assert weak.status_code == 422
        done = await operator.post(f"/invite/{token}", data={
            "password": PASSWORD, "password_again": PASSWORD, "csrf_token": form_token(form.text)})
        assert done.status_code == 303
        me = (await operator.get("/api/me")).json()
        assert (me["username"], me["roles"], me["venue"]) == ("diemcau-tiendu", ["venue"], "tien-du")
    async with client_for(app) as reuse:
        form = await reuse.get(f"/invite/{token}")
        csrf = form_token((await reuse.get("/login")).text)
        again = await reuse.post(f"/invite/{token}", data={
            "password": PASSWORD, "password_again": PASSWORD, "csrf_token": csrf})
    assert form.status_code == 410 and again.status_code == 410


async def test_invitation_form_opened_while_signed_in_carries_the_sessions_token(app: FastAPI, admin: User) -> None:
    async with client_for(app) as client:
        token = await _invite(client)  # the administrator opens the link in the same browser
        session = client.cookies["tiepdan_session"]
        csrf = form_token((await client.get(f"/invite/{token}")).text)
        done = await client.post(f"/invite/{token}", data={
            "password": PASSWORD, "password_again": PASSWORD, "csrf_token": csrf})
    assert csrf == console(app).csrf.session_token(session)
    assert done.status_code == 303


async def test_expired_or_forged_invitation_link_is_refused(app: FastAPI, admin: User) -> None:
    ctx = console(app)
    async with client_for(app) as admin_client:
        token = await _invite(admin_client)
    start = ctx.clock()
    ctx.clock = lambda: start + ctx.options.invitation_ttl_s + 1
    async with client_for(app) as client:
        expired = await client.get(f"/invite/{token}")
        forged = await client.get("/invite/' OR 1=1 --")
    assert expired.status_code == 410 and forged.status_code == 410
    assert "hết hạn" in expired.text


# -- connect tickets for /ws ------------------------------------------------------------------------


async def test_connect_ticket_is_issued_to_a_signed_in_page_and_redeems_once(app: FastAPI, chair: User) -> None:
    async with client_for(app) as client:
        assert (await client.post("/api/live/connect-ticket", json={"room": "s1"})).status_code in (401, 403)
        await sign_in(client, "chutri")
        token = page_token((await client.get("/")).text)
        response = await client.post("/api/live/connect-ticket", json={"room": "phien-2026-12"},
                                     headers={"X-CSRF-Token": token})
        bad = await client.post("/api/live/connect-ticket", json={"room": "../../etc"},
                                headers={"X-CSRF-Token": token})
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 60 and body["path"] == f"/ws?connect={body['connect_ticket']}"
    assert bad.status_code == 422 and "mã phòng" in bad.json()["message"]
    store = app.state.connect_tickets
    jwt = await store.redeem(body["connect_ticket"])
    assert jwt is not None and await store.redeem(body["connect_ticket"]) is None
    claims = app.state.services.verifier.verify(jwt)
    assert (claims.sub, claims.room, claims.venue, claims.name) == (chair.id, "phien-2026-12", "main", "Cán bộ chutri")
    assert [r.value for r in claims.roles] == ["chair"]


async def test_connect_ticket_without_a_session_is_401(app: FastAPI) -> None:
    async with client_for(app) as client:
        page = await client.get("/login")
        response = await client.post("/api/live/connect-ticket", json={},
                                     headers={"X-CSRF-Token": form_token(page.text)})
    assert response.status_code == 401


# -- rate limiting ----------------------------------------------------------------------------------


async def test_after_three_wrong_passwords_each_attempt_from_that_address_waits_longer_and_is_told_how_long(
    app: FastAPI, chair: User,
) -> None:
    now = drive_clock(app)
    async with client_for(app) as client:
        first = [(await sign_in(client, "chutri", "doan-mat-khau-sai")).status_code for _ in range(3)]
        waits = await sign_in(client, "chutri")  # the right password waits too: no oracle for guesses
        now[0] += 2
        fourth = await sign_in(client, "chutri", "doan-mat-khau-sai")
        longer = await sign_in(client, "chutri", "doan-mat-khau-sai")
        now[0] += 3
        still = await sign_in(client, "chutri")
        now[0] += 1
        done = await sign_in(client, "chutri")
    assert first == [401, 401, 401]
    assert (waits.status_code, waits.headers["retry-after"]) == (429, "2")
    assert "Đăng nhập sai quá nhiều lần. Vui lòng chờ 2 giây rồi thử lại." in waits.text
    assert fourth.status_code == 401
    assert (longer.status_code, longer.headers["retry-after"]) == (429, "4")
    assert (still.status_code, still.headers["retry-after"]) == (429, "1")  # waiting does not reset it
    assert done.status_code == 303 and "tiepdan_session" in client.cookies


async def test_guessing_from_another_address_never_locks_the_rightful_user_out(app: FastAPI, chair: User) -> None:
    drive_clock(app)
    async with client_for(app, "203.0.113.7") as attacker:
        statuses = [(await sign_in(attacker, "chutri", f"doan-{i}-mat-khau")).status_code for i in range(10)]
    async with client_for(app, "10.20.30.40") as office:
        rightful = await sign_in(office, "chutri")
    assert statuses == [401, 401, 401] + [429] * 7
    assert rightful.status_code == 303


async def test_a_long_wait_is_said_in_minutes(app: FastAPI, chair: User) -> None:
    ctx = console(app)
    ctx.options = replace(ctx.options, login_free_failures=0, login_backoff_cap_s=600)
    now = drive_clock(app)
    async with client_for(app) as client:
        for failures in range(1, 10):  # after n failures the wait is 2^(n+1) s: 4 … 512, each waited out
            assert (await sign_in(client, "chutri", "doan-mat-khau-sai")).status_code == 401
            if failures < 9:
                now[0] += 2 ** (failures + 1)
        capped = await sign_in(client, "chutri")  # 2^10 s, capped
    assert (capped.status_code, capped.headers["retry-after"]) == (429, "600")
    assert "Vui lòng chờ 10 phút rồi thử lại." in capped.text


async def test_a_success_does_not_reset_the_address_counter_for_other_names(app: FastAPI, chair: User) -> None:
    ctx = console(app)
    ctx.options = replace(ctx.options, login_ip_max_failures=3)
    statuses = []
    for name, password in (("ghost-1", "doan-mat-khau-sai"), ("ghost-2", "doan-mat-khau-sai"), ("chutri", PASSWORD),
                           ("ghost-3", "doan-mat-khau-sai"), ("ghost-4", "doan-mat-khau-sai")):
        async with client_for(app) as client:  # one address (the ASGI client's), fresh cookies each time
            statuses.append((await sign_in(client, name, password)).status_code)
    assert statuses == [401, 401, 303, 401, 429]


async def test_sql_shaped_usernames_are_plain_failed_logins(app: FastAPI, chair: User) -> None:
    async with client_for(app) as client:
        for name in ("' OR '1'='1", "chutri'--", "chutri\" OR 1=1; DROP TABLE console_users;--"):
            assert (await sign_in(client, name, "' OR '1'='1")).status_code == 401
    async with console(app).engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(users_table))).scalar_one() == 1


async def test_connect_tickets_live_in_redis_when_redis_is_configured(
    make_settings, redis_base_url: str, redis_prefix: str,  # type: ignore[no-untyped-def]
) -> None:
    from signaling.connect_tickets import RedisConnectTicketStore

    application = create_app(make_settings(redis_url=redis_base_url, redis_prefix=redis_prefix))
    async with application.router.lifespan_context(application):
        await make_user(application, "chutri", "chair")
        async with client_for(application) as client:
            await sign_in(client, "chutri")
            token = page_token((await client.get("/")).text)
            connect_ticket = (await client.post("/api/live/connect-ticket", json={"room": "s1"},
                                                headers={"X-CSRF-Token": token})).json()["connect_ticket"]
        store = application.state.connect_tickets
        assert isinstance(store, RedisConnectTicketStore)
        assert await store.redeem(connect_ticket) is not None
        assert await store.redeem(connect_ticket) is None
