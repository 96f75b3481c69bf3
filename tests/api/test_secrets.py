"""The API key never leaves through a log, an error, a repr or a URL."""

from __future__ import annotations

import logging

import httpx2
import pytest

from tradavity_mcp.api import errors
from tradavity_mcp.api.client import RetryPolicy

from ._scripted import KEY, Script, fail, make_client, ok

pytestmark = pytest.mark.anyio


async def test_key_goes_only_in_the_authorization_header(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    script = Script(
        httpx2.ReadError("reset"),
        fail(500, "internal_error"),
        ok({"user": {"id": 1}}),
        fail(401, "unauthorized", "Invalid API key"),
        httpx2.ConnectError("refused"),
    )
    seen: list[str] = []
    async with make_client(script, retry=RetryPolicy(max_attempts=3)) as api:
        seen.append(repr(api))
        await api.me()
        for _ in range(2):
            try:
                await api.me()
            except errors.TradavityError as exc:
                seen.extend([str(exc), repr(exc), str(exc.args)])
    for request in script.requests:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert KEY not in str(request.url)
        assert "x-api-key" not in request.headers
    seen.extend(r.getMessage() for r in caplog.records)
    seen.append(caplog.text)
    assert seen
    for text in seen:
        assert KEY not in text
        assert KEY[5:] not in text


def test_settings_never_show_the_key() -> None:
    from tradavity_mcp.settings import Settings

    settings = Settings.load(environ={"TRADAVITY_API_KEY": KEY})
    assert KEY not in repr(settings)
    assert KEY not in str(settings)
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == KEY
