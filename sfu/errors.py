"""The one exception hierarchy of the SFU.

Every error the library raises on purpose derives from :class:`SfuError`; exceptions from aiortc or
PyAV are translated at the boundary (``raise ... from exc``). Messages carry identifiers (room,
participant, publication ids), never personal data.
"""

from __future__ import annotations


class SfuError(Exception):
    """Base of every error raised by the ``sfu`` package."""


class AiortcIncompatible(SfuError):
    """The installed aiortc/aioice is not what the SFU's private hooks (``sfu.hooks``) were reviewed for."""


class AiortcHookMissing(AiortcIncompatible):
    """A private aiortc hook the SFU relies on is missing or changed (wrong aiortc version?)."""


class AiortcVersionMismatch(AiortcIncompatible):
    """The installed aiortc or aioice release is not the pinned one the hooks were reviewed against."""


# --- lifecycle ----------------------------------------------------------------------------------------


class ObjectClosed(SfuError):
    """The object was closed; it cannot be used any more."""


class WorkerClosed(ObjectClosed):
    """The worker is closed (or was never started)."""


class RoomClosed(ObjectClosed):
    """The room is closed."""


class ParticipantClosed(ObjectClosed):
    """The participant left or was closed."""


class PublicationClosed(ObjectClosed):
    """The publication ended (its publisher left or unpublished)."""


class TapClosed(ObjectClosed):
    """The recorder tap was detached."""


# --- lookup and identity ------------------------------------------------------------------------------


class NotFound(SfuError):
    """No room / participant / publication with that id."""


class DuplicateRoom(SfuError):
    """A room with that id already exists on the worker."""


class DuplicateParticipant(SfuError):
    """A participant (venue) with that id is already in the room."""


class AlreadyPublishing(SfuError):
    """The participant already published; a second publish of the same venue is refused."""


# --- negotiation --------------------------------------------------------------------------------------


class NegotiationError(SfuError):
    """Offer/answer negotiation failed."""


class InvalidSdp(NegotiationError):
    """The session description cannot be parsed or lacks mandatory attributes."""


class UnsupportedCodec(NegotiationError):
    """No codec the room forwards (VP8/H.264 video as configured, Opus audio) is offered."""


class NegotiationStateError(NegotiationError):
    """The call does not fit the negotiation state (e.g. an answer without a pending offer)."""


class InvalidCandidate(NegotiationError):
    """A trickled ICE candidate cannot be parsed or matches no media section."""


# --- transport ----------------------------------------------------------------------------------------


class TransportFailed(SfuError):
    """The peer connection failed (ICE or DTLS)."""


class IceTimeout(TransportFailed):
    """ICE/DTLS did not connect within ``Options.connect_timeout``; the connection was closed."""


# --- forwarding ---------------------------------------------------------------------------------------


class SourceError(SfuError):
    """A subscription slot cannot take that source."""


class KindMismatch(SourceError):
    """An audio slot pointed at a video publication, or the reverse."""


class CodecMismatch(SourceError):
    """The publication's codec differs from the codec negotiated for the slot."""


class SourceRestricted(SourceError):
    """The publication is restricted to an allow-list (closed segment) that excludes this participant."""


class SlowConsumer(SfuError):
    """A sink (subscriber slot or recorder tap) did not read fast enough; its bounded queue overflowed.

    Frames were dropped for that sink only; video resumes at the next keyframe, which was requested.
    """
