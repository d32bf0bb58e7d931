"""sfu: the media plane. Forwards encoded media between venues; never decodes or re-encodes.

Object tree and ownership (closing a parent closes its children)::

    Worker -> Room -> Participant -> Publication (one per published track) -> Tap (recorder hook)
                                  -> Subscription (fixed subscriber slots, ``set_source``)
                                  -> Transport (publisher / subscriber peer connection)

Start with :class:`Worker` (``worker.py``); the signalling-facing calls are documented in
``participant.py`` (offers, answers, ICE), ``subscription.py`` (slots and sources), ``publication.py``
(keyframes, allow-lists, audio level, recorder taps) and ``events.py`` (what the room server hears).
Built on aiortc 1.16.0 through a few private hooks, all in ``hooks.py`` and checked by
:func:`selftest` at ``Worker.start`` (which also refuses any other aiortc or aioice release).
"""

from sfu.errors import (
    AiortcHookMissing,
    AiortcIncompatible,
    AiortcVersionMismatch,
    AlreadyPublishing,
    CodecMismatch,
    DuplicateParticipant,
    DuplicateRoom,
    IceTimeout,
    InvalidCandidate,
    InvalidSdp,
    KindMismatch,
    NegotiationError,
    NegotiationStateError,
    NotFound,
    ObjectClosed,
    ParticipantClosed,
    PublicationClosed,
    RoomClosed,
    SfuError,
    SlowConsumer,
    SourceError,
    SourceRestricted,
    TapClosed,
    TransportFailed,
    UnsupportedCodec,
    WorkerClosed,
)
from sfu.events import (
    AudioLevel,
    Event,
    KeyframeRequested,
    LinkLost,
    LinkUp,
    SinkLagging,
    SourceChanged,
    SpeakingChanged,
    StatsReport,
    TaskFailed,
    TrackPublished,
    TrackUnpublished,
)
from sfu.forwarding import EncodedFrame, SenderReport
from sfu.hooks import AIOICE_VERSION, AIORTC_VERSION, selftest
from sfu.options import IceServer, Options
from sfu.participant import PUBLISHER, SUBSCRIBER, Participant
from sfu.publication import Publication
from sfu.room import Room
from sfu.stats import PublicationStats, RoomStats, SubscriptionStats, WorkerStats
from sfu.subscription import Subscription
from sfu.tap import Tap
from sfu.transport import Transport, link_changes
from sfu.worker import Worker

__all__ = [
    "AIOICE_VERSION",
    "AIORTC_VERSION",
    "AiortcHookMissing",
    "AiortcIncompatible",
    "AiortcVersionMismatch",
    "AlreadyPublishing",
    "AudioLevel",
    "CodecMismatch",
    "DuplicateParticipant",
    "DuplicateRoom",
    "EncodedFrame",
    "Event",
    "IceServer",
    "IceTimeout",
    "InvalidCandidate",
    "InvalidSdp",
    "KeyframeRequested",
    "KindMismatch",
    "LinkLost",
    "LinkUp",
    "NegotiationError",
    "NegotiationStateError",
    "NotFound",
    "ObjectClosed",
    "Options",
    "PUBLISHER",
    "Participant",
    "ParticipantClosed",
    "Publication",
    "PublicationClosed",
    "PublicationStats",
    "Room",
    "RoomClosed",
    "RoomStats",
    "SUBSCRIBER",
    "SenderReport",
    "SfuError",
    "SinkLagging",
    "SlowConsumer",
    "SourceChanged",
    "SourceError",
    "SourceRestricted",
    "SpeakingChanged",
    "StatsReport",
    "Subscription",
    "SubscriptionStats",
    "Tap",
    "TapClosed",
    "TaskFailed",
    "TrackPublished",
    "TrackUnpublished",
    "Transport",
    "TransportFailed",
    "UnsupportedCodec",
    "Worker",
    "WorkerClosed",
    "WorkerStats",
    "link_changes",
    "selftest",
]
