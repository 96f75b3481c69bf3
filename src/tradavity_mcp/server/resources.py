"""Resources: the same `read` functions as the read tools, and the sync monitor's runs.

Resources get no `Context` from the SDK; they find the request's workspace through
`current_workspace()`, which `scope.RequestScope` sets for every request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from ..api.errors import TradavityError
from . import read
from .errors import UserError, reported
from .sync.status import refresh_sync
from .when import readable
from .workspace import Workspace, current_workspace

__all__ = ["RESOURCES", "register_resources"]

JSON = "application/json"


async def _text(work: Awaitable[Any]) -> str:
    """The JSON a resource reads as: each time in its local form alone (`readable`)."""
    with reported(ResourceError):
        value = readable(await work)
    text = read.dump(value)
    if len(text) > read.DATA_BUDGET * 2:  # a last guard: `read` already bounds its data
        structured = value if isinstance(value, dict) else {"items": value}
        text = read.dump(read.fit(structured, read.DATA_BUDGET))
    return text


async def _local(ws: Workspace, data: Any) -> str:
    """`data` as a resource shows it: times in the user's zone, marked."""
    return read.dump(readable((await ws.local_clock()).stamp(data)))


async def stats(
    kind: str,
    range: str | None = None,
    from_date: str | None = None,
    to_date: str | None = None,
    account: str | None = None,
) -> str:
    return await _text(
        read.stats(
            current_workspace(), kind, range_=range, from_=from_date, to=to_date, account=account
        )
    )


async def calendar(
    range: str | None = None,
    from_date: str | None = None,
    to_date: str | None = None,
    account: str | None = None,
) -> str:
    return await _text(
        read.calendar(
            current_workspace(), range_=range, from_=from_date, to=to_date, account=account
        )
    )


async def catalog(name: str) -> str:
    if name not in read.CATALOG:
        raise ResourceError(f"unknown catalog {name!r}; one of {', '.join(read.CATALOG)}")
    return await _text(read.lookup(current_workspace(), name))


async def trade(trade_number: str) -> str:
    if not trade_number.isdigit():
        raise ResourceError("trade_number must be a whole number")
    return await _text(read.get_trade(current_workspace(), int(trade_number)))


def _list(name: str) -> Callable[[], Awaitable[str]]:
    async def read_list() -> str:
        return await _text(read.lookup(current_workspace(), name))

    return read_list


async def protocol(protocol: str) -> str:
    return await _text(read.lookup(current_workspace(), "protocols", protocol))


async def sync_status() -> str:
    ws = current_workspace()
    with reported(ResourceError):
        statuses = await refresh_sync(ws)
    return await _local(ws, {"connections": statuses})


def _limit(raw: str | None, *, default: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 200:
        raise ResourceError("limit must be a whole number from 1 to 200")
    return int(raw)


async def _sync_seen(ws: Workspace) -> None:
    """On a fresh server, read the API's sync log once, so runs the platform made before
    we started are there on the first read (not only after sync/status)."""
    if not ws.sync.log_read:
        with contextlib.suppress(UserError, TradavityError):
            await refresh_sync(ws)


async def sync_runs(limit: str | None = None) -> str:
    ws = current_workspace()
    await _sync_seen(ws)
    runs = await ws.sync.runs(_limit(limit, default=20))
    return await _local(ws, {"runs": [e.to_json() for e in runs]})


async def sync_recent(limit: str | None = None) -> str:
    ws = current_workspace()
    await _sync_seen(ws)
    events = await ws.sync.events(_limit(limit, default=50))
    return await _local(ws, {"events": [e.to_json() for e in events]})


@dataclass(frozen=True)
class Resource:
    uri: str
    name: str
    title: str
    description: str
    fn: Callable[..., Awaitable[str]]


RESOURCES: tuple[Resource, ...] = (
    Resource(
        "tradavity://stats/{kind}{?range,from_date,to_date,account}",
        "stats",
        "Stats",
        "summary, by-symbol or by-strategy; range or from_date/to_date; account",
        stats,
    ),
    Resource(
        "tradavity://calendar{?range,from_date,to_date,account}",
        "calendar",
        "P&L calendar",
        "Daily P&L in the user's timezone (default: this month)",
        calendar,
    ),
    Resource(
        "tradavity://catalog/{name}",
        "catalog",
        "Catalog",
        "me, usage, brokers, instruments, prop-firm-presets, scopes or emotions",
        catalog,
    ),
    Resource(
        "tradavity://trades/{trade_number}",
        "trade",
        "Trade",
        "One trade in full (an archived trade: its summary row, marked archived)",
        trade,
    ),
    Resource(
        "tradavity://accounts",
        "accounts",
        "Accounts",
        "Trading accounts: id, name, type, currency, broker",
        _list("accounts"),
    ),
    Resource(
        "tradavity://tags",
        "tags",
        "Tags with categories",
        "Tags: id, name and category",
        _list("tags"),
    ),
    Resource(
        "tradavity://strategies",
        "strategies",
        "Strategies with setups",
        "Strategies: id, name and setup names",
        _list("strategies"),
    ),
    Resource(
        "tradavity://protocols",
        "protocols",
        "Protocols (checklists)",
        "Protocols (checklists and reviews): id, name, type; items per protocol at "
        "tradavity://protocols/{protocol}",
        _list("protocols"),
    ),
    Resource(
        "tradavity://protocols/{protocol}",
        "protocol",
        "Protocol items",
        "One protocol (id, name or type) with its items",
        protocol,
    ),
    Resource(
        "tradavity://sync/status",
        "sync-status",
        "Sync status",
        "Per-connection sync state",
        sync_status,
    ),
    Resource(
        "tradavity://sync/runs{?limit}",
        "sync-runs",
        "Sync runs",
        "Latest event of each sync run, newest first (24 h)",
        sync_runs,
    ),
    Resource(
        "tradavity://sync/recent{?limit}",
        "sync-recent",
        "Recent sync events",
        "Sync events, newest first (default 50, max 200; 24 h)",
        sync_recent,
    ),
)


#: The resources as the SDK builds them (a template's argument model, most of what a
#: registration costs), built by the first server of the process and shared by the
#: rest: they depend only on the table, and their functions are module-level.
_BUILT: list[tuple[dict[str, Any], dict[str, Any]]] = []


def register_resources(mcp: MCPServer) -> None:
    """Every resource (the completion handler and the subscribe methods are added by
    `build_server` at start: they change the capabilities)."""
    manager = mcp._resource_manager
    if _BUILT:
        # The SDK adds resources only from a function, which builds them again; the
        # manager's tables are where its decorator puts what it built.
        static, templates = _BUILT[0]
        manager._resources.update(static)
        manager._templates.update(templates)
        return
    for r in RESOURCES:
        mcp.resource(r.uri, name=r.name, title=r.title, description=r.description, mime_type=JSON)(
            r.fn
        )
    uris = {r.uri for r in RESOURCES}
    _BUILT.append(
        (
            {u: x for u, x in manager._resources.items() if u in uris},
            {u: x for u, x in manager._templates.items() if u in uris},
        )
    )
