"""The `mingpian` command: serve, render, lint, settings, errors, migrate.

Every sentence it prints is Chinese (designers read it), with stable codes beside findings;
machine-readable output (`render --to rcs`, `lint --json`) keeps English keys.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from chatbot.flows import FlowStore
from renderer import PROFILES, RenderError, TemplateStore, get_profile
from renderer.fonts import use_font_dir

from .cli_media import missing_glyphs
from .cli_parser import ChineseHelpFormatter, ChineseParser
from .cli_targets import BINARY_TARGETS, TARGETS, TargetInput
from .errors import error_table_markdown
from .lint import CODES, lint_flows, lint_templates
from .settings import SETTINGS, Settings, markdown_table


def _settings(args: argparse.Namespace, **flags: Any) -> Settings:
    """Defaults < --config file (or MINGPIAN_CONFIG) < MINGPIAN_* variables < command-line flags."""
    settings = Settings.from_env(config=args.config, template_dir=args.templates, **flags)
    use_font_dir(settings.assets_dir / "fonts")  # pictures drawn by the CLI use the deployment's fonts
    return settings


def shown_folder(typed: Path | None, actual: Path) -> str:
    """How messages name a folder: as the user typed it (so a path printed opens from their
    current folder), else relative to the current folder when inside it, else in full."""
    if typed is not None:
        return str(typed)
    if actual.is_absolute():
        try:
            return str(actual.relative_to(Path.cwd()))
        except ValueError:
            return str(actual)
    return str(actual)


def _store(settings: Settings, typed: Path | None = None) -> TemplateStore:
    shown = shown_folder(typed, settings.template_dir)
    return TemplateStore(settings.template_dir, reload_interval=0, shown_as=shown)


def cmd_serve(args: argparse.Namespace) -> int:
    # Deferred: the server (aiohttp, every feature, the database drivers) is loaded only to serve,
    # so that `render`, `lint` and `settings` start quickly.
    from aiohttp import web

    from infra.migrations import MigrationError, PendingMigrations

    from .app import create_app, freeze_gc
    from .cli_migrate import preflight
    from .logs import setup_logging
    from .metrics_host import reset_folder
    from .readiness import refuse_unreachable_backends

    settings = _settings(args, host=args.host, port=args.port, workers=args.workers)
    setup_logging(settings.log_format, settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    reset_folder(settings.data_dir / "metrics")  # a new server counts from zero (mingpian/metrics_host.py)
    where = f"http://{settings.host}:{settings.port}"
    try:
        preflight(settings)  # what the stores' open would refuse, refused before anything starts
        refuse_unreachable_backends(settings)  # a database or Redis that does not answer: one line
        if settings.workers > 1:
            from .workers import WorkerPool, shared_state_problem  # deferred: loads gunicorn

            problem = shared_state_problem(settings)
            if problem:
                print(f"mingpian serve: {problem}", file=sys.stderr)
                return 2
            busy = bind_problem(settings.host, settings.port)
            if busy:
                print(f"mingpian serve: {busy}", file=sys.stderr)
                return 2
            print(f"名片服务已在 {where} 启动，{settings.workers} 个工作进程（按 Ctrl+C 停止）", flush=True)
            WorkerPool(settings).run()
            return 0
        from . import demo as demos  # deferred with the server: it loads the simulators

        demo = demos.plan(settings)
        if demo is not None:
            busy = bind_problem(settings.host, settings.port)  # before the simulators start
            if busy:
                print(f"mingpian serve: {busy}", file=sys.stderr)
                return 2
            settings = demo.settings  # the simulators' ports and accounts, the demo's seed
        app = create_app(settings)
        if demo is not None:
            demos.add_to(app, demo)
        app.on_startup.append(freeze_gc)
        listening = f"名片服务已在 {where} 启动（模板：{settings.template_dir}，按 Ctrl+C 停止）"
        if demo is not None:
            listening += "\n" + demo.banner()
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            # run_app calls `print` once its sites are bound, so "listening" is never a lie
            print=lambda _banner: print(listening, flush=True),
            access_log=None,
            shutdown_timeout=settings.shutdown_timeout,
        )
    except OSError as exc:
        if exc.errno not in BIND_ERRORS:
            raise
        print(f"mingpian serve: 无法监听 {where[7:]}：{_reason(exc)}{_other_port(exc)}", file=sys.stderr)
        return 2
    except MigrationError as exc:  # one line, no traceback
        hint = ""
        if isinstance(exc, PendingMigrations):
            config = f" --config {args.config}" if args.config else ""
            hint = f"; migrate = {settings.migrate}: run `mingpian migrate{config}` first"
        print(f"mingpian serve: {exc}{hint}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # a feature refused to start (database, Redis, seed): one line
        if not isinstance(exc.code, str):
            raise
        print(f"mingpian serve: {exc.code}", file=sys.stderr)
        return 2
    return 0


# What a bind can fail with that a person fixes by choosing another host or port.
BIND_ERRORS = frozenset({errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL})


def _reason(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "端口已被占用（是不是已经有一个服务在运行？）"
    return os.strerror(exc.errno) if exc.errno else str(exc)


def _other_port(exc: OSError) -> str:
    """How to choose another port, when the one asked for is taken."""
    if exc.errno != errno.EADDRINUSE:
        return ""
    return "。换一个端口：mingpian serve --port 8081（或 MINGPIAN_PORT=8081 make run）"


def bind_problem(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on, or None: asked before gunicorn starts, which would
    otherwise retry for seconds and print a page of its own."""

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"无法监听 {host}:{port}：{exc.strerror or exc}"
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            return f"无法监听 {host}:{port}：{_reason(exc)}{_other_port(exc)}"
    return None


def _read_text(path: str) -> str:
    """The text of a file named on the command line, or SystemExit with one line saying why not."""
    try:
        return Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise SystemExit(f"{path}：文件不存在") from None
    except IsADirectoryError:
        raise SystemExit(f"{path}：这是文件夹，不是文件") from None
    except PermissionError:
        raise SystemExit(f"{path}：没有权限读取") from None
    except UnicodeDecodeError as exc:
        raise SystemExit(f"{path}：不是 UTF-8 文本（第 {exc.start} 字节）") from None
    except OSError as exc:
        raise SystemExit(f"{path}：读不了：{exc.strerror or exc}") from None


def _load_data(path: str | None, store: TemplateStore, name: str) -> Any:
    if path is None:
        return store.get(name).sample
    raw = sys.stdin.read() if path == "-" else _read_text(path)
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path}:{exc.lineno}:{exc.colno}: 不是有效的 JSON（{exc.msg}）") from None


def cmd_render(args: argparse.Namespace) -> int:
    if args.to in BINARY_TARGETS and not args.out and sys.stdout.isatty():
        print(
            f"mingpian render：--to {args.to} 输出的是二进制数据，"
            "请用 --out 文件 指定写到哪里（或重定向标准输出）",
            file=sys.stderr,
        )
        return 2
    settings = _settings(args)
    store = _store(settings, args.templates)
    try:
        data = _load_data(args.data, store, args.name)
        template = store.get(args.name)
        message = template.render(data)
        if args.to in BINARY_TARGETS and not args.allow_missing_glyphs:
            # A character no font draws would be a box (tofu) in the picture: refuse, naming it.
            missing = missing_glyphs(template.schema, data, message)
            if missing:
                print(f"mingpian render：有字符没有字体能画出，{args.to} 里会显示成方框：", file=sys.stderr)
                for line in missing:
                    print(f"  {line}", file=sys.stderr)
                print("  改掉这些字符，或加 --allow-missing-glyphs 照样输出", file=sys.stderr)
                return 2
        output = TARGETS[args.to](TargetInput(template, data, message, get_profile(args.profile), settings))
    except RenderError as exc:
        _print_error(exc, args.data)
        return 1
    if args.out:
        try:
            Path(args.out).write_bytes(output)
        except OSError as exc:
            raise SystemExit(f"{args.out}：写不进去：{exc.strerror or exc}") from None
        print(f"已写入 {args.out}（{len(output)} 字节）", file=sys.stderr)
    else:
        sys.stdout.buffer.write(output)
        sys.stdout.flush()
    return 0


def _print_error(exc: RenderError, data_file: str | None) -> None:
    print(f"错误：{ERROR_WORDS.get(exc.kind, '无法生成这张卡片')}", file=sys.stderr)
    if not exc.problems:
        print(f"  {exc.message}", file=sys.stderr)
    for p in exc.problems:
        if p.file:
            print(f"  {p}", file=sys.stderr)
        else:
            where = f"{data_file}: " if data_file else ""
            print(f"  {where}{p.path}: {p.message}", file=sys.stderr)


# What a failed render is, by the renderer's stable error kind.
ERROR_WORDS = {
    "data_invalid": "数据不符合模板的数据定义",
    "template_error": "模板有错",
    "template_not_found": "找不到这个模板",
    "limit_exceeded": "卡片超出运营商限制",
    "render_error": "无法生成这张卡片",
}


def cmd_lint(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _store(settings, args.templates)
    flows = None
    if not args.names and args.templates is None:  # the whole project: chatbot flows too
        flows = FlowStore(settings.chatbot_dir, shown_folder(None, settings.chatbot_dir))
    findings = lint_templates(store, args.names or None, get_profile(args.profile), flows)
    if flows is not None:
        findings += lint_flows(flows, store)
    if args.json:
        print(json.dumps([f.to_json() for f in findings], ensure_ascii=False, indent=2))
    else:
        for finding in findings:
            print(finding)
    names = args.names or store.names()
    if findings:
        print(f"检查了 {len(names)} 个模板，发现 {len(findings)} 个问题", file=sys.stderr)
    else:
        print(f"检查了 {len(names)} 个模板，没有问题", file=sys.stderr)
    return 1 if findings else 0


def cmd_settings(args: argparse.Namespace) -> int:
    if args.markdown:
        print(markdown_table(), end="")
        return 0
    current = _settings(args)
    for row in SETTINGS:
        print(f"{row.env}={current.shown_text(row.name)}\n    {row.help}")
    return 0


def cmd_errors(args: argparse.Namespace) -> int:
    sys.stdout.write(error_table_markdown())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from .cli_migrate import run  # deferred, as in cmd_serve: it loads the server's features

    return run(_settings(args), show_status=args.status)


def cmd_prune(args: argparse.Namespace) -> int:
    from .cli_prune import run  # deferred: it loads the delivery store

    return run(_settings(args))


LINT_CODES = "\n".join(f"  {code}  {words}" for code, words in CODES.items())


def build_parser() -> argparse.ArgumentParser:
    parser = ChineseParser(
        prog="mingpian", description="名片：把名片模板变成 5G 消息卡片、老手机文本、图片和视频。"
    )
    folder_help = "模板文件夹（默认：$MINGPIAN_TEMPLATE_DIR 或 ./card_templates）"
    parser.add_argument("--templates", type=Path, default=None, metavar="文件夹", help=folder_help)
    # Also after the command (`mingpian lint --templates x`); SUPPRESS keeps the one given first.
    where = ChineseParser(add_help=False)
    where.add_argument(
        "--templates", type=Path, default=argparse.SUPPRESS, metavar="文件夹", help=folder_help
    )
    config = ChineseParser(add_help=False)
    config.add_argument(
        "--config",
        type=Path,
        metavar="文件",
        help="设置文件（TOML；默认：$MINGPIAN_CONFIG；见 docs/settings.md）",
    )
    sub = parser.add_subparsers(dest="command", required=True, title="命令", metavar="命令")
    p = sub.add_parser("serve", parents=[config, where], help="启动 HTTP 服务（工作台、接口、机器人）")
    p.add_argument("--host", metavar="地址", help="监听的地址")
    p.add_argument("--port", type=int, metavar="端口", help="监听的端口")
    p.add_argument(
        "--workers", type=int, metavar="个数", help="监听同一端口的工作进程数（默认：$MINGPIAN_WORKERS 或 1）"
    )
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser(
        "render",
        parents=[config, where],
        help="用模板生成卡片，输出 GSMA 报文、老手机文本、图片或视频",
        description="用模板和数据生成一张卡片。",
    )
    p.add_argument("name", metavar="模板", help="模板文件夹的名字，如 courier-hangup")
    p.add_argument("--data", metavar="文件", help="JSON 数据文件（'-' 表示标准输入；默认：模板的示例数据）")
    p.add_argument(
        "--profile", default="default", choices=sorted(PROFILES), help="运营商配置（默认：default）"
    )
    p.add_argument(
        "--to",
        default="rcs",
        choices=sorted(TARGETS),
        help="输出什么：rcs（5G消息报文）、ussd、flash（闪信）、sms（短信）、"
        "png/jpeg/webp（图片）、mp4（视频）",
    )
    p.add_argument("--out", metavar="文件", help="写到这个文件（图片和视频必须指定）")
    p.add_argument(
        "--allow-missing-glyphs",
        action="store_true",
        help="图片和视频里有字体画不出的字符（会显示成方框）时也照样输出",
    )
    p.set_defaults(func=cmd_render)
    p = sub.add_parser(
        "lint",
        parents=[config, where],
        help="检查模板和示例数据（以及聊天机器人流程）；有问题时退出码为 1",
        description="检查模板和示例数据；不指定模板时也检查聊天机器人流程。"
        "每个问题一行：文件:行: 代码 说明。",
        epilog="代码：\n" + LINT_CODES,
        formatter_class=_RawEpilog,
    )
    p.add_argument("names", nargs="*", metavar="模板", help="只检查这些模板（默认：全部）")
    p.add_argument(
        "--profile", default="default", choices=sorted(PROFILES), help="运营商配置（默认：default）"
    )
    p.add_argument("--json", action="store_true", help="以 JSON 输出（键为英文，供程序读取）")
    p.set_defaults(func=cmd_lint)
    p = sub.add_parser("settings", parents=[config, where], help="列出每项设置、对应的环境变量和当前值")
    p.add_argument("--markdown", action="store_true", help="改为输出 docs/settings.md 里的表格")
    p.set_defaults(func=cmd_settings)
    p = sub.add_parser("migrate", parents=[config, where], help="把 SQLite 数据库升级到当前结构")
    p.add_argument("--status", action="store_true", help="只列出已执行和待执行的升级")
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser(
        "prune",
        parents=[config, where],
        help="删除超过保留期的投递记录（按天），并提前建好后几天的分区",
        description="删除投递数据库中超过保留期的记录：PostgreSQL 整天删除分区，SQLite 分小批删除；"
        "并提前建好后几天的分区。服务进程每小时自动执行一次；可与运行中的服务、其他 prune 同时执行。",
    )
    p.set_defaults(func=cmd_prune)
    p = sub.add_parser("errors", help="输出接口错误代码表（docs/api.md 里的 Markdown 表格）")
    p.set_defaults(func=cmd_errors)
    return parser


class _RawEpilog(ChineseHelpFormatter):
    """Keeps the epilog's line breaks (the table of lint codes)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "".join(indent + line for line in text.splitlines(keepends=True))


def main(argv: list[str] | None = None) -> int:
    """Run one command. A configuration or input problem (SystemExit with a message) is one line
    on stderr and exit status 2; a reader that stops reading (`mingpian settings | head`) ends
    the command quietly."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()
    except SystemExit as exc:
        if not isinstance(exc.code, str):
            raise
        print(exc.code, file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away: nothing more to say. Point stdout at /dev/null so the flush at
        # interpreter exit does not raise again (the Python docs' recipe for SIGPIPE).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    raise SystemExit(main())
