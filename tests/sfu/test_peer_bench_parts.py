"""The pure parts of ``bench/peer.py``'s bots: the frame tag that carries a frame's identity end to end, and
the percentile helper the delays are reported with."""

from __future__ import annotations

import pytest

from bench._peerbots import (
    MAGIC,
    TAG,
    decode_tag,
    encode_tag,
    frame_key,
    key_of_tail,
    layout_plan,
    mesh_plan,
    percentile,
    quantiles,
    source_of,
    split_key,
)

pytestmark = pytest.mark.unit


def test_tag_round_trips_at_the_end_of_a_payload() -> None:
    frame = bytes(range(200)) * 30  # a VP8 frame, say
    tagged = frame + encode_tag(15, 2, 123_456_789)
    assert len(tagged) == len(frame) + TAG.size
    assert decode_tag(tagged) == (15, 2, 123_456_789)
    assert tagged.startswith(frame)  # appended, the codec payload untouched


def test_a_payload_without_a_tag_is_not_read_as_one() -> None:
    assert decode_tag(b"") is None
    assert decode_tag(b"x" * 40) is None
    assert decode_tag(encode_tag(1, 0, 5)[1:]) is None  # too short
    broken = bytearray(b"x" * 20 + encode_tag(1, 0, 5))
    broken[20] ^= 0xFF  # the magic damaged
    assert decode_tag(bytes(broken)) is None
    assert key_of_tail(b"payload" + MAGIC) is None


def test_serials_wrap_and_keys_split_back() -> None:
    assert decode_tag(encode_tag(3, 1, 2**32 + 7)) == (3, 1, 7)
    key = frame_key(65_535, 2, 2**32 - 1)
    assert split_key(key) == (65_535, 2, 2**32 - 1)
    assert key_of_tail(b"abc" + encode_tag(9, 1, 42)) == frame_key(9, 1, 42)
    assert len({frame_key(v, t, s) for v in range(3) for t in range(3) for s in range(3)}) == 27


def test_percentile_is_nearest_rank() -> None:
    values = [float(x) for x in range(1, 1001)]  # 1 .. 1000
    assert percentile(values, 0.5) == 500.0
    assert percentile(values, 0.99) == 990.0
    assert percentile(values, 0.999) == 999.0
    assert percentile(values, 1.0) == 1000.0
    assert percentile(list(reversed(values)), 0.99) == 990.0  # order does not matter
    assert percentile([7.0], 0.999) == 7.0
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN
    assert quantiles([3.0, 1.0, 2.0], (0.0, 0.5, 1.0)) == [1.0, 2.0, 3.0]


def test_plans_subscribe_every_other_venue_or_the_layout() -> None:
    pubs, subs = mesh_plan(4)
    assert pubs["publishers"] == ["venue-0", "venue-1", "venue-2", "venue-3"]
    for sub in subs["subscribers"]:
        sources = {source_of(p)[0] for p in sub["video"]}
        assert sources == {0, 1, 2, 3} - {source_of(sub["id"] + "/high")[0]}
        assert len(sub["audio"]) == 3
    _, layout = layout_plan(9)
    for sub in layout["subscribers"]:
        kinds = [p.split("/")[1] for p in sub["video"]]
        assert kinds == ["high"] * 2 + ["low"] * 6
        assert len(sub["audio"]) == 8
        assert sub["id"] + "/high" not in sub["video"]


def test_perf_reports_are_read_as_shares_by_library() -> None:
    from bench.peer import parse_perf_report

    report = """# To display the perf.data header info, please use --header/--header-only options.
#
# Samples: 14K of event 'cpu-clock:pppH'
# Overhead  Shared Object
# ........  ..............................
#
    52.26%  libpython3.11.so.1.0
    29.36%  [kernel.kallsyms]
     0.02%  utils.abi3.so


#
# (Tip: For hierarchical output, try: perf report --hierarchy)
#
"""
    shares = parse_perf_report(report)
    assert [name for name, _ in shares] == ["libpython3.11.so.1.0", "[kernel.kallsyms]", "utils.abi3.so"]
    assert [share for _, share in shares] == pytest.approx([0.5226, 0.2936, 0.0002])
    assert parse_perf_report("") == []
