"""One racing process of tests/schedules/test_concurrency.py (run as ``python -m tests.schedules._race_worker``).

Arguments: the database URL, the clock's base time (ISO) and the wall-clock second it stands for, an
action and its arguments. The worker connects, prints ``ready``, waits for a line on stdin (the start
signal the test sends every worker at once), acts, and prints one JSON line: the ticket numbers it was
given (``issue``) or ``{"ok": true}`` / ``{"error": code}`` (a transition or a queue action).

The clock is the base time plus the wall-clock seconds elapsed since the given second: both workers
read the same system clock, after taking the row they change, so "now" never runs backwards between
them (as between two processes of one server).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime, timedelta

from schedules import SchedulesError, calls, close_session, issue_ticket, start_session
from signaling.grants import Grant
from tiepdan.db import make_engine

ALL = frozenset(Grant)


async def main(argv: list[str]) -> None:
    url, base_iso, wall_start, action, *rest = argv
    base, t0 = datetime.fromisoformat(base_iso), float(wall_start)

    def clock() -> datetime:
        return base + timedelta(seconds=time.time() - t0)

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:  # connected and warm before the start signal
            await conn.exec_driver_sql("SELECT 1")
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        actor = f"service:race-{action}"
        if action == "issue":
            session, venue, *cases = rest
            numbers = []
            for case in cases:
                async with engine.begin() as conn:
                    issued = await issue_ticket(conn, session, venue=venue, case=case, actor=actor, grants=ALL,
                                                clock=clock)
                numbers.append(issued.ticket_no)
            print(json.dumps(numbers), flush=True)
            return
        session, *extra = rest
        expected = int(extra[0]) if extra else None
        try:
            async with engine.begin() as conn:
                if action == "start":
                    await start_session(conn, session, expected_version=expected, actor=actor, grants=ALL,
                                        clock=clock)
                elif action == "close":
                    await close_session(conn, session, expected_version=expected, actor=actor, grants=ALL,
                                        clock=clock)
                elif action == "call_next":
                    await calls.call_next(conn, session, expected_version=expected, actor=actor, grants=ALL,
                                          clock=clock)
                else:
                    raise SystemExit(f"unknown action {action!r}")
        except SchedulesError as exc:
            print(json.dumps({"error": exc.code}), flush=True)
            return
        print(json.dumps({"ok": True}), flush=True)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
