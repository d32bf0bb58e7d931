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
