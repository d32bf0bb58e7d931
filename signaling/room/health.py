"""Venue link health and the active speaker (sans-I/O: the driver samples, these decide).

:class:`LinkMonitor` turns samples of each venue's received-frame counter into ``lost`` /
``restored`` transitions: a venue whose media was flowing and stops for ``lost_after`` seconds (or
whose uplink failed) is lost; it is restored when frames flow again. After an uplink failure, frames
counted within ``lost_after`` of it on the same publication are the ones already on their way (the SFU
drains them after the peer connection closed), not a restore; a new publication restores at once. A
deliberate end (unpublish, leave) is :meth:`LinkMonitor.forget`, never a loss.

:class:`SpeakerTracker` picks the loudest venue that is speaking (RFC 6464 level, lower is louder)
and reports a change at most once per ``interval``; a change inside the window is reported when
the window ends, if it still holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["LinkMonitor", "SpeakerTracker", "Transition"]

Transition = Literal["lost", "restored"]


@dataclass
class _Link:
    counter: int
    changed_at: float
    state: Literal["pending", "up", "lost"]
    failed_at: float | None = None


class LinkMonitor:
    def __init__(self, lost_after: float) -> None:
        self.lost_after = lost_after
        self._links: dict[str, _Link] = {}

    def state(self, venue: str) -> str | None:
        link = self._links.get(venue)
        return None if link is None else link.state

    def sample(self, counters: Mapping[str, int], now: float) -> list[tuple[str, Transition]]:
        """``counters``: venue → frames received so far (venues publishing now)."""
        out: list[tuple[str, Transition]] = []
        for venue, counter in counters.items():
            link = self._links.get(venue)
            if link is None:
                self._links[venue] = link = _Link(counter, now, "up" if counter > 0 else "pending")
                continue
            if counter != link.counter:
                draining = (link.state == "lost" and link.counter != -1 and link.failed_at is not None
                            and now - link.failed_at < self.lost_after)
                link.counter, link.changed_at = counter, now
                if draining:
                    continue
                if link.state == "lost":
                    out.append((venue, "restored"))
                link.state, link.failed_at = "up", None
        for venue, link in self._links.items():
            if venue not in counters:
                link.counter = -1  # the publication is gone: any new one counts as media again
            if link.state == "up" and now - link.changed_at >= self.lost_after:
                link.state = "lost"
                out.append((venue, "lost"))
        return out

    def failed(self, venue: str, now: float) -> Transition | None:
        """The venue's uplink failed (ICE/DTLS): lost at once if it was up."""
        link = self._links.get(venue)
        if link is None or link.state != "up":
            return None
        link.state, link.changed_at, link.failed_at = "lost", now, now
        return "lost"

    def forget(self, venue: str) -> None:
        self._links.pop(venue, None)


class SpeakerTracker:
    """The venue speaking loudest, announced at most once per ``interval``; the last speaker stays the
    active speaker through pauses shorter than ``silence_hold`` (between words, or a beep's gaps) and
    only then gives way to nobody — so the chair's highlight does not flicker."""

    def __init__(self, interval: float, silence_hold: float = 2.0) -> None:
        self.interval = interval
        self.silence_hold = silence_hold
        self.current: str | None = None
        self._last_change = float("-inf")
        self._last_heard = float("-inf")
        self._levels: dict[str, tuple[bool, int]] = {}

    def update(self, venue: str, *, speaking: bool, level: int | None = None) -> None:
        old = self._levels.get(venue, (False, 127))
        self._levels[venue] = (speaking, old[1] if level is None else level)

    def forget(self, venue: str) -> None:
        self._levels.pop(venue, None)

    def candidate(self) -> str | None:
        speaking = [(level, venue) for venue, (on, level) in self._levels.items() if on]
        return min(speaking)[1] if speaking else None

    def tick(self, now: float) -> tuple[bool, str | None]:
        """``(changed, venue)``: whether to announce a new active speaker now."""
        candidate = self.candidate()
        if candidate is not None:
            self._last_heard = now
        elif self.current is not None and self.current in self._levels and now - self._last_heard < self.silence_hold:
            candidate = self.current  # a pause: the last speaker keeps the highlight
        if candidate == self.current or now - self._last_change < self.interval:
            return False, self.current
        self.current, self._last_change = candidate, now
        return True, candidate
