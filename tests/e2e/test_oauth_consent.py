"""The consent page against a link shared between browsers, over real loopback HTTP with
the sandbox behind it: each browser is a client with a cookie jar of its own.

The attack: someone registers a client named "Claude" returning to claude.ai, starts
`/authorize` with their own PKCE pair and sends the consent link to a user; once the
user has checked their key, the sender answers the same request from their own browser.
"""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from pydantic import SecretStr

from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    READONLY_KEY,
    SECOND_PRO_KEY,
    SandboxConfig,
    SandboxTransport,
    create_app,
)
from tradavity_mcp.server.tools import TOOLS

from ..kit import TLS, data_of, http_transport
from ..server.oauth.kit import (
    SANDBOX_URL,
    Served,
    authorize_url,
    forms,
    oauth_server,
    pkce,
    query_of,
    register,
    token,
)

pytestmark = pytest.mark.anyio

#: An allowed redirect: where the genuine Claude returns to.
CLAUDE = "https://claude.ai/api/mcp/auth_callback"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with oauth_server(tmp_path) as s:
        yield s


def _browser() -> httpx2.AsyncClient:
    """A browser: its own cookie jar."""
    return httpx2.AsyncClient(timeout=30, verify=TLS)


async def _answer(
    browser: httpx2.AsyncClient, served: Served, page: httpx2.Response, **fields: str
) -> httpx2.Response:
    """Submit the form of `page` (its request id and CSRF token) with these fields."""
    hidden = forms(page.text).hidden
    assert set(hidden) == {"request", "csrf"}, page.text
    return await browser.post(served.base + "/consent", data={**hidden, **fields})


async def _phishing_link(attacker: httpx2.AsyncClient, served: Served) -> tuple[str, str, str]:
    """The attacker's client "Claude" and consent link: (client id, verifier, link)."""
    client_id = (await register(attacker, served.base, CLAUDE, name="Claude"))["client_id"]
    verifier, challenge = pkce()
    start = await attacker.get(authorize_url(served, client_id, challenge, redirect=CLAUDE))
    assert start.status_code == 302, start.text
    link = start.headers["location"]
    assert link.startswith(served.base + "/consent?request=")
    return client_id, verifier, link


async def _exchange(
    http: httpx2.AsyncClient, served: Served, location: str, client_id: str, verifier: str
) -> str:
    """The access token the code in a redirect's `location` buys with this verifier."""
    assert location.startswith(CLAUDE + "?"), location
    resp = await token(
        http,
        served.base,
        grant_type="authorization_code",
        code=query_of(location)["code"],
        redirect_uri=CLAUDE,
        client_id=client_id,
        code_verifier=verifier,
        resource=served.resource,
    )
    assert resp.status_code == 200, resp.text
    access: str = resp.json()["access_token"]
    return access


async def _whose_journal(served: Served, access: str) -> str:
    """The name of the user whose journal this token reads (and that it reads trades)."""
    async with Client(http_transport(served.base, access)) as client:
        assert data_of(await client.call_tool("find_trades", {"limit": 2}))["count"] == 2
        name: str = data_of(await client.call_tool("lookup", {"name": "me"}))["user"]["name"]
        return name


def _assert_refused_elsewhere(resp: httpx2.Response) -> None:
    """A plain page: no code, no redirect, no form, nothing about the user."""
    assert resp.status_code == 403, resp.text
    assert "location" not in resp.headers
    assert "code=" not in resp.text
    assert "Answered in another browser" in resp.text
    assert "dana" not in resp.text.lower()
    page = forms(resp.text)
    assert page.buttons == []
    assert page.inputs == []


async def test_another_browser_cannot_approve_deny_or_recheck_and_the_users_allow_works(
    served: Served,
) -> None:
    async with _browser() as victim, _browser() as attacker:
        client_id, verifier, link = await _phishing_link(attacker, served)
        # The attacker opens its own link first, for a cookie and a CSRF token of its own.
        own = await attacker.get(link)
        assert own.status_code == 200
        # The user: the genuine page, their key, Continue.
        page = await victim.get(link)
        assert "<strong>Claude</strong> asks to use your Tradavity journal" in page.text
        checked = await _answer(victim, served, page, api_key=DEMO_KEY, action="check")
        assert checked.status_code == 200, checked.text
        assert ("action", "approve") in forms(checked.text).buttons
        assert victim.cookies["tvty_consent"] != attacker.cookies["tvty_consent"]
        # The attacker answers the same request from its browser: Allow, Cancel, or a
        # key of its own in place of the user's. Each gets a plain page and changes nothing.
        for fields in (
            {"action": "approve"},
            {"action": "deny"},
            {"action": "check", "api_key": SECOND_PRO_KEY},
            {"action": "approve"},
        ):
            _assert_refused_elsewhere(await _answer(attacker, served, own, **fields))
        # Opening the link again in its browser shows the same page, with no form.
        _assert_refused_elsewhere(await attacker.get(link))
        # The user's Allow still works: the code is for the user's own key, not the
        # attacker's, and buys a token that reads the user's journal.
        done = await _answer(victim, served, checked, action="approve")
        assert done.status_code == 302, done.text
        access = await _exchange(victim, served, done.headers["location"], client_id, verifier)
        assert await _whose_journal(served, access) == "Dana Demo"
        # The request is spent: the attacker cannot answer it any more either.
        late = await _answer(attacker, served, own, action="approve")
        assert late.status_code == 400
        assert "location" not in late.headers


async def test_a_users_cancel_is_not_taken_by_another_browser(served: Served) -> None:
    async with _browser() as victim, _browser() as attacker:
        _, _, link = await _phishing_link(attacker, served)
        own = await attacker.get(link)
        page = await victim.get(link)
        checked = await _answer(victim, served, page, api_key=DEMO_KEY, action="check")
        assert checked.status_code == 200
        _assert_refused_elsewhere(await _answer(attacker, served, own, action="deny"))
        # The user's own Cancel goes back to the client with access_denied (the request
        # did not "expire" under them).
        cancel = await _answer(victim, served, checked, action="deny")
        assert cancel.status_code == 302, cancel.text
        assert query_of(cancel.headers["location"])["error"] == "access_denied"
        assert "code" not in query_of(cancel.headers["location"])


async def test_a_key_checked_first_by_the_links_sender_grants_only_the_senders_journal(
    served: Served,
) -> None:
    """The first browser to check a key keeps the request. A sender who checks its own
    key before the user does can only grant its own journal to its own client; the
    user, told the request is answered elsewhere, never enters a key into it."""
    async with _browser() as victim, _browser() as attacker:
        client_id, verifier, link = await _phishing_link(attacker, served)
        page = await victim.get(link)
        own = await attacker.get(link)
        mine = await _answer(attacker, served, own, api_key=SECOND_PRO_KEY, action="check")
        assert mine.status_code == 200, mine.text
        # The user, on the page they opened before: their key is refused, and kept nowhere.
        refused = await _answer(victim, served, page, api_key=DEMO_KEY, action="check")
        _assert_refused_elsewhere(refused)
        _assert_refused_elsewhere(await _answer(victim, served, page, action="approve"))
        done = await _answer(attacker, served, mine, action="approve")
        assert done.status_code == 302
        access = await _exchange(attacker, served, done.headers["location"], client_id, verifier)
        assert await _whose_journal(served, access) == "Priya Pro"


class _Definitions(HTMLParser):
    """The text of each `<dt>` and its `<dd>`, of the page's one definition list."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, str] = {}
        self._term: str | None = None
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"dt", "dd"}:
            self._in = tag
            if tag == "dt":
                self._term = ""

    def handle_endtag(self, tag: str) -> None:
        if tag in {"dt", "dd"}:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "dt":
            self._term = (self._term or "") + data
        elif self._in == "dd" and self._term is not None:
            self.rows[self._term] = self.rows.get(self._term, "") + data


def _definitions(page: str) -> dict[str, str]:
    parsed = _Definitions()
    parsed.feed(page)
    return parsed.rows


@pytest.mark.parametrize("key", [READONLY_KEY, DEMO_KEY], ids=["read-only", "every-scope"])
async def test_the_allow_page_repeats_what_allow_grants(tmp_path: Path, key: str) -> None:
    sandbox = create_app(SandboxConfig(db=":memory:"))
    api = TradavityClient(SecretStr(key), base_url=SANDBOX_URL, transport=SandboxTransport(sandbox))
    try:
        me = await api.me()
    finally:
        await api.aclose()
    with oauth_server(tmp_path, sandbox=sandbox) as served:
        async with _browser() as browser:
            client_id, _, link = await _phishing_link(browser, served)
            page = await browser.get(link)
            checked = await _answer(browser, served, page, api_key=key, action="check")
    assert checked.status_code == 200, checked.text
    assert "Allow <strong>Claude</strong> to use the Tradavity journal of" in checked.text
    rows = _definitions(checked.text)
    assert list(rows) == ["Assistant", "Returns to", "Journal", "What it may do"]
    assert rows["Assistant"].startswith("Claude")
    assert client_id in rows["Assistant"]  # a registered client: its name is its own claim
    assert rows["Returns to"] == "claude.ai"
    assert rows["Journal"] == me.user["email"] == "dana@example.com"
    granted = rows["What it may do"]
    assert me.scopes, "the key has scopes"
    for scope in me.scopes:
        assert scope in granted
    for tool in TOOLS:
        if tool.scope is None or tool.scope in me.scopes:
            assert tool.title in granted, tool.title
        else:
            assert tool.title not in granted, tool.title
    if key == READONLY_KEY:
        assert "write:" not in granted
        assert "Journal trade" not in granted
    assert key[5:] not in checked.text
    assert ("action", "approve") in forms(checked.text).buttons
