"""The one-time upload link: a screenshot step that waits for the trader's file.

On HTTP a hosted server cannot read the trader's disk, and hosts do not hand a tool the
image pasted into the chat. A screenshot given neither as a file nor as data is asked
for by link instead: the step records a link (its token only as a SHA-256 hash, in the
ledger, so any replica can take the upload), and answers "pending, waiting for the
upload" with the link until the page (`server/upload_page.py`) has taken the file. The
file is then a blob of the call, and the step sends it like any other screenshot:
once, under the step's idempotency key, resumable.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from ...api.errors import RequestInvalid
from ...api.uploads import prepare_upload
from ..errors import UserError
from ..workspace import Workspace
from .call import Pending, WriteCall

__all__ = ["LINK_SECONDS", "UPLOAD_PATH", "hash_upload_token", "upload_link_step"]

#: How long a link stands.
LINK_SECONDS = 15 * 60

#: Where the page is served; the token follows.
UPLOAD_PATH = "/upload/"


def hash_upload_token(token: str) -> str:
    """What a link's token is stored and looked up under (it is random: no salt)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def upload_link_step(
    ws: Workspace, call: WriteCall, number: int, label: str | None, base: str | None
) -> dict[str, Any]:
    """The screenshot step by link: made on the first attempt, then waited for, then
    sent once the page has taken the file."""
    made: dict[str, str] = {}

    async def build() -> dict[str, Any]:
        if base is None:
            raise UserError("upload links are made only by a server on HTTP")
        token = secrets.token_urlsafe(32)
        token_hash = hash_upload_token(token)
        expires = ws.clock() + LINK_SECONDS
        await ws.ledger.open_upload(
            token_hash, call.principal, call.tool, call.call_id.value, number, expires
        )
        made["url"] = base.rstrip("/") + UPLOAD_PATH + token
        return {"link": token_hash, "label": label, "expires_at": _utc(expires)}

    async def send(key: str, request: dict[str, Any]) -> dict[str, Any]:
        link = await ws.ledger.upload_link(request["link"])
        if link is None or (link.state == "open" and link.expires_at < ws.clock()):
            raise UserError(
                f"the upload link for trade #{number} expired before a file was sent; "
                "nothing was attached. Call attach_screenshot again for a new link."
            )
        if link.state == "open":
            extra: dict[str, Any] = {"expires_at": request["expires_at"], "trade_number": number}
            if "url" in made:
                extra["upload_url"] = made["url"]
                reason = "waiting for the trader to upload the chart through the link"
            else:
                reason = (
                    "still waiting for the upload through the link given earlier "
                    f"(valid until {request['expires_at']})"
                )
            raise Pending("screenshot", reason, extra)
        blobs = await ws.ledger.blobs(call.principal, call.tool, call.call_id.value)
        raw = blobs.get(str(link.digest))
        if raw is None:  # not seen: the blob goes only with the finished call
            raise UserError("the uploaded file is no longer kept; upload it again")
        name = str(link.filename)
        try:
            prepare_upload(raw, name, label=request["label"])
        except RequestInvalid as exc:
            raise UserError(exc.message) from None
        up = await ws.api.upload_screenshot(
            number, raw, name, label=request["label"], idempotency_key=key
        )
        return {
            "screenshot_id": up.screenshot_id,
            "file_type": up.file_type,
            "label": up.label,
            "file": name,
        }

    result: dict[str, Any] = await call.write("screenshot", send, build=build)
    return {"trade_number": number, **{k: v for k, v in result.items() if v is not None}}
