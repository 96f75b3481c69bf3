"""Who may ask for a grant: clients named by a metadata document (the client id is an
https URL whose JSON lists the client's redirect URIs), and clients registered
dynamically (RFC 7591), whose redirect URIs must be on an allow-list.

Fetching a document is a request the server makes on a stranger's behalf, so it is
bounded: https only, a public address only (the name is resolved once, within a short
time, every address checked, IPv4 addresses carried inside IPv6 ones too, and the
connection made to the checked address; a host spelled as an IPv4 address in decimal,
octal or hex is refused), no redirects, a short timeout, a size cap, a few fetches per
client address and in all per minute (`fetch_limit`), and the answer cached either
way. Past that budget a document fetched before is used on, however old, so a flood of
new URLs does not lock out the clients already known.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx2
from mcp.shared.auth import OAuthClientInformationFull

from ...settings import DEFAULT_REDIRECT_HOSTS
from ..auth import CLIENT_ADDRESS

__all__ = [
    "DEFAULT_REDIRECT_HOSTS",
    "Admission",
    "ClientDocuments",
    "RateLimit",
    "SharedLimits",
    "fetch_limit",
    "is_client_document_url",
    "redirect_allowed",
]

logger = logging.getLogger("tradavity_mcp.oauth")

_LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}

#: Most bytes read of a client metadata document.
MAX_DOCUMENT_BYTES = 5 * 1024
#: How long resolving its host may take...
RESOLVE_TIMEOUT_SECONDS = 2.0
#: ...and fetching it.
FETCH_TIMEOUT_SECONDS = 5.0
#: How long a fetched document is trusted, and a refused one refused.
DOCUMENT_TTL_SECONDS = 600.0
REFUSED_TTL_SECONDS = 60.0
MAX_CACHED = 1024


def is_client_document_url(client_id: str) -> bool:
    return client_id.startswith(("https://", "http://"))


def _is_loopback_redirect(parts: Any) -> bool:
    return parts.scheme == "http" and (parts.hostname or "") in _LOOPBACK_NAMES


def redirect_allowed(uri: str, hosts: tuple[str, ...]) -> bool:
    """An https redirect to a listed host (exactly), or an http loopback redirect."""
    parts = urlsplit(uri)
    if parts.fragment or parts.username or parts.password:
        return False
    if _is_loopback_redirect(parts):
        return True
    return parts.scheme == "https" and (parts.hostname or "").lower() in hosts


#: IPv6 ranges whose last 32 bits are an IPv4 address packets to them may reach: NAT64's
#: well-known prefix (RFC 6052), IPv4-translated (RFC 2765) and IPv4-compatible
#: (deprecated, RFC 4291) addresses.
_CARRY_LOW_IPV4 = tuple(
    ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "::ffff:0:0:0/96", "::/96")
)
#: NAT64 for local use (RFC 8215): where the IPv4 address sits depends on the local
#: prefix length, and it is never a public address.
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _reached(ip: IPAddress) -> list[IPAddress]:
    """The addresses a connection to `ip` may reach: itself, and any IPv4 address it
    carries (IPv4-mapped, NAT64, IPv4-compatible or -translated, 6to4, Teredo)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return [ip]
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    reached: list[IPAddress] = [ip]
    if int(ip) > 1 and any(ip in net for net in _CARRY_LOW_IPV4):  # not :: or ::1
        reached.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        reached.append(ip.sixtofour)
    if ip.teredo is not None:
        reached.extend(ip.teredo)
    return reached


def _address_ok(raw: str, *, allow_loopback: bool) -> bool:
    ip = ipaddress.ip_address(raw.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip in _NAT64_LOCAL:
        return False
    for one in _reached(ip):
        if one.is_loopback:
            if not allow_loopback:
                return False
        elif not one.is_global or one.is_multicast:
            return False
    return True


def _odd_ipv4(host: str) -> bool:
    """A host that is an IPv4 address in a spelling other than dotted decimal (decimal
    `2130706433`, octal `0177.0.0.1`, hex `0x7f.1`, short `127.1`): resolvers read it as
    an address, no real client's name looks like it."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return False
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def fetch_limit() -> RateLimit:
    """Client metadata documents fetched per client address, and in all, per minute."""
    return RateLimit(per_address=10, total=60, window=60.0)


class DocumentRefused(Exception):
    """A client metadata document that cannot be used; the message says why."""


class _OverBudget(DocumentRefused):
    """Too many documents fetched lately (not cached: the next minute may fetch it)."""


@dataclass
class _Cached:
    at: float
    client: OAuthClientInformationFull | None
    reason: str = ""


def _keep(cache: OrderedDict[str, _Cached], url: str, entry: _Cached) -> None:
    cache[url] = entry
    cache.move_to_end(url)
    while len(cache) > MAX_CACHED:
        cache.popitem(last=False)


class ClientDocuments:
    """Client metadata documents, fetched under the limits above and cached.

    `allow_loopback_http` lets a document be served over http from a loopback address:
    for tests and local development only (never set by the command line). `limit`: the
    fetches per client address and in all (`fetch_limit`, or one shared by replicas).
    """

    def __init__(
        self,
        *,
        allow_loopback_http: bool = False,
        clock: Callable[[], float] = time.monotonic,
        resolve: Callable[[str, int], Any] | None = None,
        limit: Admission | None = None,
    ) -> None:
        self.allow_loopback_http = allow_loopback_http
        self._clock = clock
        self._resolve = resolve or _resolve
        self._limit = limit or fetch_limit()
        # Usable documents and refused ones apart: URLs refused in numbers do not push
        # out the documents of the clients in use.
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._refused: OrderedDict[str, _Cached] = OrderedDict()
        #: Documents actually fetched (tests count them).
        self.fetches = 0

    async def get(self, url: str) -> OAuthClientInformationFull | None:
        client, _ = await self.lookup(url)
        return client

    async def lookup(self, url: str) -> tuple[OAuthClientInformationFull | None, str]:
        """The client a document describes, or None and why not."""
        now = self._clock()
        known = self._cache.get(url)
        if known is not None and now - known.at < DOCUMENT_TTL_SECONDS:
            return known.client, ""
        refused = self._refused.get(url)
        if refused is not None and now - refused.at < REFUSED_TTL_SECONDS:
            return None, refused.reason
        try:
            client = await self._fetch(url)
        except _OverBudget as exc:
            if known is not None:
                return known.client, ""
            logger.info("client metadata document not fetched: %s", exc)
            return None, str(exc)
        except DocumentRefused as exc:
            logger.info("client metadata document refused: %s", exc)
            self._cache.pop(url, None)
            _keep(self._refused, url, _Cached(now, None, str(exc)))
            return None, str(exc)
        self._refused.pop(url, None)
        _keep(self._cache, url, _Cached(now, client))
        return client, ""

    async def _fetch(self, url: str) -> OAuthClientInformationFull:
        parts = urlsplit(url)
        host = parts.hostname or ""
        loopback_http = self.allow_loopback_http and _is_loopback_redirect(parts)
        if parts.scheme != "https" and not loopback_http:
            raise DocumentRefused("the client id must be an https URL")
        if not host or parts.username or parts.password or parts.fragment:
            raise DocumentRefused("the client id is not a plain URL")
        if parts.path in {"", "/"}:
            raise DocumentRefused("the client id URL must have a path")
        if _odd_ipv4(host):
            raise DocumentRefused(
                f"the client id's host {host} is an IPv4 address spelled unusually; "
                "only names and dotted-decimal addresses are accepted"
            )
        if not await self._limit.admit(CLIENT_ADDRESS.get()):
            raise _OverBudget(
                "too many client metadata documents were fetched in the last minute; "
                "try again in a minute"
            )
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            with anyio.fail_after(RESOLVE_TIMEOUT_SECONDS):
                addresses = await self._resolve(host, port)
        except TimeoutError as exc:
            raise DocumentRefused(
                f"{host} did not resolve within {RESOLVE_TIMEOUT_SECONDS:g} seconds"
            ) from exc
        except OSError as exc:
            raise DocumentRefused(f"{host} does not resolve") from exc
        if not addresses:
            raise DocumentRefused(f"{host} does not resolve")
        for address in addresses:
            if not _address_ok(address, allow_loopback=loopback_http):
                raise DocumentRefused(f"{host} resolves to a non-public address ({address})")
        pinned = addresses[0]
        literal = f"[{pinned}]" if ":" in pinned else pinned
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        target = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self.fetches += 1
        body = bytearray()
        try:
            with anyio.fail_after(FETCH_TIMEOUT_SECONDS):
                async with (
                    httpx2.AsyncClient(follow_redirects=False, trust_env=False) as http,
                    http.stream(
                        "GET",
                        target,
                        headers={"Host": parts.netloc, "Accept": "application/json"},
                        extensions={"sni_hostname": host},
                    ) as resp,
                ):
                    if resp.status_code != 200:
                        raise DocumentRefused(f"the document answered HTTP {resp.status_code}")
                    async for chunk in resp.aiter_bytes():
                        body.extend(chunk)
                        if len(body) > MAX_DOCUMENT_BYTES:
                            raise DocumentRefused("the document is too large")
        except TimeoutError as exc:
            raise DocumentRefused("the document took too long") from exc
        except httpx2.HTTPError as exc:
            raise DocumentRefused(
                f"the document could not be fetched ({type(exc).__name__})"
            ) from exc
        return _parse(url, bytes(body))


def _parse(url: str, body: bytes) -> OAuthClientInformationFull:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise DocumentRefused("the document is not JSON") from exc
    if not isinstance(doc, dict):
        raise DocumentRefused("the document is not a JSON object")
    if doc.get("client_id") != url:
        raise DocumentRefused("the document's client_id is not its own URL")
    uris = doc.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise DocumentRefused("the document lists no redirect_uris")
    for uri in uris:
        parts = urlsplit(uri)
        if parts.fragment or not (parts.scheme == "https" or _is_loopback_redirect(parts)):
            raise DocumentRefused("a redirect URI is neither https nor loopback")
    method = doc.get("token_endpoint_auth_method", "none")
    if method != "none" or "client_secret" in doc:
        raise DocumentRefused("a metadata-document client cannot use a client secret")
    name = doc.get("client_name")
    if not isinstance(name, str) or not name.strip():
        name = urlsplit(url).hostname or url
    scope = doc.get("scope")
    return OAuthClientInformationFull(
        client_id=url,
        client_name=name.strip()[:100],
        redirect_uris=uris,
        token_endpoint_auth_method="none",  # noqa: S106 (a public client)
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        scope=scope if isinstance(scope, str) else None,
    )


async def _resolve(host: str, port: int) -> list[str]:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [host]
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Admission(Protocol):
    """A rate limit as the endpoints ask it: may one more event from `address` go ahead?
    `overall=False`: the event neither counts toward the limit's total nor is refused by
    it (a client address this server already trusts), only by the address's own. An event
    admitted under a `ticket` may be withdrawn later (it then counts no more)."""

    async def admit(self, address: str, ticket: str = "", *, overall: bool = True) -> bool: ...

    async def withdraw(self, address: str, ticket: str) -> None: ...


#: Makes a limit shared by replicas (`--redis`) from its name and this replica's own
#: limit, which stands in while the shared one cannot be asked.
SharedLimits = Callable[[str, "RateLimit"], Admission]


@dataclass
class RateLimit:
    """At most `per_address` events per client address (`auth.address_key`: an IPv6
    client by its /64), and `total` in all (None: no total), per window, in this
    process. An "address" is whatever the limit is kept per: a client address, or a
    consent request."""

    per_address: int
    total: int | None
    window: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    _by_address: OrderedDict[str, deque[tuple[float, str]]] = field(default_factory=OrderedDict)
    _all: deque[tuple[float, str]] = field(default_factory=deque)

    def allow(self, address: str, ticket: str = "", *, overall: bool = True) -> bool:
        now = self.clock()
        seen = self._by_address.setdefault(address, deque())
        self._by_address.move_to_end(address)
        for times in (seen, self._all):
            while times and now - times[0][0] >= self.window:
                times.popleft()
        counted = overall and self.total is not None
        if len(seen) >= self.per_address or (counted and len(self._all) >= (self.total or 0)):
            return False
        seen.append((now, ticket))
        if counted:
            self._all.append((now, ticket))
        while len(self._by_address) > 4096:
            self._by_address.popitem(last=False)
        return True

    def take_back(self, address: str, ticket: str) -> None:
        """The event admitted under `ticket` no longer counts."""
        if not ticket:
            return
        seen = self._by_address.get(address)
        for times in (seen, self._all):
            if times is None:
                continue
            for entry in times:
                if entry[1] == ticket:
                    times.remove(entry)
                    break

    async def admit(self, address: str, ticket: str = "", *, overall: bool = True) -> bool:
        return self.allow(address, ticket, overall=overall)

    async def withdraw(self, address: str, ticket: str) -> None:
        self.take_back(address, ticket)
