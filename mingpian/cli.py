"""The `mingpian` command: serve, render, lint, settings, errors, migrate."""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

from chatbot.flows import check_flows
from renderer import PROFILES, RenderError, TemplateStore, get_profile
from renderer.fonts import use_font_dir

from .cli_targets import BINARY_TARGETS, TARGETS, TargetInput
from .errors import error_table_markdown
from .lint import lint_templates
from .settings import SETTINGS, Settings, markdown_table


def _settings(args: argparse.Namespace, **flags: Any) -> Settings:
    """Defaults < --config file (or MINGPIAN_CONFIG) < MINGPIAN_* variables < command-line flags."""
    settings = Settings.from_env(config=args.config, template_dir=args.templates, **flags)
    use_font_dir(settings.assets_dir / "fonts")  # pictures drawn by the CLI use the deployment's fonts
    return settings


def _store(settings: Settings) -> TemplateStore:
    return TemplateStore(settings.template_dir, reload_interval=0)


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
            print(f"Mingpian on {where} with {settings.workers} workers (Ctrl+C to stop)", flush=True)
            WorkerPool(settings).run()
            return 0
        app = create_app(settings)
        app.on_startup.append(freeze_gc)
        listening = f"Mingpian listening on {where}  (templates: {settings.template_dir}, Ctrl+C to stop)"
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
        print(f"mingpian serve: cannot listen on {where[7:]}: {_reason(exc)}", file=sys.stderr)
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
        return "the port is already in use (another server is running there?)"
    return os.strerror(exc.errno) if exc.errno else str(exc)


def bind_problem(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on, or None: asked before gunicorn starts, which would
    otherwise retry for seconds and print a page of its own."""

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            return f"cannot listen on {host}:{port}: {_reason(exc)}"
    return None


def _read_text(path: str) -> str:
    """The text of a file named on the command line, or SystemExit with one line saying why not."""
    try:
        return Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise SystemExit(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SystemExit(f"{path}: is a folder, not a file") from None
    except PermissionError:
        raise SystemExit(f"{path}: cannot read: permission denied") from None
    except UnicodeDecodeError as exc:
        raise SystemExit(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise SystemExit(f"{path}: cannot read: {exc.strerror or exc}") from None


def _load_data(path: str | None, store: TemplateStore, name: str) -> Any:
    if path is None:
        return store.get(name).sample
    raw = sys.stdin.read() if path == "-" else _read_text(path)
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None


def cmd_render(args: argparse.Namespace) -> int:
    if args.to in BINARY_TARGETS and not args.out and sys.stdout.isatty():
        print(
            f"mingpian render: --to {args.to} writes binary data; give --out FILE (or redirect stdout)",
            file=sys.stderr,
        )
        return 2
    settings = _settings(args)
    store = _store(settings)
    try:
        data = _load_data(args.data, store, args.name)
        template = store.get(args.name)
        message = template.render(data)
        output = TARGETS[args.to](TargetInput(template, data, message, get_profile(args.profile), settings))
    except RenderError as exc:
        _print_error(exc, args.data)
        return 1
    if args.out:
        try:
            Path(args.out).write_bytes(output)
        except OSError as exc:
            raise SystemExit(f"{args.out}: cannot write: {exc.strerror or exc}") from None
        print(f"wrote {args.out} ({len(output)} bytes)", file=sys.stderr)
    else:
        sys.stdout.buffer.write(output)
        sys.stdout.flush()
    return 0


def _print_error(exc: RenderError, data_file: str | None) -> None:
    print(f"error: {exc.message}", file=sys.stderr)
    for p in exc.problems:
        if p.file:
            print(f"  {p}", file=sys.stderr)
        else:
            where = f"{data_file}: " if data_file else ""
            print(f"  {where}{p.path}: {p.message}", file=sys.stderr)


def cmd_lint(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _store(settings)
    problems = lint_templates(store, args.names or None, get_profile(args.profile))
    if not args.names and args.templates is None:  # the whole project: chatbot flows too
        problems += check_flows(settings.chatbot_dir, store)
    for line in problems:
        print(line)
    names = args.names or store.names()
    status = "FAILED" if problems else "ok"
    print(f"lint: {len(names)} template(s), {len(problems)} problem(s): {status}", file=sys.stderr)
    return 1 if problems else 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mingpian", description=__doc__)
    parser.add_argument(
        "--templates",
        type=Path,
        default=None,
        help="template folder (default: $MINGPIAN_TEMPLATE_DIR or ./card_templates)",
    )
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file of settings (default: $MINGPIAN_CONFIG; see docs/settings.md)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", parents=[config], help="run the HTTP server")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument(
        "--workers", type=int, help="worker processes on the port (default: $MINGPIAN_WORKERS or 1)"
    )
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("render", parents=[config], help="render a template and print the GSMA payload")
    p.add_argument("name")
    p.add_argument("--data", help="JSON data file ('-' for stdin; default: the sample data)")
    p.add_argument("--profile", default="default", choices=sorted(PROFILES))
    p.add_argument("--to", default="rcs", choices=sorted(TARGETS), help="output target")
    p.add_argument("--out", help="write the output to this file (binary targets need it)")
    p.set_defaults(func=cmd_render)
    p = sub.add_parser(
        "lint", parents=[config], help="check templates and their sample data; exit 1 on problems"
    )
    p.add_argument("names", nargs="*")
    p.add_argument("--profile", default="default", choices=sorted(PROFILES))
    p.set_defaults(func=cmd_lint)
    p = sub.add_parser("settings", parents=[config], help="list every setting, its env var and current value")
    p.add_argument("--markdown", action="store_true", help="print the table of docs/settings.md instead")
    p.set_defaults(func=cmd_settings)
    p = sub.add_parser(
        "migrate", parents=[config], help="apply pending schema migrations to the SQLite databases"
    )
    p.add_argument("--status", action="store_true", help="list applied and pending migrations instead")
    p.set_defaults(func=cmd_migrate)
    p = sub.add_parser("errors", help="print the API's error codes as the Markdown table of docs/api.md")
    p.set_defaults(func=cmd_errors)
    return parser


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
