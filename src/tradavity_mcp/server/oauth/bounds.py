"""What a caller nobody has authenticated can make the authorization server keep, and how
much of it: every `/authorize` parameter kept with a consent request, every registration
field kept with a client. Each is checked before anything is stored; a refusal names the
field, what it accepts and what was given.

Which `/authorize` refusals go back to the client (a redirect, RFC 6749 4.1.2.1) and
which are shown where the request came from (a plain 400): a `client_id` or
`redirect_uri` too long is never redirected to (neither is checked yet, and a redirect to
an unchecked URI would make this server an open redirector); a `state` too long is not
either (the error would have to carry it back). The rest (`scope`, `code_challenge`) are
checked once the client and its redirect URI are, and redirected, with the state.

A registration keeps only what this server uses: `KEPT_FIELDS`. Anything else a client
sends (a logo, contacts, policy links, `jwks` or `jwks_uri`, unknown fields) is dropped,
not refused (RFC 7591 3.2.1 lets a server drop metadata; the response says what was
kept); the whole document is bounded all the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CODE_CHALLENGE_LENGTH",
    "KEPT_FIELDS",
    "MAX_CLIENT_NAME",
    "MAX_REDIRECT_URIS",
    "MAX_REGISTRATION_BYTES",
    "MAX_SCOPE",
    "MAX_STATE",
    "MAX_URL",
    "authorize_refusal",
    "challenge_problem",
    "registration_problem",
    "scope_problem",
]

#: A client id (a UUID, or a metadata document's URL), a redirect URI, a resource.
MAX_URL = 512
#: `state`: opaque to this server, sent back to the client; typically 30 to 100 characters.
MAX_STATE = 2048
#: A scope string, asked for at `/authorize` or registered.
MAX_SCOPE = 512
#: An S256 code challenge: a SHA-256 in base64url without padding (RFC 7636 4.2).
CODE_CHALLENGE_LENGTH = 43
#: A client's name, shown on the consent page.
MAX_CLIENT_NAME = 200
#: Redirect URIs one registration may list.
MAX_REDIRECT_URIS = 5
#: A whole registration request, as sent.
MAX_REGISTRATION_BYTES = 16 * 1024

#: The registration fields a client is kept with (beside what the server issues: its id,
#: secret and their dates).
KEPT_FIELDS = frozenset(
    {
        "redirect_uris",
        "client_name",
        "scope",
        "token_endpoint_auth_method",
        "grant_types",
        "response_types",
        "application_type",
    }
)

#: The `/authorize` parameters refused without a redirect, and their bounds.
_PLAIN = (("client_id", MAX_URL), ("redirect_uri", MAX_URL), ("state", MAX_STATE))


def _too_long(name: str, value: str, most: int, unit: str = "characters") -> str:
    return f"{name} is {len(value):,} {unit} long; at most {most:,} are accepted"


def authorize_refusal(params: Mapping[str, Any]) -> str | None:
    """Why an `/authorize` request is refused without a redirect (see the module), or
    None. `params`: its query or form."""
    for name, most in _PLAIN:
        value = params.get(name)
        if isinstance(value, str) and len(value) > most:
            return _too_long(name, value, most)
    return None


def scope_problem(scopes: list[str] | None) -> str | None:
    text = " ".join(scopes or [])
    return _too_long("scope", text, MAX_SCOPE) if len(text) > MAX_SCOPE else None


def challenge_problem(challenge: str) -> str | None:
    if len(challenge) == CODE_CHALLENGE_LENGTH:
        return None
    return (
        f"code_challenge must be {CODE_CHALLENGE_LENGTH} characters (the S256 hash of the "
        f"verifier, base64url without padding); this one is {len(challenge):,}"
    )


def registration_problem(body: bytes) -> str | None:
    """Why a registration request is refused for its size, or None (then the SDK's
    handler reads it: what is not JSON, or not a registration, it answers itself)."""
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        found = _field_problem(doc)
        if found is not None:
            return found
    if len(body) <= MAX_REGISTRATION_BYTES:
        return None
    said = (
        f"the registration is {len(body):,} bytes long; "
        f"at most {MAX_REGISTRATION_BYTES:,} are accepted"
    )
    if isinstance(doc, dict) and doc:
        sizes = {name: len(json.dumps(value, separators=(",", ":"))) for name, value in doc.items()}
        largest = max(sizes, key=lambda name: sizes[name])
        kept = "" if largest in KEPT_FIELDS else ", a field this server does not use"
        said += f" (the largest field: {largest[:40]}, {sizes[largest]:,} bytes{kept})"
    return said


def _field_problem(doc: dict[str, Any]) -> str | None:
    name = doc.get("client_name")
    if isinstance(name, str) and len(name) > MAX_CLIENT_NAME:
        return _too_long("client_name", name, MAX_CLIENT_NAME)
    scope = doc.get("scope")
    if isinstance(scope, str) and len(scope) > MAX_SCOPE:
        return _too_long("scope", scope, MAX_SCOPE)
    uris = doc.get("redirect_uris")
    if isinstance(uris, list):
        if len(uris) > MAX_REDIRECT_URIS:
            return (
                f"redirect_uris lists {len(uris):,} URIs; at most {MAX_REDIRECT_URIS} are accepted"
            )
        for uri in uris:
            if isinstance(uri, str) and len(uri) > MAX_URL:
                return _too_long("a redirect URI", uri, MAX_URL)
    return None
