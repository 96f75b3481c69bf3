"""What each journaling tool does, free of MCP: resolve names, check locally, write steps.

Each function takes the workspace, the `WriteCall` it runs in and plain arguments, and
returns the JSON-able result the ledger records. The MCP adapter (`tools.py`) wraps
them; the background resumer calls them again, with the same call, to finish pending
writes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import LimitReached, RequestInvalid
from ..models import (
    ExecutionsReplace,
    Tag,
    TagCategoryCreate,
    TagCreate,
    Trade,
    TradeCreate,
    TradePatch,
)
from ..screenshots import MAX_SCREENSHOT_BYTES, prepare_upload
from ._answers import build_item_values
from ._calls import StepFailed, UserError, WriteCall, describe_error
from ._files import read_confined_async
from ._sync import Progress, trigger_sync
from ._workspace import Workspace
from .results import TradeSummary

__all__ = [
    "Body",
    "archive_trade",
    "attach_screenshot",
    "body_for",
    "build_trade_body",
    "create_trade",
    "journal_trade",
    "record_protocol_response",
    "summarize_trade",
    "tag_trade",
    "update_trade",
]

#: Tool argument name -> API field, where they differ (users speak of a strategy by name).
_RENAMED = {"account": "account_id", "strategy": "strategy_id", "setup": "setup_id"}


def summarize_trade(trade: Trade) -> dict[str, Any]:
    account = trade.account
    name = account.get("name") if isinstance(account, dict) else account
    return TradeSummary(
        trade_number=trade.trade_number,
        symbol=trade.symbol,
        direction=trade.direction,
        net_pnl=trade.net_pnl,
        trade_date=trade.trade_date,
        account=str(name) if name is not None else None,
        grade=trade.grade,
    ).model_dump(exclude_none=True)


def _fields_error(exc: ValidationError | RequestInvalid, prefix: str = "") -> UserError:
    if isinstance(exc, RequestInvalid):
        fields = exc.fields
    else:
        fields = {
            ".".join(str(p) for p in e["loc"]) or "arguments": e["msg"]
            for e in exc.errors(include_url=False, include_input=False)
        }
    listed = "; ".join(f"{prefix}{k}: {v}" for k, v in fields.items())
    return UserError(f"invalid arguments: {listed}")


async def build_trade_body(
    ws: Workspace, fields: Mapping[str, Any], *, patch: bool = False
) -> dict[str, Any]:
    """Resolve names to ids, check emotions and times, validate: the API body."""
    given = {k: v for k, v in fields.items() if v is not None}
    body: dict[str, Any] = {k: v for k, v in given.items() if k not in _RENAMED}
    if not patch:
        account = await ws.ref.account(given.get("account"))
        body["account_id"] = account.id
        if "trade_date" in given:
            body["trade_date"] = await ws.to_utc(str(given["trade_date"]))
    if "strategy" in given or "setup" in given:
        strategy_id, setup_id = await ws.ref.strategy_and_setup(
            given.get("strategy"), given.get("setup")
        )
        if strategy_id is not None:
            body["strategy_id"] = strategy_id
        if setup_id is not None:
            body["setup_id"] = setup_id
    if "emotional_state" in given:
        body["emotional_state"] = await ws.ref.emotion(str(given["emotional_state"]))
    model = TradePatch if patch else TradeCreate
    try:
        return model.model_validate(body).to_json()
    except ValidationError as exc:
        raise _fields_error(exc) from None


# --- single-purpose tools --------------------------------------------------------------


async def create_trade(ws: Workspace, call: WriteCall, fields: Mapping[str, Any]) -> dict[str, Any]:
    body = await build_trade_body(ws, fields)

    async def send(key: str) -> dict[str, Any]:
        return summarize_trade(await ws.api.create_trade(body, idempotency_key=key))

    try:
        summary: dict[str, Any] = await call.step("create", send)
    except StepFailed as exc:
        raise UserError(describe_error(exc, subject="the account")) from None
    return {"trade": summary}


async def update_trade(
    ws: Workspace, call: WriteCall, trade_number: int, fields: Mapping[str, Any]
) -> dict[str, Any]:
    body = await build_trade_body(ws, fields, patch=True)

    async def send(key: str) -> dict[str, Any]:
        return summarize_trade(await ws.api.update_trade(trade_number, body, idempotency_key=key))

    try:
        summary: dict[str, Any] = await call.step("update", send)
    except StepFailed as exc:
        raise UserError(describe_error(exc, subject=f"trade #{trade_number}")) from None
    return {"trade": summary}


async def archive_trade(
    ws: Workspace, call: WriteCall, trade_number: int, including_copies: bool
) -> dict[str, Any]:
    async def send(key: str) -> int:
        return await ws.api.archive_trade(
            trade_number, idempotency_key=key, including_copies=including_copies
        )

    try:
        archived: int = await call.step("archive", send)
    except StepFailed as exc:
        raise UserError(describe_error(exc, subject=f"trade #{trade_number}")) from None
    return {"trade_number": trade_number, "archived": archived}


async def _ensure_tags(
    ws: Workspace,
    call: WriteCall,
    refs: Sequence[str | int],
    *,
    create_missing: bool,
    category: str | None,
) -> tuple[list[Tag], list[str]]:
    """Resolve tag refs to tags, creating unknown names when asked. (tags, created names)"""
    found, unknown = await ws.ref.resolve_tags(refs)
    if not unknown:
        return found, []
    numeric = [u for u in unknown if u.isdigit()]
    if numeric:
        raise UserError(f"no tag has id {', '.join(numeric)}; pass tag names or existing ids")
    if not create_missing:
        raise ws.ref.unknown_tags_error(unknown, await ws.ref.tags())
    category_id = await _tag_category(ws, call, category)
    created: list[str] = []
    for name in unknown:
        try:
            body = TagCreate(category_id=category_id, name=name).to_json()
        except ValidationError as exc:
            raise _fields_error(exc, "tags.") from None

        async def send(key: str, body: dict[str, Any] = body) -> dict[str, Any]:
            tag = await ws.api.create_tag(body, idempotency_key=key)
            return tag.model_dump(mode="json")

        data = await call.step(f"tag:{name.casefold()}", send)
        found.append(Tag.model_validate(data))
        created.append(name)
    ws.ref.invalidate("tags")
    return found, created


async def _tag_category(ws: Workspace, call: WriteCall, name: str | None) -> int:
    categories = await ws.ref.tag_categories()
    if name is None:
        if not categories:
            name = "General"
        else:
            # No category named: the first one ("Custom" if there is one) takes new tags.
            preferred = next((c for c in categories if c.name.casefold() == "custom"), None)
            return (preferred or categories[0]).id
    for c in categories:
        if c.name.casefold() == name.strip().casefold():
            return c.id
    try:
        body = TagCategoryCreate(name=name.strip()).to_json()
    except ValidationError as exc:
        raise _fields_error(exc, "category.") from None

    async def send(key: str) -> int:
        return (await ws.api.create_tag_category(body, idempotency_key=key)).id

    category_id: int = await call.step(f"category:{name.strip().casefold()}", send)
    ws.ref.invalidate("tag_categories")
    return category_id


async def tag_trade(
    ws: Workspace,
    call: WriteCall,
    trade_number: int,
    tags: Sequence[str | int],
    *,
    mode: str,
    create_missing: bool,
    category: str | None,
) -> dict[str, Any]:
    if mode == "remove":
        wanted, unknown = await ws.ref.resolve_tags(tags)
        created: list[str] = []
        del unknown  # removing a tag the trade does not have is a no-op
    else:
        wanted, created = await _ensure_tags(
            ws, call, tags, create_missing=create_missing, category=category
        )

    async def send(key: str) -> list[str]:
        if mode == "replace":
            ids = [t.id for t in wanted]
        else:
            # PUT replaces the whole set: read the current tags and write the merge.
            current = await ws.api.get_trade(trade_number)
            now_ids = [int(t.get("tag_id", t.get("id", 0))) for t in current.tags]
            drop = {t.id for t in wanted}
            ids = (
                [i for i in now_ids if i not in drop]
                if mode == "remove"
                else list(dict.fromkeys([*now_ids, *[t.id for t in wanted]]))
            )
        rows = await ws.api.set_trade_tags(trade_number, ids, idempotency_key=key)
        return [str(r.get("name")) for r in rows]

    try:
        names: list[str] = await call.step("tags", send)
    except StepFailed as exc:
        raise UserError(describe_error(exc, subject=f"trade #{trade_number}")) from None
    return {"trade_number": trade_number, "tags": names, "created": created}


async def _screenshot_bytes(
    ws: Workspace,
    path: str | None,
    data: str | None,
    filename: str | None,
    allowed: Sequence[Path] | None,
) -> tuple[bytes, str]:
    if (path is None) == (data is None):
        raise UserError("pass exactly one of path (a local file) or data (base64 with filename)")
    if path is not None:
        if allowed is None:
            raise UserError(
                "local file paths are only accepted on stdio; send the image as base64 data"
            )
        content = await read_confined_async(path, allowed, max_bytes=MAX_SCREENSHOT_BYTES)
        return content, filename or Path(path).name
    assert data is not None
    if not filename:
        raise UserError("data needs a filename, e.g. 'chart.png'")
    if len(data) > (MAX_SCREENSHOT_BYTES * 4) // 3 + 8:
        raise UserError("the screenshot is larger than 10 MB; the API accepts at most 10 MB")
    payload = data.split(",", 1)[1] if data.startswith("data:") and "," in data else data
    try:
        return base64.b64decode(payload, validate=True), filename
    except (binascii.Error, ValueError):
        raise UserError("data is not valid base64") from None


async def attach_screenshot(
    ws: Workspace,
    call: WriteCall,
    trade_number: int,
    *,
    path: str | None,
    data: str | None,
    filename: str | None,
    label: str | None,
    allowed_dirs: Sequence[Path] | None,
    step: str = "screenshot",
) -> dict[str, Any]:
    content, name = await _screenshot_bytes(ws, path, data, filename, allowed_dirs)
    try:
        prepare_upload(content, name, label=label)
    except RequestInvalid as exc:
        raise UserError(exc.message) from None

    async def send(key: str) -> dict[str, Any]:
        shot = await ws.api.upload_screenshot(
            trade_number, content, name, label=label, idempotency_key=key
        )
        return {
            "screenshot_id": shot.screenshot_id,
            "file_type": shot.file_type,
            "label": shot.label,
        }

    try:
        result: dict[str, Any] = await call.step(step, send)
    except StepFailed as exc:
        raise UserError(_screenshot_error(exc, trade_number)) from None
    return {"trade_number": trade_number, **{k: v for k, v in result.items() if v is not None}}


def _screenshot_error(exc: StepFailed, trade_number: int) -> str:
    if isinstance(exc.error, LimitReached):
        cap = exc.error.details
        return (
            f"trade #{trade_number} already has as many screenshots as the plan allows "
            f"({cap}); free plans keep 1 per trade and Pro plans 3. Archive one in "
            "Tradavity or upgrade to attach more."
        )
    return describe_error(exc, subject=f"trade #{trade_number}")


async def record_protocol_response(
    ws: Workspace,
    call: WriteCall,
    protocol: str | int,
    answers: Mapping[str, Any],
    *,
    trade_number: int | None,
    status: str,
    step: str = "protocol_response",
) -> dict[str, Any]:
    proto = await ws.ref.protocol_by_ref(protocol)
    values = build_item_values(proto, answers, completed=status == "completed")
    body: dict[str, Any] = {"item_values": values, "status": status}
    if trade_number is not None:
        body["trade_number"] = trade_number

    async def send(key: str) -> dict[str, Any]:
        data = await ws.api.record_protocol_response(proto.protocol_id, body, idempotency_key=key)
        return {"response_id": data.get("response_id"), "status": data.get("status", status)}

    try:
        result: dict[str, Any] = await call.step(step, send)
    except StepFailed as exc:
        raise UserError(describe_error(exc, subject=f"protocol '{proto.name}'")) from None
    return {
        "protocol": proto.name,
        "trade_number": trade_number,
        "answered": len(values),
        **result,
    }


# --- the whole worked example ------------------------------------------------------------


async def journal_trade(
    ws: Workspace,
    call: WriteCall,
    trade: Mapping[str, Any],
    *,
    tags: Sequence[str | int],
    create_missing_tags: bool,
    executions: Mapping[str, Any] | None,
    screenshot: Mapping[str, Any] | None,
    checklist: Mapping[str, Any] | None,
    allowed_dirs: Sequence[Path] | None,
) -> dict[str, Any]:
    """Create the trade, then each extra as its own step; report every step's fate."""
    steps: dict[str, str] = {}
    body = await build_trade_body(ws, trade)

    async def create(key: str) -> dict[str, Any]:
        return summarize_trade(await ws.api.create_trade(body, idempotency_key=key))

    try:
        summary: dict[str, Any] = await call.step("create", create)
    except StepFailed as exc:
        raise UserError("the trade was not created: " + describe_error(exc)) from None
    number = int(summary["trade_number"])
    steps["create"] = "done"

    async def run(name: str, coro_factory: Any) -> None:
        try:
            await coro_factory()
            steps[name] = "done"
        except (StepFailed, UserError) as exc:
            steps[name] = "failed: " + describe_error(exc, subject=f"trade #{number}")

    if executions:
        try:
            fills = ExecutionsReplace.model_validate(dict(executions)).to_json()
        except ValidationError as exc:
            steps["executions"] = "failed: " + str(_fields_error(exc, "executions."))
        else:

            async def put_fills() -> None:
                async def send(key: str) -> int:
                    return len(await ws.api.set_executions(number, fills, idempotency_key=key))

                await call.step("executions", send)

            await run("executions", put_fills)
    if tags:
        # The trade was just created, so it has no tags: `replace` writes the set without
        # first reading the (empty) current one.
        await run(
            "tags",
            lambda: tag_trade(
                ws,
                call,
                number,
                tags,
                mode="replace",
                create_missing=create_missing_tags,
                category=None,
            ),
        )
    if screenshot:
        shot = dict(screenshot)
        await run(
            "screenshot",
            lambda: attach_screenshot(
                ws,
                call,
                number,
                path=shot.get("path"),
                data=shot.get("data"),
                filename=shot.get("filename"),
                label=shot.get("label"),
                allowed_dirs=allowed_dirs,
            ),
        )
    if checklist:
        check = dict(checklist)
        if "protocol" not in check or not isinstance(check.get("answers"), dict):
            steps["checklist"] = (
                "failed: checklist needs protocol (id, name or type) and answers (object)"
            )
        else:
            await run(
                "checklist",
                lambda: record_protocol_response(
                    ws,
                    call,
                    check["protocol"],
                    check["answers"],
                    trade_number=number,
                    status=str(check.get("status") or "completed"),
                ),
            )
    return {"trade": summary, "steps": steps}


# --- one entry point per tool, from its recorded arguments ---------------------------------

Body = Callable[[Workspace, WriteCall], Awaitable[dict[str, Any]]]


def body_for(
    tool: str,
    args: Mapping[str, Any],
    *,
    allowed_dirs: Sequence[Path] | None,
    progress: Progress | None = None,
) -> Body:
    """The work of a tool call from its recorded arguments.

    The live tool call and the background resumer both go through here, so a pending
    call is finished by exactly the code that started it.
    """
    a = dict(args)
    match tool:
        case "create_trade":
            return lambda ws, call: create_trade(ws, call, a)
        case "update_trade":
            return lambda ws, call: update_trade(ws, call, a["trade_number"], a["changes"])
        case "archive_trade":
            return lambda ws, call: archive_trade(
                ws, call, a["trade_number"], bool(a.get("including_copies"))
            )
        case "tag_trade":
            return lambda ws, call: tag_trade(
                ws,
                call,
                a["trade_number"],
                a.get("tags") or [],
                mode=a.get("mode", "add"),
                create_missing=bool(a.get("create_missing")),
                category=a.get("category"),
            )
        case "attach_screenshot":
            return lambda ws, call: attach_screenshot(
                ws,
                call,
                a["trade_number"],
                path=a.get("path"),
                data=a.get("data"),
                filename=a.get("filename"),
                label=a.get("label"),
                allowed_dirs=allowed_dirs,
            )
        case "record_protocol_response":
            return lambda ws, call: record_protocol_response(
                ws,
                call,
                a["protocol"],
                a["answers"],
                trade_number=a.get("trade_number"),
                status=a.get("status", "completed"),
            )
        case "journal_trade":
            return lambda ws, call: journal_trade(
                ws,
                call,
                a["trade"],
                tags=a.get("tags") or [],
                create_missing_tags=bool(a.get("create_missing_tags")),
                executions=a.get("executions"),
                screenshot=a.get("screenshot"),
                checklist=a.get("checklist"),
                allowed_dirs=allowed_dirs,
            )
        case "trigger_sync":
            return lambda ws, call: trigger_sync(
                ws,
                call,
                a.get("connection"),
                wait=bool(a.get("wait")),
                progress=progress,
                sleep=ws.sleep,
            )
    raise KeyError(tool)
