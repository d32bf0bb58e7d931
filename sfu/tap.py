"""Tap: the recorder hook, a bounded stream of the encoded frames of one publication.

Usage (by the recorder, driven by the room server)::

    tap = publication.attach_tap()
    async for frame in tap:          # sfu.forwarding.EncodedFrame: data, timestamp, keyframe, ...
        muxer.mux(frame.to_packet())  # a fresh av.Packet; time_base 1/clock_rate
    # iteration ends when the tap is closed or the publication ends

A keyframe is requested on attach and video starts at a keyframe. If the reader falls behind, the
queue (``Options.*_queue_frames``) overflows: video is flushed and restarts at the next keyframe
(requested), audio drops its oldest frames; a ``SinkLagging`` event reports it. ``timestamp`` is the
publication's own timeline (0 at its first frame), not rebased. :attr:`Tap.sender_report` is the
publisher's latest RTCP sender report on that timeline (None until one has arrived): it maps a frame's
timestamp to the sender's wall clock, common to the publisher's audio and video.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from sfu.errors import SlowConsumer, TapClosed
from sfu.events import SinkLagging
from sfu.forwarding import EncodedFrame, SenderReport, SinkQueue

if TYPE_CHECKING:
    from sfu.publication import Publication

_numbers = itertools.count(1)


class Tap:
    """Encoded frames of one publication for a recorder. Owned by whoever called ``attach_tap``."""

    def __init__(self, publication: Publication, max_queue: int) -> None:
        self.publication = publication
        self.kind = publication.kind
        self.id = f"{publication.id}/tap-{next(_numbers)}"
        self.closed = False
        self.queue = SinkQueue(self.kind, max_queue, self._keyframe_needed, self._overflowed)

    @property
    def sender_report(self) -> SenderReport | None:
        """The publisher's latest sender report (see the module docstring), or None."""
        return self.publication.sender_report

    async def recv(self) -> EncodedFrame:
        """The next frame; raises :class:`TapClosed` once the tap or its publication is closed."""
        item = await self.queue.get()
        if item is None:
            raise TapClosed(self.id)
        return item[0]

    def __aiter__(self) -> Tap:
        return self

    async def __anext__(self) -> EncodedFrame:
        try:
            return await self.recv()
        except TapClosed:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        """Detach from the publication. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.publication._forget_tap(self)
        self.queue.close()

    def _source_ended(self) -> None:
        self.closed = True
        self.queue.close()

    def _keyframe_needed(self, reason: str) -> None:
        self.publication.request_keyframe(reason)

    def _overflowed(self, dropped: int) -> None:
        self.publication._emit(
            SinkLagging(self.publication.room_id, self.id, dropped, SlowConsumer(f"{self.id} fell behind"))
        )
