"""Account health and goals: the prop-firm room and the trader's targets, in one answer."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.types import CallToolResult
from pydantic import Field

from ...api.models import AnyCase
from .. import insights, read
from ..errors import reported
from ..when import readable
from ..workspace import current_workspace
from .read import NoBool, _result

__all__ = ["get_account_health", "get_goals"]


async def get_account_health(
    account: Annotated[str | int, NoBool, Field(description="Account name or id")],
) -> CallToolResult:
    """A prop account's room to its drawdown and daily-loss limits (the user's day),
    target progress, violations, payouts."""
    with reported():
        ws = current_workspace()
        clock = await ws.local_clock()
        data = await insights.account_health(ws, account, clock)
        data = clock.stamp(data)
    return _result(data, f"{data['summary']}\n{read.dump(readable(data))}")


async def get_goals(
    status: Annotated[Literal["active", "paused", "archived", "all"], AnyCase] = "active",
) -> CallToolResult:
    """Goals with this period's target, actual and achieved, and the periods before."""
    with reported():
        data = await insights.goals(current_workspace(), status)
    return _result(data, insights.goals_text(data))
