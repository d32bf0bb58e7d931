"""The process that composes one replay, started by the worker role (:mod:`tiepdan.replay_worker`)::

    python -m tiepdan.replay_child --session-dir DIR --segment SEG --out replays/SEG.mp4 --keyring PATH
        [--encrypt] [--nice 10]

It lowers its own priority first (``os.nice``), so composing never competes with the media or the console,
then calls :func:`recorder.compose.compose_segment`. It talks to its parent through one JSON object per line
on stdout: ``{"nice": n}`` once, ``{"progress": p}`` (0…1, at most ~4 a second), and at the end either
``{"done": path, "bytes": n, "seconds": s}`` (exit 0) or ``{"error": code, "detail": text}`` (exit 1). The
keyring's passphrase, if any, comes in ``TIEPDAN_KEYRING_PASSPHRASE``.

The file appears under its final name only when complete (written beside it as ``.<name>.<pid>.part…``,
then renamed). With ``--encrypt`` (a confidential segment, and every segment under
``TIEPDAN_RECORDING_ENCRYPT_ALL``) the plaintext MP4 exists in memory only: it is composed into a private
directory on a RAM file system (``/dev/shm/tiepdan-replay-<pid>-…``), sealed with
:class:`evidence.stream.EncryptingWriter` into ``<out>`` (the ``aad`` is ``out``, the path relative to the
session's directory, as for recorded media) and deleted; without a RAM file system the job fails rather than
write plaintext to disk. A child killed outright leaves its ``.part`` file and its RAM directory behind; both
carry its pid, and the worker removes them (:func:`tiepdan.replay_worker.remove_leftovers`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "RAM_DIR", "RAM_PREFIX"]

RAM_DIR = Path("/dev/shm")
#: The RAM directory of a child is ``RAM_PREFIX<pid>-<random>`` under :data:`RAM_DIR`.
RAM_PREFIX = "tiepdan-replay-"
_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,80}$")
_COPY_BYTES = 1024 * 1024


def _say(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class _Progress:
    """Forwards the composer's progress to the parent, at most every 0.25 s (and always the last value)."""

    def __init__(self) -> None:
        self._last_at = 0.0
        self._last = -1.0

    def __call__(self, value: float) -> None:
        now = time.monotonic()
        value = min(1.0, max(0.0, float(value)))
        if value != self._last and (now - self._last_at >= 0.25 or value >= 1.0):
            self._last_at, self._last = now, value
            _say(progress=round(value, 4))


def _is_ram_fs(path: Path) -> bool:
    """True when ``path`` is on tmpfs/ramfs (Linux: /proc/mounts)."""
    try:
        mounts = Path("/proc/mounts").read_text("utf-8").splitlines()
    except OSError:
        return False
    best, kind = "", ""
    target = str(path.resolve())
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/")) \
                and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    return kind in ("tmpfs", "ramfs")


def _seal(plain: Path, target: Path, keyring: Any, aad: bytes) -> None:
    from evidence.stream import EncryptingWriter

    raw = target.open("wb")
    writer = EncryptingWriter(raw, keyring, aad=aad)
    try:
        with plain.open("rb") as source:
            while block := source.read(_COPY_BYTES):
                writer.write(block)
        writer.close()  # the final chunk, then the file
    except BaseException:
        writer.abort()
        raise
    finally:
        raw.close()


def _compose(args: argparse.Namespace) -> dict[str, Any]:
    from evidence import Keyring
    from recorder.compose import compose_segment

    session_dir = Path(args.session_dir)
    out_rel = str(args.out)
    if not _SAFE.match(args.segment) or not session_dir.is_dir():
        raise ValueError("bad_arguments")
    parts = out_rel.split("/")
    if len(parts) != 2 or parts[0] != "replays" or not _SAFE.match(parts[1]):
        raise ValueError("bad_arguments")
    keyring = Keyring.load(Path(args.keyring), passphrase=os.environ.get("TIEPDAN_KEYRING_PASSPHRASE") or None)
    target = session_dir / out_rel
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    started = time.monotonic()
    progress = _Progress()
    if args.encrypt:
        if not RAM_DIR.is_dir() or not _is_ram_fs(RAM_DIR):
            raise RuntimeError("no_ram_filesystem")
        scratch = Path(tempfile.mkdtemp(prefix=f"{RAM_PREFIX}{os.getpid()}-", dir=RAM_DIR))
        try:
            os.chmod(scratch, 0o700)
            plain = scratch / f"{args.segment}.mp4"
            compose_segment(session_dir, args.segment, plain, keyring=keyring, progress=progress)
            _seal(plain, partial, keyring, out_rel.encode("utf-8"))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    else:
        partial = partial.with_name(partial.name + ".mp4")  # the muxer picks the format by the name
        compose_segment(session_dir, args.segment, partial, keyring=keyring, progress=progress)
    os.replace(partial, target)
    return {"done": out_rel, "bytes": target.stat().st_size, "seconds": round(time.monotonic() - started, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tiepdan.replay_child")
    parser.add_argument("--session-dir", required=True)
    parser.add_argument("--segment", required=True)
    parser.add_argument("--out", required=True, help="replays/<segment>.mp4[.enc], relative to the session dir")
    parser.add_argument("--keyring", required=True)
    parser.add_argument("--encrypt", action="store_true")
    parser.add_argument("--nice", type=int, default=10)
    args = parser.parse_args(argv)
    if args.nice > 0:
        os.nice(args.nice)
    _say(nice=os.nice(0))
    try:
        result = _compose(args)
    except Exception as exc:  # noqa: BLE001 - every failure becomes the job's reason
        code = str(exc) if isinstance(exc, ValueError | RuntimeError) and _SAFE.match(str(exc)) else "compose_failed"
        # the exception's type and text name files and codecs, never a person (recorded media has no names)
        _say(error=code, detail=f"{type(exc).__name__}: {exc}"[:300])
        return 1
    finally:
        for stale in Path(args.session_dir, "replays").glob(f".*.{os.getpid()}.part*"):
            stale.unlink(missing_ok=True)
    _say(**result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
