"""Venue bots: aiortc venues with pre-encoded media, shared by the tests, the benchmarks and ``tiepdan demo``.

- :mod:`tiepdan.bots.media`: clips (pre-encoded VP8/H.264/Opus), looping tracks, publisher and subscriber peers;
- :mod:`tiepdan.bots.venue_bot`: :class:`~tiepdan.bots.venue_bot.VenueBot`, one venue's page over ``/ws``;
- :mod:`tiepdan.bots.loops`: the demo's pre-rendered loops (venue name and clock burned in), cached on disk;
- :mod:`tiepdan.bots.console`: the console over HTTP as a signed-in person's page uses it: the desk officer
  registering citizens, the chair recording the roll call and pressing the queue controls.
"""
