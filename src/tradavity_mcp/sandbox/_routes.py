"""The v1 route table: importing each endpoint module registers its handlers."""

from __future__ import annotations

from . import (  # noqa: F401 - imported for their route registrations
    _ep_accounts,
    _ep_autosync,
    _ep_catalog,
    _ep_copy_groups,
    _ep_goals,
    _ep_protocols,
    _ep_reports,
    _ep_screenshots,
    _ep_strategies,
    _ep_tags,
    _ep_trades,
)
from ._http import ROUTES

__all__ = ["ROUTES"]
