"""The `tradavity-mcp` command: serve (default), `sandbox`, and friends.

Everything the server logs goes to stderr; on stdio, stdout belongs to the protocol.
"""

from __future__ import annotations

import argparse
import errno
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from . import __version__
from .logs import log_to_stderr
from .settings import DEFAULT_BASE_URL, ConfigError, Settings, user_state_dir
from .snippets import CLIENTS, snippet

if TYPE_CHECKING:
    from .sandbox._connections import ConnectionLimits
    from .server import TradavityServer

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
    "ledger (PostgreSQL with --store), Redis (with --redis), pending writes and the clock. "
    "Neither the key nor a password is ever printed. Exit status 0 when nothing failed, 1 "
    "otherwise."
)


#: Stands in a help text for the user state directory, looked up only when help is shown.
_STATE_DIR = "<user state dir>"


def _limits() -> ConnectionLimits:
    from .sandbox._connections import ConnectionLimits

    return ConnectionLimits()


#: Stand in help texts for values looked up only when help is shown (a start need not
#: import the sandbox, where the connection limits live).
_LATER: dict[str, Callable[[], str]] = {
    _STATE_DIR: lambda: str(user_state_dir()),
    "<max connections>": lambda: str(_limits().max_connections),
    "<header timeout>": lambda: f"{_limits().header_timeout:g}",
    "<body timeout>": lambda: f"{_limits().body_timeout:g}",
    "<body rate>": lambda: str(_body_rate()),
}


def _body_rate() -> int:
    from .sandbox._connections import BODY_MIN_RATE

    return BODY_MIN_RATE


class _Help(argparse.HelpFormatter):
    """Help that shows each option's default, where it has a meaningful one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        for placeholder, value in _LATER.items():
            if placeholder in text:
                text = text.replace(placeholder, value())
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
    _add_journal_options(parser)
    _add_http_options(parser)
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
    _add_doctor(sub)
    _add_config(sub)
    _add_grants(sub)
    return parser


def _add_journal_options(parser: argparse.ArgumentParser) -> None:
    """Which journal the server talks to, where it keeps its ledger, what it offers."""
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
        help=f"where the write ledger lives (env TRADAVITY_STATE_DIR; default: {_STATE_DIR})",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help="keep the write ledger on PostgreSQL, shared by replicas: postgresql://user:pass@"
        "host/db (env TRADAVITY_STORE_URL; default: SQLite in the state directory)",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="share sync runs and events, subscriptions, the /me cache and each key's rate "
        "window between replicas through Redis: redis://host:6379/0 (env TRADAVITY_REDIS_URL; "
        "default: kept in this process)",
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


def _add_http_options(parser: argparse.ArgumentParser) -> None:
    """The transport, and for HTTP: where to listen, who may call, what to trust."""
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
        choices=["none", "token", "per-user", "oauth"],
        default="none",
        help="HTTP authentication: token (a shared TRADAVITY_MCP_TOKEN), per-user (each "
        "client sends its own Tradavity API key as bearer) or oauth (per-user, plus OAuth "
        "2.1 sign-in for claude.ai, ChatGPT and the Claude apps; needs "
        "TRADAVITY_MCP_SECRET_KEY off loopback); none is for loopback only",
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
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help="a load balancer's address or network, e.g. 10.0.0.5 or 10.0.0.0/24, whose "
        "X-Forwarded-For names the client (repeatable; env TRADAVITY_MCP_TRUSTED_PROXIES, "
        "comma-separated). The per-client limits then see each client's own address; "
        "without it no peer is trusted, loopback included",
    )
    parser.add_argument(
        "--public-url",
        help="URL clients use to reach this server (the OAuth resource and, with --auth "
        "oauth, the authorization server)",
    )
    parser.add_argument(
        "--max-connections",
        type=_at_least_one,
        metavar="N",
        help="HTTP connections open at once, and so requests in progress (one each); at the "
        "limit, the connection that has waited longest for its request is closed to make "
        "room. Lowered to fit the open-files limit (default: <max connections>)",
    )
    parser.add_argument(
        "--header-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="close a connection whose request line and headers are not all in within this "
        "time, with a 408 (default: <header timeout>)",
    )
    parser.add_argument(
        "--body-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="close a connection whose request body has not arrived within this time, "
        "plus 1 s for every <body rate> bytes received, with a 408; a response, a stream "
        "included, is never cut (default: <body timeout>)",
    )


def _at_least_one(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more; got {value}")
    return value


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {raw!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0; got {raw}")
    return value


def _add_doctor(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    doctor.add_argument("--store", metavar="URL", dest="doctor_store", help="as for the server")
    doctor.add_argument("--redis", metavar="URL", dest="doctor_redis", help="as for the server")
    doctor.add_argument(
        "--contract",
        action="store_true",
        help="also check, against the key's API, each shape the API reference leaves open "
        "(where the scopes are, list wrappers, sync fields, cached errors)",
    )


def _add_config(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_grants(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    grants = sub.add_parser(
        "grants",
        help="list or revoke the OAuth grants users made (--auth oauth)",
        description="The grants users made on the consent page of --auth oauth.",
    )
    grants.add_argument(
        "grants_action",
        choices=["list", "revoke", "revoke-all"],
        help="revoke-all: end every grant (before changing TRADAVITY_MCP_SECRET_KEY)",
    )
    grants.add_argument("grant_id", nargs="?", help="the grant to revoke (from `grants list`)")
    grants.add_argument("--revoked", action="store_true", help="list revoked grants too")
    grants.add_argument("--state-dir", dest="grants_state_dir", help="as for the server")
    grants.add_argument(
        "--store", dest="grants_store", metavar="URL", help="as for the server (PostgreSQL)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["sandbox"]:
        return _sandbox(arguments[1:])
    parser = _parser()
    args = parser.parse_args(arguments)
    log_to_stderr(args.log_level)
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
        args.store = args.doctor_store or args.store
        args.redis = args.doctor_redis or args.redis
        return run_doctor(_journal(args), contract=args.contract)
    if args.command == "grants":
        return _grants(args, parser)
    return _serve(args, parser)


def _grants(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .server.oauth.grants import list_grants, revoke_all, revoke_grant

    try:
        settings = Settings.load(
            state_dir=args.grants_state_dir or args.state_dir,
            store_url=args.grants_store or args.store,
            require_key=False,
        )
    except ConfigError as exc:
        print(f"tradavity-mcp: {exc}", file=sys.stderr)
        return 2
    state, store = settings.state_dir, settings.store_url
    if args.grants_action == "list":
        return list_grants(state, store_url=store, include_revoked=args.revoked)
    if args.grants_action == "revoke-all":
        return revoke_all(state, store_url=store)
    if not args.grant_id:
        parser.error("grants revoke needs the grant's id (see `tradavity-mcp grants list`)")
    return revoke_grant(state, args.grant_id, store_url=store)


def _sandbox(arguments: list[str]) -> int:
    from .sandbox._cli import add_arguments, run

    parser = argparse.ArgumentParser(
        prog="tradavity-mcp sandbox", description="Serve the Tradavity API sandbox over HTTP."
    )
    add_arguments(parser)
    log_to_stderr(logging.WARNING)
    return run(parser.parse_args(arguments))


def _serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    http = args.transport != "stdio"
    _refuse_unsafe_http(args, parser, http=http)
    try:
        settings = Settings.load(
            **_journal(args),
            allowed_dirs=args.allowed_dirs,
            output_schemas=args.output_schemas,
            trusted_proxies=args.trusted_proxy,
            require_key=args.auth not in {"per-user", "oauth"},
        )
        token = _shared_token() if args.auth == "token" else None
        if args.auth == "oauth" and args.host not in LOOPBACK and settings.secret_key is None:
            raise ConfigError(
                "--auth oauth off loopback needs TRADAVITY_MCP_SECRET_KEY (it encrypts the "
                "users' Tradavity keys at rest): set it to `openssl rand -hex 32`, and keep it"
            )
        if args.auth == "oauth" and settings.store_url and settings.secret_key is None:
            raise ConfigError(
                "--auth oauth with --store needs TRADAVITY_MCP_SECRET_KEY, the same on every "
                "replica (it seals the users' Tradavity keys in the shared store): set it to "
                "`openssl rand -hex 32`, and keep it"
            )
    except ConfigError as exc:
        print(f"tradavity-mcp: {exc}", file=sys.stderr)
        return 2
    from .server import HostedOptions, build_server

    hosted = HostedOptions(
        # oauth is per-user behind the authorization server (`build_http_app(oauth=...)`).
        auth="per-user" if args.auth == "oauth" else args.auth,
        token=token,
        public_url=args.public_url or f"http://{args.host}:{args.port}",
    )
    problem = _start_problem(settings, args, http=http)
    if problem is not None:
        print(f"tradavity-mcp: {problem}", file=sys.stderr)
        return 2
    server = build_server(settings, stdio=not http, hosted=hosted, log_level=args.log_level)
    if not http:
        if sys.stdin.isatty():
            print(TTY_HINT, file=sys.stderr, flush=True)
        server.run()
        return 0
    return _serve_http(server, args)


def _journal(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the server and `doctor` both take from the flags."""
    return {
        "base_url": args.base_url,
        "sandbox": args.sandbox,
        "read_only": args.read_only,
        "state_dir": args.state_dir,
        "store_url": args.store,
        "redis_url": args.redis,
    }


def _refuse_unsafe_http(
    args: argparse.Namespace, parser: argparse.ArgumentParser, *, http: bool
) -> None:
    """Flag combinations that would serve without protection end here (exit 2)."""
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
        if args.auth == "oauth" and not (args.public_url or "").startswith("https://"):
            parser.error(
                "--auth oauth off loopback needs --public-url https://... (the address "
                "connectors reach; it names the authorization server)"
            )


def _shared_token() -> SecretStr:
    """`--auth token`: the shared secret from TRADAVITY_MCP_TOKEN, long enough to guess never."""
    raw = os.environ.get("TRADAVITY_MCP_TOKEN", "")
    if len(raw) < 32:
        raise ConfigError(
            "TRADAVITY_MCP_TOKEN must be set to a random secret of at least 32 "
            "characters for --auth token (e.g. `openssl rand -hex 32`)"
        )
    return SecretStr(raw)


def _start_problem(settings: Settings, args: argparse.Namespace, *, http: bool) -> str | None:
    """What stops the start, in one line: over HTTP a base URL or key the API refuses, and
    on any transport a write ledger that cannot record writes (not a traceback later)."""
    if http and not settings.sandbox:
        problem = _check_base_url(settings, per_user=args.auth in {"per-user", "oauth"})
        if problem is not None:
            return problem
    from .server.writes.ledger import LedgerUnavailable
    from .server.writes.stores import open_ledger

    try:
        open_ledger(settings).close()
    except LedgerUnavailable as exc:
        return str(exc)
    return None


def _serve_http(server: TradavityServer, args: argparse.Namespace) -> int:
    import uvicorn

    from .sandbox._connections import ConnectionLimits, raise_open_files_limit
    from .sandbox._serve import bracketed, listening_socket, uvicorn_config
    from .server import build_http_app
    from .server.oauth import OAuthOptions

    settings = server.backend.settings
    oauth = (
        OAuthOptions(
            public_url=server.backend.hosted.public_url,
            state_dir=settings.state_dir,
            loopback=args.host in LOOPBACK,
            secret_key=settings.secret_key,
            redirect_hosts=settings.oauth_redirect_hosts,
            store_url=settings.store_url,
        )
        if args.auth == "oauth"
        else None
    )
    from .server.oauth.store import OAuthStoreUnavailable

    try:
        app = build_http_app(
            server,
            kind="sse" if args.transport == "sse" else "http",
            host=args.host,
            allowed_hosts=args.allowed_host,
            allowed_origins=args.allowed_origin,
            oauth=oauth,
        )
    except (ConfigError, OAuthStoreUnavailable) as exc:
        # The OAuth store unreachable, or its secret not this replica's: one line.
        print(f"tradavity-mcp: {exc}", file=sys.stderr)
        return 2
    path = "/sse" if args.transport == "sse" else "/mcp"
    # Bind before saying where we listen: a busy port is one line, not a traceback.
    try:
        sock = listening_socket(args.host, args.port)
    except OSError as exc:
        print(f"tradavity-mcp: {_cannot_listen(args, exc)}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    print(
        f"tradavity-mcp on http://{bracketed(args.host)}:{port}{path}", file=sys.stderr, flush=True
    )
    raise_open_files_limit()
    default = ConnectionLimits()
    limits = ConnectionLimits(
        header_timeout=args.header_timeout or default.header_timeout,
        body_timeout=args.body_timeout or default.body_timeout,
        max_connections=args.max_connections or default.max_connections,
    )
    # The client's address comes from X-Forwarded-For only when a trusted balancer sent it
    # (uvicorn would otherwise trust any loopback peer, or FORWARDED_ALLOW_IPS).
    trusted = list(settings.trusted_proxies)
    config = uvicorn_config(
        app,
        limits,
        log_level=args.log_level.lower(),
        lifespan="on",
        trusted_proxies=trusted,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def _cannot_listen(args: argparse.Namespace, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {args.port} on {args.host} is already in use: stop the program using it, "
            "or pass another --port"
        )
    return f"cannot listen on {args.host} port {args.port}: {exc.strerror or exc}"


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
