"""Where the latency tail of our media node comes from: instruments installed into the server process of
``bench/peer.py --probe`` (monkeypatching from the bench; nothing in ``sfu/`` changes behaviour).

- **Event-loop lag**: a task sleeps :attr:`Probe.interval` again and again and notes how late it wakes up.
- **Stalls**: a watchdog thread looks at the loop's heartbeat (set by that task) every 2 ms; while the loop
  has not come back for more than :attr:`Probe.stall_after`, it samples the main thread's Python stack and
  counts the innermost frame and the innermost frame in our code (``sfu/``, ``recorder/``) or aiortc.
- **GC pauses**: ``gc.callbacks`` time every collection per generation.
- **Per-stage timestamps** of each tagged frame (see ``bench/_peerbots.py``): ``read`` the event loop read
  the (still encrypted) datagram carrying the tag from its socket (``aioice`` ``Connection.data_received``,
  matched to the packet when ``Connection.recv`` hands that very bytes object on), ``rx`` the packet
  carrying the tag enters aiortc's receive path (``RTCDtlsTransport._handle_rtp_data``, after the ICE
  queue and SRTP), ``push`` the assembled frame is first pushed to a sink (``SinkQueue.push``), ``handed`` the
  subscriber's sender gets it (``ForwardedTrack.recv`` returns), ``sent`` the packet carrying the tag
  went to the socket (``RTCDtlsTransport._send_rtp`` returns) on that subscriber's transport.
- Under RTP-level forwarding (the default) the stages are fewer: ``rx`` the packet carrying the tag reaches
  its publication (``Publication.on_rtp``: read from the socket, SRTP, parsed, through aiortc's receiver; with
  direct receive all in the socket's callback), ``fanned`` the slot of one subscriber has sent it
  (``Subscription.forward_rtp`` returns).
"""

from __future__ import annotations

import asyncio
import collections
import gc
import sys
import threading
import time
from typing import Any

from bench._peerbots import key_of_tail, quantiles


class Probe:
    def __init__(self, interval: float = 0.005, stall_after: float = 0.015) -> None:
        self.interval = interval
        self.stall_after = stall_after
        self.active = False
        self.lags: list[float] = []
        self.gc_pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.gc_collected: dict[int, int] = {0: 0, 1: 0, 2: 0}
        self.stall_inner: collections.Counter[str] = collections.Counter()
        self.stall_ours: collections.Counter[str] = collections.Counter()
        self.stall_samples = 0
        self.rx: dict[int, float] = {}
        #: when the event loop read the datagram carrying the tag from its socket (aioice data_received)
        self.read: dict[int, float] = {}
        self._sock: dict[int, float] = {}
        self._last_sock: float | None = None
        self.push: dict[int, float] = {}
        self.handed: dict[tuple[int, int], float] = {}
        self.sent: dict[tuple[int, int], float] = {}
        #: id(ForwardedTrack) -> (id(subscriber's RTCDtlsTransport), subscriber participant id)
        self.tracks: dict[int, tuple[int, str]] = {}
        #: RTP-level forwarding: id(Subscription) -> subscriber participant id; when a slot sent a tagged packet
        self.slots: dict[int, str] = {}
        self.fanned: dict[tuple[int, int], float] = {}
        #: the tag of the packet a publication is forwarding right now (None: untagged, or none)
        self._key: int | None = None
        self._gc_t0 = 0.0
        self._heartbeat = time.monotonic()
        self._main = threading.get_ident()
        self._tasks: list[asyncio.Task[None]] = []
        self._quit = threading.Event()
        self._thread: threading.Thread | None = None

    # --- installation -------------------------------------------------------------------------------------

    def install(self) -> None:
        """Patch the classes (process-wide), register the GC callback, start the lag task and the watchdog."""
        from aioice.ice import Connection
        from aiortc.rtcdtlstransport import RTCDtlsTransport

        from sfu.forwarding import ForwardedTrack, SinkQueue
        from sfu.publication import Publication
        from sfu.subscription import Subscription

        probe = self
        on_rtp = Publication.on_rtp
        forward_rtp = Subscription.forward_rtp
        data_received = Connection.data_received
        conn_recv = Connection.recv
        handle_rtp_data = RTCDtlsTransport._handle_rtp_data
        send_rtp = RTCDtlsTransport._send_rtp
        push = SinkQueue.push
        get = SinkQueue.get
        recv = ForwardedTrack.recv

        def p_data_received(self: Any, data: bytes, component: int) -> None:
            if probe.active:
                probe._sock[id(data)] = time.monotonic()
            data_received(self, data, component)

        async def p_conn_recv(self: Any) -> bytes:
            data = await conn_recv(self)
            probe._last_sock = probe._sock.pop(id(data), None)
            return data

        async def p_handle_rtp_data(self: Any, data: bytes, arrival_time_ms: int) -> None:
            if probe.active:
                key = key_of_tail(data)
                if key is not None and key not in probe.rx:
                    probe.rx[key] = time.monotonic()
                    if probe._last_sock is not None:
                        probe.read[key] = probe._last_sock
            await handle_rtp_data(self, data, arrival_time_ms)

        async def p_send_rtp(self: Any, data: bytes) -> None:
            await send_rtp(self, data)
            if probe.active:
                key = key_of_tail(data)
                if key is not None:
                    probe.sent.setdefault((key, id(self)), time.monotonic())

        def p_push(self: Any, frame: Any, source: object) -> None:
            if probe.active:
                key = key_of_tail(frame.data)
                if key is not None:
                    probe.push.setdefault(key, time.monotonic())
            push(self, frame, source)

        async def p_get(self: Any) -> Any:
            item = await get(self)
            self._probe_last = None if item is None else item[0]
            return item

        async def p_recv(self: Any) -> Any:
            packet = await recv(self)
            if probe.active:
                frame = getattr(self._queue, "_probe_last", None)
                key = None if frame is None else key_of_tail(frame.data)
                if key is not None:
                    probe.handed.setdefault((key, id(self)), time.monotonic())
            return packet

        def p_on_rtp(self: Any, packet: Any, data: bytes) -> None:
            if probe.active:
                key = key_of_tail(packet.payload)
                if key is not None:
                    probe.rx.setdefault(key, time.monotonic())
                probe._key = key
            try:
                on_rtp(self, packet, data)
            finally:
                probe._key = None

        def p_forward_rtp(self: Any, packet: Any, source: Any, wall: float, now: float) -> bool:
            waiting: bool = forward_rtp(self, packet, source, wall, now)
            if probe._key is not None:
                probe.fanned.setdefault((probe._key, id(self)), time.monotonic())
            return waiting

        Publication.on_rtp = p_on_rtp  # type: ignore[method-assign]
        Subscription.forward_rtp = p_forward_rtp  # type: ignore[method-assign]
        Connection.data_received = p_data_received  # type: ignore[method-assign]
        Connection.recv = p_conn_recv  # type: ignore[method-assign]
        RTCDtlsTransport._handle_rtp_data = p_handle_rtp_data  # type: ignore[method-assign]
        RTCDtlsTransport._send_rtp = p_send_rtp  # type: ignore[method-assign]
        SinkQueue.push = p_push  # type: ignore[method-assign]
        SinkQueue.get = p_get  # type: ignore[method-assign]
        ForwardedTrack.recv = p_recv  # type: ignore[method-assign]
        gc.callbacks.append(self._on_gc)
        self._tasks.append(asyncio.get_running_loop().create_task(self._lag()))
        self._thread = threading.Thread(target=self._watch, name="probe-watchdog", daemon=True)
        self._thread.start()

    def bind(self, track: object, transport: object, subscriber: str) -> None:
        """Tell which subscriber transport a forwarded track's frames leave on."""
        self.tracks[id(track)] = (id(transport), subscriber)

    def bind_slot(self, slot: object, subscriber: str) -> None:
        """Tell whose slot ``slot`` is (RTP-level forwarding)."""
        self.slots[id(slot)] = subscriber

    async def close(self) -> None:
        self._quit.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    # --- instruments ----------------------------------------------------------------------------------------

    async def _lag(self) -> None:
        while True:
            t0 = time.monotonic()
            self._heartbeat = t0
            await asyncio.sleep(self.interval)
            late = time.monotonic() - t0 - self.interval
            if self.active:
                self.lags.append(late)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        elif self.active:
            gen = int(info.get("generation", 0))
            self.gc_pauses[gen].append(time.perf_counter() - self._gc_t0)
            self.gc_collected[gen] += int(info.get("collected", 0))

    def _watch(self) -> None:
        while not self._quit.wait(0.002):
            if not self.active or time.monotonic() - self._heartbeat < self.interval + self.stall_after:
                continue
            frame = sys._current_frames().get(self._main)
            if frame is None:
                continue
            self.stall_samples += 1
            inner = frame
            self.stall_inner[f"{inner.f_code.co_filename.rsplit('/', 2)[-1]}:{inner.f_code.co_name}"] += 1
            f: Any = frame
            while f is not None:
                name = f.f_code.co_filename
                if "/sfu/" in name or "/recorder/" in name or "/aiortc/" in name or "/aioice/" in name:
                    self.stall_ours[f"{name.rsplit('/', 2)[-2]}/{name.rsplit('/', 1)[-1]}:{f.f_code.co_name}"] += 1
                    break
                f = f.f_back
            del frame, f, inner

    # --- control ------------------------------------------------------------------------------------------

    def start(self) -> None:
        for store in (self.lags, *self.gc_pauses.values()):
            store.clear()
        for d in (self.rx, self.read, self._sock, self.push, self.handed, self.sent, self.fanned):
            d.clear()
        self.gc_collected = {0: 0, 1: 0, 2: 0}
        self.stall_inner.clear()
        self.stall_ours.clear()
        self.stall_samples = 0
        self.active = True

    def stop(self) -> dict[str, Any]:
        """Summary (loop lag, GC, stalls) and the per-stage rows ``[subscriber, key, read, rx, push, handed,
        sent]`` (frame forwarding) and ``[subscriber, key, rx, fanned]`` (RTP-level forwarding)."""
        self.active = False
        self._sock.clear()
        lag = quantiles(self.lags, (0.5, 0.99, 0.999, 1.0))
        gcs = {
            gen: {"count": len(p), "total_ms": 1e3 * sum(p), "max_ms": 1e3 * max(p, default=0.0),
                  "p99_ms": 1e3 * quantiles(p, (0.99,))[0] if p else 0.0, "collected": self.gc_collected[gen]}
            for gen, p in self.gc_pauses.items()
        }
        rows: list[list[Any]] = []
        for (key, track), handed in self.handed.items():
            bound = self.tracks.get(track)
            if bound is None:
                continue
            transport, subscriber = bound
            rows.append([subscriber, key, self.read.get(key), self.rx.get(key), self.push.get(key), handed,
                         self.sent.get((key, transport))])
        return {
            "loop_lag_ms": {"p50": 1e3 * lag[0], "p99": 1e3 * lag[1], "p999": 1e3 * lag[2], "max": 1e3 * lag[3],
                            "samples": len(self.lags),
                            "over_10ms": sum(1 for x in self.lags if x > 0.010),
                            "over_50ms": sum(1 for x in self.lags if x > 0.050)},
            "gc": gcs,
            "stalls": {"samples": self.stall_samples, "sample_every_ms": 2,
                       "inner": self.stall_inner.most_common(12), "ours": self.stall_ours.most_common(12)},
            "stages": rows,
            "rtp_stages": [[self.slots[slot], key, self.rx.get(key), fanned]
                           for (key, slot), fanned in self.fanned.items() if slot in self.slots],
        }
