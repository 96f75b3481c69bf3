"""The `tradavity-mcp` command: serve (default), `sandbox`, and friends.

Everything the server logs goes to stderr; on stdio, stdout belongs to the protocol.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys
from collections.abc import Sequence

import platformdirs
from pydantic import SecretStr

from . import __version__
from .settings import DEFAULT_BASE_URL, ConfigError, Settings
from .snippets import CLIENTS, snippet

__all__ = ["main"]

LOOPBACK = {"127.0.0.1", "localhost", "::1"}

#: What a person who started the server in a terminal sees (stdin is a TTY, not a client).
TTY_HINT = (
    "tradavity-mcp: this is an MCP server waiting for a client on stdin (Ctrl-C to quit); "
    "to try it run `tradavity-mcp demo`, or open it in the MCP Inspector: "
    "`npx @modelcontextprotocol/inspector tradavity-mcp --sandbox`"
)

DEMO_DESCRIPTION = (
    "Journal a sample trade end to end on the built-in sandbox, with no API key and nothing "
    "sent anywhere: it starts the sandbox on loopback, launches this server as a real stdio "
    "subprocess, connects an MCP client, journals a voice note (trade, tags, chart "
    "screenshot, checklist), syncs the broker, and prints the trade, this week's figures "
    "and the month day by day, in the demo trader's timezone."
)

DOCTOR_DESCRIPTION = (
    "Check this setup and print one line per check with the fix for each problem: the API "
    "key's format, the base URL (GET /me), the key's scopes, the state directory, the write "
    "ledger, pending writes and the clock. The key itself is never printed. Exit status 0 "
    "when nothing failed, 1 otherwise."
)


class _Help(argparse.HelpFormatter):
    """Help that shows each option's default, where it has a meaningful one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or "default" in text
            or default in (None, False, [], argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradavity-mcp",
        description="MCP server for the Tradavity trading journal. Serves MCP on stdio by "
        "default; set TRADAVITY_API_KEY, or pass --sandbox to try it without one.",
        formatter_class=_Help,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="run against the built-in sandbox (demo data, no API key needed)",
    )
    parser.add_argument(
        "--read-only", action="store_true", default=None, help="list only the read tools"
    )
    parser.add_argument(
        "--base-url",
        help=f"API base URL (env TRADAVITY_BASE_URL; default: {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--state-dir",
        help="where the write ledger lives (env TRADAVITY_STATE_DIR; default: "
        f"{platformdirs.user_state_dir('tradavity-mcp')})",
    )
    parser.add_argument(
        "--allowed-dir",
        action="extend",
        nargs="*",
        dest="allowed_dirs",
        metavar="DIR",
        help="folders screenshots may be read from (one or more; repeatable; env "
        "TRADAVITY_ALLOWED_DIRS; default: none, plus the client's roots)",
    )
    parser.add_argument(
        "--output-schemas",
        action="store_true",
        default=None,
        help="advertise tool output schemas (env TRADAVITY_OUTPUT_SCHEMAS)",
    )
    parser.add_argument(
        "--transport",
        choices=["stdio", "sse", "http"],
        default="stdio",
        help="stdio (default), sse (legacy HTTP+SSE at /sse) or http (streamable HTTP at /mcp)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port")
    parser.add_argument(
        "--auth",
        choices=["none", "token", "per-user"],
        default="none",
        help="HTTP authentication: token (a shared TRADAVITY_MCP_TOKEN) or per-user (each "
        "client sends its own Tradavity API key as bearer); none is for loopback only",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST",
        help="Host header value to accept beyond loopback, e.g. mcp.example.com (repeatable)",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="Origin to accept, e.g. https://agent.example.com (repeatable)",
    )
    parser.add_argument(
        "--public-url",
        help="URL clients use to reach this server (for the OAuth resource metadata)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="stderr log level",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # The sandbox parses its own flags: declaring them here would import the whole
    # sandbox (an app, its seed data, uvicorn) on every start of the server.
    # Listed for --help only: main() hands `sandbox ...` to the sandbox's parser first.
    sub.add_parser(
        "sandbox", help="serve the Tradavity API sandbox over HTTP (see `sandbox --help`)"
    )
    sub.add_parser(
        "demo",
        help="journal a sample trade end to end on the sandbox (no key needed)",
        description=DEMO_DESCRIPTION,
    )
    doctor = sub.add_parser(
        "doctor",
        help="check the key, base URL, scopes, state directory, ledger and clock",
        description=DOCTOR_DESCRIPTION,
        formatter_class=_Help,
    )
    doctor.add_argument(
        "--sandbox",
        action="store_true",
        dest="doctor_sandbox",
        help="check the setup for the built-in sandbox instead",
    )
    doctor.add_argument("--base-url", dest="doctor_base_url", help="as for the server")
    doctor.add_argument("--state-dir", dest="doctor_state_dir", help="as for the server")
    config = sub.add_parser(
        "config",
        help="print the snippet that adds this server to a client",
        description="Print the snippet that adds this server to an MCP client. It never "
        "contains your key: replace the placeholder (VS Code asks for it as a secret).",
    )
    config.add_argument("client", choices=CLIENTS)
    config.add_argument(
        "--sandbox", action="store_true", dest="config_sandbox", help="run on the sandbox"
    )
    config.add_argument(
        "--uvx", action="store_true", help="launch with uvx instead of this install"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["sandbox"]:
        return _sandbox(arguments[1:])
    parser = _parser()
    args = parser.parse_args(arguments)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "config":
        print(snippet(args.client, sandbox=args.config_sandbox, uvx=args.uvx))
        return 0
    if args.command == "demo":
        from .demo import run_demo

        return run_demo()
    if args.command == "doctor":
        from .doctor import run_doctor

        args.sandbox = args.sandbox or args.doctor_sandbox
        args.base_url = args.doctor_base_url or args.base_url
        args.state_dir = args.doctor_state_dir or args.state_dir
        return run_doctor(args)
    return _serve(args, parser)


def _sandbox(arguments: list[str]) -> int:
    from .sandbox._cli import add_arguments, run

    parser = argparse.ArgumentParser(
        prog="tradavity-mcp sandbox", description="Serve the Tradavity API sandbox over HTTP."
    )
    add_arguments(parser)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return run(parser.parse_args(arguments))


def _serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    http = args.transport != "stdio"
    if not http and args.auth != "none":
        parser.error("--auth applies to the HTTP transports (--transport http or sse)")
    if http and args.host not in LOOPBACK:
        if args.auth == "none":
            parser.error(
                f"refusing to serve {args.host} without authentication: pass --auth token "
                "or --auth per-user (or bind --host 127.0.0.1)"
            )
        if not args.allowed_host:
            parser.error(
                "a non-loopback bind needs --allowed-host (the Host name clients use), "
                "for DNS-rebinding protection"
            )
    try:
        settings = Settings.load(
            base_url=args.base_url,
            sandbox=args.sandbox,
            read_only=args.read_only,
            state_dir=args.state_dir,
            allowed_dirs=args.allowed_dirs,
            output_schemas=args.output_schemas,
            require_key=args.auth != "per-user",
        )
        token = None
        if args.auth == "token":
            raw = os.environ.get("TRADAVITY_MCP_TOKEN", "")
            if len(raw) < 32:
                raise ConfigError(
                    "TRADAVITY_MCP_TOKEN must be set to a random secret of at least 32 "
                    "characters for --auth token (e.g. `openssl rand -hex 32`)"
                )
            token = SecretStr(raw)
    except ConfigError as exc:
        print(f"tradavity-mcp: {exc}", file=sys.stderr)
        return 2
    from .server import HostedOptions, build_http_app, build_server

    hosted = HostedOptions(
        auth=args.auth,
        token=token,
        public_url=args.public_url or f"http://{args.host}:{args.port}",
    )
    if http and not settings.sandbox:
        problem = _check_base_url(settings, per_user=args.auth == "per-user")
        if problem is not None:
            print(f"tradavity-mcp: {problem}", file=sys.stderr)
            return 2
    from .server.writes.ledger import Ledger, LedgerUnavailable

    try:  # a ledger that cannot record writes is one line now, not a traceback later
        Ledger(settings.ledger_path).close()
    except LedgerUnavailable as exc:
        print(f"tradavity-mcp: {exc}", file=sys.stderr)
        return 2
    server = build_server(settings, stdio=not http, hosted=hosted, log_level=args.log_level)
    if not http:
        if sys.stdin.isatty():
            print(TTY_HINT, file=sys.stderr, flush=True)
        server.run()
        return 0
    import uvicorn

    app = build_http_app(
        server,
        kind="sse" if args.transport == "sse" else "http",
        host=args.host,
        allowed_hosts=args.allowed_host,
        allowed_origins=args.allowed_origin,
    )
    path = "/sse" if args.transport == "sse" else "/mcp"
    # Bind before saying where we listen: a busy port is one line, not a traceback.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            print(
                f"tradavity-mcp: port {args.port} on {args.host} is already in use: stop the "
                "program using it, or pass another --port",
                file=sys.stderr,
            )
        else:
            print(
                f"tradavity-mcp: cannot listen on {args.host} port {args.port}: "
                f"{exc.strerror or exc}",
                file=sys.stderr,
            )
        return 1
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    print(f"tradavity-mcp on http://{host}:{port}{path}", file=sys.stderr, flush=True)
    config = uvicorn.Config(app, log_level=args.log_level.lower())
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def _check_base_url(settings: Settings, *, per_user: bool) -> str | None:
    """`GET /me` once before serving HTTP: a wrong TRADAVITY_BASE_URL or a refused key is
    one line now, not "not found" on every call. An API that is down or failing does not
    stop the start (writes wait in the ledger); it is named in one warning line."""
    import anyio

    from .doctor import describe_probe, probe_me

    key = None if per_user or settings.api_key is None else settings.api_key.get_secret_value()
    probe = anyio.run(probe_me, settings.base_url, key)
    line = describe_probe(probe, with_key=key is not None)
    if line is not None and probe.kind in {"unreachable", "error"}:
        print(f"tradavity-mcp: warning: {line}; starting anyway", file=sys.stderr)
        return None
    return line


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
