"""``sfu.hooks.throttle_remb``: a publisher hears its uplink estimate (REMB) as libwebrtc's receiver says it.

aiortc's estimator asks for a REMB on every packet while it sees the link over-used; the throttle lets one
through per interval while the estimate holds or rises, and a drop of 3 % or more at once. The estimator
is aiortc's own, fed the packets of an uplink whose queue builds up and drains.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport, RTCRtpReceiver
from aiortc.rate import RemoteBitrateEstimator

from sfu import Options, hooks
from sfu.hooks import REMB_DROP_NOW, REMB_INTERVAL_MS, RembThrottle

pytestmark = pytest.mark.unit

_CERT = RTCCertificate.generateCertificate()


def receiver(kind: str) -> RTCRtpReceiver:
    return RTCRtpReceiver(kind, RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [_CERT]))


def congested_uplink(packets: int = 3000) -> Iterator[dict[str, int]]:
    """A packet every 5 ms; after one second each arrives 0.3 ms later than the one before (a queue
    building up for four seconds), then the queue drains and the link is clear again."""
    for i in range(packets):
        sent_s = i * 0.005
        if i < 200:
            queued = 0.0
        elif i < 1000:
            queued = (i - 200) * 0.0003
        else:
            queued = max(0.0, 0.24 - (i - 1000) * 0.0005)
        yield {"arrival_time_ms": int(1000 * (sent_s + 0.02 + queued)),
               "abs_send_time": int(sent_s * (1 << 18)) & 0xFFFFFF, "payload_size": 1200, "ssrc": 1234}


def test_an_overused_uplink_gets_one_remb_per_interval_not_one_per_packet() -> None:
    bare = RemoteBitrateEstimator()
    video = receiver("video")
    throttle = hooks.throttle_remb(video)
    assert throttle is not None and throttle.interval_ms == REMB_INTERVAL_MS
    asked: list[tuple[int, int]] = []
    sent: list[tuple[int, int]] = []
    for packet in congested_uplink():
        remb = bare.add(**packet)
        if remb is not None:
            asked.append((packet["arrival_time_ms"], remb[0]))
        through = throttle.add(**packet)
        if through is not None:
            assert through[1] == [1234]
            sent.append((packet["arrival_time_ms"], through[0]))
    # aiortc alone: a REMB on most packets while the queue builds (several hundred in 15 s of media)
    assert len(asked) > 300
    # throttled: the same estimates (the estimator saw every packet), a few per second at most
    assert set(sent) <= set(asked)
    assert throttle.sent == len(sent) and throttle.sent + throttle.held == len(asked)
    duration_ms = asked[-1][0] - asked[0][0]
    assert len(sent) <= duration_ms // REMB_INTERVAL_MS + 1
    assert len(sent) * 5 < len(asked)
    # nothing owed is held: each estimate asked for an interval after the last one sent, or lower than it
    # by 3 % or more, went out
    last: tuple[int, int] | None = None
    sent_set = set(sent)
    for at, bitrate in asked:
        owed = last is None or at - last[0] >= REMB_INTERVAL_MS or bitrate < last[1] * REMB_DROP_NOW
        assert ((at, bitrate) in sent_set) == owed, (at, bitrate, last)
        if owed:
            last = (at, bitrate)
    assert throttle.last_bitrate == sent[-1][1]


def test_a_drop_goes_out_at_once_and_a_rise_waits_for_the_interval() -> None:
    throttle = RembThrottle(lambda **_: None, interval_ms=200)
    assert throttle.admit(1_000_000, 0)
    assert not throttle.admit(1_000_000, 10)  # the same: waits
    assert not throttle.admit(2_000_000, 199)  # higher: waits
    assert not throttle.admit(975_000, 150)  # 2.5 % lower: waits
    assert throttle.admit(960_000, 160)  # 4 % lower: at once, and the interval restarts from it
    assert not throttle.admit(2_000_000, 359)
    assert throttle.admit(2_000_000, 360)
    assert (throttle.sent, throttle.held, throttle.last_bitrate) == (3, 4, 2_000_000)
    every = RembThrottle(lambda **_: None, interval_ms=0)  # Options.remb_interval_ms = 0: aiortc's own pace
    assert all(every.admit(1_000_000, 5) for _ in range(10)) and every.held == 0


def test_only_a_receiver_that_estimates_is_throttled() -> None:
    assert hooks.throttle_remb(receiver("audio")) is None
    second = receiver("video")
    hooks.suppress_remb(second)  # a publisher's second camera: its REMB is dropped, nothing to throttle
    assert hooks.throttle_remb(second) is None
    first = receiver("video")
    assert hooks.estimates_bitrate(first)
    throttle = hooks.throttle_remb(first, Options(remb_interval_ms=500).remb_interval_ms)
    assert throttle is not None and throttle.interval_ms == 500 and hooks.estimates_bitrate(first)


def test_the_setting_reaches_the_sfu_and_refuses_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from tiepdan.room_wiring import media_options
    from tiepdan.settings import Settings

    assert media_options(Settings()).sfu.remb_interval_ms == REMB_INTERVAL_MS
    monkeypatch.setenv("TIEPDAN_MEDIA_REMB_INTERVAL_MS", "0")
    assert media_options(Settings()).sfu.remb_interval_ms == 0
    for wrong in ("-1", "60000", "soon"):
        monkeypatch.setenv("TIEPDAN_MEDIA_REMB_INTERVAL_MS", wrong)
        with pytest.raises(ValidationError, match="media_remb_interval_ms"):
            Settings()
