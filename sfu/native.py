"""The SFU's per-packet path in C: a slot's header rewrite, then SRTP protect + ``sendto``.

Theory of operation
-------------------
At nine venues the SFU sends ~15,000 packets/s, one per (packet, subscriber). Measured with py-spy
(``bench/README.md``, issue #13), the Python around each send cost more than libsrtp and the system call
together: the slot's header rewrite (``sfu.rtp_forward.SlotRewriter``), pylibsrtp's wrapper (a cffi
``int *``, a copy into its buffer, a slice out of it) and asyncio's ``sendto`` (address parsing, the buffer
test) ran for every packet. ``sfu._native`` (``sfu/_native.c``, built by ``pip install`` like any
extension; optional: without a compiler the Python path runs, and the node says so when it starts) has two
types.

``Rewriter`` is ``SlotRewriter`` in C: the same state machine (source, anchor, keyframe gate, probation of
jumps, gap-free audio numbering, VP8 picture-id mapping, header extensions, counters, sender-report pair).
:func:`make_rewriter` builds a ``SlotRewriter`` first, which validates the arguments and draws the random
starts, and makes the C one from what it resolved (``SlotRewriter.resolved``), so validation and defaults
live in one place. The Python class stays the reference: ``tests/sfu/test_native_rewriter.py`` runs the
rewriter tests through the C type and random streams through both, which must write the same bytes.

``Sender`` holds, for one DTLS transport and its nominated UDP pair,

- libsrtp's ``srtp_protect`` as pylibsrtp's own binding holds it (``ffi.addressof(lib, "srtp_protect")``)
  and the transport's send session (``RTCDtlsTransport._tx_srtp``, its ``srtp_t``): the very library and
  session aiortc set up, so keys, rollover counters and replay state stay one;
- the pair's socket, its remote address, and the asyncio datagram transport that owns the socket.

``Sender.send(data)`` protects the packet and sends it: ``None`` when done (or lost to a socket error,
which asyncio too would only report to aioice, which ignores it: UDP), ``False`` while the socket's
transport closes (``is_closing()``; nothing sent), or the protected bytes when the transport still holds
datagrams (``get_write_buffer_size()``; asyncio's or uvloop's, the app runs on uvloop)
or the socket would block: the caller hands them to the transport's ``sendto``, which queues them in
order. An SRTP failure raises :class:`SrtpError`.

With ``Options.native_forwarding`` on (the default; ``TIEPDAN_MEDIA_NATIVE_FORWARDING``) and the extension
built, each RTP-forwarding slot gets the C rewriter and ``hooks.rtp_send`` one ``Sender`` per transport and
nominated pair; otherwise, and for a pair it cannot take (a relayed pair, a scoped IPv6 address), the Python
path stays: the two write the same bytes to the wire (``tests/sfu/test_native_send.py``).
:func:`unavailable` says why the extension is not there.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, cast

import pylibsrtp
from pylibsrtp._binding import ffi, lib  # type: ignore[import-not-found]  # cffi module, no stub

from sfu.rtp_forward import RtpLike, SlotRewriter

__all__ = ["Forward", "RewriterLike", "SenderLike", "SrtpError", "forward_function", "make_rewriter", "make_sender",
           "unavailable"]


if TYPE_CHECKING:
    from sfu._native import Sender

#: the C sender itself (described by sfu/_native.pyi); a name for annotations only
SenderLike: TypeAlias = "Sender"


try:
    from sfu import _native
except ImportError as exc:  # not built (no compiler where the package was installed): the Python path stays
    _native = None  # type: ignore[assignment]
    _MISSING: str | None = f"sfu._native is not built ({exc})"
else:
    _MISSING = None

#: what a native send raises when libsrtp refuses a packet (``RuntimeError`` without the extension)
SrtpError: type[RuntimeError] = RuntimeError if _native is None else _native.SrtpError

#: libsrtp's protect function, as pylibsrtp's binding holds it
_PROTECT = int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect")))


def unavailable() -> str | None:
    """Why the native send path cannot be used (None: it can)."""
    return _MISSING


def make_sender(session: pylibsrtp.Session, context: Any, transport: asyncio.DatagramTransport,
                address: tuple[Any, ...], *, dtls: Any = None, nominated: dict[int, Any] | None = None,
                pair: Any = None, connected: bool = False) -> SenderLike | None:
    """A native sender for ``session`` (``context``: its ``srtp_t``, a cffi pointer) on ``transport`` (a UDP
    transport of asyncio or uvloop) to ``address``; None when the extension is not built
    or the pair is not one it takes (the caller keeps the Python path). ``hooks.rtp_send`` calls it: the
    internals it is given are read there (``hooks.PRIVATES``). With the DTLS transport, its ICE connection's
    ``nominated`` pairs and the ``pair`` it sends on, :func:`forward` can use it: it forwards while that pair
    is still nominated, the transport's send session is still ``session`` and ``connected`` is kept true."""
    if _native is None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or sock.fileno() < 0 or transport.is_closing() or transport.get_extra_info("peername") is not None:
        return None  # closed, closing, or a connected socket (asyncio would send() on it)
    family = sock.family
    if family not in (socket.AF_INET, socket.AF_INET6) or len(address) < 2:
        return None
    host, port = address[0], address[1]
    if not isinstance(host, str) or not isinstance(port, int) or "%" in host:
        return None
    try:
        sender = _native.Sender(protect=_PROTECT, context=int(ffi.cast("uintptr_t", context)), session=session,
                                socket=sock, family=int(family), host=host, port=port, transport=transport,
                                address=address, dtls=dtls, nominated=nominated, pair=pair,
                                connected=connected)
    except ValueError:
        return None
    return sender


class RewriterLike(Protocol):
    """What the SFU uses of a slot's rewriter: ``sfu.rtp_forward.SlotRewriter`` or ``sfu._native.Rewriter``."""

    @property
    def ssrc(self) -> int: ...
    @property
    def packets_sent(self) -> int: ...
    @property
    def octets_sent(self) -> int: ...
    @property
    def anchors(self) -> int: ...
    @property
    def source(self) -> object | None: ...
    @property
    def last_timestamp(self) -> int | None: ...
    @property
    def waiting_keyframe(self) -> bool: ...

    def set_source(self, source: object | None) -> None: ...
    def request_keyframe(self) -> None: ...
    def rewrite(self, packet: RtpLike, source: object, now: float) -> bytes | None: ...
    def sender_report(self, now: float) -> tuple[int, int] | None: ...


def make_rewriter(*, native: bool = True, **arguments: Any) -> RewriterLike:
    """A slot's rewriter: ``SlotRewriter(**arguments)`` (which validates them and draws the random starts),
    or with ``native`` and the extension built, the C rewriter made from what it resolved."""
    reference = SlotRewriter(**arguments)
    if not native or _native is None:
        return reference
    return cast(RewriterLike, _native.Rewriter(**reference.resolved()))



class Forward(Protocol):
    def __call__(self, rewriter: RewriterLike, sender: SenderLike, packet: RtpLike, source: object, now: float,
                 seqs: list[int] | None, packets: list[bytes] | None, /) -> int | bytes | None: ...


def forward_function(rewriter: RewriterLike) -> Forward | None:
    """``sfu._native.forward`` when ``rewriter`` is the C one (else None): one forwarded packet for one slot, all
    of it in C. ``forward(rewriter, sender, packet, source, now, seqs, packets)`` runs the rewriter, then, while
    ``sender`` (``hooks.native_sender``) is still the transport's (connected, its pair still nominated, its
    session still the transport's), SRTP protect + ``sendto``, and puts the plain packet into a
    ``SendHistory``'s rings (``SendHistory.rings()``, or None, None) as ``SendHistory.add`` does.

    It returns None (the rewriter dropped the packet), the payload's size (sent), -1 (the socket's transport
    closes: not sent), or the rewritten packet for the caller's Python path to send (the sender is stale)."""
    if _native is None or type(rewriter) is not _native.Rewriter:
        return None
    return cast(Forward, _native.forward)
