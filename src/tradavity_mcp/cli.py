"""The `tradavity-mcp` command: serve (default), `sandbox`, and friends.

Everything the server logs goes to stderr; on stdio, stdout belongs to the protocol.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pydantic import SecretStr

from . import __version__
from .client_config import CLIENTS, snippet
from .config import ConfigError, Settings

__all__ = ["main"]

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tradavity-mcp",
        description="MCP server for the Tradavity trading journal. Serves MCP on stdio by "
        "default; set TRADAVITY_API_KEY, or pass --sandbox to try it without one.",
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
    parser.add_argument("--base-url", help="API base URL (env TRADAVITY_BASE_URL)")
    parser.add_argument(
        "--state-dir", help="where the write ledger lives (env TRADAVITY_STATE_DIR)"
    )
    parser.add_argument(
        "--allowed-dir",
        action="append",
        dest="allowed_dirs",
        metavar="DIR",
        help="directory screenshots may be read from (repeatable; env TRADAVITY_ALLOWED_DIRS)",
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
    sub.add_parser("demo", help="journal a sample trade end to end on the sandbox")
    config = sub.add_parser("config", help="print the snippet that adds this server to a client")
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
    server = build_server(settings, stdio=not http, hosted=hosted, log_level=args.log_level)
    if not http:
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
    print(f"tradavity-mcp on http://{args.host}:{args.port}{path}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
