"""What each journaling tool does, free of MCP: resolve names, check locally, write steps.

Each function takes the workspace, the `WriteCall` it runs in and the tool's typed
arguments (`_write_args`), and returns the JSON-able result the ledger records. Every
HTTP write is one step: its request is resolved once (`build`), recorded with its key,
and re-sent as recorded by every retry and resume; `find` looks for the write's effect
when the API no longer remembers the key. The MCP adapter (`_write_tools`) and the
background resumer (`_writes`) both call these, so a pending call is finished by
exactly the code that started it.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from pydantic import ValidationError

from ...api.errors import APIConnectionError, LimitReached, RequestInvalid, TradavityError
from ...api.models import (
    ExecutionsReplace,
    Tag,
    TagCategoryCreate,
    TagCreate,
    Trade,
    TradeCreate,
    TradePatch,
    plain_validation_message,
)
from ...api.uploads import MAX_SCREENSHOT_BYTES, prepare_upload
from ..answers import answer_values, build_item_values, to_answer
from ..errors import StepFailed, UserError, describe_error, one_error
from ..files import newest_image_async, read_confined_async
from ..lookalike import misread
from ..results import TradeSummary
from ..sync.trigger import Progress, trigger_sync
from ..workspace import Workspace
from .args import (
    ArchiveTradeArgs,
    AttachScreenshotArgs,
    CreateTradeArgs,
    JournalTradeArgs,
    RecordProtocolResponseArgs,
    ScreenshotPart,
    TagTradeArgs,
    TradeFields,
    TriggerSyncArgs,
    UpdateTradeArgs,
)
from .call import Pending, WriteCall
from .ledger import LedgerUnavailable, Unrecorded, digest_arguments
from .uploads import upload_link_step

__all__ = [
    "RunEnv",
    "archive_trade",
    "attach_screenshot",
    "build_trade_body",
    "create_trade",
    "journal_trade",
    "record_protocol_response",
    "summarize_trade",
    "tag_trade",
    "trigger_sync_body",
    "update_trade",
]

#: Tool argument name -> API field, where they differ (users speak of a strategy by name).
_RENAMED = {"account": "account_id", "strategy": "strategy_id", "setup": "setup_id"}


#: Fields a PATCH may clear with an explicit null.
_CLEARABLE = frozenset({"sl_price", "tp_price"})


@dataclass(frozen=True)
class RunEnv:
    """What a call needs from where it runs, beyond its arguments."""

    #: Folders local screenshot paths may be read from; None where paths are refused.
    allowed_dirs: Sequence[Path] | None = None
    progress: Progress | None = None
    #: The server's public URL, where a screenshot given neither as a file nor as data
    #: is asked for through a one-time upload link (HTTP); None: no links (stdio).
    upload_base: str | None = None


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
        listed = "; ".join(f"{prefix}{k}: {v}" for k, v in exc.fields.items())
    else:
        listed = plain_validation_message(exc, prefix)
    return UserError(f"invalid arguments: {listed}")


async def build_trade_body(
    ws: Workspace, fields: Mapping[str, Any], *, patch: bool = False, now: float | None = None
) -> dict[str, Any]:
    """Resolve names to ids, check emotions and times, validate: the API body.

    In a patch an explicit null clears a stop (`sl_price`/`tp_price`). A trade date of
    `now` is `now` (when the call was made), else this moment.
    """
    given = {k: v for k, v in fields.items() if v is not None or (patch and k in _CLEARABLE)}
    body: dict[str, Any] = {k: v for k, v in given.items() if k not in _RENAMED}
    if patch and "trade_date" in given:
        # Refused either way; a date in the future is named as such first.
        await ws.to_utc(str(given["trade_date"]))
        raise UserError(
            "trade_date cannot be changed on a journaled trade: archive it and journal it "
            "again with the right time. Nothing was written."
        )
    if not patch:
        account = await ws.ref.account(given.get("account"))
        body["account_id"] = account.id
        if "trade_date" in given:
            body["trade_date"] = await ws.to_utc(str(given["trade_date"]), now=now)
    if given.get("strategy") is not None or given.get("setup") is not None:
        strategy_id, setup_id = await ws.ref.strategy_and_setup(
            given.get("strategy"), given.get("setup")
        )
        if strategy_id is not None:
            body["strategy_id"] = strategy_id
        if setup_id is not None:
            body["setup_id"] = setup_id
    if given.get("emotional_state") is not None:
        body["emotional_state"] = await ws.ref.emotion(str(given["emotional_state"]))
    model = TradePatch if patch else TradeCreate
    try:
        return model.model_validate(body).to_json()
    except ValidationError as exc:
        raise _fields_error(exc) from None


def _step_failed(exc: StepFailed, subject: str) -> UserError:
    return UserError(describe_error(exc, subject=subject))


# --- trades ------------------------------------------------------------------------------


async def _create_step(ws: Workspace, call: WriteCall, trade: TradeFields) -> dict[str, Any]:
    """POST /trades once; past the replay window, look for the trade before re-sending."""

    async def build() -> dict[str, Any]:
        # "now" is when the call was made, not when this step first runs (a resume).
        return await build_trade_body(ws, trade.canonical(), now=call.made_at)

    async def send(key: str, body: dict[str, Any]) -> dict[str, Any]:
        return summarize_trade(await ws.api.create_trade(body, idempotency_key=key))

    async def find(body: dict[str, Any]) -> dict[str, Any] | None:
        when = datetime.fromisoformat(str(body["trade_date"]).replace("Z", "+00:00"))
        async for row in ws.api.iter_trades(
            account_id=body["account_id"],
            symbol=body["symbol"],
            direction=body["direction"],
            **{"from": (when - timedelta(days=1)).date().isoformat()},
            to=(when + timedelta(days=1)).date().isoformat(),
            include_archived="true",
            limit=200,
        ):
            if row.net_pnl is not None and abs(row.net_pnl - float(body["net_pnl"])) < 0.005:
                return summarize_trade(await ws.api.get_trade(row.trade_number))
        return None

    return await call.write("create", send, build=build, find=find)


async def create_trade(ws: Workspace, call: WriteCall, args: CreateTradeArgs) -> dict[str, Any]:
    try:
        summary = await _create_step(ws, call, args.trade())
    except StepFailed as exc:
        raise _step_failed(exc, "the account") from None
    return {"trade": summary}


async def update_trade(ws: Workspace, call: WriteCall, args: UpdateTradeArgs) -> dict[str, Any]:
    number = args.trade_number
    notes: list[str] = []

    async def build() -> dict[str, Any]:
        changes = args.changes.given()
        body = await build_trade_body(ws, changes, patch=True)
        if "strategy_id" in body and "setup" not in changes:
            notes.extend(await _drop_foreign_setup(ws, number, int(body["strategy_id"]), body))
        return body

    async def send(key: str, body: dict[str, Any]) -> dict[str, Any]:
        return summarize_trade(await ws.api.update_trade(number, body, idempotency_key=key))

    try:
        summary = await call.write("update", send, build=build)
    except StepFailed as exc:
        raise _step_failed(exc, f"trade #{number}") from None
    return {"trade": summary, **({"notes": notes} if notes else {})}


async def _drop_foreign_setup(
    ws: Workspace, number: int, strategy_id: int, body: dict[str, Any]
) -> list[str]:
    """A trade moving to another strategy cannot keep a setup of the old one: clear it."""
    trade = await ws.api.get_trade(number)
    setup = trade.setup
    setup_id = setup.get("setup_id", setup.get("id")) if isinstance(setup, dict) else setup
    if setup_id is None:
        return []
    detail = await ws.ref.strategy(strategy_id)
    own = {str(s.get("setup_id", s.get("id"))) for s in detail.setups}
    own |= {str(s.get("name", "")).casefold() for s in detail.setups}
    if str(setup_id) in own or str(setup_id).casefold() in own:
        return []
    body["setup_id"] = None
    name = setup.get("name", setup_id) if isinstance(setup, dict) else setup_id
    return [f"setup '{name}' belongs to the old strategy, so it was cleared"]


async def archive_trade(ws: Workspace, call: WriteCall, args: ArchiveTradeArgs) -> dict[str, Any]:
    async def send(key: str, request: Any) -> int:
        return await ws.api.archive_trade(
            args.trade_number, idempotency_key=key, including_copies=args.including_copies
        )

    try:
        archived: int = await call.write("archive", send)
    except StepFailed as exc:
        raise _step_failed(exc, f"trade #{args.trade_number}") from None
    return {"trade_number": args.trade_number, "archived": archived}


# --- tags --------------------------------------------------------------------------------


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
    known = [t.name for t in await ws.ref.tags()]
    refused = [f"{n!r} is refused: {why}" for n in unknown if (why := misread(n, known))]
    if refused:
        raise UserError("tags not created: " + ". ".join(refused) + ".")
    category_id = await _tag_category(ws, call, category)
    created: list[str] = []
    for name in unknown:
        try:
            body = TagCreate(category_id=category_id, name=name).to_json()
        except ValidationError as exc:
            raise _fields_error(exc, "tags.") from None

        async def send(key: str, request: dict[str, Any]) -> dict[str, Any]:
            tag = await ws.api.create_tag(request, idempotency_key=key)
            return tag.model_dump(mode="json")

        async def find(request: dict[str, Any]) -> dict[str, Any] | None:
            ws.ref.invalidate("tags")
            have, missing = await ws.ref.resolve_tags([str(request["name"])])
            return have[0].model_dump(mode="json") if have and not missing else None

        async def build(body: dict[str, Any] = body) -> dict[str, Any]:
            return body

        data = await call.write(f"tag:{name.casefold()}", send, build=build, find=find)
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

    async def build() -> dict[str, Any]:
        return body

    async def send(key: str, request: dict[str, Any]) -> int:
        return (await ws.api.create_tag_category(request, idempotency_key=key)).id

    async def find(request: dict[str, Any]) -> int | None:
        ws.ref.invalidate("tag_categories")
        wanted = str(request["name"]).casefold()
        return next(
            (c.id for c in await ws.ref.tag_categories() if c.name.casefold() == wanted), None
        )

    category_id: int = await call.write(
        f"category:{name.strip().casefold()}", send, build=build, find=find
    )
    ws.ref.invalidate("tag_categories")
    return category_id


async def _set_tags(
    ws: Workspace,
    call: WriteCall,
    number: int,
    refs: Sequence[str | int],
    *,
    mode: str,
    create_missing: bool,
    category: str | None,
) -> dict[str, Any]:
    created: list[str] = []

    async def build() -> dict[str, Any]:
        nonlocal created
        if mode == "remove":
            wanted, _unknown = await ws.ref.resolve_tags(refs)  # removing an absent tag: no-op
        else:
            wanted, created = await _ensure_tags(
                ws, call, refs, create_missing=create_missing, category=category
            )
        ids = [t.id for t in wanted]
        if mode != "replace":
            # PUT replaces the whole set: read the current tags and write the merge. The
            # merge is recorded, so a retry sends the same set under the same key.
            current = await ws.api.get_trade(number)
            now_ids = [int(t.get("tag_id", t.get("id", 0))) for t in current.tags]
            drop = set(ids)
            ids = (
                [i for i in now_ids if i not in drop]
                if mode == "remove"
                else list(dict.fromkeys([*now_ids, *ids]))
            )
        return {"tag_ids": ids, "created": created}

    async def send(key: str, request: dict[str, Any]) -> dict[str, Any]:
        rows = await ws.api.set_trade_tags(number, request["tag_ids"], idempotency_key=key)
        if rows is None:  # written, but the answer's shape is unknown: read the trade
            rows = (await ws.api.get_trade(number)).tags
        return {"tags": [str(r.get("name")) for r in rows], "created": request["created"]}

    async def find(request: dict[str, Any]) -> dict[str, Any] | None:
        trade = await ws.api.get_trade(number)
        have = sorted(int(t.get("tag_id", t.get("id", 0))) for t in trade.tags)
        if have != sorted(request["tag_ids"]):
            return None
        return {"tags": [str(t.get("name")) for t in trade.tags], "created": request["created"]}

    result: dict[str, Any] = await call.write("tags", send, build=build, find=find)
    return {"trade_number": number, **result}


async def tag_trade(ws: Workspace, call: WriteCall, args: TagTradeArgs) -> dict[str, Any]:
    try:
        return await _set_tags(
            ws,
            call,
            args.trade_number,
            args.tags,
            mode=args.mode,
            create_missing=args.create_missing,
            category=args.category,
        )
    except StepFailed as exc:
        raise _step_failed(exc, f"trade #{args.trade_number}") from None


# --- screenshots -------------------------------------------------------------------------


async def _screenshot_bytes(
    shot: ScreenshotPart, allowed: Sequence[Path] | None, chosen: str | None = None
) -> tuple[bytes, str, str | None]:
    """The file's bytes, its name, and the local path it was read from (for `latest`,
    the file found; `chosen` is the one an earlier attempt found)."""
    given = sum((shot.path is not None, shot.data is not None, shot.latest))
    if given != 1:
        raise UserError(
            "pass exactly one of path (a local file), data (base64 with filename) or "
            "latest: true (the newest chart in the allowed folders)"
        )
    if shot.window is not None and not shot.latest:
        raise UserError("window goes with latest: true (the newest chart within it)")
    if shot.path is not None or shot.latest:
        if allowed is None:
            raise UserError(
                "local files (path, latest) are only read on stdio; send the image as base64 data"
            )
        path = shot.path
        if path is None:
            if chosen is None:
                seconds = shot.window_seconds()
                since = time.time() - seconds if seconds is not None else None
                chosen = str(await newest_image_async(allowed, since=since))
            path = chosen
        content = await read_confined_async(path, allowed, max_bytes=MAX_SCREENSHOT_BYTES)
        return content, shot.filename or Path(path).name, path
    raw = shot.raw()
    assert raw is not None
    if not shot.filename:
        raise UserError("data needs a filename, e.g. 'chart.png'")
    return raw, shot.filename, None


async def _screenshot_step(
    ws: Workspace,
    call: WriteCall,
    number: int,
    shot: ScreenshotPart,
    env: RunEnv,
) -> dict[str, Any]:
    """Upload once. The request records the file's digest, not its bytes: a retry reads
    the same file again and refuses to send different content under the same key. With
    `latest`, the request records which file was found, and a retry reads that one. The
    file, its name and SHA-256 are worked out once for build and send: base64 data was
    decoded and hashed when the arguments were checked; a local file is read and hashed
    once here, in a worker thread."""
    allowed = env.allowed_dirs
    if not (shot.path is not None or shot.data is not None or shot.latest):
        by_link = env.allowed_dirs is None and env.upload_base is not None
        step = await ws.ledger.get_step(call.principal, call.tool, call.call_id.value, "screenshot")
        if by_link or (step is not None and "link" in (step.request or {})):
            return await upload_link_step(ws, call, number, shot.label, env.upload_base)
    loaded: dict[str, tuple[bytes, str, str | None, str]] = {}

    async def content(chosen: str | None = None) -> tuple[bytes, str, str | None, str]:
        if "file" not in loaded:
            raw, name, path = await _screenshot_bytes(shot, allowed, chosen)
            digest = shot.sha256() if shot.data is not None else None
            if digest is None:
                digest = await anyio.to_thread.run_sync(lambda: hashlib.sha256(raw).hexdigest())
            loaded["file"] = (raw, name, path, digest)
        return loaded["file"]

    async def build() -> dict[str, Any]:
        raw, name, path, digest = await content()
        try:
            prepare_upload(raw, name, label=shot.label)
        except RequestInvalid as exc:
            raise UserError(exc.message) from None
        request = {"filename": name, "label": shot.label, "sha256": digest, "size": len(raw)}
        if shot.latest:
            request["file"] = path
        return request

    async def send(key: str, request: dict[str, Any]) -> dict[str, Any]:
        raw, _, _, digest = await content(request.get("file"))
        if digest != request["sha256"]:
            raise UserError(
                f"the screenshot changed since the first attempt ({request['filename']}); "
                "the first version may already be attached. Check the trade, then attach the "
                "new file with attach_screenshot."
            )
        up = await ws.api.upload_screenshot(
            number, raw, request["filename"], label=request["label"], idempotency_key=key
        )
        sent = {"screenshot_id": up.screenshot_id, "file_type": up.file_type, "label": up.label}
        return {**sent, "file": request["file"]} if "file" in request else sent

    async def find(request: dict[str, Any]) -> dict[str, Any] | None:
        suffix = Path(str(request["filename"])).suffix.lower().lstrip(".")
        kinds = {"jpg": "jpeg"}.get(suffix, suffix)
        for row in await ws.api.list_screenshots(number):
            same_type = (row.file_type or "").lower() in {kinds, suffix, f"image/{kinds}"}
            if row.label == request["label"] and (same_type or row.file_type is None):
                found = {"screenshot_id": row.screenshot_id, "file_type": row.file_type,
                         "label": row.label}  # fmt: skip
                return {**found, "file": request["file"]} if "file" in request else found
        return None

    result: dict[str, Any] = await call.write("screenshot", send, build=build, find=find)
    return {"trade_number": number, **{k: v for k, v in result.items() if v is not None}}


def _screenshot_error(exc: StepFailed, trade_number: int) -> str:
    if isinstance(exc.error, LimitReached):
        details = exc.error.details
        if details.get("cap") == "per_trade":
            limit = details.get("limit")
            return (
                f"trade #{trade_number} already has as many screenshots as the plan allows"
                + (f" ({limit} per trade)" if limit is not None else "")
                + "; free plans keep 1 per trade and Pro plans 3. Archive one in "
                "Tradavity or upgrade to attach more."
            )
        if details.get("cap") == "storage":
            return (
                "the Tradavity account's file storage is full, so the screenshot was not "
                f"attached to trade #{trade_number}. Free space by archiving old "
                "screenshots in Tradavity, or upgrade the plan for more storage."
            )
        # The reference says the details show which cap fired, not in which field: say
        # what the API said rather than guess.
        return (
            f"Tradavity refused the screenshot for trade #{trade_number} with a plan "
            f"limit: {exc.error.message} ({details or 'no details'})."
        )
    return describe_error(exc, subject=f"trade #{trade_number}")


async def attach_screenshot(
    ws: Workspace, call: WriteCall, args: AttachScreenshotArgs, env: RunEnv
) -> dict[str, Any]:
    try:
        return await _screenshot_step(ws, call, args.trade_number, args, env)
    except StepFailed as exc:
        raise UserError(_screenshot_error(exc, args.trade_number)) from None


# --- checklists --------------------------------------------------------------------------


#: The journal_trade step that records its checklist (later answers: this, ":" and a digest).
CHECKLIST_STEP = "protocol_response"


async def _response_on_trade(
    ws: Workspace, protocol_id: int, trade_number: int
) -> dict[str, Any] | None:
    """The response to this protocol a trade already has (one per trade and protocol):
    a draft waiting for answers first, else the newest; None if it has none."""
    rows = await ws.api.list_protocol_responses(
        protocol_id, trade_number=trade_number, status="all"
    )
    rows.sort(key=lambda r: (r.get("status") == "draft", r.get("response_id") or 0))
    return rows[-1] if rows else None


def _answers_of(response: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded response's answers by item id, as the API stores them."""
    return {
        str(a["item_id"]): a["value"]
        for a in response.get("answers") or []
        if isinstance(a, dict) and a.get("item_id") is not None and a.get("value") is not None
    }


async def _response_step(
    ws: Workspace,
    call: WriteCall,
    protocol: str | int,
    answers: Mapping[str, Any],
    *,
    trade_number: int | None,
    status: str,
    step: str = CHECKLIST_STEP,
    response_id: int | None = None,
    look_on_trade: bool = False,
) -> dict[str, Any]:
    """Record checklist answers once: a new response, or, when the trade already has one
    to this protocol (`response_id`, or found with `look_on_trade`), that response with
    the new answers over its earlier ones (one response per trade and protocol).

    A response that should be completed but lacks required answers is kept as a draft
    when it belongs to a trade: what the trader said is saved, and `to_answer` names
    each item still to ask for and what it takes.
    """

    async def build() -> dict[str, Any]:
        proto = await ws.ref.protocol_by_ref(protocol)
        existing = response_id
        if existing is None and look_on_trade and trade_number is not None:
            row = await _response_on_trade(ws, proto.protocol_id, trade_number)
            existing = int(row["response_id"]) if row and row.get("response_id") else None
        kept = (
            _answers_of(await ws.api.get_protocol_response(proto.protocol_id, existing))
            if existing is not None
            else {}
        )
        if trade_number is None and existing is None:
            values = build_item_values(proto, answers, completed=status == "completed")
            missing: list[Any] = []
        else:
            values, missing = answer_values(proto, answers, kept=kept)
        saved = "draft" if missing and status == "completed" else status
        request: dict[str, Any] = {
            "protocol_id": proto.protocol_id,
            "protocol": proto.name,
            "body": {"item_values": values, "status": saved},
            "answers": answers_digest(answers),
        }
        if saved != status:
            request["to_answer"] = to_answer(missing)
        if existing is not None:
            request["response_id"] = existing
        elif trade_number is not None:
            request["body"]["trade_number"] = trade_number
        return request

    def result(data: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
        out = {
            "response_id": data.get("response_id", request.get("response_id")),
            "status": data.get("status", request["body"]["status"]),
            "protocol": request["protocol"],
            "answered": len(request["body"]["item_values"]),
            "answers": request.get("answers"),
        }
        if request.get("to_answer"):
            out["to_answer"] = list(request["to_answer"])
        if request.get("response_id") is not None:
            out["updated"] = True
        return out

    async def send(key: str, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("response_id") is not None:
            data = await ws.api.update_protocol_response(
                request["protocol_id"], request["response_id"], request["body"],
                idempotency_key=key,
            )  # fmt: skip
        else:
            data = await ws.api.record_protocol_response(
                request["protocol_id"], request["body"], idempotency_key=key
            )
        return result(data, request)

    async def find(request: dict[str, Any]) -> dict[str, Any] | None:
        wanted = request["body"]
        if request.get("response_id") is not None:
            # A change of answers is looked for as its effect: the response as asked.
            data = await ws.api.get_protocol_response(
                request["protocol_id"], request["response_id"]
            )
            same = {k: str(v) for k, v in _answers_of(data).items()} == {
                k: str(v) for k, v in wanted["item_values"].items()
            }
            return (
                result(data, request) if same and data.get("status") == wanted["status"] else None
            )
        if trade_number is None:
            return None  # a response linked to no trade cannot be told apart: say so
        rows = await ws.api.list_protocol_responses(
            request["protocol_id"], trade_number=trade_number, status="all"
        )
        rows = [r for r in rows if r.get("status", wanted["status"]) == wanted["status"]]
        return result(rows[0], request) if rows else None

    answered: dict[str, Any] = await call.write(
        step, send, build=build, find=find if trade_number else None
    )
    return {"trade_number": trade_number, **answered}


def answers_digest(answers: Mapping[str, Any]) -> str:
    """Names a set of checklist answers (a journal_trade's later answers get a step of
    their own, so one set is written once)."""
    return digest_arguments(dict(answers))[:16]


def waiting_for(result: Mapping[str, Any]) -> str:
    """A checklist kept as a draft, as its journal_trade step reports it."""
    kept = int(result.get("answered", 0))
    return f"draft: {kept} answer{'s' if kept != 1 else ''} kept; still to answer: " + "; ".join(
        result.get("to_answer") or []
    )


async def record_protocol_response(
    ws: Workspace, call: WriteCall, args: RecordProtocolResponseArgs
) -> dict[str, Any]:
    try:
        return await _response_step(
            ws,
            call,
            args.protocol,
            args.answers,
            trade_number=args.trade_number,
            status=args.status,
            look_on_trade=args.trade_number is not None,
        )
    except StepFailed as exc:
        raise _step_failed(exc, f"protocol '{args.protocol}'") from None


# --- the whole worked example ------------------------------------------------------------


async def _prefetch(ws: Workspace, args: JournalTradeArgs) -> None:
    """The reference reads the parts will need, all at once (one round trip, cold).

    Failures here are left to the step that needs the list: it asks again and reports
    (or keeps the call pending) in its own words.
    """
    trade = args.trade
    reads: list[Callable[[], Awaitable[Any]]] = [ws.ref.me, ws.ref.accounts]
    if args.tags:
        reads.append(ws.ref.tags)
        if args.create_missing_tags:
            reads.append(ws.ref.tag_categories)
    if args.checklist is not None:
        reads.append(ws.ref.protocols)
    if trade.strategy is not None or trade.setup is not None:
        reads.append(ws.ref.strategies)
    if trade.emotional_state is not None:
        reads.append(ws.ref.emotions)

    async def read(fetch: Callable[[], Awaitable[Any]]) -> None:
        with contextlib.suppress(TradavityError, UserError):
            await fetch()

    async with anyio.create_task_group() as tg:
        for fetch in reads:
            tg.start_soon(read, fetch)


async def journal_trade(
    ws: Workspace, call: WriteCall, args: JournalTradeArgs, env: RunEnv
) -> dict[str, Any]:
    """Create the trade, then each extra as its own step; report every step's fate.

    A dependency graph, not a queue: the reference reads go out together; the checklist's
    items are fetched while the trade is created; fills, tags, screenshot and checklist
    go out together once the trade number is known. Each part is still one recorded step
    with its own key. A step already written by an earlier call this one continues is
    kept, not redone.
    """
    earlier = set(await call.completed_steps())
    if "create" not in earlier:
        await _prefetch(ws, args)

    async def warm_checklist() -> None:
        if args.checklist is not None:
            with contextlib.suppress(TradavityError, UserError):
                await ws.ref.protocol_by_ref(args.checklist.protocol)

    created: dict[str, Any] = {}

    async def create() -> None:
        created["summary"] = await _create_step(ws, call, args.trade)

    try:
        with one_error():
            async with anyio.create_task_group() as tg:
                tg.start_soon(warm_checklist)
                await create()
    except StepFailed as exc:
        raise UserError("the trade was not created: " + describe_error(exc)) from None
    except Unrecorded as exc:
        # Created, then the ledger failed: the error names the trade, not "nothing sent".
        number = int(exc.result["trade_number"])
        names = [part for part, _, _ in _parts(ws, call, args, env, number, earlier, {})]
        raise _ledger_failed(exc, number, earlier=False, outcomes={}, parts=names) from None
    summary = created["summary"]
    number = int(summary["trade_number"])
    waiting: dict[str, Any] = {}
    parts = _parts(ws, call, args, env, number, earlier, waiting)
    outcomes: dict[str, str] = {}
    unknown: list[BaseException] = []
    ledger_down: list[LedgerUnavailable] = []

    async def run(part: str, step: str, work: Callable[[], Awaitable[str | None]]) -> None:
        try:
            said = await work()
            outcomes[part] = said or ("done (earlier)" if step in earlier else "done")
        except (StepFailed, UserError) as exc:
            outcomes[part] = "failed: " + describe_error(exc, subject=f"trade #{number}")
        except (Pending, APIConnectionError) as exc:
            outcomes[part] = _UNCONFIRMED
            unknown.append(exc)  # the others still finish; the call stays pending
        except LedgerUnavailable as exc:
            outcomes[part] = _UNRECORDED if isinstance(exc, Unrecorded) else _NOT_WRITTEN
            ledger_down.append(exc)

    async with anyio.create_task_group() as tg:
        for part, step, work in parts:
            tg.start_soon(run, part, step, work)
    if ledger_down:
        raise _ledger_failed(
            ledger_down[0],
            number,
            earlier="create" in earlier,
            outcomes=outcomes,
            parts=[part for part, _, _ in parts],
        )
    if unknown:
        raise unknown[0]
    steps = {"create": "done (earlier)" if "create" in earlier else "done"}
    steps.update({part: outcomes[part] for part, _, _ in parts})
    out: dict[str, Any] = {"trade": summary, "steps": steps}
    if waiting:
        out["checklist"] = waiting
    return out


Work = Callable[[], Awaitable[str | None]]


#: What became of a journal_trade part when the ledger failed during the call.
_UNRECORDED = "written, not recorded"
_NOT_WRITTEN = "not written"
_UNCONFIRMED = "not confirmed"


def _ledger_failed(
    exc: LedgerUnavailable,
    number: int,
    *,
    earlier: bool,
    outcomes: Mapping[str, str],
    parts: Sequence[str],
) -> LedgerUnavailable:
    """The ledger failed after the trade was created: what was written and what was not,
    instead of the ledger's usual "nothing was sent"."""
    written = [
        p for p in parts if outcomes.get(p, "").startswith("done") or outcomes.get(p) == _UNRECORDED
    ]
    refused = [
        f"{p} ({outcomes[p].removeprefix('failed: ')})"
        for p in parts
        if outcomes.get(p, "").startswith("failed")
    ]
    unsure = [p for p in parts if outcomes.get(p) == _UNCONFIRMED]
    missing = [p for p in parts if p not in outcomes or outcomes[p] == _NOT_WRITTEN]
    text = f"Trade #{number} was created in Tradavity" + (" by an earlier call" if earlier else "")
    text += f", and its {', '.join(written)} written." if written else "."
    if missing:
        text += f" Not written: {', '.join(missing)}."
    if unsure:
        text += f" Sent, not confirmed: {', '.join(unsure)}."
    if refused:
        text += f" Refused by Tradavity: {'; '.join(refused)}."
    text += (
        " The call is kept: once the ledger works again the rest is finished automatically, "
        f"exactly once. Do not journal this trade again; check trade #{number} with get_trade."
    )
    return LedgerUnavailable(exc.problem, text)


async def _fills_in_utc(
    ws: Workspace, executions: dict[str, Any], *, now: float | None
) -> dict[str, Any]:
    """The fills with each `execution_time` as the trader meant it: without an offset, a
    time in their own zone (as a trade's time is), in UTC for the API; `now` is `now`."""
    out = dict(executions)
    for side in ("entries", "exits"):
        rows = executions.get(side)
        if not isinstance(rows, list):
            continue
        fixed = []
        for i, row in enumerate(rows):
            value = row.get("execution_time") if isinstance(row, dict) else None
            if not isinstance(value, str):
                fixed.append(row)
                continue
            field = f"executions.{side}[{i}].execution_time"
            moment = await ws.to_utc(value, field_name=field, now=now)
            fixed.append({**row, "execution_time": moment.strftime("%Y-%m-%dT%H:%M:%SZ")})
        out[side] = fixed
    return out


def _parts(
    ws: Workspace,
    call: WriteCall,
    args: JournalTradeArgs,
    env: RunEnv,
    number: int,
    earlier: set[str],
    waiting: dict[str, Any],
) -> list[tuple[str, str, Work]]:
    """The extras of a journal_trade, in report order: (part, step name, work). A work
    returns its part's state when that is not plain "done"; a checklist that waits for
    answers fills `waiting` (protocol, response, items to ask for)."""
    parts: list[tuple[str, str, Work]] = []
    if args.executions:
        executions = args.executions.model_dump(mode="json", exclude_none=True)

        async def put_fills() -> None:
            async def build() -> dict[str, Any]:
                in_utc = await _fills_in_utc(ws, executions, now=call.made_at)
                try:
                    return ExecutionsReplace.model_validate(in_utc).to_json()
                except ValidationError as exc:
                    raise _fields_error(exc, "executions.") from None

            async def send(key: str, fills: dict[str, Any]) -> int:
                written = await ws.api.set_executions(number, fills, idempotency_key=key)
                if written is None:  # landed; the answer's shape unknown: count the request's
                    return len(fills.get("entries") or []) + len(fills.get("exits") or [])
                return len(written)

            await call.write("executions", send, build=build)

        parts.append(("executions", "executions", put_fills))
    if args.tags:
        tags = args.tags

        async def put_tags() -> None:
            # The trade was just created, so it has no tags: `replace` writes the set
            # without first reading the (empty) current one.
            await _set_tags(
                ws, call, number, tags, mode="replace",
                create_missing=args.create_missing_tags, category=None,
            )  # fmt: skip

        parts.append(("tags", "tags", put_tags))
    if args.screenshot is not None:
        shot = args.screenshot

        async def put_screenshot() -> str | None:
            done = await _screenshot_step(ws, call, number, shot, env)
            if "file" not in done:
                return None
            said = "done (earlier)" if "screenshot" in earlier else "done"
            return f"{said}: {done['file']}"

        parts.append(("screenshot", "screenshot", put_screenshot))
    if args.checklist is not None:
        check = args.checklist

        async def put_checklist() -> str | None:
            step = CHECKLIST_STEP
            result = await _response_step(
                ws, call, check.protocol, check.answers, trade_number=number, status=check.status
            )
            later = answers_digest(check.answers)
            if step in earlier and result.get("to_answer") and result.get("answers") != later:
                # An earlier call left this checklist waiting for answers, and these are
                # new: they finish that same response (a step of their own, once).
                step = f"{CHECKLIST_STEP}:{later}"
                result = await _response_step(
                    ws, call, check.protocol, check.answers, trade_number=number,
                    status=check.status, step=step, response_id=result.get("response_id"),
                )  # fmt: skip
            if result.get("to_answer"):
                waiting.update(
                    protocol=result.get("protocol"),
                    response_id=result.get("response_id"),
                    to_answer=result["to_answer"],
                )
                return waiting_for(result)
            return "done (earlier)" if step in earlier else "done"

        parts.append(("checklist", CHECKLIST_STEP, put_checklist))
    return parts


# --- sync ----------------------------------------------------------------------------------


async def trigger_sync_body(
    ws: Workspace, call: WriteCall, args: TriggerSyncArgs, env: RunEnv
) -> dict[str, Any]:
    return await trigger_sync(
        ws, call, args.connection, wait=args.wait, progress=env.progress, sleep=ws.sleep
    )
