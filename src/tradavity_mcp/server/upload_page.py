"""The one-time upload page: `GET /upload/<token>` shows it, `POST` takes the file.

A plain HTML form (it works without JavaScript; with it, a file can be dropped or
pasted and is previewed). No key and no bearer: the token in the path is the only
credential, random (256 bits), stored as its hash, good for one upload until it expires
(`writes/uploads.py`). The file is checked as the API checks it (PNG, JPEG or PDF, at
most 10 MB) before it is taken. Taking it spends the link and keeps the file with its
call, in one transaction of the ledger (so with `--store` any replica may take it); the
call is then finished here when this replica holds the user's workspace, else by the
next call or the resumer where it does.

Behind `HttpGuard` like every route: the Host is checked, and an Origin other than this
server's own is checked as for `/mcp`.
"""

from __future__ import annotations

import html
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from ..api.errors import RequestInvalid
from ..api.uploads import MAX_SCREENSHOT_BYTES, prepare_upload
from .writes.ledger import UploadLink
from .writes.uploads import UPLOAD_PATH, hash_upload_token

if TYPE_CHECKING:
    from .app import Backend

__all__ = ["UPLOAD_ROUTE", "upload_endpoint"]

logger = logging.getLogger("tradavity_mcp.uploads")

#: The route, with the token as its path parameter.
UPLOAD_ROUTE = UPLOAD_PATH + "{token}"

#: Room for the form's other parts and multipart framing beside the file.
_FRAMING = 64 * 1024

Handler = Callable[[Request], Awaitable[Response]]


def upload_endpoint(backend: Backend) -> Handler:
    async def upload(request: Request) -> Response:
        state = backend.state
        if state is None or state.ledger is None:
            return _page("Not ready", "The server is starting; try again in a moment.", 503)
        token = str(request.path_params.get("token", ""))
        if not token or len(token) > 100:
            return _gone(None, 0.0)
        token_hash = hash_upload_token(token)
        link = await state.ledger.upload_link(token_hash)
        now = backend.link.clock.now()
        if link is None or link.state != "open" or link.expires_at < now:
            return _gone(link, now)
        if request.method == "GET":
            return _form(link)
        return await _take(backend, request, link, token_hash)

    return upload


async def _take(backend: Backend, request: Request, link: UploadLink, token_hash: str) -> Response:
    state = backend.state
    assert state is not None
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_SCREENSHOT_BYTES + _FRAMING:
        return _form(link, "The file is larger than 10 MB; Tradavity accepts at most 10 MB.", 413)
    try:
        form = await request.form(max_files=1, max_fields=4)
    except Exception:  # starlette raises its own MultiPartException and friends
        return _form(link, "The upload could not be read; choose the file again.", 400)
    try:
        part = form.get("file")
        if part is None or isinstance(part, str) or not part.filename:
            return _form(link, "No file was chosen; pick a PNG, JPEG or PDF.", 400)
        raw = await part.read(MAX_SCREENSHOT_BYTES + 1)
        name = part.filename
    finally:
        await form.close()
    try:
        prepare_upload(raw, name)
    except RequestInvalid as exc:
        return _form(link, exc.message[:1].upper() + exc.message[1:] + ".", 400)
    taken = await state.ledger.take_upload(token_hash, name, raw)
    if taken is None:
        return _gone(await state.ledger.upload_link(token_hash), backend.link.clock.now())
    outcome = await _finish(backend, taken)
    if outcome == "done":
        return _page(
            "Chart attached",
            f"Done: the chart is attached to trade #{taken.trade_number}. You can close this page.",
        )
    return _page(
        "Chart received",
        f"Done: the chart is received and will be attached to trade #{taken.trade_number} "
        "in a moment. You can close this page.",
    )


async def _finish(backend: Backend, link: UploadLink) -> str | None:
    """Finish the call now, where this replica holds the user's workspace."""
    from .writes.journal import RunEnv  # noqa: PLC0415 (the journaling code, on first use)
    from .writes.table import finish_now  # noqa: PLC0415

    state = backend.state
    if state is None:
        return None
    for ws in state.workspaces():
        if ws.principal != link.principal:
            continue
        try:
            return await finish_now(ws, link.tool, link.call_id, RunEnv())
        except Exception as exc:  # the upload is kept; the call finishes later
            logger.warning("finishing the call after an upload failed: %s", type(exc).__name__)
            return None
    return None


def _gone(link: UploadLink | None, now: float) -> Response:
    if link is None:
        return _page(
            "Link not valid",
            "This upload link is not valid. Ask the assistant for a new one.",
            404,
        )
    if link.state != "open":
        return _page(
            "Link already used",
            "This link was already used: a chart was uploaded through it, and it takes no "
            "other. Ask the assistant for a new link to add another chart.",
            410,
        )
    return _page(
        "Link expired",
        "This upload link has expired (links last 15 minutes). Ask the assistant for a new one.",
        410,
    )


def _until(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M UTC")


def _form(link: UploadLink, problem: str = "", status: int = 200) -> Response:
    nonce = secrets.token_urlsafe(16)
    said = f'<p class="problem" role="alert">{html.escape(problem)}</p>' if problem else ""
    body = f"""
<h1>Add a chart to trade #{link.trade_number}</h1>
{said}
<form method="post" enctype="multipart/form-data" id="upload">
  <label id="drop" for="file">
    <span>Choose a PNG, JPEG or PDF (at most 10 MB)<span class="js"> - or drop it here,
    or paste it</span></span>
    <input type="file" id="file" name="file" accept="image/png,image/jpeg,application/pdf"
      required>
  </label>
  <img id="preview" alt="" hidden>
  <button type="submit">Upload</button>
</form>
<p class="small">This link works once, until {_until(link.expires_at)}.</p>
<script nonce="{nonce}">{_SCRIPT}</script>
"""
    return _page("Add a chart", body, status, raw=True, nonce=nonce)


def _page(
    title: str, body: str, status: int = 200, *, raw: bool = False, nonce: str = ""
) -> Response:
    content = body if raw else f'<h1>{html.escape(title)}</h1><p id="said">{html.escape(body)}</p>'

    script = f"'nonce-{nonce}'" if nonce else "'none'"
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)} - Tradavity</title><style>{_STYLE}</style></head>"
        f"<body><main>{content}</main></body></html>"
    )
    headers: dict[str, Any] = {
        "Cache-Control": "no-store",
        "Referrer-Policy": "same-origin",  # no-referrer would make the form post Origin: null
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'unsafe-inline'; script-src {script}; "
            "img-src blob:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
    }
    return HTMLResponse(page, status_code=status, headers=headers)


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1b1f24}"
    "main{max-width:34rem;margin:3rem auto;padding:1.5rem;background:#fff;border-radius:8px}"
    "#drop{display:block;border:2px dashed #9aa5b1;border-radius:8px;padding:1.5rem;"
    "margin:1rem 0;cursor:pointer}#drop.over{border-color:#2f6fed;background:#eef3fe}"
    "#drop input{display:block;margin-top:.75rem}.js{display:none}"
    "#preview{max-width:100%;margin:.5rem 0}.problem{color:#b42318}.small{color:#57606a}"
    "button{font-size:1rem;padding:.5rem 1.25rem}"
)

# With JavaScript: drop or paste a file into the same form field, and see it first.
_SCRIPT = """
(function(){
  var form=document.getElementById('upload'),input=document.getElementById('file'),
      drop=document.getElementById('drop'),preview=document.getElementById('preview');
  document.querySelectorAll('.js').forEach(function(e){e.style.display='inline'});
  function show(){
    var f=input.files&&input.files[0];
    if(f&&f.type.indexOf('image/')===0){preview.src=URL.createObjectURL(f);preview.hidden=false}
    else{preview.hidden=true}
  }
  function take(files){
    if(!files||!files.length)return;
    var t=new DataTransfer();t.items.add(files[0]);input.files=t.files;show();
  }
  input.addEventListener('change',show);
  drop.addEventListener('dragover',function(e){e.preventDefault();drop.classList.add('over')});
  drop.addEventListener('dragleave',function(){drop.classList.remove('over')});
  drop.addEventListener('drop',function(e){
    e.preventDefault();drop.classList.remove('over');take(e.dataTransfer.files)});
  document.addEventListener('paste',function(e){take(e.clipboardData&&e.clipboardData.files)});
})();
"""
