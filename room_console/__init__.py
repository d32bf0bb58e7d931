"""The console: server-rendered pages (accounts, dashboard, administration) and, later, the plain
JavaScript WebRTC client. Everything a person reads goes through :mod:`room_console.i18n`."""

from .context import ConsoleContext
from .errors import ConsoleError
from .i18n import t
from .options import ConsoleOptions
from .routes import CurrentUser, OptionalUser, SignedIn, create_console_router, install_console, require_grant

__all__ = [
    "ConsoleContext",
    "ConsoleError",
    "ConsoleOptions",
    "CurrentUser",
    "OptionalUser",
    "SignedIn",
    "create_console_router",
    "install_console",
    "require_grant",
    "t",
]
