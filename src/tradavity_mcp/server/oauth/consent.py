"""The consent page: where a user lets an assistant use their Tradavity journal.

Server-rendered, no JavaScript. Two steps on one URL (`/consent?request=...`):

1. The page names the client asking and where it will return, and takes the user's
   Tradavity API key in a password field. The key is checked against `/me`; a key
   Tradavity refuses is answered on the page with the reason, and no code is issued.
2. The page shows whose journal it is, the key's scopes and the tools they allow;
   "Allow" issues the authorization code and redirects to the client.

Between the steps the key is kept sealed with the consent request, never in the page.
Every form carries a CSRF token bound to the request and to a SameSite=Strict cookie;
a POST from another origin is refused; the page cannot be framed.
"""

from __future__ import annotations

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


def consent_limit() -> RateLimit:
    """Keys tried on the consent page: each is a `/me` request to Tradavity."""
    return RateLimit(per_address=10, total=600, window=60.0)


@dataclass
class Consent:
    store: AsyncOAuthStore
    box: KeyBox
    check_key: KeyCheck
    issuer: str
    #: Keys checked per client address (each check is a `/me` request to Tradavity).
    limit: Admission = field(default_factory=consent_limit)

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
        return self._key_page(request_id, pending, cookie, error=None)

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
        action = str(form.get("action") or "")
        if action == "deny":
            await self.store.take_pending(request_id)
            return self._redirect(pending, error="access_denied")
        if action == "check":
            return await self._check(request_id, pending, cookie, str(form.get("api_key") or ""))
        if action == "approve":
            checked = await self.store.checked(request_id)
            if checked is None:
                return self._key_page(request_id, pending, cookie, error="Enter your key first.")
            if not await self.store.take_pending(request_id):
                return self._expired(cookie)
            code = await self.store.add_grant(pending, checked)
            logger.info("a grant was approved for client %r", pending.client_name)
            return self._redirect(pending, code=code)
        return self._key_page(request_id, pending, cookie, error="Choose Continue or Cancel.")

    async def _check(self, request_id: str, pending: Pending, cookie: str, raw: str) -> Response:
        key = raw.strip()
        if not API_KEY_PATTERN.fullmatch(key):
            return self._key_page(
                request_id,
                pending,
                cookie,
                error="That is not a Tradavity API key: keys are 'tvty_' followed by 48 "
                "characters. Copy yours from Settings \u2192 API in Tradavity.",
            )
        if not await self.limit.admit(CLIENT_ADDRESS.get()):
            return self._key_page(
                request_id,
                pending,
                cookie,
                error="Too many keys were tried from here in the last minute: wait a minute.",
                status=429,
            )
        try:
            me = await self.check_key(key)
        except KeyRefused as refused:
            return self._key_page(
                request_id, pending, cookie, error=str(refused), status=refused.status
            )
        user = me.user or {}
        label = str(user.get("email") or user.get("name") or user.get("id") or "Tradavity user")
        checked = Checked(
            user_label=label,
            key_mac=self.box.mac("key", key),
            key_sealed=self.box.seal(key),
            scopes=sorted(me.scopes),
            principal=principal_for_key(key),
        )
        await self.store.check_pending(request_id, checked)
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
        body = (
            f"{self._client_block(pending)}"
            f"<p>Key accepted for <strong>{_e(checked.user_label)}</strong>. Its scopes, and "
            f"the tools they allow:</p><ul>{rows}</ul>"
            f'<form method="post" action="{CONSENT_PATH}">{self._hidden(request_id, cookie)}'
            '<button class="primary" type="submit" name="action" value="approve">Allow</button>'
            '<button type="submit" name="action" value="deny">Cancel</button></form>'
            "<small>You can revoke this later; revoking the key in Tradavity also ends it.</small>"
        )
        return self._page("Allow access?", body, cookie, pending=pending)

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
