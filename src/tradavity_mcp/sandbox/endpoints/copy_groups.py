"""Copy trading groups and their members.

A group is `group_id, name, copy_mode, master_account_id, scale_fees, is_active,
created_at`, with `member_count` in the list and `members[]` when read singly; a member is
`id, account_id, account_name, is_archived, quantity_multiplier, sort_order`.
"""

from __future__ import annotations

from typing import Any

from .._pipeline import Ctx, Result
from .._validate import ApiError, Invalid, boolean, check_body, enum, integer, num, string
from .common import iso, owned, page, path_int, require_pro, save, unique

__all__ = [
    "create_group",
    "delete_group",
    "get_group",
    "list_groups",
    "put_members",
    "update_group",
]

COPY_MODES = ("master", "any_to_all", "manual")
MAX_MEMBERS = 50


def _out(ctx: Ctx, group: dict[str, Any], *, members: bool) -> dict[str, Any]:
    out = {k: v for k, v in group.items() if k != "members"}
    if not members:
        return out | {"member_count": len(group["members"])}
    rows = []
    for m in sorted(group["members"], key=lambda m: (m["sort_order"], m["id"])):
        account = ctx.store.get("account", m["account_id"]) or {}
        rows.append(
            {
                **m,
                "account_name": account.get("account_name"),
                "is_archived": bool(account.get("is_archived")),
            }
        )
    return out | {"members": rows}


async def list_groups(ctx: Ctx) -> Result:
    rows = sorted(ctx.store.all("copy_group", ctx.uid), key=lambda g: g["group_id"])
    chunk, meta = page(ctx, rows)
    return Result(data={"copy_groups": [_out(ctx, g, members=False) for g in chunk], **meta})


async def get_group(ctx: Ctx) -> Result:
    group = owned(ctx, "copy_group", path_int(ctx, "id"), "Copy group")
    return Result(data={"copy_group": _out(ctx, group, members=True)})


async def create_group(ctx: Ctx) -> Result:
    body = check_body(
        ctx.body,
        {
            "name": string(1, 100, nullable=False),
            "copy_mode": enum(COPY_MODES, nullable=False),
            "scale_fees": boolean(),
        },
        required=("name",),
    )
    require_pro(ctx, "Copy groups need the Pro plan.")
    unique(ctx, "copy_group", "name", body["name"])
    gid = ctx.store.next_id("copy_group")
    group = {
        "group_id": gid,
        "name": body["name"],
        "copy_mode": body.get("copy_mode", "master"),
        "master_account_id": None,
        "scale_fees": body.get("scale_fees", True),
        "is_active": True,
        "created_at": iso(ctx.now),
        "members": [],
    }
    ctx.store.put("copy_group", gid, ctx.uid, group)
    return Result(201, {"copy_group": _out(ctx, group, members=True)})


async def update_group(ctx: Ctx) -> Result:
    group = owned(ctx, "copy_group", path_int(ctx, "id"), "Copy group")
    body = check_body(
        ctx.body,
        {
            "name": string(1, 100, nullable=False),
            "copy_mode": enum(COPY_MODES, nullable=False),
            "master_account_id": integer(1, nullable=True),
            "scale_fees": boolean(),
            "is_active": boolean(),
        },
    )
    if not body:
        raise Invalid({"body": "has no fields to change"})
    if "name" in body:
        unique(ctx, "copy_group", "name", body["name"], skip=group["group_id"])
    master = body.get("master_account_id")
    if master is not None and master not in {m["account_id"] for m in group["members"]}:
        raise Invalid({"master_account_id": "must be an account in this group"})
    updated = save(ctx, "copy_group", {**group, **body})
    return Result(data={"copy_group": _out(ctx, updated, members=True)})


async def delete_group(ctx: Ctx) -> Result:
    group = owned(ctx, "copy_group", path_int(ctx, "id"), "Copy group")
    gid = group["group_id"]
    for goal in ctx.store.all("goal", ctx.uid):
        if goal.get("copy_group_id") == gid:
            ctx.store.delete("goal", goal["goal_id"])
    for strategy in ctx.store.all("strategy", ctx.uid):
        if strategy.get("copy_group_id") == gid:
            ctx.store.put(
                "strategy", strategy["strategy_id"], ctx.uid, {**strategy, "copy_group_id": None}
            )
    ctx.store.delete("copy_group", gid)
    return Result(204)


async def put_members(ctx: Ctx) -> Result:
    group = owned(ctx, "copy_group", path_int(ctx, "id"), "Copy group")
    body = check_body(ctx.body, {"members": lambda v: v}, required=("members",))
    items = body["members"]
    if not isinstance(items, list) or len(items) > MAX_MEMBERS:
        raise Invalid({"members": f"must be an array of at most {MAX_MEMBERS} members"})
    problems: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        try:
            member = check_body(
                item,
                {
                    "account_id": integer(1),
                    "quantity_multiplier": num(gt=0, hi=999.99),
                    "sort_order": integer(nullable=True),
                },
                required=("account_id",),
            )
        except Invalid as exc:
            for k, v in exc.details.get("fields", {}).items():
                problems[f"members[{i}].{k}"] = v
            continue
        if ctx.store.get("account", member["account_id"], ctx.uid) is None:
            problems[f"members[{i}].account_id"] = "is not one of your accounts"
            continue
        if any(r["account_id"] == member["account_id"] for r in rows):
            problems[f"members[{i}].account_id"] = "is listed twice"
            continue
        rows.append(
            {
                "account_id": member["account_id"],
                "quantity_multiplier": member.get("quantity_multiplier", 1.0),
                "sort_order": i if member.get("sort_order") is None else member["sort_order"],
            }
        )
    if problems:
        raise Invalid(problems)
    wanted = {r["account_id"] for r in rows}
    taken = sorted(
        m["account_id"]
        for other in ctx.store.all("copy_group", ctx.uid)
        if other["group_id"] != group["group_id"]
        for m in other["members"]
        if m["account_id"] in wanted
    )
    if taken:
        raise ApiError(
            409,
            "conflict",
            "An account can belong to one copy group at a time.",
            {"conflicting_account_ids": taken},
        )
    previous = {m["account_id"]: m["id"] for m in group["members"]}
    members = [
        {"id": previous.get(r["account_id"]) or ctx.store.next_id("copy_group_member"), **r}
        for r in rows
    ]
    master = group["master_account_id"] if group["master_account_id"] in wanted else None
    updated = save(ctx, "copy_group", {**group, "members": members, "master_account_id": master})
    return Result(data={"copy_group": _out(ctx, updated, members=True)})
