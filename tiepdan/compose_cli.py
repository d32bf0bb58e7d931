"""``tiepdan compose SESSION_DIR SEGMENT [-o OUT]``: compose a segment's replay (MP4) from the shell.

The segment is read from its signed manifest (``recorder.manifest.load_segment``, with the existing
keyring), every input is checked against it, confidential inputs are decrypted on the fly; a progress bar
runs on the terminal (one line per 10 % when the output is not a terminal). ``--nice`` lowers the
process's priority first (the venue decoders inherit it). Exit codes: 0 written, 1 the replay could not be
composed (the reason in Vietnamese, the cause after it), 2 the keyring or the arguments cannot be used.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from evidence import Keyring, KeyringError

from .settings import Settings

__all__ = ["add_compose_command", "ProgressBar"]


class ProgressBar:
    """``[██████░░░░]  60 %  còn khoảng 1 phút 20 giây`` redrawn in place on a terminal."""

    def __init__(self, stream: TextIO, *, width: int = 30, clock: Any = time.monotonic) -> None:
        self.stream = stream
        self.width = width
        self.clock = clock
        self.started = clock()
        self.tty = stream.isatty()
        self.last_step = -1

    def __call__(self, fraction: float) -> None:
        fraction = min(1.0, max(0.0, fraction))
        if not self.tty:
            step = int(fraction * 10)
            if step == self.last_step:
                return
            self.last_step = step
        filled = int(round(fraction * self.width))
        bar = "█" * filled + "░" * (self.width - filled)
        line = f"[{bar}] {fraction * 100:5.1f} %{self._eta(fraction)}"
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _eta(self, fraction: float) -> str:
        elapsed = self.clock() - self.started
        if fraction <= 0.02 or fraction >= 1.0:
            return ""
        left = int(elapsed * (1 - fraction) / fraction)
        minutes, seconds = divmod(left, 60)
        return f"  còn khoảng {minutes} phút {seconds} giây" if minutes else f"  còn khoảng {seconds} giây"

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _cmd_compose(args: argparse.Namespace, settings: Settings) -> int:
    from recorder import ComposeFailed
    from recorder.compose import ComposeOptions, compose_segment

    session_dir = Path(args.session_dir)
    if not session_dir.is_dir():
        print(f"tiepdan compose: không có thư mục phiên {session_dir}", file=sys.stderr)
        return 2
    out = Path(args.output) if args.output else Path.cwd() / f"{session_dir.name}-{args.segment}.mp4"
    try:
        options = ComposeOptions(fps=args.fps, preset=args.preset)
        keyring = Keyring.load(settings.resolved_keyring_path, passphrase=settings.keyring_passphrase)
    except (KeyringError, OSError, ValueError) as exc:
        print(f"tiepdan compose: không dùng được kho khóa hoặc tham số: {exc}", file=sys.stderr)
        return 2
    if args.nice:
        os.nice(args.nice)
    bar = ProgressBar(sys.stderr)
    print(f"tiepdan compose: đang dựng bản xem lại đoạn ghi hình vụ việc {args.segment} → {out}", file=sys.stderr)
    try:
        result = compose_segment(session_dir, args.segment, out, keyring=keyring, progress=bar, options=options)
    except ComposeFailed as exc:
        bar.done()
        print(f"tiepdan compose: không dựng được bản xem lại: {exc}", file=sys.stderr)
        return 1
    bar.done()
    elapsed = time.monotonic() - bar.started
    print(f"đã ghi {result.path} ({result.duration:.0f} giây, {result.frames} khung hình, "
          f"{result.size / 1e6:.1f} MB) trong {elapsed:.0f} giây")
    return 0


def add_compose_command(sub: Any) -> None:
    compose = sub.add_parser(
        "compose", help="Compose one segment's replay (MP4, H.264 + AAC) from its recorded tracks.",
        description="Compose the replay of one segment: the speaking venue large, the others small, venue names "
                    "and the session time burned in. Reads the segment's signed manifest in SESSION_DIR "
                    "(<recordings>/<session>) and checks every input against it.")
    compose.add_argument("session_dir", help="the session's recording directory (<recordings>/<session>)")
    compose.add_argument("segment", help="the segment id (e.g. c3-<case>)")
    compose.add_argument("-o", "--output", help="the MP4 to write (default ./<session>-<segment>.mp4)")
    compose.add_argument("--nice", type=int, default=10, help="lower the priority by this much first (default 10)")
    compose.add_argument("--fps", type=int, default=15, help="frames per second of the replay (default 15)")
    compose.add_argument("--preset", default="veryfast", help="libx264 preset (default veryfast)")
    compose.set_defaults(func=_cmd_compose)
