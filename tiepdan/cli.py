"""The ``tiepdan`` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from evidence import Keyring
from signaling.grants import Role

from .settings import Settings

__all__ = ["main"]


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from .app import create_app
    from .logs import configure_logging
    from .server import Server
    from .websocket_protocol import WebSocketProtocol

    overrides = {"process_role": args.role}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    settings = settings.model_copy(update=overrides)
    configure_logging(settings.log_level, json_output=settings.log_json)
    if args.seed_if_empty:
        asyncio.run(_seed(settings, only_if_empty=True, cases=300))
    app = create_app(settings)
    print(f"tiepdan: bảng điều khiển tại http://{settings.host}:{settings.port}/", file=sys.stderr)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, ws=WebSocketProtocol,
                            ws_max_size=settings.ws_max_frame_bytes)
    Server(config, app).run()  # uvicorn's, ending the queue boards' streams first on shutdown
    return 0


async def _seed(settings: Settings, *, only_if_empty: bool, cases: int) -> int:
    from datetime import UTC, datetime

    from complaints.seed import database_is_empty, seed_province
    from schedules import install_sample_venues
    from signaling.grants import Grant

    from .app import load_keyring
    from .db import make_engine, prepare_database

    engine = make_engine(settings.resolved_database_url)
    try:
        await prepare_database(engine)
        async with engine.begin() as conn:  # the sample venues, when the venue table is empty
            venues = await install_sample_venues(conn, actor="service:seed", grants=frozenset({Grant.MANAGE}),
                                                 clock=lambda: datetime.now(UTC))
        if venues:
            print(f"tiepdan: đã tạo {len(venues)} điểm cầu mẫu (tỉnh Bắc Ninh sau sắp xếp)", file=sys.stderr)
        if not await database_is_empty(engine):
            if only_if_empty:
                return 0
            print("tiepdan: cơ sở dữ liệu đã có vụ việc; không tạo dữ liệu mẫu", file=sys.stderr)
            return 1
        print(f"tiepdan: cơ sở dữ liệu trống, đang tạo dữ liệu mẫu ({cases} lượt tiếp)…", file=sys.stderr)
        report = await seed_province(engine, load_keyring(settings), cases_count=cases)
        print(f"tiepdan: đã tạo {report.cases} vụ việc, {report.petitioners} công dân "
              f"({report.sealed} hồ sơ tố cáo được niêm phong), {report.directives} ý kiến chỉ đạo", file=sys.stderr)
        return 0
    finally:
        await engine.dispose()


def _cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    if settings.mode == "production":
        print("tiepdan: không tạo dữ liệu mẫu ở chế độ production", file=sys.stderr)
        return 1
    return asyncio.run(_seed(settings, only_if_empty=False, cases=args.cases))


def _cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from signaling.tokens import TokenIssuer

    from .app import load_keyring

    issuer = TokenIssuer(load_keyring(settings), settings.token_options)
    token = issuer.issue(
        args.sub or f"service:{args.role}",
        roles=[Role(args.role)],
        room=args.room,
        venue=args.venue,
        unit=args.unit,
        name=args.name,
        ttl_s=args.ttl,
        audience=args.audience,
    )
    print(token)
    if args.role == Role.CHAIR and args.venue is None and args.audience == "ws":
        print("tiepdan: lưu ý: mã của chủ trì không có --venue thì vào phòng được nhưng không truyền được hình ảnh, "
              "âm thanh; hãy ghi điểm cầu chính của phiên (--venue)", file=sys.stderr)
    return 0


def _cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_rotate_keys(settings))


async def _rotate_keys(settings: Settings) -> int:
    """Rotate the keys and re-seal the sealed identities; the database is found first, so a run from the
    wrong directory rotates nothing."""
    from complaints.vault import rekey_identities

    from .app import load_keyring
    from .cli_database import open_server_database

    engine = await open_server_database(settings)
    try:
        ring = load_keyring(settings) if settings.mode == "dev" else _load_any(settings)
        sig, data = ring.rotate(dev=settings.mode == "dev")
        print(f"khóa ký mới: {sig}; khóa dữ liệu mới: {data}; các khóa cũ được giữ lại để xác minh")
        async with engine.begin() as conn:
            resealed = await rekey_identities(conn, ring)
    finally:
        await engine.dispose()
    print(f"đã niêm phong lại {resealed} hồ sơ danh tính bằng khóa dữ liệu mới")
    return 0


def _cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_verify_audit(settings))


async def _verify_audit(settings: Settings) -> int:
    from complaints.audit import verify_audit_log

    from .cli_database import open_server_database

    engine = await open_server_database(settings)
    try:
        async with engine.connect() as conn:
            bad = await verify_audit_log(conn)
    finally:
        await engine.dispose()
    if bad is None:
        print("nhật ký truy cập toàn vẹn: chuỗi băm khớp đến dòng cuối")
        return 0
    print(f"nhật ký truy cập bị thay đổi: dòng đầu tiên sai là id={bad.record_id} (thứ {bad.index + 1}): {bad.reason}",
          file=sys.stderr)
    return 1


def _load_any(settings: Settings) -> Keyring:
    path = settings.resolved_keyring_path
    if path.exists():
        return Keyring.load(path, passphrase=settings.keyring_passphrase)
    path.parent.mkdir(parents=True, exist_ok=True)
    return Keyring.generate(dev=False, path=path, passphrase=settings.keyring_passphrase)


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from .demo import DemoOptions, run_demo
    from .logs import configure_logging

    configure_logging("WARNING", json_output=settings.log_json)
    options = DemoOptions(headless=args.headless, duration=args.duration, port=args.port, venues=args.venues,
                          rotate_s=args.rotate, lan=args.lan)
    try:
        return asyncio.run(run_demo(settings, options))
    except KeyboardInterrupt:  # Ctrl-C before the demo took over the signal (while rendering or starting)
        return 130


def _cmd_user(args: argparse.Namespace, settings: Settings) -> int:
    from .accounts_cli import run_user_command

    return asyncio.run(run_user_command(args, settings))


def _cmd_cases(args: argparse.Namespace, settings: Settings) -> int:
    from .cases_cli import run_cases_command

    return asyncio.run(run_cases_command(args, settings))


def _cmd_session(args: argparse.Namespace, settings: Settings) -> int:
    from .session_cli import run_session_command

    return asyncio.run(run_session_command(args, settings))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tiepdan", description="Tiếp công dân trực tuyến: máy chủ, mã thông báo, tài khoản, khóa."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="Start the server (console, live room, services) on the settings.")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--role", choices=["all", "media", "control", "worker"], default="all")
    serve.add_argument("--seed-if-empty", action="store_true",
                       help="fill an empty database with sample data first (development)")
    serve.set_defaults(func=_cmd_serve)

    seed = sub.add_parser("seed", help="Fill an empty database with a sample province (development only).")
    seed.add_argument("--cases", type=int, default=300)
    seed.set_defaults(func=_cmd_seed)

    token = sub.add_parser(
        "token", help="Print a signed JWT for a service, bot or test.",
        description="Print a signed JWT (for a service, a bot or a test) valid for one audience: "
                    "'ws' (the default) is accepted by the live room /ws only, 'api' by the REST API /api only. "
                    "For the live room give --room, and --venue for a venue operator (required) and for the "
                    "chair (the session's main venue: a chair token without it joins and moderates but "
                    "cannot publish camera and microphone). See docs/protocol.md, section 1.")
    token.add_argument("--audience", choices=["ws", "api"], default="ws",
                       help="ws: the live room /ws (bots, tests; default); api: the REST API /api (services)")
    token.add_argument("--role", required=True, choices=[r.value for r in Role],
                       help="the role whose grants the token carries (signaling/grants.py)")
    token.add_argument("--room", help="the live room (reception-session id) the token is for; /ws refuses a "
                                      "token for another room or none (wrong_room)")
    token.add_argument("--venue", help="the venue (điểm cầu) the holder acts as: required for --role venue, and "
                                       "for --role chair to publish (the main venue)")
    token.add_argument("--unit", help="the unit (đơn vị) code of the holder, for the REST API")
    token.add_argument("--sub", help="the subject (default service:<role>); a refresh must bring a token of "
                                     "the same subject")
    token.add_argument("--name", help="the display name others see in the room (default none)")
    token.add_argument("--ttl", type=int, default=600, help="lifetime in seconds (default 600, at most 24 hours)")
    token.set_defaults(func=_cmd_token)

    user = sub.add_parser("user", help="Add or disable a console account.")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="Create an account (asks for the password unless --password-stdin).")
    add.add_argument("username")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--role", action="append", required=True, choices=[r.value for r in Role])
    add.add_argument("--unit")
    add.add_argument("--venue")
    add.add_argument("--password-stdin", action="store_true")
    disable = user_sub.add_parser("disable", help="Disable an account and end its sessions.")
    disable.add_argument("username")
    user.set_defaults(func=_cmd_user)

    keys = sub.add_parser("keys", help="Manage the keyring.")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    keys_sub.add_parser(
        "rotate", help="Make new signing and data keys, keep the retired ones, re-seal sealed identities."
    )
    keys.set_defaults(func=_cmd_keys)

    cases = sub.add_parser("cases", help="Maintain the complaint database's cases.")
    cases_sub = cases.add_subparsers(dest="cases_command", required=True)
    seal = cases_sub.add_parser(
        "seal", help="Seal the parties of confidential cases written before the confidentiality rule (idempotent).")
    seal.add_argument("--batch", type=int, default=200, help="cases per transaction (default 200)")
    cases.set_defaults(func=_cmd_cases)

    demo = sub.add_parser("demo", help="Start the server and bots for the main venue and the communes, "
                                       "sending pre-rendered loops, and run a session: a desk bot registers "
                                       "citizens, a chair bot calls them; prints the console link.")
    demo.add_argument("--headless", action="store_true",
                      help="temporary data, run about --duration seconds, exit 0 only if every bot saw every "
                           "other and every page saw each ticket called in the published order")
    demo.add_argument("--duration", type=float, default=20.0, help="seconds (with --headless)")
    demo.add_argument("--port", type=int, help="server port (default: the settings' port; headless: a free one)")
    demo.add_argument("--venues", type=int, default=8, help="communes besides the main venue (1-8)")
    demo.add_argument("--rotate", type=float, help="seconds a called citizen's venue holds the floor "
                                                   "(default: headless, --duration shared; else 15)")
    demo.add_argument("--lan", action="store_true", help="let the SFU offer network addresses, not only loopback")
    demo.set_defaults(func=_cmd_demo)

    session = sub.add_parser("session", help="Open or close a live reception session (its room) on the running "
                                             "server, through the scheduler and the database's outbox.")
    session_sub = session.add_subparsers(dest="session_command", required=True)
    opened = session_sub.add_parser(
        "open", help="Open and start a session at once: a new ad hoc online session today, or one planned earlier.",
        description="Open and start a session at once. A session not planned yet becomes an ad hoc, online session "
                    "today with the --venue venues (or, without --venue, every active venue of the venue table); "
                    "a session planned earlier keeps its own venues.")
    opened.add_argument("room", help="the session id (lowercase letters, digits, dashes)")
    opened.add_argument("--venue", action="append", metavar="ID=NAME",
                        help="a venue of the session, in order (repeat); the first is the main venue; an id not in "
                             "the venue table is added to it")
    opened.add_argument("--main", help="the main venue (the chair's), when not the first --venue")
    opened.add_argument("--cap", action="append", metavar="ID=KBPS",
                        help="cap each video layer of a venue at KBPS for this session (repeat); default the "
                             "venue's cap, else TIEPDAN_MEDIA_VENUE_MAX_KBPS")
    opened.add_argument("--host", metavar="LEADER",
                        help="the leader who hosts a new session (an id, e.g. bi-thu-tinh-uy)")
    opened.add_argument("--track", choices=("party", "state"),
                        help="the bodies that issue a new session's documents: party (Khối Đảng) or state (Khối "
                             "chính quyền); default from --host (a Party office, or no host: party)")
    closed = session_sub.add_parser("close", help="Close a session in progress (its live room).")
    closed.add_argument("room")
    session.set_defaults(func=_cmd_session)

    audit = sub.add_parser("audit", help="Check the audit log.")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_sub.add_parser("verify", help="Walk the hash chain of the audit log and name the first bad row.")
    audit.set_defaults(func=_cmd_audit)

    from .recorder_cli import add_recorder_commands

    add_recorder_commands(sub)
    from .compose_cli import add_compose_command

    add_compose_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from pydantic import ValidationError

    from evidence import EvidenceError
    from signaling.errors import SignalingError

    from .cli_database import DatabaseMissing

    try:
        settings = Settings()
        result: int = args.func(args, settings)
    except ValidationError as exc:
        print(f"tiepdan: cấu hình không hợp lệ (TIEPDAN_*): {exc}", file=sys.stderr)
        return 2
    except DatabaseMissing as exc:
        print(f"tiepdan: {exc}", file=sys.stderr)
        return 1
    except (EvidenceError, SignalingError, ValueError) as exc:
        print(f"tiepdan: lỗi: {exc}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    raise SystemExit(main())
