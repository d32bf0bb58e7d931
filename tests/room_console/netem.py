"""Packet loss on one UDP flow of this machine, with nftables (tests only).

A browser test that wants a lossy media leg adds a table of its own (``inet tiepdan_test_<hex>``)
whose input chain drops a share of the UDP packets of one flow, identified by its source and
destination ports (on loopback both ends are local, so the ports name the flow and its direction).
Dropped on the way in, not out: a packet dropped in the output hook fails the sender's ``sendto``
with EPERM, which a lossy network never does.

    with udp_loss(UdpFlow(source_port=51234, destination_port=40211), percent=5) as table:
        ...
        seen, dropped = table.counters()

The table is deleted when the block ends, also on an error. Needs ``nft`` (Debian package
``nftables``, installed by ``scripts/ensure-system-packages.sh``) and root; :func:`nft_unavailable`
says why it cannot be used here.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["UdpFlow", "LossTable", "loss_ruleset", "nft_unavailable", "udp_loss", "new_table_name"]

_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_NFT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class UdpFlow:
    """One direction of a UDP flow: packets from ``source_port`` to ``destination_port``."""

    source_port: int
    destination_port: int

    def __post_init__(self) -> None:
        for name in ("source_port", "destination_port"):
            port = getattr(self, name)
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise ValueError(f"{name} must be a port number 1-65535, not {port!r}")


def new_table_name() -> str:
    """A table name of its own for one use: ``tiepdan_test_<8 hex>``."""
    return f"tiepdan_test_{secrets.token_hex(4)}"


def loss_ruleset(table: str, flow: UdpFlow, percent: int) -> str:
    """The nft script of ``table``: count the flow's packets, drop ``percent`` % of them at random.

    Raises:
        ValueError: a table name nft would refuse, or a share outside 1-99 %.
    """
    if not _TABLE_NAME.fullmatch(table):
        raise ValueError(f"table name must be a-z, 0-9 or '_', starting with a letter, at most 32: {table!r}")
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 99:
        raise ValueError(f"loss must be a whole percentage 1-99, not {percent!r}")
    match = f"meta l4proto udp udp sport {flow.source_port} udp dport {flow.destination_port}"
    return (
        f"table inet {table} {{\n"
        "  chain input {\n"
        "    type filter hook input priority 0; policy accept;\n"
        f'    {match} counter comment "seen"\n'
        f'    {match} numgen random mod 100 < {percent} counter drop comment "dropped"\n'
        "  }\n"
        "}\n"
    )


def _nft(*args: str, script: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nft", *args], input=script, capture_output=True, text=True, timeout=_NFT_TIMEOUT_S,
                          check=False)


def nft_unavailable() -> str | None:
    """Why nftables cannot be used by this process (None: it can)."""
    if shutil.which("nft") is None:
        return "nft is not installed (Debian package nftables; scripts/ensure-system-packages.sh installs it)"
    if os.geteuid() != 0:
        return f"nft needs root (the tests run as uid {os.geteuid()})"
    try:
        listed = _nft("list", "tables")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"nft could not run: {exc}"
    if listed.returncode != 0:
        return f"nft list tables failed: {listed.stderr.strip() or listed.returncode}"
    return None


@dataclass(frozen=True)
class LossTable:
    """An nft table made by :func:`udp_loss`."""

    name: str
    flow: UdpFlow
    percent: int

    def counters(self) -> tuple[int, int]:
        """(packets of the flow seen, packets dropped) since the table was added."""
        listed = _nft("-j", "list", "table", "inet", self.name)
        if listed.returncode != 0:
            raise RuntimeError(f"nft list table {self.name} failed: {listed.stderr.strip()}")
        found: dict[str, int] = {}
        for item in json.loads(listed.stdout).get("nftables", []):
            rule: dict[str, Any] | None = item.get("rule")
            if rule is None:
                continue
            for expr in rule.get("expr", []):
                if isinstance(expr, dict) and "counter" in expr:
                    found[str(rule.get("comment"))] = int(expr["counter"]["packets"])
        return found.get("seen", 0), found.get("dropped", 0)


@contextmanager
def udp_loss(flow: UdpFlow, percent: int, *, table: str | None = None) -> Iterator[LossTable]:
    """Drop ``percent`` % of ``flow``'s packets while the block runs (see the module docstring).

    Raises:
        ValueError: see :func:`loss_ruleset`.
        RuntimeError: nft refused the table (its message is given).
    """
    name = table or new_table_name()
    script = loss_ruleset(name, flow, percent)
    added = _nft("-f", "-", script=script)
    if added.returncode != 0:
        raise RuntimeError(f"nft could not add table inet {name}: {added.stderr.strip()}")
    try:
        yield LossTable(name, flow, percent)
    finally:
        deleted = _nft("delete", "table", "inet", name)
        if deleted.returncode != 0 and name in _nft("list", "tables").stdout.split():
            raise RuntimeError(f"nft could not delete table inet {name}: {deleted.stderr.strip()}")
