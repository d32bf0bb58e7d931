"""Wiring of replays: the recordings volume for the console's replay pages (``app.state.replay``, every role
that serves pages) and, for the roles ``all`` and ``worker``, the replay worker (:mod:`tiepdan.replay_worker`)
as the supervised loop ``replay-worker``. The worker composes in a child process niced by
``TIEPDAN_REPLAY_NICE``; it polls for queued jobs every ``TIEPDAN_REPLAY_POLL_S`` and a request made in the
same process wakes it at once; composites are sealed as written under ``TIEPDAN_RECORDING_ENCRYPT_ALL``, like
the recorded media. Scaled: the control and worker processes must mount the same recordings volume
(``TIEPDAN_RECORDING_DIR``) as the media nodes.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from fastapi import FastAPI

from room_console.replay_files import ReplayFiles

from .replay_worker import ReplayWorker, ReplayWorkerOptions

if TYPE_CHECKING:
    from .app import Services

__all__ = ["wire_replay"]


async def wire_replay(app: FastAPI, services: Services, stack: AsyncExitStack) -> ReplayWorker | None:
    settings = services.settings
    root = settings.recorder_options.root
    worker: ReplayWorker | None = None
    if settings.process_role in ("all", "worker"):
        worker = ReplayWorker(services.engine, ReplayWorkerOptions(
            root=root, keyring_path=settings.resolved_keyring_path, keyring_passphrase=settings.keyring_passphrase,
            poll_s=settings.replay_poll_s, nice=settings.replay_nice,
            encrypt_all=settings.recorder_options.encrypt_all))
        supervisor = services.supervisor
        loop = supervisor.run("replay-worker", worker.run)
        running = worker

        async def stop() -> None:
            # an idle loop ends on its own between two polls (never cancelled inside a database call);
            # one composing is cancelled after the grace: its child is killed and its job failed as stopped
            running.closed = True
            running.wake()
            await supervisor.stop(loop, grace_s=2.0)
            await running.close()

        stack.push_async_callback(stop)
    app.state.replay = ReplayFiles(root=root, keyring=services.keyring,
                                   notify=None if worker is None else worker.wake)
    app.state.replay_worker = worker
    return worker
