"""The sandbox's v1 API in one table: method, path, scope and handler of every route.

`create_app` compiles it (`routes()`) for the pipeline; the endpoint modules only define
handlers, so what the sandbox serves is read here, in one place. A `{name}` segment
matches one path segment and reaches the handler as `ctx.path[name]`; the scope is the one
the key must hold (`None`: any valid key). A path served for some methods but not the one
asked is a 405 naming the others.
"""

from __future__ import annotations

import re

from ._pipeline import Handler, Route
from .endpoints import (
    accounts,
    autosync,
    catalog,
    copy_groups,
    goals,
    protocols,
    reports,
    screenshots,
    strategies,
    tags,
    trades,
)

__all__ = ["TABLE", "routes"]

TABLE: tuple[tuple[str, str, str | None, Handler], ...] = (
    # The caller, usage and the catalogs
    ("GET", "/me", None, catalog.me),
    ("GET", "/usage", "read:catalog", catalog.usage),
    ("GET", "/brokers", "read:catalog", catalog.brokers),
    ("GET", "/instruments", "read:catalog", catalog.instruments),
    ("GET", "/prop-firm-presets", "read:catalog", catalog.presets),
    ("GET", "/prop-firm-presets/{id}", "read:catalog", catalog.preset),
    ("GET", "/scopes", "read:catalog", catalog.scopes),
    ("GET", "/emotions", "read:catalog", catalog.emotions),
    # Accounts, balance profiles, balance events and payouts
    ("GET", "/accounts", "read:accounts", accounts.list_accounts),
    ("GET", "/accounts/{id}", "read:accounts", accounts.get_account),
    ("POST", "/accounts", "write:accounts", accounts.create_account),
    ("PATCH", "/accounts/{id}", "write:accounts", accounts.update_account),
    ("DELETE", "/accounts/{id}", "write:accounts", accounts.archive_account),
    ("GET", "/accounts/{id}/balance", "read:balance", accounts.get_balance),
    ("GET", "/accounts/{id}/balance/events", "read:balance", accounts.list_balance_events),
    ("POST", "/accounts/{id}/balance/events", "write:balance", accounts.record_balance_event),
    ("GET", "/accounts/{id}/balance/payouts", "read:balance", accounts.list_payouts),
    ("POST", "/accounts/{id}/balance/payouts", "write:balance", accounts.request_payout),
    # Trades, their executions, confirmations and tags
    ("GET", "/trades", "read:trades", trades.list_trades),
    ("POST", "/trades", "write:trades", trades.create_trade),
    ("GET", "/trades/{n}", "read:trades", trades.get_trade),
    ("PATCH", "/trades/{n}", "write:trades", trades.patch_trade),
    ("DELETE", "/trades/{n}", "write:trades", trades.archive_trade),
    ("GET", "/trades/{n}/executions", "read:trades", trades.list_executions),
    ("PUT", "/trades/{n}/executions", "write:trades", trades.put_executions),
    ("PUT", "/trades/{n}/confirmations", "write:trades", trades.put_confirmations),
    ("PUT", "/trades/{n}/tags", "write:tags", trades.put_tags),
    # Screenshots on a trade
    ("GET", "/trades/{n}/screenshots", "read:screenshots", screenshots.list_screenshots),
    ("POST", "/trades/{n}/screenshots", "write:screenshots", screenshots.upload_screenshot),
    ("GET", "/trades/{n}/screenshots/{sid}", "read:screenshots", screenshots.download_screenshot),
    (
        "DELETE",
        "/trades/{n}/screenshots/{sid}",
        "write:screenshots",
        screenshots.archive_screenshot,
    ),
    # Stats and the calendar
    ("GET", "/stats/summary", "read:trades", reports.stats_summary),
    ("GET", "/stats/by-symbol", "read:trades", reports.stats_by_symbol),
    ("GET", "/stats/by-strategy", "read:trades", reports.stats_by_strategy),
    ("GET", "/calendar", "read:trades", reports.calendar),
    # Tags and tag categories
    ("GET", "/tags", "read:tags", tags.list_tags),
    ("GET", "/tag-categories", "read:tags", tags.list_categories),
    ("POST", "/tag-categories", "write:tags", tags.create_category),
    ("PATCH", "/tag-categories/{id}", "write:tags", tags.rename_category),
    ("DELETE", "/tag-categories/{id}", "write:tags", tags.delete_category),
    ("POST", "/tags", "write:tags", tags.create_tag),
    ("PATCH", "/tags/{id}", "write:tags", tags.update_tag),
    ("DELETE", "/tags/{id}", "write:tags", tags.delete_tag),
    # Strategies (with setups and confirmations)
    ("GET", "/strategies", "read:strategies", strategies.list_strategies),
    ("GET", "/strategies/{id}", "read:strategies", strategies.get_strategy),
    ("GET", "/strategies/{id}/setups", "read:strategies", strategies.get_setups),
    ("POST", "/strategies", "write:strategies", strategies.create_strategy),
    ("PATCH", "/strategies/{id}", "write:strategies", strategies.update_strategy),
    ("DELETE", "/strategies/{id}", "write:strategies", strategies.delete_strategy),
    # Protocols and their responses
    ("GET", "/protocols", "read:protocols", protocols.list_protocols),
    ("GET", "/protocols/{id}", "read:protocols", protocols.get_protocol),
    ("POST", "/protocols", "write:protocols", protocols.create_protocol),
    ("PATCH", "/protocols/{id}", "write:protocols", protocols.update_protocol),
    ("DELETE", "/protocols/{id}", "write:protocols", protocols.delete_protocol),
    ("POST", "/protocols/{id}/responses", "write:protocols", protocols.record_response),
    ("GET", "/protocols/{id}/responses", "read:protocols", protocols.list_responses),
    ("GET", "/protocols/{id}/responses/{rid}", "read:protocols", protocols.get_response),
    ("PATCH", "/protocols/{id}/responses/{rid}", "write:protocols", protocols.patch_response),
    ("DELETE", "/protocols/{id}/responses/{rid}", "write:protocols", protocols.delete_response),
    # Copy groups
    ("GET", "/copy-groups", "read:copy_groups", copy_groups.list_groups),
    ("GET", "/copy-groups/{id}", "read:copy_groups", copy_groups.get_group),
    ("POST", "/copy-groups", "write:copy_groups", copy_groups.create_group),
    ("PATCH", "/copy-groups/{id}", "write:copy_groups", copy_groups.update_group),
    ("DELETE", "/copy-groups/{id}", "write:copy_groups", copy_groups.delete_group),
    ("PUT", "/copy-groups/{id}/members", "write:copy_groups", copy_groups.put_members),
    # Goals and their snapshots
    ("GET", "/goals", "read:goals", goals.list_goals),
    ("GET", "/goals/{id}", "read:goals", goals.get_goal),
    ("POST", "/goals", "write:goals", goals.create_goal),
    ("PATCH", "/goals/{id}", "write:goals", goals.update_goal),
    ("DELETE", "/goals/{id}", "write:goals", goals.delete_goal),
    ("GET", "/goals/{id}/snapshots", "read:goals", goals.goal_snapshots),
    # Auto-sync connections, the sync log, the manual sync
    ("GET", "/autosync/connections", "read:autosync", autosync.list_connections),
    ("GET", "/autosync/connections/{id}", "read:autosync", autosync.get_connection),
    ("GET", "/autosync/log", "read:autosync", autosync.sync_log),
    ("POST", "/autosync/connections/{id}/sync", "write:autosync", autosync.trigger_sync),
)


def routes() -> list[Route]:
    """The table as the pipeline matches it: each path a compiled pattern."""
    return [
        Route(method, re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)), handler, scope)
        for method, path, scope, handler in TABLE
    ]
