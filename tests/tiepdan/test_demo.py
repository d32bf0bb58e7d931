"""``tiepdan demo --headless``: what CI runs. A real server, nine venue bots, pre-rendered loops, and a real
session: the desk bot registers citizens through the desk API, the chair bot calls them through the queue
API, and the demo checks from every page's messages that the published order was kept."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from recorder.manifest import list_segments
from schedules import parse_chip_id_qr
from schedules.call_order import is_elderly
from tiepdan.demo import DEMO_VENUES, ROOM, Pair, QueueTicket, call_problems, demo_citizens, missing_pairs


def _demo(args: list[str], data_dir: Path, timeout: float,
          recordings: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIEPDAN_DATA_DIR": str(data_dir)}
    if recordings is not None:
        env["TIEPDAN_RECORDING_DIR"] = str(recordings)
    return subprocess.run([sys.executable, "-m", "tiepdan.cli", "demo", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


def _table(stdout: str) -> dict[str, list[str]]:
    """receiver venue → its row of cells (frames per source, '—' for itself)."""
    rows: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        match = re.match(r"^\s*\d+ (\S+)\s+((?:\s*(?:\d+|—))+)\s*$", line)
        if match:
            rows[match.group(1)] = match.group(2).split()
    return rows


@pytest.mark.system
@pytest.mark.timeout(180)
def test_headless_demo_calls_every_ticket_in_the_published_order_and_every_venue_decodes_every_other(
        tmp_path: Path) -> None:
    data, recordings = tmp_path / "data", tmp_path / "recordings"
    result = _demo(["--headless", "--duration", "20"], data, timeout=170, recordings=recordings)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    assert "đạt — mọi điểm cầu đã nhận hình của mọi điểm cầu khác" in result.stderr
    assert "KHÔNG ĐẠT" not in result.stderr
    assert "thông báo kết luận của phiên đã được ký số" in result.stderr  # and pyHanko validated it

    # the session: eight citizens (one per commune) registered at the desk, the elderly one (3) and the
    # disabled one (4) first in the published order, called in that order, every page saw every number
    issued = [int(n) for n in re.findall(r"bàn tiếp nhận phát số (\d+)", result.stderr)]
    assert issued == list(range(1, 9))
    published = re.search(r"thứ tự gọi đã công bố: ([\d, ]+)", result.stderr)
    assert published is not None and published.group(1).strip() == "3, 4, 1, 2, 5, 6, 7, 8"
    assert [int(n) for n in re.findall(r"chủ trì gọi số (\d+)", result.stderr)] == [3, 4, 1, 2, 5, 6, 7, 8]
    assert len(re.findall(r"kết thúc vụ việc số \d+", result.stderr)) == 8
    assert "chủ trì đã điểm danh 9 điểm cầu" in result.stderr
    assert "đạt — 8 số được gọi đúng thứ tự đã công bố; mọi trang (9) đã thấy từng số" in result.stderr

    # issue #12 step 9: while each case is heard the secretary bot writes its minutes, reads them back and notes
    # the citizen's verbal confirmation; the chair bot approves before the end of the 1st, 3rd … case and after
    # it for the others; every called case then landed in the complaint database with its directive and its
    # verified recording segment
    minuted = [int(n) for n in re.findall(r"thư ký ghi biên bản vụ việc số (\d+) \(phiên bản \d+; chỉ đạo giao "
                                          r"[^)]+\), đọc lại cho công dân; công dân xác nhận bằng lời tại \d\d:\d\d",
                                          result.stderr)]
    assert minuted == [3, 4, 1, 2, 5, 6, 7, 8]
    approved = re.findall(r"chủ trì phê duyệt biên bản vụ việc số (\d+) (trước|sau) khi kết thúc", result.stderr)
    assert approved == [(str(n), "trước" if i % 2 == 0 else "sau") for i, n in enumerate(minuted)]
    assert ("đạt — 8 vụ việc đã gọi đều đã vào cơ sở dữ liệu từ biên bản được phê duyệt: lượt tiếp, hướng xử lý, "
            "8 ý kiến chỉ đạo giao đơn vị có thời hạn và đoạn ghi hình đã kiểm tra toàn vẹn") in result.stderr

    rows = _table(result.stdout)
    venues = [venue for venue, _ in DEMO_VENUES]
    assert list(rows) == venues
    for number, (venue, cells) in enumerate(rows.items()):
        assert cells[number] == "—"
        counts = [int(c) for i, c in enumerate(cells) if i != number]
        assert len(counts) == len(venues) - 1 and min(counts) > 0, f"{venue}: {cells}"
    assert "Trụ sở Tiếp công dân tỉnh (tru-so-tinh)" in result.stdout  # names with their diacritics

    # the loops were rendered once into <data_dir>/demo: both layers per venue and the tone
    rendered = sorted(p.name for p in (data / "demo").iterdir())
    assert len([n for n in rendered if n.endswith(".high.ivf")]) == len(venues)
    assert len([n for n in rendered if n.endswith(".low.ivf")]) == len(venues)
    assert len([n for n in rendered if n.endswith(".ogg")]) == 1
    assert sorted(p.name for p in data.iterdir()) == ["demo"]  # the server's data lived in a temporary dir
    server_data = re.search(r"dữ liệu: (\S+)\)", result.stderr)
    assert server_data is not None and not Path(server_data.group(1)).exists()

    # issue #11 "done when": each called case has a recording segment in the case store whose manifest and
    # files verify and whose files decode (the demo checks it with the server's keyring before its temporary
    # data go); the recordings stay in TIEPDAN_RECORDING_DIR, encrypted (TIEPDAN_RECORDING_ENCRYPT_ALL)
    found = re.search(r"đạt — (\d+) vụ việc đã gọi đều có đoạn ghi hình \((\d+) tệp\)", result.stderr)
    assert found is not None and int(found.group(1)) == 8 and int(found.group(2)) >= 2, result.stderr[-4000:]
    cases = [report for _, report in list_segments(recordings / ROOM) if report.case is not None]
    assert [r.segment.split("-", 1)[0] for r in cases] == [f"c{n}" for n in range(1, 9)]
    assert len({r.case for r in cases}) == 8
    # a case of ~1.5 s that ends before its venues' next keyframe has no file of its own (the stretch
    # around it keeps the media): files are checked where there are some
    tracks = [t for r in cases for t in r.files]
    assert tracks and {"audio", "video"} <= {kind for t in tracks for kind in t.kinds}
    for track in tracks:
        raw = (recordings / ROOM / track.path).read_bytes()
        assert track.encrypted and track.path.endswith(".enc") and b"\x1a\x45\xdf\xa3" not in raw, track.path
        assert "vp8" in track.codecs or "opus" in track.codecs
        assert track.size == len(raw), track.path


@pytest.mark.system
def test_demo_refuses_a_venue_count_it_cannot_stage(tmp_path: Path) -> None:
    result = _demo(["--headless", "--venues", "9"], tmp_path, timeout=60)
    assert result.returncode == 1
    assert "--venues phải từ 1 đến 8" in result.stderr
    assert not (tmp_path / "demo").exists()  # refused before rendering anything


@pytest.mark.unit
def test_missing_pairs_names_each_receiver_and_source_without_frames() -> None:
    counts = {"a": {"b": 3, "c": 0}, "b": {"a": 1, "c": 2}, "c": {"b": 5}}
    assert missing_pairs(counts) == [Pair("a", "c"), Pair("c", "a")]
    assert missing_pairs({"a": {"b": 1}, "b": {"a": 1}}) == []


@pytest.mark.system
@pytest.mark.timeout(180)
def test_interactive_demo_prints_a_chair_link_and_account_that_open_the_chair_page(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TIEPDAN_DATA_DIR": str(tmp_path / "data"), "TIEPDAN_LOG_JSON": "true"}
    with subprocess.Popen([sys.executable, "-m", "tiepdan.cli", "demo", "--venues", "1", "--port", str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env) as proc:
        _chair_the_demo(proc)


def _chair_the_demo(proc: subprocess.Popen[str]) -> None:
    import signal
    import time

    import httpx

    try:
        assert proc.stderr is not None
        seen: list[str] = []
        deadline = time.monotonic() + 150
        while not any("mật khẩu «" in line for line in seen):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(seen)[-3000:]
            seen.append(proc.stderr.readline())
        text = "".join(seen)
        link = re.search(r"Trang của chủ trì: (\S+)", text)
        account = re.search(r"tài khoản «([^»]+)», mật khẩu «([^»]+)»", text)
        assert link is not None and account is not None, text
        base = link.group(1).split("/phien/")[0]
        with httpx.Client(base_url=base, timeout=10) as client:
            form = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert token is not None
            signed = client.post("/login", data={"username": account.group(1), "password": account.group(2),
                                                 "csrf_token": token.group(1), "next": "/"})
            assert signed.status_code == 303
            page = client.get(link.group(1)[len(base):])
            assert page.status_code == 200 and "Xã Tiên Du" in page.text  # the chair page of the demo session
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


# -- the session checks -------------------------------------------------------------------------------

MAIN = "tru-so-tinh"
PUBLISHED = [QueueTicket(3, "xa-que-vo"), QueueTicket(1, "xa-tien-du"), QueueTicket(2, "xa-que-vo")]


def _heard(order: list[QueueTicket]) -> list[dict[str, Any]]:
    """A page's messages when each ticket of ``order`` is called, gets the floor, ends, gives it back."""
    messages: list[dict[str, Any]] = [{"type": "welcome"}]
    for seq, ticket in enumerate(order, start=1):
        messages += [
            {"type": "case.called", "call": {"call_seq": seq, "ticket_no": ticket.ticket_no, "venue": ticket.venue},
             "recalled": False},
            {"type": "floor.changed", "venue": ticket.venue, "previous": MAIN, "by": "scheduler"},
            {"type": "case.ended", "call_seq": seq, "ticket_no": ticket.ticket_no, "venue": ticket.venue,
             "outcome": "closed"},
            {"type": "floor.changed", "venue": MAIN, "previous": ticket.venue, "by": "scheduler"},
        ]
    return messages


@pytest.mark.unit
def test_the_session_check_passes_when_every_page_saw_the_published_order_with_the_floor() -> None:
    issued = sorted(PUBLISHED, key=lambda t: t.ticket_no)
    pages = {"tru-so-tinh": _heard(PUBLISHED), "xa-tien-du": _heard(PUBLISHED), "xa-que-vo": _heard(PUBLISHED)}
    assert call_problems(issued, PUBLISHED, pages, main=MAIN) == []


@pytest.mark.unit
def test_the_session_check_detects_a_wrong_order_a_missed_number_and_a_floor_not_given_or_not_returned() -> None:
    issued = sorted(PUBLISHED, key=lambda t: t.ticket_no)
    in_ticket_order = _heard(issued)  # called 1, 2, 3: not the published 3, 1, 2
    missed = [m for m in _heard(PUBLISHED) if not (m["type"] == "case.called" and m["call"]["ticket_no"] == 1)]
    no_floor = [m for m in _heard(PUBLISHED) if not (m["type"] == "floor.changed" and m["venue"] == "xa-tien-du")]
    kept = _heard(PUBLISHED)
    kept.remove({"type": "floor.changed", "venue": MAIN, "previous": "xa-que-vo", "by": "scheduler"})  # after 3
    problems = call_problems(issued, PUBLISHED, {"a": in_ticket_order, "b": missed, "c": no_floor, "d": kept},
                             main=MAIN)
    assert problems == [
        "trang a thấy gọi các số 1, 2, 3 (đúng ra 3, 1, 2, theo thứ tự đã công bố)",
        "trang b thấy gọi các số 3, 2 (đúng ra 3, 1, 2, theo thứ tự đã công bố)",
        "trang c: điểm cầu xa-tien-du không nhận quyền phát biểu khi gọi số 1",
        "trang d: quyền phát biểu không trở về điểm cầu chính sau số 3",
    ]
    # an order that leaves out an issued ticket, and a case that never ends, are named too
    unfinished = _heard(PUBLISHED)[:-2]
    assert call_problems([*issued, QueueTicket(4, "xa-tien-du")], PUBLISHED, {"e": unfinished}, main=MAIN) == [
        "thứ tự công bố (3, 1, 2) không gồm đúng các số đã phát (1, 2, 3, 4)",
        "trang e: số 2 không kết thúc",
    ]


@pytest.mark.unit
def test_demo_citizens_carry_chip_card_strings_the_desk_accepts_one_elderly_and_one_disabled() -> None:
    today = date(2026, 12, 10)
    communes = list(DEMO_VENUES[1:4])
    draws = iter(range(100, 200))
    citizens = demo_citizens(communes, today, digits=lambda: next(draws))
    assert len(citizens) == 6  # a handful, however few communes
    assert [c.venue for c in citizens] == [v for v, _ in communes] * 2
    cards = [parse_chip_id_qr(c.chip_qr, today=today) for c in citizens]  # the desk's own parser
    assert [card.full_name for card in cards] == [c.full_name for c in citizens]
    assert [is_elderly(card.birth_date, today) for card in cards] == [False, False, True, False, False, False]
    assert [c.disabled for c in citizens] == [False, False, False, True, False, False]
    assert len(demo_citizens(DEMO_VENUES[1:], today)) == 8  # one per commune at least
    with pytest.raises(ValueError, match="số công dân"):
        demo_citizens(communes, today, count=9)
    with pytest.raises(ValueError, match="ít nhất một xã"):
        demo_citizens([], today)


@pytest.mark.unit
async def test_the_chair_bot_resumes_a_case_the_scheduler_paused_and_presses_again() -> None:
    """A lost link paused the case (the queue's version moved on): "end" is refused as stale; the bot reloads
    the queue, resumes the case and ends it, as the chair would. Any other refusal is raised."""
    import httpx

    from tiepdan.bots.console import ChairBot, ConsoleClient, ConsoleRefused
    from tiepdan.demo import press

    asked: list[str] = []
    state = {"version": 7, "paused": True}

    def answer(request: httpx.Request) -> httpx.Response:
        action = request.url.path.rsplit("/", 1)[-1]
        asked.append(f"{request.method} {action}")
        current = {"ticket_no": 3, "venue": "xa-que-vo", "call_seq": 1}
        if request.method == "GET":
            return httpx.Response(200, json={"version": state["version"], "paused": state["paused"],
                                             "current": current, "waiting": []})
        sent = json.loads(request.content)["expected_version"]
        if action == "skip":
            return httpx.Response(422, json={"error": "bad_request"})
        if sent != state["version"] or (state["paused"] and action == "end"):
            return httpx.Response(409, json={"error": "stale_version", "current_version": state["version"]})
        state["version"] += 1
        state["paused"] = state["paused"] and action != "resume"
        return httpx.Response(200, json={"version": state["version"], "paused": state["paused"],
                                         "current": None if action == "end" else current})

    client = ConsoleClient("http://console.test", transport=httpx.MockTransport(answer))
    chair = ChairBot(client, "phien-trinh-dien")
    chair.version = 6  # what the bot saw before the pause
    try:
        ended = await press(chair, "end")
        assert ended["current"] is None and chair.version == 9
        assert asked == ["POST end", "GET queue", "POST resume", "POST end"]
        with pytest.raises(ConsoleRefused) as refused:
            await press(chair, "skip")
        assert (refused.value.status, refused.value.code) == (422, "bad_request")
    finally:
        await client.close()


@pytest.mark.unit
async def test_demo_refuses_a_floor_time_that_is_not_positive_before_rendering(make_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tiepdan.demo import DemoOptions, run_demo

    for rotate in (0.0, -3.0):
        with pytest.raises(ValueError, match="--rotate phải lớn hơn 0"):
            await run_demo(make_settings(), DemoOptions(headless=True, rotate_s=rotate))
    assert not (tmp_path / "data" / "demo").exists()  # refused before rendering anything


# -- the secretary bot ----------------------------------------------------------------------------------

_LIST_PAGE = ('<a href="/bien-ban/phien-trinh-dien/{case}" data-testid="minutes-open">TD-1</a>'
              '<a href="/bien-ban/phien-khac/case-x">TD-2</a>')
_MINUTES_PAGE = ('<select><option value="">Chọn</option><option value="wrong">not in the template</option></select>'
                 '<template id="directive-row"><select data-key="unit"><option value="">— Chọn —</option>'
                 '<option value="so-xd">Sở Xây dựng</option><option value="so-nnmt">Sở Nông nghiệp &amp; Môi '
                 'trường</option></select></template>')


@pytest.mark.unit
async def test_the_secretary_bot_finds_the_called_cases_draft_writes_it_once_reads_it_back_and_notes_the_time(
        ) -> None:
    """Through the secretary's pages and JSON only: the draft of the called venue (not one handled before, not
    another session's or another venue's), one PUT on the version read with content the closing accepts, the
    read-back of that version, then "confirmed verbally" at the time since the call."""
    import httpx

    from complaints.workdays import default_calendar
    from minutes.closing import missing_fields
    from minutes.drafts_content import MinutesContent
    from tiepdan.bots.console import ConsoleClient, ConsoleRefused
    from tiepdan.bots.secretary_bot import SecretaryBot

    now = [100.0]
    polls = [0]
    asked: list[str] = []
    saved: list[dict[str, Any]] = []
    drafts = {"case-old": ("xa-tien-du", "closed"), "case-b": ("xa-que-vo", "open"), "case-a": ("xa-tien-du", "open")}

    def draft(case: str) -> dict[str, Any]:
        venue, state = drafts[case]
        return {"session": "phien-trinh-dien", "case": case, "version": 1, "state": state,
                "content": {"attendees": [{"venue": venue, "people": ""}], "citizen_request": "Đề nghị cấp sổ đỏ",
                            "prior_handling": "Tiếp lần đầu."}}

    def answer(request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        asked.append(f"{method} {path}")
        if method != "GET":
            assert request.headers["x-csrf-token"] == "token"
        if path == "/bien-ban":
            polls[0] += 1  # the call's draft opens on the bus: the second look finds it
            cases = ["case-old"] + (["case-b", "case-a"] if polls[0] > 1 else [])
            return httpx.Response(200, text="".join(_LIST_PAGE.format(case=c) for c in cases))
        if path == "/bien-ban/phien-trinh-dien/case-a":
            return httpx.Response(200, text=_MINUTES_PAGE)
        if path.startswith("/api/minutes/phien-trinh-dien/") and method == "GET":
            return httpx.Response(200, json=draft(path.rsplit("/", 1)[1]))
        if path == "/api/minutes/phien-trinh-dien/case-a" and method == "PUT":
            body = json.loads(request.content)
            saved.append(body)
            return httpx.Response(200, json={"version": 2, "created": True})
        if path.endswith("/case-a/readback"):
            assert json.loads(request.content) == {"version": 2}
            now[0] = 172.5  # the read-back and the citizen's "yes" take a minute
            return httpx.Response(200, json={"readback_sha256": "a" * 64, "state": "readback"})
        if path.endswith("/case-a/verbal"):
            assert json.loads(request.content) == {"readback_sha256": "a" * 64, "media_time": "01:12"}
            return httpx.Response(200, json={"confirmed_sha256": "a" * 64, "state": "confirmed"})
        return httpx.Response(409, json={"error": "conflict"})

    client = ConsoleClient("http://console.test", transport=httpx.MockTransport(answer))
    client.csrf = "token"
    secretary = SecretaryBot(client, "phien-trinh-dien", main="tru-so-tinh", clock=lambda: now[0])
    try:
        taken = await secretary.take_minutes("xa-tien-du", "Xã Tiên Du", called_at=100.0)
        assert (taken.case_id, taken.version, taken.confirmed_sha256, taken.media_time) == ("case-a", 2, "a" * 64,
                                                                                             "01:12")
        assert (taken.unit, taken.unit_name) == ("so-xd", "Sở Xây dựng")  # from the directive row, unescaped
        assert secretary.units == [("so-xd", "Sở Xây dựng"), ("so-nnmt", "Sở Nông nghiệp & Môi trường")]
        assert asked.count("PUT /api/minutes/phien-trinh-dien/case-a") == 1
        # a closed draft and another venue's are each looked at once and passed over
        assert asked.count("GET /api/minutes/phien-trinh-dien/case-old") == 1
        assert asked.count("GET /api/minutes/phien-trinh-dien/case-b") == 1
        assert polls[0] == 2
        [body] = saved
        assert body["base_version"] == 1 and body["client"]
        content = MinutesContent.model_validate(body["content"])  # the form's own model: no unknown field
        assert content.citizen_request == "Đề nghị cấp sổ đỏ" and content.prior_handling == "Tiếp lần đầu."
        assert {a.venue for a in content.attendees} == {"tru-so-tinh", "xa-tien-du"}
        assert content.local_report and content.discussion and "Sở Xây dựng" in content.conclusion
        [directive] = content.directives
        assert (directive.unit, directive.working_days) == ("so-xd", 15) and directive.content
        # what the closing demands before it writes the case: nothing is missing
        day = date(2026, 12, 10)
        assert missing_fields(content, issued_on=day, today=day, calendar=default_calendar(),
                              known_units=frozenset({"so-xd"})) == []

        # the next call: the same venue again finds nothing new (case-a is handled); the bot gives up in time
        now[0] = 0.0

        def later() -> float:
            now[0] += 10.0
            return now[0]

        secretary.clock = later
        with pytest.raises(TimeoutError):
            await secretary.take_minutes("xa-tien-du", "Xã Tiên Du", called_at=0.0, timeout=15.0)
        # a refusal is raised with its status and code, never swallowed
        drafts["case-c"] = ("xa-gia-binh", "open")
        secretary.clock = lambda: now[0]
        with pytest.raises(ConsoleRefused) as refused:
            await secretary.client.put_json("/api/minutes/phien-trinh-dien/case-c", {"base_version": 1})
        assert (refused.value.status, refused.value.code) == (409, "conflict")
    finally:
        await client.close()


# -- the cases check ------------------------------------------------------------------------------------

@pytest.mark.integration
async def test_the_cases_check_passes_a_case_written_from_the_bots_minutes_and_names_each_that_did_not_land(
        database_url: str) -> None:
    """The secretary bot's minutes, confirmed, approved and closed by the real service, land completely; a case
    the chair did not approve, one with no minutes, and one whose segment the recording check did not verify
    are each named. A database without an active unit gets the sample units once."""
    from datetime import timedelta

    from sqlalchemy import update

    from complaints.seed import UNITS
    from complaints.tables import recording_segments, units
    from evidence import Keyring
    from minutes.approval import approve, confirm_verbally, request_readback
    from minutes.closing_consumer import closing_handler
    from minutes.drafts import load_draft, open_draft
    from signaling.events import CaseClosed
    from tests.minutes._approvals import CAL, CHAIR, SECRETARY, save
    from tests.minutes._drafts import NOW, RECEPTION, SESSION, VENUE, create_tables, register_case
    from tiepdan.bots.secretary_bot import minutes_content
    from tiepdan.db import make_engine
    from tiepdan.demo_minutes import check_cases, ensure_units

    engine = make_engine(database_url)
    keyring = Keyring.generate(dev=True)
    later = NOW + timedelta(minutes=30)
    try:
        await create_tables(engine)
        ids: list[str] = []
        for seq in (1, 2, 3):
            async with engine.begin() as conn:
                case_id = await register_case(conn, keyring)
                ids.append(case_id)
                if seq == 3:
                    continue  # called, but no draft opened
                await open_draft(conn, session_id=SESSION, case_id=case_id, call_seq=seq, venue=VENUE,
                                 reception=RECEPTION, calendar=CAL,
                                 now=NOW)
                await conn.execute(recording_segments.insert().values(
                    segment=f"c{seq}-{case_id}", session=SESSION, case_id=case_id, call_seq=seq, confidential=False,
                    files_json="[]", speakers_json="[]", gaps_json="[]", opened_at=NOW))
                draft = await load_draft(conn, session_id=SESSION, case_id=case_id, author=SECRETARY)
            content = minutes_content(draft.content.model_dump(mode="json"), venue=VENUE, venue_name="Xã Tiên Du",
                                      main="tru-so-tinh", unit="ubnd-tien-du", unit_name="UBND xã Tiên Du")
            version = await save(engine, keyring, case_id, 1, content)
            async with engine.begin() as conn:
                read = await request_readback(conn, session_id=SESSION, case_id=case_id, version=version,
                                              author=SECRETARY, now=NOW + timedelta(minutes=10))
                assert read.readback_sha256 is not None
                await confirm_verbally(conn, session_id=SESSION, case_id=case_id, readback_sha256=read.readback_sha256,
                                       media_time="00:02", author=SECRETARY, now=NOW + timedelta(minutes=11))
                if seq == 1:  # the chair approves the first only
                    approved = await approve(conn, session_id=SESSION, case_id=case_id,
                                             confirmed_sha256=read.readback_sha256, author=CHAIR, name="Chủ trì",
                                             keyring=keyring, calendar=CAL, now=later)
                    assert approved.problems == () and approved.state == "approved"
            await closing_handler(engine, keyring, CAL, clock=lambda: later)(CaseClosed(
                session=SESSION, case=case_id, ticket_no=seq, venue=VENUE, call_seq=seq, by="user:chutri"))
        called = [(10 + n, case_id) for n, case_id in enumerate(ids, start=1)]
        first, second, third = ids

        check = await check_cases(engine, SESSION, verified={first: [f"c1-{first}"]}, called=called, timeout_s=0)
        assert check.called == 3
        assert [(c.ticket_no, c.case_id, c.directives, c.segments) for c in check.landed] == [
            (11, first, 1, (f"c1-{first}",))]
        assert len(check.problems) == 2
        assert check.problems[0].startswith("vụ việc số 12 (TD-") and "chủ trì chưa phê duyệt" in check.problems[0]
        assert check.problems[1].startswith("vụ việc số 13 (TD-") and "không có biên bản" in check.problems[1]

        unverified = await check_cases(engine, SESSION, verified={}, called=called[:1], timeout_s=0)
        assert unverified.landed == () and unverified.problems == (
            f"vụ việc số 11 ({check.landed[0].tracking_code}): đoạn ghi hình c1-{first} chưa được kiểm tra toàn vẹn",)
        # a server that does not record asks for no segment
        assert (await check_cases(engine, SESSION, verified=None, called=called[:1], timeout_s=0)).problems == ()

        assert await ensure_units(engine) == 0  # the units there stay as they are
        async with engine.begin() as conn:
            await conn.execute(update(units).values(active=False))
        assert await ensure_units(engine) == len(UNITS)
        assert await ensure_units(engine) == 0
    finally:
        await engine.dispose()
