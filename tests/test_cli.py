"""The command line, as a user runs it: real processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import jsonschema  # type: ignore[import-untyped]  # no stubs shipped

from tradavity_mcp.sandbox import DEMO_KEY

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT.parent / "shared" / "mcp-registry" / "server.schema.2025-12-11.json"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tradavity_mcp", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_sandbox_subcommand_serves_me_over_http() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradavity_mcp", "sandbox", "--port", str(port), "--db", ":memory:"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert (
            proc.stdout.readline().strip() == f"Tradavity sandbox on http://127.0.0.1:{port}/api/v1"
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                resp = httpx2.get(
                    f"http://127.0.0.1:{port}/api/v1/me",
                    headers={"Authorization": f"Bearer {DEMO_KEY}"},
                )
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert resp.json()["data"]["user"]["name"] == "Dana Demo"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_missing_key_is_one_clear_line_and_config_snippets() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADAVITY_")}
    failed = _run(env=env)
    assert failed.returncode == 2
    assert failed.stderr.strip().count("\n") == 0
    assert "TRADAVITY_API_KEY" in failed.stderr
    snippet = _run("config", "claude-desktop", "--sandbox", env=env)
    assert json.loads(snippet.stdout)["mcpServers"]["tradavity"]["args"][-1] == "--sandbox"
    assert "0.1.0" in _run("--version", env=env).stdout


def test_server_json_validates_against_the_registry_schema() -> None:
    schema = json.loads(SCHEMA.read_text("utf-8"))
    document = json.loads((ROOT / "server.json").read_text("utf-8"))
    jsonschema.Draft7Validator(schema).validate(document)
    broken = {**document, "version": "latest"}
    broken["packages"] = [{**document["packages"][0], "version": "latest"}]
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)
