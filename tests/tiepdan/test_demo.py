"""``tiepdan demo --headless``: what CI runs. A real server, nine venue bots, pre-rendered loops."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tiepdan.demo import DEMO_VENUES, Pair, missing_pairs

pytestmark = pytest.mark.system


def _demo(args: list[str], data_dir: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIEPDAN_DATA_DIR": str(data_dir)}
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


@pytest.mark.timeout(180)
def test_headless_demo_every_venue_decodes_every_other_and_leaves_only_the_rendered_loops(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = _demo(["--headless", "--duration", "20"], data, timeout=170)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    assert "đạt — mọi điểm cầu đã nhận hình của mọi điểm cầu khác" in result.stderr

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


def test_demo_refuses_a_venue_count_it_cannot_stage(tmp_path: Path) -> None:
    result = _demo(["--headless", "--venues", "9"], tmp_path, timeout=60)
    assert result.returncode == 1
    assert "--venues phải từ 1 đến 8" in result.stderr
    assert not (tmp_path / "demo").exists()  # refused before rendering anything


def test_missing_pairs_names_each_receiver_and_source_without_frames() -> None:
    counts = {"a": {"b": 3, "c": 0}, "b": {"a": 1, "c": 2}, "c": {"b": 5}}
    assert missing_pairs(counts) == [Pair("a", "c"), Pair("c", "a")]
    assert missing_pairs({"a": {"b": 1}, "b": {"a": 1}}) == []


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
