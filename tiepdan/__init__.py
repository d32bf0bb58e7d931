"""The composition root: settings, the app factory and the ``tiepdan`` command. Imported by nobody."""
