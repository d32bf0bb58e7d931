"""Type stub of the C extension ``sfu._native`` (sfu/_native.c; see sfu/native.py)."""

from typing import Any

class SrtpError(RuntimeError): ...

class Sender:
    sent: int
    octets: int
    handed_back: int
    errors: int
    forwarded: int
    last_errno: int
    fd: int
    connected: int
    pair: Any
    session: Any
    def __init__(self, *, protect: int, context: int, session: Any, socket: Any, family: int, host: str, port: int,
                 transport: Any, address: Any = None, dtls: Any = None, nominated: Any = None,
                 pair: Any = None, connected: bool = False) -> None: ...
    def send(self, data: bytes, /) -> bytes | bool | None: ...
    def set_connected(self, connected: bool, /) -> None: ...

class Rewriter:
    ssrc: int
    payload_type: int
    clock_rate: int
    codec: str
    frame_interval: int
    packets_sent: int
    octets_sent: int
    last_timestamp_at: float
    dropped_other_source: int
    dropped_waiting: int
    dropped_stale: int
    dropped_jump: int
    anchors: int
    def __init__(self, *, ssrc: int, payload_type: int, clock_rate: int, codec: str, frame_interval: int,
                 gap_free: bool, keyframe: int, first_sequence_number: int, timestamp_origin: int,
                 abs_send_time_id: int, audio_level_id: int, mid_element: bytes) -> None: ...
    @property
    def source(self) -> object | None: ...
    @property
    def last_timestamp(self) -> int | None: ...
    @property
    def waiting_keyframe(self) -> bool: ...
    def rewrite(self, packet: Any, source: object, now: float, /) -> bytes | None: ...
    def set_source(self, source: object | None, /) -> None: ...
    def request_keyframe(self) -> None: ...
    def sender_report(self, now: float, /) -> tuple[int, int] | None: ...

def forward(rewriter: Rewriter, sender: Sender, packet: Any, source: object, now: float, seqs: list[int] | None,
            packets: list[bytes] | None, /) -> int | bytes | None: ...
