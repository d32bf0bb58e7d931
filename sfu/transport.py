"""Transport: one aiortc ``RTCPeerConnection`` of a participant, in the publisher or subscriber role.

Each participant has at most one live transport per role: publishers' media arrives on the publisher
transport, forwarded media leaves on the subscriber transport (two connections, so that subscriber
slots never need renegotiation when someone publishes).

States: ``new`` -> ``connecting`` -> ``connected``; any -> ``failed`` (ICE/DTLS failure, or not
connected within ``Options.connect_timeout``: :class:`~sfu.errors.IceTimeout`) -> ``closed``. A
failed transport closes itself; its owner is told through ``on_state`` and restores the link by
negotiating a new transport (aiortc has no ICE restart).

ICE: aiortc gathers all local candidates before an SDP is returned (no outbound trickle); remote
candidates may be trickled with :meth:`add_ice_candidate`. Gathering binds the UDP sockets and goes
through :meth:`set_local_description`, which :meth:`close` waits for: aioice 0.13 binds the sockets of a
gathering that runs on after its connection was closed and never closes them. :meth:`close` itself
finishes when the caller is cancelled (a closing that stopped half-way would leave the sockets open).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from sfu import _tasks, hooks
from sfu.errors import IceTimeout, InvalidCandidate, TransportFailed
from sfu.options import Options

logger = logging.getLogger(__name__)

#: the receive-buffer size the kernel last fell short of (warned once per size per process)
_short_buffer_warned: set[int] = set()


def _check_receive_buffer(size: int, granted: list[int]) -> None:
    short = [g for g in granted if g < size]
    if short and size not in _short_buffer_warned:
        _short_buffer_warned.add(size)
        logger.warning("the kernel caps the media sockets' receive buffers at %d bytes, not the %d asked for "
                       "(Options.receive_buffer_bytes): raise net.core.rmem_max (sysctl) on a media node",
                       min(short), size)


#: peer connections of this process that connected or closed, since it started (:func:`link_changes`)
_LINK_CHANGES = 0


def link_changes() -> int:
    """How many peer connections of this process connected or closed since it started: a number that moves
    whenever the set of live links (and the object graph behind them) changes (``tiepdan.gc_policy``)."""
    return _LINK_CHANGES


class Transport:
    """A peer connection with a connect watchdog. Owned by a :class:`~sfu.participant.Participant`."""

    def __init__(
        self,
        *,
        role: str,
        label: str,
        options: Options,
        on_state: Callable[[Transport], None],
        on_task_failed: _tasks.FailureHook | None = None,
    ) -> None:
        self.role = role
        self.label = label
        self.state = "new"
        self.closed = False
        self.error: TransportFailed | None = None
        self._options = options
        self._on_state = on_state
        self._on_task_failed = on_task_failed
        servers = [
            RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
            for s in options.ice_servers
        ]
        # An empty list (not None) keeps aiortc from falling back to Google's public STUN server.
        # max-bundle: with aiortc's default "balanced" policy a second audio (or video) m-line shares the
        # transport of the first of its kind and is then left on a discarded transport when BUNDLE is
        # applied (aiortc 1.16 setRemoteDescription skips transceivers already marked bundled).
        config = RTCConfiguration(iceServers=servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        self.pc = RTCPeerConnection(config)
        self.pc.on("connectionstatechange", self._on_pc_state)
        self._settled = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._gathering: set[asyncio.Task[None]] = set()
        #: the receive counters of each DTLS transport (hooks.direct_receive)
        self._direct: dict[Any, hooks.DirectReceive] = {}

    def __repr__(self) -> str:
        return f"<Transport {self.label} {self.role} {self.state}>"

    def direct_receive_counts(self) -> list[hooks.DirectReceive]:
        """The receive counters of each DTLS transport (``hooks.direct_receive``; with ``Options.direct_receive``
        off, everything but empty datagrams is counted as queued)."""
        return list(self._direct.values())

    def start_watchdog(self) -> None:
        """Fail the transport with ``IceTimeout`` unless it connects within ``connect_timeout``."""
        self._spawn(self._watchdog(), "transport-watchdog")

    async def wait_connected(self) -> None:
        """Return once connected; raise the failure (``IceTimeout``, ``TransportFailed``) otherwise."""
        await self._settled.wait()
        if self.state != "connected":
            raise self.error or TransportFailed(f"{self.label} {self.role} transport {self.state}")

    async def add_ice_candidate(
        self, candidate: str | None, sdp_mid: str | None = None, sdp_mline_index: int | None = None
    ) -> None:
        """Add a trickled remote candidate (``candidate:...`` line); ``None`` or ``""`` ends trickling."""
        if self.closed:
            return
        if not candidate:
            return  # aiortc needs no end-of-candidates signal
        try:
            parsed = candidate_from_sdp(candidate.removeprefix("a=").removeprefix("candidate:"))
        except (ValueError, IndexError) as exc:
            raise InvalidCandidate("unparsable ICE candidate") from exc
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index
        if sdp_mid is None and sdp_mline_index is None:
            parsed.sdpMLineIndex = 0
        try:
            await self.pc.addIceCandidate(parsed)
        except (ValueError, KeyError) as exc:
            raise InvalidCandidate("candidate matches no media section") from exc

    async def set_local_description(self, description: RTCSessionDescription) -> None:
        """``pc.setLocalDescription(description)``: gathers the local candidates (binds the UDP sockets).

        The gathering runs as a task of its own that :meth:`close` waits for before it closes the peer
        connection: closed in the middle of a gathering, aioice 0.13 binds the sockets afterwards and never
        closes them (``ResourceWarning: unclosed transport``, raised by the garbage collector in whatever
        runs next). A caller cancelled meanwhile leaves the gathering to finish; ``close`` closes its sockets.
        Raises :class:`TransportFailed` once the transport is closing, and what aiortc raises."""
        if self.closed:
            raise TransportFailed(f"{self.label} {self.role} transport closed")
        gathering = asyncio.ensure_future(self.pc.setLocalDescription(description))
        self._gathering.add(gathering)
        gathering.add_done_callback(self._gathering.discard)
        await asyncio.shield(gathering)
        if not self.closed:
            for dtls in {t.receiver.transport for t in self.pc.getTransceivers()}:
                if dtls not in self._direct:
                    self._direct[dtls] = hooks.direct_receive(dtls, direct=self._options.direct_receive)
        size = self._options.receive_buffer_bytes
        if size is not None and not self.closed:
            _check_receive_buffer(size, hooks.set_receive_buffer(self.pc, size))

    async def close(self) -> None:
        """Close the peer connection (senders, receivers, ICE, DTLS). Idempotent; the closing goes on to
        its end when the caller is cancelled."""
        if self._closing is None:
            self.closed = True
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    # --- internals ---------------------------------------------------------------------------------------

    async def _close(self) -> None:
        try:
            current = asyncio.current_task()
            tasks = [t for t in self._tasks if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # a gathering in flight would bind its sockets after pc.close() and leave them open
            await asyncio.gather(*self._gathering, return_exceptions=True)
            await self.pc.close()
        finally:
            self._set_state("closed")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        _tasks.spawn(self._tasks, coro, name=name, owner=f"{self.label} {self.role}",
                     on_failure=self._on_task_failed)

    async def _watchdog(self) -> None:
        await asyncio.sleep(self._options.connect_timeout)
        if self.state not in ("connected", "failed", "closed"):
            self._fail(
                IceTimeout(
                    f"{self.label} {self.role} not connected after {self._options.connect_timeout:g} s"
                )
            )

    def _on_pc_state(self) -> None:
        state = self.pc.connectionState
        if self.closed or self.state == "failed":
            return
        if state == "failed":
            self._fail(TransportFailed(f"{self.label} {self.role} ICE/DTLS failed"))
        elif state == "closed":
            # aiortc closes the connection itself when the peer ends DTLS (it left or its tab closed)
            self._fail(TransportFailed(f"{self.label} {self.role} closed by the peer"))
        elif state in ("connecting", "connected"):
            self._set_state(state)

    def _fail(self, error: TransportFailed) -> None:
        if self.closed or self.state == "failed":
            return
        self.error = error
        logger.info("transport %s %s failed: %s", self.label, self.role, error)
        self._set_state("failed")
        self._spawn(self.close(), "transport-close")

    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        if state in ("connected", "closed"):
            global _LINK_CHANGES
            _LINK_CHANGES += 1
        if state in ("connected", "failed", "closed"):
            self._settled.set()
        try:
            self._on_state(self)
        except Exception:
            logger.exception("transport state callback failed")
