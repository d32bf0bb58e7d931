"""Signalling fan-out benchmark: one event (a floor change) to 10 / 100 / 1000 peers.

Run: ``.venv/bin/python bench/signaling.py`` (loopback only). The room server runs in a child
process (uvicorn, the real ``/ws`` endpoint, memory bus and store); the peers are ``websockets``
clients in this process. Each round the chair sends ``floor.give`` and the time until every peer has
received ``floor.changed`` is measured at the peers (send and receive clocks are in this process).
Reports p50/p99 latency over all (peer, round) samples and delivered messages per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# ``signaling`` package: drop the folder.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

ROOM = "bench-room"


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 8192), hard), hard))


def serve(port: int, keyring_path: Path) -> None:
    """The child: a room server with one open room on 127.0.0.1:port."""
    import uvicorn
    from fastapi import FastAPI

    from evidence import Keyring
    from signaling.events import VenueInfo
    from signaling.memory_bus import MemoryBus
    from signaling.room import MemoryRoomStore, RoomOptions, RoomServer
    from signaling.room.api import router
    from signaling.tokens import TokenIssuer, TokenOptions, TokenVerifier

    _raise_fd_limit()
    keyring = Keyring.load(keyring_path)
    app = FastAPI()
    app.include_router(router)

    async def main() -> None:
        bus = MemoryBus()
        tokens = TokenOptions()
        server = RoomServer(options=RoomOptions(rate_per_s=1000, rate_burst=1000, outbound_queue=1024),
                            issuer=TokenIssuer(keyring, tokens), verifier=TokenVerifier(keyring, tokens),
                            bus=bus, store=MemoryRoomStore())
        await server.start()
        await server.open_room(ROOM, (VenueInfo(venue="tinh", name="Tỉnh", main=True),
                                      VenueInfo(venue="a", name="A"), VenueInfo(venue="b", name="B")))
        app.state.room_server = server
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                ws_ping_interval=None, backlog=2048)
        try:
            await uvicorn.Server(config).serve()
        finally:
            await server.close()
            await bus.close()

    asyncio.run(main())


async def _connect(url: str, token: str) -> object:
    import websockets

    ws = await websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None,
                                  open_timeout=30, ping_interval=None)
    await ws.send(json.dumps({"type": "join", "protocol": 1}))
    while json.loads(await ws.recv())["type"] != "welcome":
        pass
    return ws


async def run_size(url: str, issuer: object, n: int, rounds: int) -> dict[str, float]:
    from signaling.grants import Role

    sem = asyncio.Semaphore(50)

    async def one(i: int) -> object:
        async with sem:
            return await _connect(url, issuer.issue(f"bench:{i}", roles=[Role.VENUE], room=ROOM, venue="b"))  # type: ignore[attr-defined]

    peers = await asyncio.gather(*(one(i) for i in range(n)))
    chair = await _connect(url, issuer.issue("bench:chair", roles=[Role.CHAIR], room=ROOM))  # type: ignore[attr-defined]
    samples: list[float] = []
    arrivals: list[float] = []
    remaining = 0
    done = asyncio.Event()

    async def reader(ws: object) -> None:
        nonlocal remaining
        async for data in ws:  # type: ignore[attr-defined]
            if '"floor.changed"' in data:
                arrivals.append(time.perf_counter())
                remaining -= 1
                if remaining == 0:
                    done.set()

    readers = [asyncio.create_task(reader(ws)) for ws in peers]
    await asyncio.sleep(0.2)  # presence.joined bursts drained
    started = time.perf_counter()
    for r in range(rounds):
        arrivals.clear()
        remaining = n
        done.clear()
        t0 = time.perf_counter()
        await chair.send(json.dumps({"type": "floor.give", "venue": "a" if r % 2 == 0 else "tinh"}))  # type: ignore[attr-defined]
        await asyncio.wait_for(done.wait(), 30)
        samples.extend((t - t0) * 1000 for t in arrivals)
    elapsed = time.perf_counter() - started
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await asyncio.gather(*(ws.close() for ws in [*peers, chair]))  # type: ignore[attr-defined]
    samples.sort()
    return {"peers": n, "rounds": rounds, "p50_ms": statistics.median(samples),
            "p99_ms": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
            "msgs_per_s": n * rounds / elapsed}


async def bench(sizes: list[int], rounds: int) -> list[dict[str, float]]:
    from evidence import Keyring
    from signaling.tokens import TokenIssuer, TokenOptions

    _raise_fd_limit()
    with tempfile.TemporaryDirectory() as tmp:
        keyring_path = Path(tmp) / "keyring.json"
        keyring = Keyring.generate(dev=True, path=keyring_path)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        child = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(keyring_path)])
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            url = f"ws://127.0.0.1:{port}/ws?room={ROOM}"
            issuer = TokenIssuer(keyring, TokenOptions())
            return [await run_size(url, issuer, n, rounds) for n in sizes]
        finally:
            child.terminate()
            child.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "KEYRING"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), Path(args.serve[1]))
        return 0
    results = asyncio.run(bench([int(x) for x in args.sizes.split(",")], args.rounds))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"machine: {os.cpu_count()} CPUs, {cpu}; Python {platform.python_version()}; "
          f"{time.strftime('%Y-%m-%d')}")
    print("| peers | rounds | p50 (ms) | p99 (ms) | messages/s |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(f"| {r['peers']:.0f} | {r['rounds']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
              f"| {r['msgs_per_s']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
