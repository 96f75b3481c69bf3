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

from .kit import TLS

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "tests" / "fixtures" / "server.schema.2025-12-11.json"


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
                    verify=TLS,
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


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADAVITY_")}
    env.update(extra)
    return env


def test_busy_port_is_one_line_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run(
            "--sandbox",
            "--transport",
            "http",
            "--port",
            str(port),
            env=_clean_env(
                TRADAVITY_STATE_DIR=str(tmp_path / "state"),
                TRADAVITY_SANDBOX_DB=str(tmp_path / "sandbox.sqlite3"),
            ),
        )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"tradavity-mcp: port {port} on 127.0.0.1 is already in use: stop the program using "
        "it, or pass another --port"
    ]


def test_an_unreachable_store_is_one_line_without_its_password(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens once the block ends
    url = f"postgresql://journal:hunter2-secret@127.0.0.1:{port}/ledger"
    done = _run(
        "--sandbox",
        "--store",
        url,
        env=_clean_env(
            TRADAVITY_STATE_DIR=str(tmp_path / "state"),
            TRADAVITY_SANDBOX_DB=str(tmp_path / "sandbox.sqlite3"),
        ),
    )
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert f"127.0.0.1:{port}/ledger" in lines[0]
    assert "hunter2-secret" not in done.stderr
    assert "Nothing was sent" in lines[0]


def test_wrong_base_url_at_start_names_the_variable(tmp_path: Path) -> None:
    from tradavity_mcp.sandbox import SandboxConfig, create_app, serve_in_thread

    with serve_in_thread(create_app(SandboxConfig(db=":memory:"))) as base:
        wrong = base.replace("/api/v1", "/api/v2")
        env = _clean_env(
            TRADAVITY_API_KEY=DEMO_KEY,
            TRADAVITY_BASE_URL=wrong,
            TRADAVITY_STATE_DIR=str(tmp_path / "state"),
        )
        done = _run("--transport", "http", "--port", "0", env=env)
        per_user = _run("--transport", "http", "--port", "0", "--auth", "per-user", env=env)
    line = (
        f"tradavity-mcp: TRADAVITY_BASE_URL {wrong} is not the Tradavity API (GET /me "
        "answered 404): set it to the API's /api/v1 address, e.g. "
        "https://app.tradavity.com/api/v1, or unset it"
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [line]
    assert per_user.returncode == 2
    assert per_user.stderr.splitlines() == [line]


def test_revoked_key_at_start_of_http(tmp_path: Path) -> None:
    from tradavity_mcp.sandbox import REVOKED_KEY, SandboxConfig, create_app, serve_in_thread

    with serve_in_thread(create_app(SandboxConfig(db=":memory:"))) as base:
        done = _run(
            "--transport",
            "http",
            "--port",
            "0",
            env=_clean_env(
                TRADAVITY_API_KEY=REVOKED_KEY,
                TRADAVITY_BASE_URL=base,
                TRADAVITY_STATE_DIR=str(tmp_path / "state"),
            ),
        )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "tradavity-mcp: TRADAVITY_API_KEY was revoked (401 key_revoked): create a new key in "
        "Tradavity -> Settings -> API and set TRADAVITY_API_KEY to it"
    ]
    assert REVOKED_KEY not in done.stderr


def test_on_a_terminal_it_says_what_it_is_waiting_for(tmp_path: Path) -> None:
    import pty

    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tradavity_mcp", "--sandbox"],
        stdin=terminal,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_clean_env(
            TRADAVITY_STATE_DIR=str(tmp_path / "state"),
            TRADAVITY_SANDBOX_DB=str(tmp_path / "sandbox.sqlite3"),
        ),
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        os.close(controller)
        os.close(terminal)
        if proc.stderr is not None:
            proc.stderr.close()
    assert line.rstrip("\n") == (
        "tradavity-mcp: this is an MCP server waiting for a client on stdin (Ctrl-C to quit); "
        "to try it run `tradavity-mcp demo`, or open it in the MCP Inspector: "
        "`npx @modelcontextprotocol/inspector tradavity-mcp --sandbox`"
    )


def test_help_shows_defaults_and_demo_help_says_what_it_does() -> None:
    env = _clean_env(COLUMNS="200")
    main_help = _run("--help", env=env).stdout
    assert "HTTP port (default: 8000)" in main_help
    assert "stderr log level (default: WARNING)" in main_help
    assert "default: https://app.tradavity.com/api/v1" in main_help
    demo_help = " ".join(_run("demo", "--help", env=env).stdout.split())
    assert "Journal a sample trade end to end on the built-in sandbox, with no API key" in demo_help
    doctor_help = " ".join(_run("doctor", "--help", env=env).stdout.split())
    assert "Exit status 0 when nothing failed, 1 otherwise." in doctor_help


def _fake_python(tmp_path: Path, body: str) -> Path:
    fake = tmp_path / "fakepython"
    fake.write_text("#!/bin/sh\n" + body)
    fake.chmod(0o755)
    return fake


def _dev(tmp_path: Path, python: Path | str) -> subprocess.CompletedProcess[str]:
    """./dev from a copy of the script in an empty folder (it makes .venv beside itself)."""
    clone = tmp_path / "clone"
    clone.mkdir(exist_ok=True)
    script = clone / "dev"
    script.write_text((ROOT / "dev").read_text("utf-8"))
    script.chmod(0o755)
    return subprocess.run(
        [str(script), "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHON": str(python)},
        check=False,
    )


def test_dev_says_what_python_it_needs(tmp_path: Path) -> None:
    missing = _dev(tmp_path, "python3.99")
    assert missing.returncode == 1
    assert missing.stderr.splitlines() == [
        "dev: python3.99 not found: install Python 3.11 or newer"
    ]
    old = _fake_python(tmp_path, 'case "$2" in *platform*) echo 3.9.18 ;; *) exit 1 ;; esac\n')
    too_old = _dev(tmp_path, old)
    assert too_old.returncode == 1
    assert too_old.stderr.splitlines() == [
        f"dev: {old} is Python 3.9.18; tradavity-mcp needs 3.11 or newer "
        "(PYTHON=python3.12 ./dev ... picks another)"
    ]
    no_venv = _fake_python(tmp_path, '[ "$1" = "-m" ] && exit 1\nexit 0\n')
    failed = _dev(tmp_path, no_venv)
    assert failed.returncode == 1
    assert failed.stderr.splitlines() == [
        f"dev: '{no_venv} -m venv' failed; on Debian or Ubuntu install it with: "
        "sudo apt install python3-venv"
    ]
    assert not (tmp_path / "clone" / ".venv").exists()


def test_allowed_dir_does_not_swallow_a_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADAVITY_")}
    env["TRADAVITY_STATE_DIR"] = str(tmp_path / "state")
    charts = tmp_path / "Charts"
    charts.mkdir()
    done = _run("--allowed-dir", str(charts), "doctor", "--sandbox", env=env)
    assert done.stdout.startswith("tradavity-mcp 0.1.0 doctor"), done.stdout + done.stderr
    assert done.returncode == 0, done.stdout


def test_allowed_dir_takes_the_desktop_extensions_folder_list() -> None:
    from tradavity_mcp.cli import _one_folder_each, _parser

    def folders(*argv: str) -> object:
        return _parser().parse_args(_one_folder_each(list(argv))).allowed_dirs

    # The .mcpb passes its picked folders as the words after one flag (or none at all).
    assert folders("--allowed-dir", "/a", "/b") == ["/a", "/b"]
    assert folders("--allowed-dir", "/a", "--sandbox", "--allowed-dir", "/c") == ["/a", "/c"]
    assert folders("--allowed-dir") == [""]  # main() turns this into no folder
    args = _parser().parse_args(_one_folder_each(["--allowed-dir", "/a", "config", "vscode"]))
    assert (args.allowed_dirs, args.command, args.client) == (["/a"], "config", "vscode")


def test_a_hosted_flag_without_the_hosted_extra_says_what_to_install(tmp_path: Path) -> None:
    """A desktop install (no `hosted` extra): --store names the extra, in one line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADAVITY_")}
    env["TRADAVITY_STATE_DIR"] = str(tmp_path / "state")
    without = (
        "import sys; sys.modules['psycopg'] = None; from tradavity_mcp.cli import main; "
        "raise SystemExit(main(['--sandbox', '--store', 'postgresql://u:secret@db/journal']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", without],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "tradavity-mcp: --store needs the hosted extra (psycopg is not installed): "
        "pip install 'tradavity-mcp[hosted]'"
    )
