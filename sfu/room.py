"""Room: the live media room of one reception session; owns its participants.

The room forwards one video codec (``video_codec``, VP8 by default or H.264) and Opus; every
publisher and subscriber of the room negotiates these. Events of the room and everything in it go to
the worker's listener (``sfu.events``). If ``Options.stats_interval`` is set the room also emits a
``StatsReport`` periodically; ``await room.stats()`` is always available.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sfu import _tasks
from sfu.errors import DuplicateParticipant, NotFound, RoomClosed
from sfu.events import Event, StatsReport, TaskFailed
from sfu.options import Options
from sfu.participant import Participant
from sfu.publication import Publication
from sfu.stats import RoomStats

logger = logging.getLogger(__name__)


class Room:
    """A media room. Created by ``Worker.create_room``; owned by the worker."""

    def __init__(
        self,
        room_id: str,
        *,
        options: Options,
        video_codec: str,
        emit: Callable[[Event], None],
        on_closed: Callable[[Room], None],
    ) -> None:
        self.id = room_id
        self.options = options
        self.video_codec = video_codec
        self.closed = False
        self._emit_to_owner = emit
        self._on_closed = on_closed
        self._participants: dict[str, Participant] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        if options.stats_interval:
            self._spawn(self._report_stats(options.stats_interval), "room-stats")

    def __repr__(self) -> str:
        return f"<Room {self.id} {self.video_codec} participants={len(self._participants)}>"

    def join(self, participant_id: str) -> Participant:
        """Add a participant (a venue or console). Raises ``DuplicateParticipant`` if already present."""
        if self.closed:
            raise RoomClosed(self.id)
        if participant_id in self._participants:
            raise DuplicateParticipant(f"{participant_id} is already in room {self.id}")
        participant = Participant(self, participant_id)
        self._participants[participant_id] = participant
        return participant

    def participant(self, participant_id: str) -> Participant:
        try:
            return self._participants[participant_id]
        except KeyError:
            raise NotFound(f"no participant {participant_id} in room {self.id}") from None

    @property
    def participants(self) -> tuple[Participant, ...]:
        return tuple(self._participants.values())

    @property
    def publications(self) -> tuple[Publication, ...]:
        return tuple(pub for p in self._participants.values() for pub in p.publications)

    def publication(self, publication_id: str) -> Publication:
        """The live publication ``<participant id>/<name>``; ``NotFound`` otherwise."""
        participant_id, _, name = publication_id.rpartition("/")
        participant = self._participants.get(participant_id)
        if participant is None:
            raise NotFound(f"no publication {publication_id} in room {self.id}")
        return participant.publication(name)

    async def stats(self) -> RoomStats:
        pubs = []
        subs = []
        for participant in list(self._participants.values()):
            p, s = await participant.stats()
            pubs.extend(p)
            subs.extend(s)
        return RoomStats(self.id, len(self._participants), tuple(pubs), tuple(subs))

    async def close(self) -> None:
        """Close every participant and stop the room's tasks. Idempotent."""
        if self.closed:
            return
        self.closed = True
        for participant in list(self._participants.values()):
            await participant.close()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._on_closed(self)

    # --- owner API for children --------------------------------------------------------------------------

    def _emit(self, event: Event) -> None:
        try:
            self._emit_to_owner(event)
        except Exception:  # a listener bug must not break the media path
            logger.exception("event listener failed on %s", type(event).__name__)

    def _forget(self, participant: Participant) -> None:
        if self._participants.get(participant.id) is participant:
            del self._participants[participant.id]

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``coro`` as a task owned by the room (cancelled and awaited in ``close``); a failure is
        logged and reported as :class:`~sfu.events.TaskFailed`. ``name`` is the task's kind."""
        _tasks.spawn(self._tasks, coro, name=name, owner=self.id, on_failure=self._task_failed)

    def _task_failed(self, name: str, exc: BaseException) -> None:
        """A task of the room or of one of its objects failed (already logged): tell the owner."""
        self._emit(TaskFailed(self.id, name, type(exc).__name__))

    async def _report_stats(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self._emit(StatsReport(self.id, await self.stats()))
