"""Side by side: Janus Gateway's VideoRoom and tiepdan's media node on the same workload (issue #13).

Run: ``.venv/bin/python bench/peer.py`` (4 and 9 venues, full mesh and the 9-venue layout, 2 rounds: about
15 minutes); ``--venues 4,9,16`` (mesh sizes); ``--layout 9,16`` (layout sizes); ``--quick`` (one round,
4 venues, short windows: a smoke run);
``--probe`` adds, per case and round, a run of our node with the tail probe of ``bench/_probe.py``.
Needs Debian's Janus (``apt-get install janus``, 1.1.2 measured): this script installs nothing.

**Servers**, one after the other inside each round (the order alternates between rounds), each on the
same bots:

- ``janus``: ``/usr/bin/janus -F <temp dir>``, config written by :func:`janus_config`: the VideoRoom plugin
  and the HTTP transport only (127.0.0.1, a free port), everything else default; ICE on the machine's own
  address (:func:`local_address`: Janus never offers 127.0.0.1; traffic to one's own address goes
  through the loopback device, nothing leaves the machine), which every peer of both servers uses;
- ``janus-loops``: the same with ``event_loops = <core count>`` (a fixed pool of loops instead of one
  thread per handle);
- ``ours``: ``sfu.Worker`` in its own process, driven over JSON lines, with **recording on for every
  venue**: a ``recorder.Recorder`` (what the room server builds; ``encrypt_all`` on, as the product) opens
  the session and ``add_publication`` taps each published track, writing WebM under a temp dir; once
  started it freezes its start-up heap out of the garbage collector, as the app does
  (``tiepdan.gc_policy``);
- ``ours-unfrozen`` (only when listed in ``--servers``): the same without that freeze
  (``TIEPDAN_GC_FREEZE=false``), for the with/without ratio;
- ``ours-frames`` (only when listed): ``ours`` with frame-level forwarding instead of the default
  RTP-level forwarding (``Options.rtp_forwarding=False``, ``TIEPDAN_MEDIA_RTP_FORWARDING=false``);
- ``ours-bigbuf`` (only when listed): ``ours`` with 2 MiB receive buffers on its media sockets
  (``Options.receive_buffer_bytes``) instead of the 256 KiB aioice sets;
- ``ours-norec`` (only when listed): ``ours`` recording nothing, as Janus here (what recording costs);
- ``ours-python`` (only when listed): ``ours`` without the per-packet path in C (``sfu._native``;
  ``Options.native_forwarding=False``, ``TIEPDAN_MEDIA_NATIVE_FORWARDING=false``);
- ``ours-queued`` (only when listed): ``ours`` with aiortc's own receive queue instead of the direct
  receive (``Options.direct_receive=False``);
- ``ours-system`` (only when listed): ``ours`` on the operating system's own interpreter
  (``/usr/bin/python3.11``: Debian's build, with profile-guided and link-time optimisation), the same
  packages; ``ours`` runs on the interpreter that runs this script (here pyenv's build, without them);
- ``ours-remb-every`` (only when listed): ``ours`` sending every REMB aiortc's estimator asks for
  (``Options.remb_interval_ms=0``, ``TIEPDAN_MEDIA_REMB_INTERVAL_MS=0``) instead of throttling them as
  libwebrtc does (the default, 200 ms);
- ``ours-asyncio`` (only when listed): ``ours`` on asyncio's own event loop. ``ours`` runs on uvloop, the
  loop the app runs on (``uvicorn[standard]``); until 2026-12-06 (results ``…06t`` and earlier) ``ours``
  was asyncio's loop and ``ours-uvloop`` this one.

**Workload** (``bench/sfu.py``'s pre-encoded clips and ``pack()`` publishers): N venues, each a 720p30
VP8 camera (~1.5 Mbit/s) and Opus; *mesh*: every venue receives every other venue's camera and
microphone; *layout* (9 venues, or ``--layout``): each venue also publishes a 320x180 15 fps track and receives 2 others
in 720p, 6 in 180p and 8 microphones. Janus has no layout mode without simulcast: its equivalent here is
the same two separate video tracks per publisher (Janus 1.x multistream), each subscriber subscribing to
the same (feed, mid) pairs our node's slots carry, so both servers forward exactly the same streams.

**Measures**, same for every server: server CPU from ``/proc/<pid>/stat`` (utime + stime, all threads; stime
alone in brackets: the kernel's share) over the window, in cores; packets/s received by all subscribers;
frames per second per (publisher, subscriber) pair; end-to-end frame delay from the publisher's socket send of
a frame's last packet to the subscriber's arrival of that packet (frame identity: the tag of
``bench/_peerbots.py``), on one clock (``time.monotonic``, system-wide); the same for every audio packet.
Also: the server's threads' time runnable but waiting for a CPU (``/proc/<pid>/task/*/schedstat``), the bots'
CPU (one publisher process, ``--sub-procs`` subscriber processes), and UDP datagrams the kernel dropped on
full receive buffers (``RcvbufErrors`` of ``/proc/net/snmp``: machine-wide, so other programs' drops count
too). The load average is printed with every figure: these are busy-machine numbers unless it says otherwise.

``--perf DIR`` samples every server with Linux perf (``apt-get install linux-perf``) and prints its CPU by
library: the interpreter, the kernel, libsrtp + OpenSSL, libc... ``--py-spy DIR`` samples our node's Python
stacks. ``--probe`` (see ``bench/_probe.py``) measures event-loop lag, GC pauses, stalls and per-stage times
inside our node; ``--gc-freeze`` makes that probed run call ``gc.collect(); gc.freeze()`` before its
window (an experiment of the bench only). Results go to ``bench/results/peer-<date>.md`` (``--output``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# run as a script, bench/ is sys.path[0]: its queue.py would shadow the standard library's queue, and its
# sfu.py our sfu package. So bench/ leaves sys.path and the project root comes first (bench is then a
# namespace package: bench._peerbots, bench._probe).
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() not in (BENCH, ROOT)]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sysconfig  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from array import array  # noqa: E402
from typing import Any  # noqa: E402

from bench._common import clips, rpc_sync, serve_lines  # noqa: E402
from bench._peerbots import (  # noqa: E402
    TRACKS,
    bots_main,
    layout_plan,
    mesh_plan,
    quantiles,
    source_of,
    split_key,
)

JANUS = Path("/usr/bin/janus")
JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")
SERVERS = ("janus", "janus-loops", "ours")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- Janus ------------------------------------------------------------------------------------------------


def janus_config(directory: Path, http_port: int, event_loops: int | None) -> None:
    """Write a minimal Janus config into ``directory``: VideoRoom + HTTP transport, loopback only."""
    keep_plugins = {"libjanus_videoroom.so"}
    keep_transports = {"libjanus_http.so"}

    def others(kind: str, keep: set[str]) -> str:
        folder = JANUS_LIB / kind
        names = sorted(p.name for p in folder.glob("*.so")) if folder.is_dir() else []
        return ",".join(n for n in names if n not in keep)

    loops = f"\tevent_loops = {event_loops}\n" if event_loops else ""
    (directory / "janus.jcfg").write_text(
        "general: {\n"
        f'\tconfigs_folder = "{directory}"\n'
        f'\tplugins_folder = "{JANUS_LIB}/plugins"\n'
        f'\ttransports_folder = "{JANUS_LIB}/transports"\n'
        f'\tevents_folder = "{JANUS_LIB}/events"\n'
        f'\tloggers_folder = "{JANUS_LIB}/loggers"\n'
        "\tdebug_level = 4\n"
        "\tsession_timeout = 120\n"
        f"{loops}"
        "}\n"
        f'nat: {{\n\tice_enforce_list = "{local_address()}"\n}}\n'
        f'plugins: {{\n\tdisable = "{others("plugins", keep_plugins)}"\n}}\n'
        f'transports: {{\n\tdisable = "{others("transports", keep_transports)}"\n}}\n'
        f'loggers: {{\n\tdisable = "{others("loggers", set())}"\n}}\n'
        "events: {\n\tbroadcast = false\n}\n"
    )
    (directory / "janus.plugin.videoroom.jcfg").write_text("general: {\n}\n")
    (directory / "janus.transport.http.jcfg").write_text(
        "general: {\n\tjson = \"plain\"\n\tbase_path = \"/janus\"\n\thttp = true\n"
        f"\tport = {http_port}\n\tip = \"127.0.0.1\"\n\thttps = false\n}}\n"
        "admin: {\n\tadmin_http = false\n\tadmin_https = false\n}\n"
    )


def local_address() -> str:
    """The IPv4 address Janus announces (its "local IP": the default route's interface; no packet is sent).

    Janus (libnice) never offers 127.0.0.1 and ignores ``ice_enforce_list = "lo"``, and it does not answer
    ICE checks from 127.0.0.1; so every peer of both servers uses this address. Traffic to one's own
    address is routed through the loopback device (``ip route get`` says ``local ... dev lo``): nothing
    leaves the machine.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("203.0.113.1", 9))  # TEST-NET-3; connect() on UDP sends nothing
        return str(s.getsockname()[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JanusProcess:
    def __init__(self, event_loops: int | None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tiepdan-janus-"))
        self.port = free_port()
        janus_config(self.dir, self.port, event_loops)
        self.log = (self.dir / "janus.log").open("wb")
        self.proc = subprocess.Popen([str(JANUS), "-F", str(self.dir), "-o"], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/janus/info", timeout=2) as r:  # noqa: S310
                    if json.loads(r.read()).get("janus") == "server_info":
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"janus did not start: {(self.dir / 'janus.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()
        if os.environ.get("PEER_JANUS_LOG"):
            shutil.copy(self.dir / "janus.log", os.environ["PEER_JANUS_LOG"])
        shutil.rmtree(self.dir, ignore_errors=True)


# --- our media node ---------------------------------------------------------------------------------------


#: our node's variants: server name -> what differs from ``ours`` (the product's defaults, recording on):
#: ``freeze`` the start-up heap, ``rtp`` forwarding, ``bigbuf`` (2 MiB receive buffers), ``record``
#: links settle this long before the node refreezes their graph (the product waits 10 s,
#: TIEPDAN_GC_REFREEZE_SETTLE_S): shorter here, so that the refreeze's one pause falls in the warm-up
REFREEZE_SETTLE_S = 2.0

OURS: dict[str, dict[str, bool]] = {"ours": {}, "ours-unfrozen": {"freeze": False}, "ours-frames": {"rtp": False},
                                    "ours-queued": {"direct": False}, "ours-python": {"native": False},
                                    "ours-asyncio": {"uvloop": False}, "ours-system": {},
                                    "ours-bigbuf": {"bigbuf": True}, "ours-norec": {"record": False},
                                    "ours-remb-every": {"remb_every": True}}


#: the interpreter of the variant ``ours-system``: the operating system's own build (Debian's python3.11 is
#: built with profile-guided optimisation and link-time optimisation; a pyenv build, as on this machine, is not)
SYSTEM_PYTHON = Path("/usr/bin/python3.11")


def ours_stdio() -> None:
    """:func:`ours_main` in a node started as a plain subprocess (``ours-system``: another interpreter, which
    multiprocessing would hand this one's ``sys.path``); arguments host, slots, probe (0/1), variant; the
    node's port is printed on stdout."""
    host, most, probe, variant = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]

    class Port:
        @staticmethod
        def put(port: int) -> None:
            print(port, flush=True)

    ours_main(Port, host, (most, most), probe, variant)


class _Subprocess:
    """A node started by :func:`start_system_node`, with what :func:`run` uses of a ``multiprocessing.Process``."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.pid = proc.pid

    def join(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def is_alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def start_system_node(host: str, most: int, probe: bool, variant: str) -> tuple[_Subprocess, int]:
    """Our node on :data:`SYSTEM_PYTHON` with this interpreter's packages (the same releases of everything,
    ``sfu._native`` included: it does not link libpython); its port."""
    if not SYSTEM_PYTHON.exists():
        raise RuntimeError(f"{SYSTEM_PYTHON} is not there (ours-system)")
    paths = sysconfig.get_paths()
    path = os.pathsep.join(dict.fromkeys([str(ROOT), paths["purelib"], paths["platlib"]]))  # (often one and the same)
    proc = subprocess.Popen([str(SYSTEM_PYTHON), "-c", "from bench.peer import ours_stdio; ours_stdio()", host,
                             str(most), "1" if probe else "0", variant], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=path, PYTHONNOUSERSITE="1"))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"the node on {SYSTEM_PYTHON} did not start (printed {line!r})")
    return _Subprocess(proc), int(line)


def ours_main(port_q: Any, host: str, slots: tuple[int, int], probe: bool, variant: str = "ours") -> None:
    options = dict(OURS[variant])
    if options.pop("uvloop", True):  # the loop the app runs on (uvicorn[standard])
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_ours(port_q, host, slots, probe, variant_name=variant, **options))
        return
    asyncio.run(_ours(port_q, host, slots, probe, variant_name=variant, **options))


async def _ours(port_q: Any, host: str, slots: tuple[int, int], with_probe: bool, variant_name: str = "ours",
                freeze: bool = True,
                rtp: bool = True, bigbuf: bool = False, record: bool = True, direct: bool = True,
                native: bool = True, remb_every: bool = False) -> None:
    from evidence import Keyring
    from recorder import RecorderOptions
    from recorder.model import ManifestRef, RecorderAlarm, SegmentReport
    from recorder.recorder import Recorder
    from sfu import Options, Worker, hooks

    hooks.announce_host_addresses((host,))
    probe: Any = None
    if with_probe:
        from bench._probe import Probe

        probe = Probe()
    done = asyncio.Event()
    worker = Worker(Options(connect_timeout=60, audio_level_interval=None, video_slots=max(8, slots[0]),
                            audio_slots=max(8, slots[1]), rtp_forwarding=rtp,
                            receive_buffer_bytes=2 * 1024 * 1024 if bigbuf else None, direct_receive=direct,
                            native_forwarding=native, remb_interval_ms=0 if remb_every else 200))
    await worker.start()
    if probe is not None:  # after the start-up self-test, which would find aiortc's methods patched
        probe.install()
    refreezer: Any = None
    refreezing: asyncio.Task[None] | None = None
    if freeze:  # as the app does once started (tiepdan.gc_policy, TIEPDAN_GC_FREEZE), the links' graph too
        import sfu
        from tiepdan.gc_policy import Refreezer, freeze_startup_heap

        freeze_startup_heap()
        refreezer = Refreezer(sfu.link_changes, settle=REFREEZE_SETTLE_S)
        refreezing = asyncio.create_task(refreezer.run())
    room = worker.create_room("bench")
    tmp = Path(tempfile.mkdtemp(prefix="tiepdan-peer-rec-"))
    alarms: list[str] = []

    async def closed(report: SegmentReport, ref: ManifestRef) -> None:
        pass

    async def alarm(a: RecorderAlarm) -> None:
        alarms.append(a.code)

    recorder = Recorder(RecorderOptions(root=tmp, min_free_bytes=64 * 1024 * 1024, encrypt_all=True),
                        Keyring.generate(dev=True), on_segment_closed=closed, on_alarm=alarm)
    await recorder.start()
    await recorder.open_session("bench", {})

    def member(pid: str) -> Any:
        return room.participant(pid) if any(x.id == pid for x in room.participants) else room.join(pid)

    async def op(req: dict[str, Any]) -> dict[str, Any]:
        kind = req["op"]
        if kind == "quit":
            done.set()
            return {}
        if kind == "publish":
            p = member(req["id"])
            sdp = await p.publish_offer(req["sdp"], names=req.get("names"))
            for pub in p.publications if record else ():
                await recorder.add_publication("bench", req["id"], pub)
            return {"sdp": sdp}
        if kind == "subscribe":
            p = member(req["id"])
            return {"sdp": await p.subscriber_offer(req["video"], req["audio"])}
        if kind == "answer":
            await room.participant(req["id"]).apply_answer(req["sdp"])
            return {}
        if kind == "source":
            p = room.participant(req["id"])
            slot = (p.video_slots if req["kind"] == "video" else p.audio_slots)[req["slot"]]
            slot.set_source(room.publication(req["pub"]))
            if probe is not None:
                sender = slot._sender
                probe.bind(sender.track, sender.transport, req["id"])
                probe.bind_slot(slot, req["id"])
            return {}
        if kind == "gc_freeze":  # an experiment of the bench (--gc-freeze), not what the product does
            import gc

            gc.collect()
            gc.freeze()
            return {"frozen": gc.get_freeze_count()}
        if kind == "probe_start":
            if probe is not None:
                probe.start()
            return {}
        if kind == "probe_stop":
            return {"probe": probe.stop() if probe is not None else None}
        if kind == "recording":
            st = recorder.status()
            if refreezer is not None:  # what the links' refreezes cost (printed, not tabled)
                print(f"[{variant_name}] refreezes: " + ", ".join(
                    f"{r.frozen} objects, {r.collected} freed, {r.seconds * 1000:.0f} ms" for r in refreezer.refreezes),
                    file=sys.stderr, flush=True)
            remb = [0, 0]
            for p in room.participants:
                for pub in p.publications:
                    pub_stats = await pub.stats()
                    remb[0] += pub_stats.remb_sent
                    remb[1] += pub_stats.remb_held
            print(f"[{variant_name}] REMB since the node started: {remb[0]} sent, {remb[1]} held back by the "
                  "throttle", file=sys.stderr, flush=True)
            return {"bytes": st.bytes_written, "dropped": st.frames_dropped, "alarms": alarms}
        raise ValueError(kind)

    server = await serve_lines(op)
    port_q.put(server.sockets[0].getsockname()[1])
    await asyncio.wait_for(done.wait(), 900)
    server.close()
    if probe is not None:
        await probe.close()
    if refreezing is not None:
        refreezing.cancel()
    await recorder.close()
    await worker.close()
    shutil.rmtree(tmp, ignore_errors=True)


def perf_by_library(path: Path) -> list[tuple[str, float]]:
    """(library, share of the server's CPU samples) from a ``perf record`` file, largest first: where the CPU
    goes in machine terms (the interpreter, the kernel, libsrtp and OpenSSL, libc, the event loop...)."""
    try:
        report = subprocess.run(["perf", "report", "-i", str(path), "--sort", "dso", "--stdio"],
                                capture_output=True, text=True, timeout=300, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_perf_report(report)


def parse_perf_report(report: str) -> list[tuple[str, float]]:
    """(library, share) of each line of ``perf report --sort dso --stdio`` (comments and blanks skipped)."""
    shares = []
    for line in report.splitlines():
        percent, _, name = line.strip().partition("%")
        if not line.startswith("#") and name.strip():
            try:
                shares.append((name.strip(), float(percent) / 100))
            except ValueError:
                continue
    return shares


# --- plans ------------------------------------------------------------------------------------------------


def plan(case: str, venues: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A venue publishes and subscribes (two connections, as in the product), under one participant id."""
    return (layout_plan if case == "layout" else mesh_plan)(venues)


# --- one run ----------------------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of ``pid``."""
    return sum(proc_times(pid))


def proc_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds, all threads, of ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_wait(pid: int) -> float:
    """Seconds the threads of ``pid`` have spent runnable but waiting for a CPU (``/proc/<pid>/task/*/schedstat``)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped because a socket's receive buffer was full (system-wide, since boot)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    return int(dict(zip(lines[0], lines[1], strict=True)).get("RcvbufErrors", 0))


def udp_drops_by_pid(pids: list[int]) -> list[int]:
    """UDP datagrams dropped on arrival (``drops`` of ``/proc/net/udp``) at the sockets each of ``pids`` holds."""
    drops: dict[str, int] = {}
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) >= 13:
                drops[cols[9]] = drops.get(cols[9], 0) + int(cols[12])
    out = []
    for pid in pids:
        total = 0
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            fds = []
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                total += drops.get(target[8:-1], 0)
        out.append(total)
    return out


def run(server: str, case: str, venues: int, warmup: float, window: float, probe: bool = False,
        gc_freeze: bool = False, sub_procs: int = 2, profile: Path | None = None,
        perf: Path | None = None) -> dict[str, Any]:
    """One server on one workload; subscribers are spread over ``sub_procs`` bot processes (a single Python
    process receiving a 9-venue mesh, ~15k packets/s, is itself near saturation on two cores)."""
    pub_plan, sub_plan = plan(case, venues)
    subs = sub_plan["subscribers"]
    parts = [dict(sub_plan, subscribers=subs[i::sub_procs]) for i in range(sub_procs) if subs[i::sub_procs]]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    events = {name: ctx.Event() for name in ("arm", "start", "stop", "quit")}
    janus: JanusProcess | None = None
    port = 0
    node: Any = None
    procs: list[Any] = []
    host = local_address()
    try:
        if server in OURS:
            port_q = ctx.Queue()
            most = max(len(s["video"]) for s in sub_plan["subscribers"])
            if server == "ours-system":
                node, port = start_system_node(host, most, probe, server)
                pid = node.pid
            else:
                node = ctx.Process(target=ours_main, args=(port_q, host, (most, most), probe, server),
                                   daemon=True)
                node.start()
                port, pid = port_q.get(timeout=90), node.pid
        else:
            janus = JanusProcess(os.cpu_count() if server == "janus-loops" else None)
            port, pid = janus.port, janus.pid
        kind = "ours" if server in OURS else "janus"
        for role, p in [("pub", pub_plan)] + [("sub", part) for part in parts]:
            proc = ctx.Process(target=bots_main, args=(role, kind, port, host, p, events, out), daemon=True)
            proc.start()
            procs.append(proc)
            msg = out.get(timeout=240)
            assert msg[:2] == ("ready", role), msg
        time.sleep(warmup)
        events["arm"].set()
        time.sleep(0.5)
        if gc_freeze:
            rpc_sync(port, op="gc_freeze")
            time.sleep(0.5)
        if probe:
            rpc_sync(port, op="probe_start")
        load0 = os.getloadavg()
        (u0, k0), q0, w0 = proc_times(pid), proc_wait(pid), time.monotonic()
        c0 = u0 + k0
        b0 = [proc_cpu(p.pid) for p in procs]
        d0 = udp_rcvbuf_errors()
        s0 = udp_drops_by_pid([pid] + [p.pid for p in procs])
        events["start"].set()
        spy = None
        if profile is not None and server in OURS:
            profile.mkdir(parents=True, exist_ok=True)
            out_file = profile / f"{server}-{case}-{venues}-{time.strftime('%H%M%S')}.txt"
            spy_bin = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            spy = subprocess.Popen([spy_bin, "record", "--pid", str(pid), "--rate", "250",
                                    "--duration", str(int(window)), "--format", "raw", "--nonblocking",
                                    "--output", str(out_file)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        perf_run: tuple[subprocess.Popen[bytes], Path] | None = None
        if perf is not None:
            perf.mkdir(parents=True, exist_ok=True)
            perf_file = perf / f"{server}-{case}-{venues}-{time.strftime('%H%M%S')}.perf"
            perf_run = (subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "999", "--pid", str(pid),
                                          "-o", str(perf_file), "--", "sleep", str(window)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), perf_file)
        time.sleep(window)
        events["stop"].set()
        if spy is not None:
            spy.wait(timeout=60)
        perf_shares: list[tuple[str, float]] | None = None
        if perf_run is not None:
            perf_run[0].wait(timeout=120)
            perf_shares = perf_by_library(perf_run[1])
        (u1, k1), q1, w1 = proc_times(pid), proc_wait(pid), time.monotonic()
        c1 = u1 + k1
        b1 = [proc_cpu(p.pid) for p in procs]
        d1 = udp_rcvbuf_errors()
        s1 = udp_drops_by_pid([pid] + [p.pid for p in procs])
        load1 = os.getloadavg()
        results: dict[str, Any] = {"sub": {"subs": {}, "pps": 0.0}}
        for _ in procs:
            _, role, result = out.get(timeout=120)
            if role == "pub":
                results["pub"] = result
            else:
                results["sub"]["subs"].update(result["subs"])
                results["sub"]["pps"] += result["pps"]
        probed = rpc_sync(port, op="probe_stop")["probe"] if probe else None
        recording = rpc_sync(port, op="recording") if server in OURS else None
    finally:
        for evt in events.values():
            evt.set()
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
        if node is not None and port:
            try:
                rpc_sync(port, op="quit")
            except (OSError, RuntimeError):
                pass
            node.join(timeout=60)
            if node.is_alive():
                node.kill()
        if janus is not None:
            janus.close()
    r = analyse(results, sub_plan, w1 - w0)
    r.update(server=server, case=case, venues=venues, cores=(c1 - c0) / (w1 - w0), window=w1 - w0,
             cores_sys=(k1 - k0) / (w1 - w0),
             cpu_wait=(q1 - q0) / (w1 - w0), rcvbuf_drops=(d1 - d0) / (w1 - w0),
             socket_drops=[(b - a) / (w1 - w0) for a, b in zip(s0, s1, strict=True)],
             bots=[(b1[0] - b0[0]) / (w1 - w0), (sum(b1[1:]) - sum(b0[1:])) / (w1 - w0)],
             sub_procs=len(parts),
             load=[round(load0[0], 2), round(load1[0], 2)])
    if recording is not None:
        r["recording"] = recording
    if perf_shares is not None:
        r["perf"] = perf_shares
    if probed is not None:
        r["probe"] = summarise_probe(probed, results, r)
    return r


def _pairs(buf: tuple[bytes, bytes]) -> dict[int, float]:
    keys, times = array("q"), array("d")
    keys.frombytes(buf[0])
    times.frombytes(buf[1])
    return dict(zip(keys, times, strict=True))


def analyse(results: dict[str, Any], sub_plan: dict[str, Any], window: float) -> dict[str, Any]:
    sends = _pairs(results["pub"]["sends"])
    by_source: dict[tuple[int, int], list[int]] = {}
    for key in sends:
        v, t, _ = split_key(key)
        by_source.setdefault((v, t), []).append(key)
    fps: dict[str, list[float]] = {name: [] for name in TRACKS}
    delays: dict[str, list[float]] = {"video": [], "audio": []}
    delivered = expected = 0
    per_sub: dict[str, dict[int, float]] = {}
    for sub in sub_plan["subscribers"]:
        arrivals = _pairs(results["sub"]["subs"][sub["id"]])
        per_sub[sub["id"]] = arrivals
        for pub in sub["video"] + sub["audio"]:
            source = source_of(pub)
            keys = by_source.get(source, [])
            got = [arrivals[k] - sends[k] for k in keys if k in arrivals]
            expected += len(keys)
            delivered += len(got)
            fps[TRACKS[source[1]]].append(len(got) / window)
            delays["audio" if source[1] == 2 else "video"].extend(got)
    vq = quantiles(delays["video"])
    aq = quantiles(delays["audio"])
    return {
        "pps": results["sub"]["pps"],
        "fps": {k: [min(x), statistics.fmean(x)] for k, x in fps.items() if x},
        "video_ms": [1e3 * x for x in vq], "audio_ms": [1e3 * x for x in aq],
        "video_max_ms": 1e3 * max(delays["video"], default=float("nan")),
        "delivered": delivered / max(expected, 1),
        "_sends": sends, "_arrivals": per_sub,
    }


def summarise_probe(probed: dict[str, Any], results: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
    """Stages of each (frame, subscriber): publisher's send -> the server's loop reads the datagram -> after
    the ICE queue and SRTP (rx) -> assembled and pushed -> handed to the sender -> sent -> subscriber's arrival;
    under RTP-level forwarding: publisher's send -> the packet reaches its publication (``to_rx``) -> the
    subscriber's slot sent it (``fan_out``) -> subscriber's arrival (``network_out``)."""
    sends, arrivals = r["_sends"], r["_arrivals"]
    frame_names = ("to_socket_read", "ice_queue_srtp", "assembly", "queue_to_sender", "pack_and_send",
                   "network_out")
    rtp_names = ("to_rx", "fan_out", "network_out")

    def collect(rows: list[list[Any]], names: tuple[str, ...]) -> tuple[dict[str, dict[str, list[float]]],
                                                                       dict[str, list[tuple[float, list[float]]]]]:
        """Each row ``[subscriber, key, *stage times]``: the stage durations between the publisher's send,
        those times and the subscriber's arrival."""
        stages: dict[str, dict[str, list[float]]] = {"video": {n: [] for n in names},
                                                     "audio": {n: [] for n in names}}
        totals: dict[str, list[tuple[float, list[float]]]] = {"video": [], "audio": []}
        for sub, key, *times in rows:
            points = [sends.get(key), *times, arrivals.get(sub, {}).get(key)]
            if None in points:
                continue
            kind = "audio" if split_key(key)[1] == 2 else "video"
            parts = [b - a for a, b in itertools.pairwise(points)]
            for n, x in zip(names, parts, strict=True):
                stages[kind][n].append(x)
            totals[kind].append((points[-1] - points[0], parts))
        return stages, totals

    stages, totals = collect(probed["stages"], frame_names)
    names: tuple[str, ...] = frame_names
    rtp_stages, rtp_totals = collect(probed.get("rtp_stages", []), rtp_names)
    if any(rtp_totals.values()):  # RTP-level forwarding (the default): its stages instead of frame forwarding's
        stages, totals, names = rtp_stages, rtp_totals, rtp_names
    out: dict[str, Any] = {k: v for k, v in probed.items() if k not in ("stages", "rtp_stages")}
    for kind in ("video", "audio"):
        out[f"{kind}_stages_ms"] = {n: [round(1e3 * x, 2) for x in quantiles(xs, (0.5, 0.99, 0.999))]
                                    for n, xs in stages[kind].items()}
        rows = sorted(totals[kind], key=lambda t: t[0])
        tail = rows[int(0.99 * len(rows)):] if rows else []
        out[f"{kind}_tail_share"] = {  # the slowest 1 %: mean ms per stage
            n: round(1e3 * statistics.fmean(t[1][i] for t in tail), 2) if tail else None
            for i, n in enumerate(names)
        }
        out[f"{kind}_tail_total_ms"] = round(1e3 * statistics.fmean(t[0] for t in tail), 2) if tail else None
        out[f"{kind}_matched"] = len(rows)
    return out


# --- report -----------------------------------------------------------------------------------------------


def fmt_run(r: dict[str, Any]) -> str:
    f = r["fps"]

    def fp(k: str) -> str:
        return f"{f[k][0]:.1f} / {f[k][1]:.1f}" if k in f else "-"

    v, a = r["video_ms"], r["audio_ms"]
    sd = r.get("socket_drops") or [0.0]
    drops = f"server {sd[0]:.0f}, bots {sum(sd[1:]):.0f}"
    return (f"| {r['round']} | {r['label']} | {r['server']} | {r['cores']:.3f} ({r.get('cores_sys', 0):.3f}) | "
            f"{r['cpu_wait']:.2f} | "
            f"{r['bots'][0]:.2f} / {r['bots'][1]:.2f} | "
            f"{r['pps']:.0f} | {fp('high')} | {fp('low')} | {fp('mic')} | "
            f"{v[0]:.1f} / {v[1]:.1f} / {v[2]:.1f} | {a[1]:.1f} | "
            f"{100 * r['delivered']:.2f}% | {r['rcvbuf_drops']:.0f} ({drops}) | "
            f"{r['load'][0]:.2f}→{r['load'][1]:.2f} |")


HEADER = ("| round | case | server | CPU (cores; in the kernel) | waiting for a CPU (cores) | bots CPU pub / sub "
          "| packets/s out "
          "| video fps min/mean (720p) | 180p fps | audio pkts/s min/mean | video delay p50 / p99 / p999 ms "
          "| audio p99 ms | delivered | UDP drops/s (rcvbuf, machine; at the server's / bots' sockets) | load avg |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


def machine(system_python: bool = False) -> str:
    import platform

    import aiortc
    import av

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    out = subprocess.run([str(JANUS), "--version"], capture_output=True, text=True, check=False).stdout
    version = next((line.split(":", 1)[1].strip() for line in out.splitlines() if "version" in line), "?")
    system = ""
    if system_python and SYSTEM_PYTHON.exists():  # the interpreter of ours-system, when it runs
        system = subprocess.run([str(SYSTEM_PYTHON), "-c", "import platform; print(platform.python_version())"],
                                capture_output=True, text=True, check=False).stdout.strip()
        system = f" (ours-system: {SYSTEM_PYTHON} {system})"
    return (f"{os.cpu_count()} vCPU {model}; {platform.platform()}; Python {platform.python_version()}{system}; "
            f"aiortc {aiortc.__version__}, PyAV {av.__version__}; Janus {version}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--window", type=float, default=15.0, help="measurement window, seconds")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, 4 venues mesh, 5 s windows")
    parser.add_argument("--venues", default="4,9", help="mesh sizes (comma separated; 16 is heavy)")
    parser.add_argument("--with-16", action="store_true", help="add the 16-venue mesh")
    parser.add_argument("--no-layout", action="store_true", help="skip the layout mode")
    parser.add_argument("--layout", default="9", help="venues of the layout mode (comma separated: 9,16); each "
                        "receives 2 others in 720p, 6 in 180p and 8 microphones whatever the room's size")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--sub-procs", type=int, default=2, help="subscriber bot processes (default 2)")
    parser.add_argument("--probe", action="store_true", help="add a probed run of our node per case and round")
    parser.add_argument("--gc-freeze", action="store_true",
                        help="experiment: the probed run of our node calls gc.collect(); gc.freeze() before its window")
    parser.add_argument("--py-spy", type=Path, metavar="DIR",
                        help="sample our node with py-spy (pip install py-spy) during each window; collapsed "
                             "stacks into DIR (the sampling costs the node some CPU: not for the figures)")
    parser.add_argument("--perf", type=Path, metavar="DIR",
                        help="sample every server with Linux perf (apt-get install linux-perf; cpu-clock, 999 Hz) "
                             "during each window into DIR, and print each one's CPU by library")
    parser.add_argument("--output", type=Path, help="markdown + raw JSON (default bench/results/peer-<date>.md)")
    args = parser.parse_args()
    if not JANUS.exists():
        sys.exit("janus is not installed (apt-get install janus)")
    if args.perf is not None and shutil.which("perf") is None:
        sys.exit("perf is not installed (apt-get install linux-perf)")
    sizes = [int(x) for x in args.venues.split(",") if x]
    if args.with_16 and 16 not in sizes:
        sizes.append(16)
    cases = [("mesh", n) for n in sizes]
    if not args.no_layout and not args.quick:
        cases += [("layout", int(x)) for x in args.layout.split(",") if x]
    rounds, window, warmup = args.rounds, args.window, args.warmup
    if args.quick:
        rounds, window, warmup, cases = 1, 5.0, 3.0, [("mesh", 4)]
    servers = [s for s in args.servers.split(",") if s]
    clips()  # encode (or load) the clips once, before any timing
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"Machine: {machine('ours-system' in servers)}")
    say(f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; warm-up {warmup:g} s, window {window:g} s, "
        f"{rounds} round(s); {max(1, args.sub_procs)} subscriber bot process(es); "
        f"load average at start {os.getloadavg()[0]:.2f}")
    say()
    say(HEADER)
    runs: list[dict[str, Any]] = []
    for rnd in range(1, rounds + 1):
        order = servers if rnd % 2 else list(reversed(servers))
        for case, n in cases:
            probed = "ours+probe+gcfreeze" if args.gc_freeze else "ours+probe"
            for server in order + ([probed] if args.probe and "ours" in servers else []):
                label = f"{case}-{n}"
                try:
                    r = run("ours" if server == probed else server, case, n, warmup, window,
                            probe=server == probed, gc_freeze=server == probed and args.gc_freeze,
                            sub_procs=max(1, args.sub_procs), profile=args.py_spy, perf=args.perf)
                except Exception as exc:  # one failed run must not lose the others
                    say(f"| {rnd} | {label} | {server} | failed: {type(exc).__name__}: {str(exc)[:200]} |")
                    continue
                r.update(round=rnd, label=label, server=server)
                runs.append(r)
                say(fmt_run(r))
                if "probe" in r:
                    say("<!-- probe: " + json.dumps(r["probe"]) + " -->")
    say()
    say("## Ratios (ours / Janus), per round and median over rounds")
    say()
    say("| case | ours | vs | CPU ratio per round | median | video p99 ratio per round | median |")
    say("|---|---|---|---|---|---|---|")
    for case, n in cases:
        label = f"{case}-{n}"
        for variant, ref in [(v, j) for v in OURS if v in servers for j in ("janus", "janus-loops")]:
            cpu, p99 = [], []
            for rnd in range(1, rounds + 1):
                mine = [r for r in runs if r["label"] == label and r["round"] == rnd and r["server"] == variant]
                theirs = [r for r in runs if r["label"] == label and r["round"] == rnd and r["server"] == ref]
                if mine and theirs:
                    cpu.append(mine[0]["cores"] / max(theirs[0]["cores"], 1e-9))
                    p99.append(mine[0]["video_ms"][1] / max(theirs[0]["video_ms"][1], 1e-9))
            if cpu:
                say(f"| {label} | {variant} | {ref} | {', '.join(f'{x:.2f}' for x in cpu)} | "
                    f"{statistics.median(cpu):.2f} | "
                    f"{', '.join(f'{x:.1f}' for x in p99)} | {statistics.median(p99):.1f} |")
    profiled = [r for r in runs if r.get("perf")]
    if profiled:
        say()
        say("## Where each server's CPU goes (perf, share of its samples by library)")
        say()
        for r in profiled:
            say(f"- {r['label']}, round {r['round']}, {r['server']} ({r['cores']:.3f} cores): "
                + ", ".join(f"{name} {share * 100:.1f} %" for name, share in r["perf"][:8]))
    probes = [r for r in runs if "probe" in r]
    if probes:
        say()
        say("## Probe of our node (where the tail comes from)")
        for r in probes:
            p = r["probe"]
            say()
            say(f"### {r['label']}, round {r['round']} (probed run: CPU {r['cores']:.3f}, video p99 "
                f"{r['video_ms'][1]:.1f} ms, load {r['load'][0]:.2f}→{r['load'][1]:.2f})")
            lag = p["loop_lag_ms"]
            say(f"- event-loop lag (5 ms timer): p50 {lag['p50']:.2f}, p99 {lag['p99']:.2f}, p999 {lag['p999']:.2f}, "
                f"max {lag['max']:.1f} ms; {lag['over_10ms']} wake-ups > 10 ms, {lag['over_50ms']} > 50 ms "
                f"of {lag['samples']}")
            for gen, g in p["gc"].items():
                say(f"- GC gen {gen}: {g['count']} collections, {g['total_ms']:.1f} ms in all, "
                    f"max {g['max_ms']:.2f} ms, p99 {g['p99_ms']:.2f} ms")
            st = p["stalls"]
            say(f"- loop stalls > 20 ms: {st['samples']} samples every 2 ms; innermost frames: "
                + ", ".join(f"{k} {v}" for k, v in st["inner"][:6]))
            say("  - innermost frame in sfu/recorder/aiortc/aioice: "
                + ", ".join(f"{k} {v}" for k, v in st["ours"][:8]))
            for kind in ("video", "audio"):
                if not p[f"{kind}_matched"]:
                    say(f"- {kind} stages: none timed")
                    continue
                say(f"- {kind} stages p50/p99/p999 ms ({p[f'{kind}_matched']} frame deliveries): "
                    + "; ".join(f"{k} {v[0]}/{v[1]}/{v[2]}" for k, v in p[f"{kind}_stages_ms"].items()))
                say(f"  - slowest 1 % (mean {p[f'{kind}_tail_total_ms']} ms): "
                    + "; ".join(f"{k} {v}" for k, v in p[f"{kind}_tail_share"].items()))
    path = args.output or ROOT / "bench" / "results" / f"peer-{time.strftime('%Y-%m-%d')}.md"
    raw = [{k: v for k, v in r.items() if not k.startswith("_")} for r in runs]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Janus VideoRoom vs tiepdan media node (`bench/peer.py`)\n\n" + "\n".join(lines)
                    + "\n\nRaw figures (JSON):\n\n```json\n" + json.dumps(raw, indent=1) + "\n```\n")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
