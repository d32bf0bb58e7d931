"""``tiepdan user add|disable``: console accounts from the command line."""

from __future__ import annotations

import argparse
import getpass
import sys
import time

from room_console import ConsoleError, t
from room_console.accounts import add_user, disable_user, get_user_by_username, normalize_username
from room_console.errors import UserNotFound, WeakPassword

from .cli_database import open_server_database
from .settings import Settings
from .wiring import console_options

__all__ = ["run_user_command"]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(t("cli.password_prompt"))
    if getpass.getpass(t("cli.password_again")) != first:
        raise _Mismatch()
    return first


class _Mismatch(WeakPassword):
    message_key = "cli.password_mismatch"


async def run_user_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run ``user add`` / ``user disable``; 0 on success, 2 on a refused input (message on stderr)."""
    options = console_options(settings)
    engine = await open_server_database(settings)  # the server's database, never a new one
    try:
        if args.user_command == "add":
            password = _read_password(bool(args.password_stdin))
            user = await add_user(engine, username=args.username, display_name=args.name, roles=args.role,
                                  password=password, unit=args.unit, venue=args.venue, options=options,
                                  now=time.time())
            print(t("cli.user_added", username=user.username))
        elif args.user_command == "disable":
            async with engine.begin() as conn:
                found = await get_user_by_username(conn, normalize_username(args.username))
                if found is None:
                    raise UserNotFound("no such user")
                await disable_user(conn, found.id, now=time.time())
            print(t("cli.user_disabled", username=found.username))
        else:
            raise SystemExit(f"unknown user command {args.user_command!r}")
    except ConsoleError as exc:
        text = t(exc.message_key, min=options.min_password_length, **exc.params)
        print(t("cli.error", message=text), file=sys.stderr)
        return 2
    finally:
        await engine.dispose()
    return 0
