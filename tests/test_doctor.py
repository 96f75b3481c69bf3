"""`tradavity-mcp doctor` against the sandbox over HTTP: once as a person runs it, a real
process; the other cases through the command's own `main` in this process."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tradavity_mcp.cli import main
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    READONLY_KEY,
    REVOKED_KEY,
    SandboxConfig,
    create_app,
    serve_in_thread,
)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve_in_thread(create_app(SandboxConfig(db=":memory:"))) as url:
        yield url


def _doctor(
    tmp_path: Path,
    *args: str,
    key: str | None,
    base: str | None,
    state: Path | None = None,
    real: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`tradavity-mcp doctor` with this environment: in this process (the command's own
    `main`, its output captured), or as a real process when `real`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADAVITY_")}
    env["TRADAVITY_STATE_DIR"] = str(state or tmp_path / "state")
    if key is not None:
        env["TRADAVITY_API_KEY"] = key
    if base is not None:
        env["TRADAVITY_BASE_URL"] = base
    argv = ["doctor", *args]
    if real:
        return subprocess.run(
            [sys.executable, "-m", "tradavity_mcp", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def _line(out: str, name: str) -> str:
    """The report line of one check, its status and text with the padding squeezed."""
    for line in out.splitlines():
        words = line.split()
        if words[1:2] == name.split()[:1] and " ".join(words[1:]).startswith(name):
            return " ".join(words)
    raise AssertionError(f"no {name!r} line in:\n{out}")


def test_right_setup_is_ready(tmp_path: Path, base_url: str) -> None:
    done = _doctor(tmp_path, key=DEMO_KEY, base=base_url, real=True)
    assert done.returncode == 0, done.stdout
    assert _line(done.stdout, "base URL") == (
        f"ok base URL {base_url} answers as Dana Demo (pro, America/New_York)"
    )
    for name in ("API key", "scopes", "state dir", "ledger", "pending", "clock"):
        assert _line(done.stdout, name).startswith("ok "), done.stdout
    assert done.stdout.rstrip().endswith("Ready to journal.")
    assert DEMO_KEY not in done.stdout + done.stderr
    assert DEMO_KEY[5:20] not in done.stdout + done.stderr


def test_wrong_base_url(tmp_path: Path, base_url: str) -> None:
    wrong = base_url.replace("/api/v1", "/api/v2")
    done = _doctor(tmp_path, key=DEMO_KEY, base=wrong)
    assert done.returncode == 1
    assert _line(done.stdout, "base URL") == (
        f"FAIL base URL TRADAVITY_BASE_URL {wrong} is not the Tradavity API (GET /me answered 404)"
    )
    assert "fix: set it to the API's /api/v1 address" in done.stdout


def test_bad_key(tmp_path: Path, base_url: str) -> None:
    unknown = "tvty_" + "1" * 48
    done = _doctor(tmp_path, key=unknown, base=base_url)
    assert done.returncode == 1
    # The fault is the key's, on the key's row; the API did answer, as the API.
    assert _line(done.stdout, "API key") == (
        "FAIL API key TRADAVITY_API_KEY is not accepted (unknown or mistyped) (401 unauthorized)"
    )
    assert _line(done.stdout, "base URL") == (
        f"ok base URL {base_url} answers like the Tradavity API (it refused the key)"
    )
    assert unknown not in done.stdout + done.stderr
    malformed = _doctor(tmp_path, key="tvty_123", base=base_url)
    assert malformed.returncode == 1
    assert _line(malformed.stdout, "API key") == (
        "FAIL API key TRADAVITY_API_KEY is not a Tradavity key "
        "('tvty_' + 48 lowercase hex characters)"
    )
    assert _line(malformed.stdout, "base URL") == (
        f"warn base URL {base_url} not checked (no usable API key)"
    )
    assert "tvty_123" not in malformed.stdout + malformed.stderr


def test_without_a_key_the_api_is_not_contacted(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        base = f"http://127.0.0.1:{listener.getsockname()[1]}/api/v1"
        done = _doctor(tmp_path, key=None, base=base)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert done.returncode == 1
    assert _line(done.stdout, "API key") == "FAIL API key TRADAVITY_API_KEY is not set"
    assert _line(done.stdout, "base URL") == f"warn base URL {base} not checked (no usable API key)"
    assert _line(done.stdout, "clock") == "ok clock not measured (the API was not asked)"


def test_revoked_key(tmp_path: Path, base_url: str) -> None:
    done = _doctor(tmp_path, key=REVOKED_KEY, base=base_url)
    assert done.returncode == 1
    assert _line(done.stdout, "API key") == (
        "FAIL API key TRADAVITY_API_KEY was revoked (401 key_revoked)"
    )
    assert _line(done.stdout, "base URL").startswith("ok base URL")
    assert "fix: create a new key in Tradavity -> Settings -> API" in done.stdout
    assert REVOKED_KEY not in done.stdout + done.stderr


def test_read_only_key_warns_about_hidden_tools(tmp_path: Path, base_url: str) -> None:
    done = _doctor(tmp_path, key=READONLY_KEY, base=base_url)
    assert done.returncode == 0
    assert _line(done.stdout, "scopes").startswith(
        "warn scopes the key lacks write:autosync, write:protocols, write:screenshots, "
        "write:tags, write:trades, so 8 tools are hidden"
    )


def test_unwritable_state_dir(tmp_path: Path, base_url: str) -> None:
    # A file where the folder should be: unwritable for root too.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    state = blocker / "state"
    done = _doctor(tmp_path, key=DEMO_KEY, base=base_url, state=state)
    assert done.returncode == 1
    assert _line(done.stdout, "state dir") == (
        f"FAIL state dir {state} cannot be written (Not a directory)"
    )
    assert _line(done.stdout, "ledger") == (
        "warn ledger not checked (the state directory is unusable)"
    )


def test_broken_ledger_names_the_file(tmp_path: Path, base_url: str) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "ledger.sqlite3").write_bytes(b"this is not a database" * 100)
    done = _doctor(tmp_path, key=DEMO_KEY, base=base_url, state=state)
    assert done.returncode == 1
    assert _line(done.stdout, "ledger").startswith(
        f"FAIL ledger {state / 'ledger.sqlite3'} cannot be opened ("
    )
    assert "fix: stop every tradavity-mcp process, move the file aside" in done.stdout


def test_sandbox_needs_no_key(tmp_path: Path) -> None:
    done = _doctor(tmp_path, "--sandbox", key=None, base=None)
    assert done.returncode == 0, done.stdout
    assert _line(done.stdout, "API key") == "ok API key not needed: running on the built-in sandbox"


def _closed_port() -> int:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return int(closed.getsockname()[1])  # nothing listens once the block ends


def test_a_shared_store_and_redis_that_answer(
    tmp_path: Path, base_url: str, postgres_url: str, redis_url: str
) -> None:
    done = _doctor(
        tmp_path, "--store", postgres_url, "--redis", redis_url, key=DEMO_KEY, base=base_url
    )
    assert done.returncode == 0, done.stdout
    assert _line(done.stdout, "ledger").startswith("ok ledger postgresql://")
    assert _line(done.stdout, "redis").startswith(f"ok redis {redis_url} answers (Redis ")


def test_a_store_and_redis_that_do_not_answer_are_named_without_their_passwords(
    tmp_path: Path, base_url: str
) -> None:
    store = f"postgresql://journal:pg-hunter2@127.0.0.1:{_closed_port()}/ledger"
    redis = f"redis://:redis-hunter2@127.0.0.1:{_closed_port()}/0"
    done = _doctor(tmp_path, "--store", store, "--redis", redis, key=DEMO_KEY, base=base_url)
    assert done.returncode == 1
    ledger = _line(done.stdout, "ledger")
    assert store.replace("pg-hunter2", "***") in ledger
    assert "cannot be reached" in ledger
    assert "Check that PostgreSQL is running" in ledger
    assert _line(done.stdout, "redis").startswith(
        f"FAIL redis {redis.replace('redis-hunter2', '***')} does not answer ("
    )
    assert "fix: start Redis there, or correct --redis / TRADAVITY_REDIS_URL" in done.stdout
    assert "hunter2" not in done.stdout + done.stderr


def test_contract_against_the_sandbox_holds_every_assumption(tmp_path: Path, base_url: str) -> None:
    done = _doctor(tmp_path, "--contract", key=DEMO_KEY, base=base_url)
    assert done.returncode == 0, done.stdout
    lines = [" ".join(x.split()) for x in done.stdout.splitlines() if " contract " in x]
    names = {line.split()[2] for line in lines}
    assert names == {
        "me.scopes", "rows:GET", "autosync.connection", "autosync.log_id", "errors.cached"
    }  # fmt: skip
    assert len(lines) == 11  # seven lists, scopes, two sync fields, error caching
    assert all(line.startswith("ok contract ") and " held: " in line for line in lines), lines
    assert DEMO_KEY not in done.stdout + done.stderr


def _without_scopes(app: Any) -> Any:
    """The sandbox with `key.scopes` taken out of every `/me` answer."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/me"):
            await app(scope, receive, send)
            return
        start: dict[str, Any] = {}

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body = json.loads(message["body"])
            body["data"]["key"].pop("scopes")
            raw = json.dumps(body).encode()
            headers = [(k, v) for k, v in start["headers"] if k != b"content-length"]
            headers.append((b"content-length", str(len(raw)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": raw})

        await app(scope, receive, capture)

    return wrapped


def test_contract_says_what_differs_when_me_holds_no_scopes(tmp_path: Path) -> None:
    with serve_in_thread(_without_scopes(create_app(SandboxConfig(db=":memory:")))) as url:
        done = _doctor(tmp_path, "--contract", key=DEMO_KEY, base=url)
    assert _line(done.stdout, "scopes").startswith(
        "warn scopes GET /me did not say the key's scopes (looked at key.scopes, key.scope, "
        "scopes, scope): every tool is offered"
    )
    assert _line(done.stdout, "contract me.scopes") == (
        "warn contract me.scopes differs: no scopes in GET /me"
    )
    assert "please report this line" in done.stdout
    assert done.returncode == 0  # a warning: the server copes
