"""``tiepdan cases seal``: apply the confidentiality rule to cases written before it was enforced.

Every write seals the parties of a confidential case (:mod:`complaints.confidentiality`); a case that
was confidential by the rule before that, and has not been written since, may still refer to a
petitioner whose identity is in clear in the database (the console already shows it as a handle).
This command seals them all now, in batches of one transaction each, audited as ``system:seal`` and
announced with ``CaseUpdated`` where a case becomes confidential (:func:`complaints.service.seal_pending`).
It can be run again at any time.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from complaints.service import Caller, seal_pending

from .settings import Settings

__all__ = ["run_cases_command", "ACTOR"]

ACTOR = "system:seal"


async def run_cases_command(args: argparse.Namespace, settings: Settings) -> int:
    from .app import load_keyring
    from .cli_database import open_server_database

    engine = await open_server_database(settings)
    try:
        keyring = load_keyring(settings)
        after, cases_done, parties = "", 0, 0
        while True:
            now = datetime.now(UTC)
            async with engine.begin() as conn:
                batch = await seal_pending(conn, keyring, Caller.system(ACTOR, ()), now=now, after=after,
                                           limit=args.batch)
            if not batch:
                break
            after = batch[-1][0]
            cases_done += len(batch)
            parties += sum(sealing.sealed for _case, sealing in batch)
    finally:
        await engine.dispose()
    print(f"đã áp dụng quy tắc bảo mật cho {cases_done} vụ việc; {parties} hồ sơ công dân được niêm phong")
    return 0
