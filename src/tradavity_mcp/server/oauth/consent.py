"""The consent page: where a user lets an assistant use their Tradavity journal.

Server-rendered, no JavaScript. Two steps on one URL (`/consent?request=...`):

1. The page names the client asking and where it will return, and takes the user's
   Tradavity API key in a password field. The key is checked against `/me`; a key
   Tradavity refuses is answered on the page with the reason, and no code is issued.
2. The page repeats what "Allow" grants: the client, where it returns, whose journal,
   the key's scopes and the tools they allow; "Allow" issues the authorization code and
   redirects to the client.

Between the steps the key is kept sealed with the consent request, never in the page.
Every form carries a CSRF token bound to the request and to a SameSite=Strict cookie;
a POST from another origin is refused; the page cannot be framed.

A request belongs to the browser that checked a key for it (the request keeps an HMAC
of that browser's cookie). Only that browser may allow or cancel it, or check another
key; any other browser holding the link (the one who sent it to the user, say) gets a
plain page and changes nothing. The first browser to check a key wins: someone who
checks their own key before the user does can only grant their own journal to their
own client, and the user, told the request is taken, connects again from their
assistant.
"""

from __future__ import annotations

import hashlib
import html
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mcp.server.auth.provider import construct_redirect_uri
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ...api.idempotency import principal_for_key
from ...api.models import Me
from ...settings import API_KEY_PATTERN
from ..auth import CLIENT_ADDRESS
from ..tools import TOOLS
from .clients import Admission, RateLimit
from .crypto import KeyBox
from .offload import AsyncOAuthStore
from .store import Checked, Pending

__all__ = ["CONSENT_PATH", "Consent", "KeyCheck", "KeyRefused"]

logger = logging.getLogger("tradavity_mcp.oauth")

CONSENT_PATH = "/consent"
_COOKIE = "tvty_consent"


class KeyRefused(Exception):
    """The key cannot be used; the message is shown on the page."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


#: Checks a key against Tradavity's `/me`, or raises `KeyRefused`.
KeyCheck = Callable[[str], Awaitable[Me]]

_STYLE = """
body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.35rem}.who{background:#f3f5f8;border-radius:8px;padding:.75rem 1rem}
.error{background:#fdecec;color:#8a1111;border-radius:8px;padding:.75rem 1rem}
label{display:block;font-weight:600;margin-top:1rem}
input[type=password]{width:100%;padding:.6rem;font:inherit;box-sizing:border-box}
button{font:inherit;padding:.6rem 1.2rem;margin:1rem .5rem 0 0;min-height:44px;cursor:pointer}
button.primary{background:#1d4ed8;color:#fff;border:0;border-radius:6px}
small{color:#555}ul{padding-left:1.2rem}code{font-size:.9em}
dl.grant dt{font-weight:600;margin-top:.6rem}dl.grant dd{margin-left:1rem}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def tools_by_scope(scopes: list[str]) -> list[tuple[str, list[str]]]:
    """Each scope of a key and the tools it allows (scope-free tools under "always")."""
    out: list[tuple[str, list[str]]] = []
    free = [t.title for t in TOOLS if t.scope is None]
    if free:
        out.append(("always", free))
    for scope in sorted(scopes):
        names = [t.title for t in TOOLS if t.scope == scope]
        out.append((scope, names))
    return out


#: Wrong keys one consent request may try (in its life: ten minutes, the store's
#: `pending_ttl`); then that request is over and the user connects again.
TRIES_PER_REQUEST = 5


def consent_limit() -> RateLimit:
    """Wrong keys tried on the consent page per client address, and in all, per minute:
    each is a `/me` request to Tradavity.

    Only wrong keys count (a check is admitted first and withdrawn when Tradavity accepts
    the key), and each consent request has its own small limit (`request_limit`), so a
    person's typos end their own attempt, not their neighbours': an address is stopped
    only by many more wrong keys than anyone types, from any number of requests, within
    the minute (key stuffing). Behind a load balancer, `--trusted-proxy` makes the address
    the client's own rather than the balancer's.
    """
    return RateLimit(per_address=30, total=600, window=60.0)


def request_limit() -> RateLimit:
    """Wrong keys tried on one consent request (kept per request, no total)."""
    return RateLimit(per_address=TRIES_PER_REQUEST, total=None, window=600.0)


@dataclass
class Consent:
    store: AsyncOAuthStore
    box: KeyBox
    check_key: KeyCheck
    issuer: str
    #: Wrong keys per client address (each check is a `/me` request to Tradavity).
    limit: Admission = field(default_factory=consent_limit)
    #: Wrong keys per consent request.
    request_limit: Admission = field(default_factory=request_limit)

    @property
    def secure_cookie(self) -> bool:
        return self.issuer.startswith("https://")

    async def handle(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._post(request)
        request_id = request.query_params.get("request", "")
        pending = await self.store.pending(request_id) if request_id else None
        cookie = request.cookies.get(_COOKIE) or secrets.token_urlsafe(24)
        if pending is None:
            return self._expired(cookie)
        if not self._ours(await self.store.checked(request_id), cookie):
            return self._elsewhere(cookie)
        return self._key_page(request_id, pending, cookie, error=None)

    def _ours(self, checked: Checked | None, cookie: str) -> bool:
        """Whether this browser may answer a request: no key was checked for it yet, or
        this browser checked it."""
        return checked is None or self.box.same_mac(checked.browser, "browser", cookie)

    async def _post(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        if origin is not None and origin != _origin(self.issuer):
            return self._page(
                "Not allowed",
                "<p>This form must be sent from this server's page.</p>",
                "",
                status=403,
            )
        form = await request.form()
        request_id = str(form.get("request") or "")
        cookie = request.cookies.get(_COOKIE, "")
        csrf = str(form.get("csrf") or "")
        if not cookie or not request_id or not self.box.same_mac(csrf, "csrf", request_id, cookie):
            return self._page(
                "Please start again",
                "<p>This form expired or did not come from this page. Go back to your "
                "assistant and connect again.</p>",
                cookie,
                status=403,
            )
        pending = await self.store.pending(request_id)
        if pending is None:
            return self._expired(cookie)
        checked = await self.store.checked(request_id)
        if not self._ours(checked, cookie):
            logger.warning(
                "a consent request for client %r was answered from a browser other than "
                "the one that checked its key: refused",
                pending.client_name,
            )
            return self._elsewhere(cookie)
        browser = self.box.mac("browser", cookie)
        action = str(form.get("action") or "")
        if action == "deny":
            if not await self.store.take_pending(request_id, browser):
                return await self._not_taken(request_id, cookie)
            return self._redirect(pending, error="access_denied")
        if action == "check":
            key = str(form.get("api_key") or "")
            return await self._check(request_id, pending, cookie, browser, key)
        if action == "approve":
            if checked is None:
                return self._key_page(request_id, pending, cookie, error="Enter your key first.")
            if not await self.store.take_pending(request_id, browser):
                return await self._not_taken(request_id, cookie)
            code = await self.store.add_grant(pending, checked)
            logger.info("a grant was approved for client %r", pending.client_name)
            return self._redirect(pending, code=code)
        return self._key_page(request_id, pending, cookie, error="Choose Continue or Cancel.")

    async def _not_taken(self, request_id: str, cookie: str) -> Response:
        """The page when this browser's answer changed nothing: the request expired or
        was used, or another browser checked a key for it in the meantime."""
        if await self.store.pending(request_id) is None:
            return self._expired(cookie)
        return self._elsewhere(cookie)

    async def _check(
        self, request_id: str, pending: Pending, cookie: str, browser: str, raw: str
    ) -> Response:
        key = raw.strip()
        if not API_KEY_PATTERN.fullmatch(key):
            return self._key_page(
                request_id,
                pending,
                cookie,
                error="That is not a Tradavity API key: keys are 'tvty_' followed by 48 "
                "characters. Copy yours from Settings \u2192 API in Tradavity.",
            )
        address = CLIENT_ADDRESS.get()
        attempt = "request:" + hashlib.sha256(request_id.encode()).hexdigest()
        ticket = secrets.token_hex(16)
        if not await self.request_limit.admit(attempt, ticket):
            return self._key_page(
                request_id,
                pending,
                cookie,
                error="Too many wrong keys were tried on this sign-in: go back to your "
                "assistant and connect again.",
                status=429,
            )
        if not await self.limit.admit(address, ticket):
            await self.request_limit.withdraw(attempt, ticket)
            return self._key_page(
                request_id,
                pending,
                cookie,
                error="Too many wrong keys were tried from your network in the last "
                "minute: wait a minute, then try again.",
                status=429,
            )
        try:
            me = await self.check_key(key)
        except KeyRefused as refused:
            return self._key_page(
                request_id, pending, cookie, error=str(refused), status=refused.status
            )
        # A key Tradavity accepts costs nobody any tries.
        await self.limit.withdraw(address, ticket)
        await self.request_limit.withdraw(attempt, ticket)
        user = me.user or {}
        label = str(user.get("email") or user.get("name") or user.get("id") or "Tradavity user")
        checked = Checked(
            user_label=label,
            key_mac=self.box.mac("key", key),
            key_sealed=self.box.seal(key),
            scopes=sorted(me.scopes),
            browser=browser,
            principal=principal_for_key(key),
        )
        if not await self.store.check_pending(request_id, checked):
            return await self._not_taken(request_id, cookie)
        return self._approve_page(request_id, pending, cookie, checked)

    # pages

    def _client_block(self, pending: Pending) -> str:
        back = urlsplit(pending.redirect_uri).netloc
        ident = (
            f"<br><small>Client id: <code>{_e(pending.client_id)}</code></small>"
            if pending.client_id != pending.client_name
            else ""
        )
        return (
            f'<div class="who"><strong>{_e(pending.client_name)}</strong> asks to use your '
            f"Tradavity journal.{ident}<br><small>Afterwards you return to "
            f"<code>{_e(back)}</code>.</small></div>"
        )

    def _hidden(self, request_id: str, cookie: str) -> str:
        csrf = self.box.mac("csrf", request_id, cookie)
        return (
            f'<input type="hidden" name="request" value="{_e(request_id)}">'
            f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
        )

    def _key_page(
        self,
        request_id: str,
        pending: Pending,
        cookie: str,
        *,
        error: str | None,
        status: int = 200,
    ) -> Response:
        problem = f'<p class="error" role="alert">{_e(error)}</p>' if error else ""
        body = (
            f"{self._client_block(pending)}{problem}"
            f'<form method="post" action="{CONSENT_PATH}">{self._hidden(request_id, cookie)}'
            '<label for="api_key">Your Tradavity API key</label>'
            '<input type="password" id="api_key" name="api_key" autocomplete="off" '
            'spellcheck="false" placeholder="tvty_...">'
            "<small>Find it in Tradavity under Settings \u2192 API. It is checked with Tradavity, "
            "kept encrypted on this server, and never shown to the assistant.</small><br>"
            '<button class="primary" type="submit" name="action" value="check">Continue</button>'
            '<button type="submit" name="action" value="deny">Cancel</button></form>'
        )
        return self._page("Connect to Tradavity", body, cookie, status=status, pending=pending)

    def _approve_page(
        self, request_id: str, pending: Pending, cookie: str, checked: Checked
    ) -> Response:
        rows = "".join(
            f"<li><code>{_e(scope)}</code>: {_e(', '.join(tools) or 'no tools')}</li>"
            for scope, tools in tools_by_scope(checked.scopes)
        )
        ident = (
            f" <small>(client id <code>{_e(pending.client_id)}</code>)</small>"
            if pending.client_id != pending.client_name
            else ""
        )
        name, label = _e(pending.client_name), _e(checked.user_label)
        back = urlsplit(pending.redirect_uri).netloc
        body = (
            f'<p class="who">Allow <strong>{name}</strong> to use the Tradavity journal of '
            f"<strong>{label}</strong>?</p>"
            '<dl class="grant">'
            f"<dt>Assistant</dt><dd><strong>{name}</strong>{ident}</dd>"
            f"<dt>Returns to</dt><dd><code>{_e(back)}</code></dd>"
            f"<dt>Journal</dt><dd><strong>{label}</strong></dd>"
            f"<dt>What it may do</dt><dd>The key's scopes, and the tools they allow:"
            f"<ul>{rows}</ul></dd></dl>"
            f"<p>Allow only if you asked <strong>{name}</strong> to connect to Tradavity just "
            "now. It can then use these tools on this journal until you revoke it; revoking "
            "the key in Tradavity also ends it.</p>"
            f'<form method="post" action="{CONSENT_PATH}">{self._hidden(request_id, cookie)}'
            '<button class="primary" type="submit" name="action" value="approve">Allow</button>'
            '<button type="submit" name="action" value="deny">Cancel</button></form>'
        )
        return self._page("Allow access?", body, cookie, pending=pending)

    def _elsewhere(self, cookie: str) -> Response:
        return self._page(
            "Answered in another browser",
            "<p>A key was entered for this connection request in another browser, and only "
            "that browser can allow or cancel it. Nothing was changed here.</p>"
            "<p>If you did not start this connection yourself, do not go on. To connect, "
            "start again from your assistant.</p>",
            cookie,
            status=403,
        )

    def _expired(self, cookie: str) -> Response:
        return self._page(
            "This request expired",
            "<p>This connection request expired or was already used. Go back to your "
            "assistant and connect again.</p>",
            cookie,
            status=400,
        )

    def _page(
        self,
        title: str,
        body: str,
        cookie: str,
        *,
        status: int = 200,
        pending: Pending | None = None,
    ) -> Response:
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{_e(title)}</h1>{body}</body></html>"
        )
        targets = "'self'"
        if pending is not None:
            targets += " " + _origin(pending.redirect_uri)
        response = HTMLResponse(page, status_code=status, headers=self._headers(targets))
        if cookie:
            response.set_cookie(
                _COOKIE,
                cookie,
                max_age=1800,
                path=CONSENT_PATH,
                httponly=True,
                samesite="strict",
                secure=self.secure_cookie,
            )
        return response

    @staticmethod
    def _headers(form_targets: str) -> dict[str, str]:
        return {
            "Content-Security-Policy": (
                "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
                f"form-action {form_targets}; frame-ancestors 'none'"
            ),
            "X-Frame-Options": "DENY",
            "Cache-Control": "no-store",
            "Pragma": "no-cache",
            # Not no-referrer: with it, browsers send `Origin: null` on the page's own POST.
            "Referrer-Policy": "same-origin",
            "X-Content-Type-Options": "nosniff",
        }

    def _redirect(
        self, pending: Pending, *, code: str | None = None, error: str | None = None
    ) -> Response:
        url = construct_redirect_uri(
            pending.redirect_uri, code=code, error=error, state=pending.state, iss=self.issuer
        )
        return RedirectResponse(
            url,
            status_code=302,
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )
