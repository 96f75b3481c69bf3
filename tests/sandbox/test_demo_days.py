"""The seeded demo journal's length: `sandbox --demo-days N` and TRADAVITY_SANDBOX_DEMO_DAYS."""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from tradavity_mcp import settings
from tradavity_mcp.api.client import TradavityClient
from tradavity_mcp.sandbox import (
    DEMO_KEY,
    ManualClock,
    SandboxConfig,
    SandboxTransport,
    _cli,
    create_app,
)
from tradavity_mcp.sandbox._seed import DEFAULT_DEMO_DAYS, MAX_DEMO_DAYS, _build
from tradavity_mcp.sandbox._store import Store
from tradavity_mcp.server import build_server
from tradavity_mcp.settings import ConfigError, Settings

from ..kit import SANDBOX_URL, TLS

LAUNCH = (
    "import argparse, sys\n"
    "from tradavity_mcp.sandbox import _cli\n"
    "p = argparse.ArgumentParser(); _cli.add_arguments(p)\n"
    "sys.exit(_cli.run(p.parse_args(sys.argv[1:])))\n"
)
START = 1_790_000_000.0  # a Wednesday afternoon, 2026-09-21 UTC


def _first_and_last(calendar: dict[str, Any]) -> tuple[date, date]:
    days = sorted(date.fromisoformat(d["date"]) for d in calendar["days"])
    return days[0], days[-1]


def test_default_journal_spans_ninety_days() -> None:
    app = create_app(SandboxConfig(clock=ManualClock(START)))
    trades = app.state.sandbox.store.all("trade", 1)
    dates = sorted(date.fromisoformat(t["trade_date"][:10]) for t in trades)
    assert DEFAULT_DEMO_DAYS == 90
    assert 180 <= len(trades) <= 260
    assert dates[-1] - dates[0] <= timedelta(days=92)
    assert len({t["symbol"] for t in trades}) == 8


def test_a_two_year_journal_is_longer_and_wider() -> None:
    app = create_app(SandboxConfig(clock=ManualClock(START), demo_days=730))
    trades = app.state.sandbox.store.all("trade", 1)
    dates = sorted(date.fromisoformat(t["trade_date"][:10]) for t in trades)
    assert dates[-1] - dates[0] >= timedelta(days=700)
    assert len(trades) >= 1500  # the same trades a day as the default journal
    assert len({t["symbol"] for t in trades}) >= 30
    # The other users' journals are not stretched.
    assert len(app.state.sandbox.store.all("trade", 2)) == 12


def _cents(value: Any) -> int:
    return int((Decimal(str(value)) * 100).to_integral_value())


def test_every_seeded_trade_adds_up_to_the_cent() -> None:
    """Gross - fees = net on every trade of a two-year journal, copies included (a copy's
    gross, fees and net scale with its size), and the stats' totals reconcile."""
    app = create_app(SandboxConfig(clock=ManualClock(START), demo_days=730))
    store = app.state.sandbox.store
    trades = [t for uid in (1, 2, 3) for t in store.all("trade", uid)]
    wrong = [
        (t["trade_number"], t["gross_pnl"], t["fees"], t["net_pnl"])
        for t in trades
        if _cents(t["gross_pnl"]) - _cents(t["fees"]) != _cents(t["net_pnl"])
    ]
    assert not wrong, wrong[:5]
    by_id = {t["trade_id"]: t for t in trades}
    copies = [t for t in trades if t.get("is_copy")]
    assert len(copies) >= 50
    for copy in copies:
        source = by_id[copy["source_trade_id"]]
        scale = Decimal(str(copy["quantity"])) / Decimal(str(source["quantity"]))
        for name in ("gross_pnl", "fees"):
            want = (Decimal(str(source[name])) * scale).quantize(Decimal("0.01"))
            assert abs(_cents(copy[name]) - _cents(want)) <= 1, (name, copy, source)
        assert sum(e["quantity"] for e in copy["executions"]) == 2 * copy["quantity"]

    async def totals() -> dict[str, Any]:
        async with TradavityClient(
            DEMO_KEY, base_url=SANDBOX_URL, transport=SandboxTransport(app)
        ) as api:
            summary: dict[str, Any] = await api.stats("summary", range="all")
        return dict(summary["totals"])

    sums = anyio.run(totals)
    assert sums["trade_rows"] == len(store.all("trade", 1))
    assert _cents(sums["total_gross_pnl"]) - _cents(sums["total_fees"]) == _cents(
        sums["total_net_pnl"]
    )


def test_a_journal_seeded_again_at_the_same_moment_is_a_copy_of_the_first(
    tmp_path: Path,
) -> None:
    """A second sandbox started at the same moment gets the first one's journal copied
    (into a file store too), equal to building it again; its writes stay its own."""
    moment = START + 12_345.5
    first = create_app(SandboxConfig(clock=ManualClock(moment), demo_days=30))
    copied = create_app(
        SandboxConfig(db=str(tmp_path / "j.sqlite3"), clock=ManualClock(moment), demo_days=30)
    )
    built = Store(":memory:")
    _build(built, moment, 42, 30)
    stores = [first.state.sandbox.store, copied.state.sandbox.store]
    for store in stores:
        assert (store._docs, store._owner, store._counters) == (
            built._docs,
            built._owner,
            built._counters,
        )
    stores[1].put("tag", 99_999, 1, {"id": 99_999, "name": "only here"})
    assert stores[0].get("tag", 99_999) is None
    reopened = Store(str(tmp_path / "j.sqlite3"))  # the copy reached the file
    assert reopened.get("tag", 99_999) == {"id": 99_999, "name": "only here"}
    assert reopened._counters == built._counters


def test_out_of_range_days_are_refused() -> None:
    for days in (0, MAX_DEMO_DAYS + 1):
        with pytest.raises(ValueError, match="demo_days"):
            create_app(SandboxConfig(demo_days=days))


def test_cli_refuses_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    _cli.add_arguments(parser)
    assert parser.parse_args(["--demo-days", "365"]).demo_days == 365
    assert parser.parse_args([]).demo_days == DEFAULT_DEMO_DAYS
    for bad in ("0", "ten", str(MAX_DEMO_DAYS + 1)):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(["--demo-days", bad])
        assert exit_.value.code == 2
        assert "--demo-days" in capsys.readouterr().err


def test_cli_serves_a_journal_of_the_asked_length(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "--port", "0", "--db", ":memory:", "--demo-days", "400"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().split(" on ", 1)[1].strip()
        got = httpx2.get(
            base + "/calendar",
            params={"range": "all"},
            headers={"Authorization": f"Bearer {DEMO_KEY}"},
            timeout=10,
            verify=TLS,
        )
        first, last = _first_and_last(got.json()["data"])
        assert 380 <= (last - first).days <= 402
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_cli_says_an_existing_journal_is_kept(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite3"
    db.write_bytes(b"")
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "--port", "0", "--db", str(db), "--demo-days", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "--demo-days seeds a new one only" in err


def test_environment_sets_the_embedded_sandbox_journal(tmp_path: Path) -> None:
    settings = Settings.load(
        environ={"TRADAVITY_SANDBOX": "1", "TRADAVITY_SANDBOX_DEMO_DAYS": "365"},
        state_dir=tmp_path / "state",
        sandbox_db=str(tmp_path / "sandbox.sqlite3"),
    )
    assert settings.sandbox_demo_days == 365

    today = date.today()

    async def traded_days(back_from: int, back_to: int) -> int:
        window = {
            "from_date": (today - timedelta(days=back_from)).isoformat(),
            "to_date": (today - timedelta(days=back_to)).isoformat(),
        }
        async with Client(build_server(settings)) as client:
            result = await client.call_tool("get_calendar", window)
        assert not result.is_error
        return len((result.structured_content or {})["days"])

    # A year of trades, and nothing before it (a day of slack for timezones).
    assert anyio.run(traded_days, 365, 330) > 5
    assert anyio.run(traded_days, 450, 367) == 0


def test_environment_values_are_checked() -> None:
    assert Settings.load(environ={"TRADAVITY_SANDBOX": "1"}).sandbox_demo_days is None
    for bad in ("0", "-3", "two years", str(MAX_DEMO_DAYS + 1)):
        with pytest.raises(ConfigError, match="TRADAVITY_SANDBOX_DEMO_DAYS"):
            Settings.load(environ={"TRADAVITY_SANDBOX": "1", "TRADAVITY_SANDBOX_DEMO_DAYS": bad})
    assert settings._MAX_DEMO_DAYS == MAX_DEMO_DAYS
