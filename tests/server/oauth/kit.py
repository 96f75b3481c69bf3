"""Helpers for the OAuth tests: a per-user server with `--auth oauth` on loopback (the
sandbox behind it), the consent form answered the way a browser would, PKCE."""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2

from tradavity_mcp.api.client import RetryPolicy
from tradavity_mcp.sandbox import SandboxConfig, SandboxTransport, create_app, serve_in_thread
from tradavity_mcp.server import HostedOptions, StreamOptions, build_http_app, build_server
from tradavity_mcp.server.oauth import OAuthOptions
from tradavity_mcp.settings import Settings

SANDBOX_URL = "http://sandbox.local/api/v1"
#: Where test clients say they return to (nothing listens there: the tests read the
#: redirect's Location instead of following it).
REDIRECT = "http://127.0.0.1:9/callback"

#: What streamable HTTP asks of a POST's Accept header.
MCP_POST = {"Accept": "application/json, text/event-stream"}
#: A bare `initialize`, to see whether a bearer is let in.
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "probe", "version": "1"},
    },
}


async def initialize(http: httpx2.AsyncClient, mcp_url: str, bearer: str) -> httpx2.Response:
    """An `initialize` sent to `mcp_url` with this bearer (200: let in)."""
    return await http.post(
        mcp_url, json=INITIALIZE, headers={**MCP_POST, "Authorization": f"Bearer {bearer}"}
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Served:
    base: str
    state_dir: Path

    @property
    def resource(self) -> str:
        return self.base + "/mcp"


def oauth_app(
    base: str,
    state: Path,
    sandbox: Any = None,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    retry: RetryPolicy | None = None,
    **options: Any,
) -> Any:
    """The HTTP app of a per-user server with its own authorization server at `base` (the
    sandbox behind it, or `transport`, which reaches one)."""
    settings = Settings.load(environ={}, base_url=SANDBOX_URL, state_dir=state, require_key=False)
    # A quick heartbeat: a reader of /sync/stream knows the replay is over at the first one.
    # An OAuth bearer's stream checks its token again as often.
    stream = StreamOptions(heartbeat_seconds=0.2, poll_seconds=0.05, recheck_seconds=0.2)
    hosted = HostedOptions(auth="per-user", public_url=base, stream=stream)
    server = build_server(
        settings,
        transport=transport
        or SandboxTransport(sandbox or create_app(SandboxConfig(db=":memory:"))),
        stdio=False,
        hosted=hosted,
        retry=retry,
    )
    return build_http_app(
        server,
        kind="http",
        host="127.0.0.1",
        oauth=OAuthOptions(public_url=base, state_dir=state, loopback=True, **options),
    )


@contextmanager
def oauth_server(
    tmp_path: Path,
    *,
    state_dir: Path | None = None,
    sandbox: Any = None,
    wrap: Callable[[Any], Any] | None = None,
    port: int | None = None,
    transport: httpx2.AsyncBaseTransport | None = None,
    retry: RetryPolicy | None = None,
    **options: Any,
) -> Iterator[Served]:
    """A per-user server with its own authorization server, on a loopback port (its app
    served inside `wrap`, when given; `port`: the one a server before it used, to restart
    it where its tokens were issued; the sandbox behind it, or `transport`, which reaches
    one)."""
    state = state_dir or tmp_path / "state"
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    app = oauth_app(base, state, sandbox, transport=transport, retry=retry, **options)
    with serve_in_thread(wrap(app) if wrap else app, port=port, path="", lifespan=True):
        yield Served(base=base, state_dir=state)


class Forms(HTMLParser):
    """The forms of a page: their hidden fields and submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden: dict[str, str] = {}
        self.buttons: list[tuple[str, str]] = []
        self.inputs: list[dict[str, str]] = []
        self.errors: list[str] = []
        self._in_error = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input":
            self.inputs.append(a)
            if a.get("type") == "hidden":
                self.hidden[a["name"]] = a.get("value", "")
        elif tag == "button":
            self.buttons.append((a.get("name", ""), a.get("value", "")))
        elif tag == "p" and "error" in a.get("class", ""):
            self._in_error = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self._in_error = False

    def handle_data(self, data: str) -> None:
        if self._in_error:
            self.errors.append(data)


def forms(page: str) -> Forms:
    parsed = Forms()
    parsed.feed(page)
    return parsed


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def consent(
    http: httpx2.AsyncClient, authorization_url: str, key: str, *, approve: bool = True
) -> httpx2.Response:
    """Answer the consent page as a browser would: follow /authorize to the page, type
    the key, submit, then allow. Returns the last response (the redirect, or a page)."""
    start = await http.get(authorization_url)
    assert start.status_code == 302, start.text
    page = await http.get(start.headers["location"])
    assert page.status_code == 200, page.text
    base = f"{urlsplit(authorization_url).scheme}://{urlsplit(authorization_url).netloc}"
    first = forms(page.text)
    checked = await http.post(
        base + "/consent", data={**first.hidden, "api_key": key, "action": "check"}
    )
    if checked.status_code != 200 or not approve:
        return checked
    second = forms(checked.text)
    assert ("action", "approve") in second.buttons, checked.text
    return await http.post(base + "/consent", data={**second.hidden, "action": "approve"})


async def register(
    http: httpx2.AsyncClient, base: str, redirect: str = REDIRECT, *, name: str = "Test assistant"
) -> dict[str, Any]:
    resp = await http.post(
        base + "/register",
        json={
            "redirect_uris": [redirect],
            "client_name": name,
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        },
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


def authorize_params(
    served: Served,
    client_id: str,
    challenge: str,
    *,
    resource: str | None = None,
    state: str = "st",
    redirect: str = REDIRECT,
) -> dict[str, str]:
    """An authorization request's parameters (its query, or its form when POSTed)."""
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": state,
        "resource": resource or served.resource,
    }


def authorize_url(served: Served, client_id: str, challenge: str, **given: Any) -> str:
    params = authorize_params(served, client_id, challenge, **given)
    return f"{served.base}/authorize?{urlencode(params)}"


async def token(http: httpx2.AsyncClient, base: str, **form: str) -> httpx2.Response:
    return await http.post(base + "/token", data=form)


async def tokens_for(
    http: httpx2.AsyncClient, served: Served, key: str, client_id: str | None = None
) -> dict[str, Any]:
    """A full flow with raw HTTP: register (unless given a client), consent, exchange."""
    if client_id is None:
        client_id = (await register(http, served.base))["client_id"]
    verifier, challenge = pkce()
    done = await consent(http, authorize_url(served, client_id, challenge), key)
    assert done.status_code == 302, done.text
    code = query_of(done.headers["location"])["code"]
    resp = await token(
        http,
        served.base,
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        client_id=client_id,
        code_verifier=verifier,
        resource=served.resource,
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    body["client_id"] = client_id
    return body
