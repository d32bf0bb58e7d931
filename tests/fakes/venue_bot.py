"""The venue bot lives in :mod:`tiepdan.bots.venue_bot` (shared by the tests, the benchmarks and ``tiepdan demo``)."""

from tiepdan.bots.venue_bot import Message, RequestRefused, VenueBot, until

__all__ = ["Message", "RequestRefused", "VenueBot", "until"]
