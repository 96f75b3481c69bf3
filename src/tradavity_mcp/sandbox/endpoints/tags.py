"""Tags and tag categories."""

from __future__ import annotations

from .._pipeline import Ctx, Result
from .._validate import ApiError, Invalid, check_body, integer, string
from .common import color, listed, owned, path_int, save, unique

__all__ = [
    "create_category",
    "create_tag",
    "delete_category",
    "delete_tag",
    "list_categories",
    "list_tags",
    "rename_category",
    "update_tag",
]


async def list_tags(ctx: Ctx) -> Result:
    rows = ctx.store.all("tag", ctx.uid)
    if ctx.params.get("category_id"):
        rows = [t for t in rows if str(t["category_id"]) == ctx.params["category_id"]]
    if ctx.params.get("type"):
        if ctx.params["type"] not in ("mistake", "custom"):
            raise Invalid({"type": "is not a tag type"}, allowed=["mistake", "custom"])
        rows = [t for t in rows if t["type"] == ctx.params["type"]]
    return listed(ctx, "tags", sorted(rows, key=lambda t: t["tag_id"]))


async def list_categories(ctx: Ctx) -> Result:
    rows = sorted(ctx.store.all("tag_category", ctx.uid), key=lambda c: c["category_id"])
    return listed(ctx, "categories", rows)


async def create_category(ctx: Ctx) -> Result:
    body = check_body(ctx.body, {"name": string(1, 50, nullable=False)}, required=("name",))
    unique(ctx, "tag_category", "name", body["name"])
    cid = ctx.store.next_id("tag_category")
    doc = {"category_id": cid, "name": body["name"]}
    ctx.store.put("tag_category", cid, ctx.uid, doc)
    return Result(201, {"category": doc})


async def rename_category(ctx: Ctx) -> Result:
    doc = owned(ctx, "tag_category", path_int(ctx, "id"), "Tag category")
    body = check_body(ctx.body, {"name": string(1, 50, nullable=False)}, required=("name",))
    unique(ctx, "tag_category", "name", body["name"], skip=doc["category_id"])
    return Result(data={"category": save(ctx, "tag_category", {**doc, "name": body["name"]})})


async def delete_category(ctx: Ctx) -> Result:
    doc = owned(ctx, "tag_category", path_int(ctx, "id"), "Tag category")
    if any(t["category_id"] == doc["category_id"] for t in ctx.store.all("tag", ctx.uid)):
        raise ApiError(409, "category_has_tags", "Move or delete the category's tags first.")
    ctx.store.delete("tag_category", doc["category_id"])
    return Result(204)


_TAG = {"category_id": integer(1), "name": string(1, 100, nullable=False), "color": color}


def _own_category(ctx: Ctx, category_id: int) -> None:
    """A category_id in a tag body that is not the caller's is a 400, like any bad field."""
    if ctx.store.get("tag_category", category_id, ctx.uid) is None:
        raise Invalid({"category_id": "is not one of your tag categories"})


async def create_tag(ctx: Ctx) -> Result:
    body = check_body(ctx.body, _TAG, required=("category_id", "name"))
    _own_category(ctx, body["category_id"])
    unique(ctx, "tag", "name", body["name"])
    tid = ctx.store.next_id("tag")
    doc = {
        "tag_id": tid,
        "name": body["name"],
        "category_id": body["category_id"],
        "color": body.get("color", "#3b82f6"),
        "type": "custom",
    }
    ctx.store.put("tag", tid, ctx.uid, doc)
    return Result(201, {"tag": doc})


async def update_tag(ctx: Ctx) -> Result:
    doc = owned(ctx, "tag", path_int(ctx, "id"), "Tag")
    body = check_body(ctx.body, _TAG)
    if "name" in body:
        unique(ctx, "tag", "name", body["name"], skip=doc["tag_id"])
    if "category_id" in body:
        _own_category(ctx, body["category_id"])
    return Result(data={"tag": save(ctx, "tag", {**doc, **body})})


async def delete_tag(ctx: Ctx) -> Result:
    doc = owned(ctx, "tag", path_int(ctx, "id"), "Tag")
    for trade in ctx.store.all("trade", ctx.uid):
        if doc["tag_id"] in trade.get("tag_ids", []):
            kept = [t for t in trade["tag_ids"] if t != doc["tag_id"]]
            ctx.store.put("trade", trade["trade_id"], ctx.uid, {**trade, "tag_ids": kept})
    ctx.store.delete("tag", doc["tag_id"])
    return Result(204)
