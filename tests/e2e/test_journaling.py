"""Journaling tools through a real MCP client (both protocol eras) against the sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tradavity_mcp.sandbox import DEMO_KEY

from ..kit import data_of, png_bytes, text_of
from .conftest import Env

pytestmark = pytest.mark.anyio


async def _names(client: Client, what: str) -> list[str]:
    items = data_of(await client.call_tool("lookup", {"name": what}))["items"]
    return [str(i["name"]) for i in items]


async def _account(client: Client) -> str:
    return (await _names(client, "accounts"))[0]


def _trade(account: str, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": "mnq",
        "direction": "long",
        "net_pnl": 48.5,
        "quantity": 2,
        "trade_date": "2026-11-20T09:31",
        "account": account,
        **extra,
    }


async def test_create_trade_round_trips_through_the_api(client: Client, env: Env) -> None:
    account = await _account(client)
    catalog = data_of(await client.call_tool("lookup", {"name": "emotions"}))
    first_emotion = catalog["emotions"][0]["value"]
    result = await client.call_tool(
        "create_trade",
        _trade(
            account.upper(),
            trade_quality_grade="A",
            emotional_state=str(first_emotion).upper(),
            general_notes="clean break",
        ),
    )
    data = data_of(result)
    assert data["outcome"] == "done"
    number = data["trade_number"]
    assert f"#{number} MNQ long +48.50" in text_of(result)
    trade = await env.api.get_trade(number)
    assert trade.symbol == "MNQ"
    assert trade.grade == "A"
    assert trade.net_pnl == 48.5
    assert str(trade.emotional_state).casefold() == str(first_emotion).casefold()
    # 09:31 in the demo user's timezone, stored in UTC.
    assert trade.trade_date is not None
    assert not trade.trade_date.startswith("2026-11-20T09:31")


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"account": "No Such Account"}, "unknown account 'No Such Account'"),
        ({"emotional_state": "zen-ish"}, "unknown emotion 'zen-ish'"),
        ({"trade_date": "next tuesday"}, "trade_date 'next tuesday' is not a date/time"),
        ({"confidence_level": 11}, "confidence_level"),
        ({"trade_date": "2099-01-01T10:00"}, "trade_date '2099-01-01T10:00' is in the future"),
        ({"trade_date": "9999-12-31T23:59:59"}, "trade_date '9999-12-31T23:59:59' is out of range"),
        ({"general_notes": "clean break\x00"}, "general_notes contains a control character"),
        ({"net_pnl": True}, "net_pnl takes a number or text, not true"),
        ({"account": True}, "account takes a number or text, not true"),
        ({"net_pnl": float("inf")}, "net_pnl"),
    ],
)
async def test_create_trade_errors_say_how_to_fix(
    client: Client, env: Env, patch: dict[str, Any], needle: str
) -> None:
    account = await _account(client)
    before = env.sandbox.counters["writes_committed"]
    result = await client.call_tool("create_trade", {**_trade(account), **patch})
    assert result.is_error
    assert needle in text_of(result)
    assert env.sandbox.counters["writes_committed"] == before


async def test_a_path_with_nul_is_refused_naming_the_field(client: Client, env: Env) -> None:
    account = await _account(client)
    number = data_of(await client.call_tool("create_trade", _trade(account)))["trade_number"]
    before = env.sandbox.counters["writes_committed"]
    for args in (
        {"trade_number": number, "path": str(env.charts / "chart\x00.png")},
        {"trade": _trade(account), "screenshot": {"path": "chart\x00.png"}},
    ):
        tool = "attach_screenshot" if "path" in args else "journal_trade"
        result = await client.call_tool(tool, args)
        assert result.is_error
        assert "path contains a control character" in text_of(result)
    assert env.sandbox.counters["writes_committed"] == before


async def test_enums_are_taken_in_any_case(client: Client, env: Env) -> None:
    account = await _account(client)
    args = {**_trade(account), "direction": "Long", "trade_quality_grade": "a+", "bias": "bullish"}
    data = data_of(await client.call_tool("create_trade", args))
    trade = await env.api.get_trade(data["trade_number"])
    assert (trade.direction, trade.grade) == ("long", "A+")
    found = data_of(await client.call_tool("find_trades", {"direction": "Long", "grade": "a+"}))
    assert data["trade_number"] in [t["trade_number"] for t in found["trades"]]
    stats = await client.call_tool("get_stats", {"range": "7D"})
    assert not stats.is_error, text_of(stats)


async def test_bad_enum_is_refused_before_the_api(client: Client, env: Env) -> None:
    result = await client.call_tool("create_trade", {**_trade("x"), "direction": "up"})
    assert result.is_error
    assert "direction" in text_of(result)
    assert "long" in text_of(result)


async def test_tag_trade_modes_and_unknown_names(client: Client, env: Env) -> None:
    account = await _account(client)
    tags = await _names(client, "tags")
    number = data_of(await client.call_tool("create_trade", _trade(account)))["trade_number"]
    first, second, third = tags[0], tags[1], tags[2]

    added = data_of(
        await client.call_tool(
            "tag_trade", {"trade_number": number, "tags": [first.lower(), second]}
        )
    )
    assert sorted(added["tags"]) == sorted([first, second])
    more = data_of(await client.call_tool("tag_trade", {"trade_number": number, "tags": [third]}))
    assert sorted(more["tags"]) == sorted([first, second, third])
    fewer = data_of(
        await client.call_tool(
            "tag_trade", {"trade_number": number, "tags": [second], "mode": "remove"}
        )
    )
    assert sorted(fewer["tags"]) == sorted([first, third])
    replaced = data_of(
        await client.call_tool(
            "tag_trade", {"trade_number": number, "tags": [second], "mode": "replace"}
        )
    )
    assert replaced["tags"] == [second]
    trade = await env.api.get_trade(number)
    assert [t.get("name") for t in trade.tags] == [second]

    typo = first[:-1] + ("x" if first[-1] != "x" else "y")
    miss = await client.call_tool("tag_trade", {"trade_number": number, "tags": [typo]})
    assert miss.is_error
    assert f"did you mean '{first}'" in text_of(miss)
    assert "create_missing=true" in text_of(miss)

    created = data_of(
        await client.call_tool(
            "tag_trade",
            {
                "trade_number": number,
                "tags": ["Opening Drive"],
                "create_missing": True,
                "category": "Playbook",
            },
        )
    )
    assert created["created"] == ["Opening Drive"]
    assert "Opening Drive" in await _names(client, "tags")  # visible at once


async def test_attach_screenshot_from_path_and_data(client: Client, env: Env, b64png: str) -> None:
    account = await _account(client)
    number = data_of(await client.call_tool("create_trade", _trade(account)))["trade_number"]
    chart = env.charts / "entry"
    chart.write_bytes(png_bytes())
    by_path = data_of(
        await client.call_tool(
            "attach_screenshot", {"trade_number": number, "path": str(chart), "label": "Entry"}
        )
    )
    assert by_path["screenshot_id"]
    by_data = data_of(
        await client.call_tool(
            "attach_screenshot",
            {"trade_number": number, "data": b64png, "filename": "exit.png", "label": "Exit"},
        )
    )
    assert by_data["screenshot_id"] != by_path["screenshot_id"]
    shots = await env.api.list_screenshots(number)
    assert sorted(s.label or "" for s in shots) == ["Entry", "Exit"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"path": "/etc/passwd"}, "outside the allowed directories"),
        ({"data": "R0lGODlhAQABAAAAACw=", "filename": "a.gif"}, "not a PNG, JPEG or PDF"),
        ({"data": "not base64!!", "filename": "a.png"}, "not valid base64"),
        ({}, "exactly one of path"),
    ],
)
async def test_attach_screenshot_refusals(
    client: Client, env: Env, args: dict[str, Any], needle: str
) -> None:
    account = await _account(client)
    number = data_of(await client.call_tool("create_trade", _trade(account)))["trade_number"]
    result = await client.call_tool("attach_screenshot", {"trade_number": number, **args})
    assert result.is_error
    assert needle in text_of(result)


async def test_per_trade_screenshot_cap_is_explained(client: Client, env: Env, b64png: str) -> None:
    account = await _account(client)
    number = data_of(await client.call_tool("create_trade", _trade(account)))["trade_number"]
    for i in range(3):
        data_of(
            await client.call_tool(
                "attach_screenshot",
                {"trade_number": number, "data": b64png, "filename": f"{i}.png", "label": str(i)},
            )
        )
    fourth = await client.call_tool(
        "attach_screenshot",
        {"trade_number": number, "data": b64png, "filename": "4.png", "label": "four"},
    )
    assert fourth.is_error
    assert "Pro plans 3" in text_of(fourth)
    assert "(3 per trade)" in text_of(fourth)


async def test_a_full_storage_quota_is_not_called_the_per_trade_cap(
    client: Client, env: Env, b64png: str
) -> None:
    """Both caps answer 413 limit_reached; the text names the one that fired."""
    account = await _account(client)
    number = data_of(await client.call_tool("create_trade", _trade(account)))["trade_number"]
    env.sandbox.set_storage_quota(1, 0)
    refused = await client.call_tool(
        "attach_screenshot", {"trade_number": number, "data": b64png, "filename": "c.png"}
    )
    assert refused.is_error
    text = text_of(refused)
    assert "storage is full" in text
    assert "per trade" not in text


async def _checklist(client: Client, kind: str) -> dict[str, Any]:
    return data_of(await client.call_tool("lookup", {"name": "protocols", "query": kind}))


def _answers(items: list[dict[str, Any]]) -> dict[str, Any]:
    values = {"rating": 4, "number": 1.5, "text": "per plan"}
    out: dict[str, Any] = {"*": "yes"}
    for item in items:
        if item["type"] == "select":
            out[item["label"]] = item["options"][0].upper()
        elif item["type"] in values:
            out[item["label"]] = values[item["type"]]
    return out


async def test_record_protocol_response_by_type_and_labels(client: Client, env: Env) -> None:
    account = await _account(client)
    number = data_of(await client.call_tool("create_trade", _trade(account)))["trade_number"]
    checklist = await _checklist(client, "pre_trade")
    result = data_of(
        await client.call_tool(
            "record_protocol_response",
            {
                "protocol": "pre_trade",
                "answers": _answers(checklist["items"]),
                "trade_number": number,
            },
        )
    )
    assert result["status"] == "completed"
    assert result["answered"] == len(checklist["items"])
    responses = await env.api.list_protocol_responses(checklist["id"], trade_number=number)
    assert len(responses) == 1


async def test_protocol_answer_errors_name_the_item(client: Client, env: Env) -> None:
    checklist = await _checklist(client, "pre_trade")
    ratings = [i for i in checklist["items"] if i["type"] == "rating"]
    if not ratings:
        pytest.skip("seeded pre-trade protocol has no rating item")  # pragma: no cover
    result = await client.call_tool(
        "record_protocol_response",
        {"protocol": checklist["name"], "answers": {ratings[0]["label"]: 9}},
    )
    assert result.is_error
    assert f"'{ratings[0]['label']}' (rating) accepts a whole number from 1 to 5" in text_of(result)
    assert env.sandbox.counters["validation_error"] == 0


async def test_journal_trade_end_to_end(client: Client, env: Env, b64png: str) -> None:
    account = await _account(client)
    tags = (await _names(client, "tags"))[:2]
    checklist = await _checklist(client, "pre_trade")
    result = await client.call_tool(
        "journal_trade",
        {
            "trade": _trade(account),
            "tags": tags,
            "executions": {
                "entries": [{"price": 21010.25, "quantity": 2}],
                "exits": [{"price": 21022.5, "quantity": 2}],
            },
            "screenshot": {"data": b64png, "filename": "chart.png", "label": "Entry"},
            "checklist": {"protocol": "pre_trade", "answers": _answers(checklist["items"])},
        },
    )
    data = data_of(result)
    assert data["outcome"] == "done"
    assert data["steps"] == {
        "create": "done",
        "executions": "done",
        "tags": "done",
        "screenshot": "done",
        "checklist": "done",
    }
    number = data["trade_number"]
    trade = await env.api.get_trade(number)
    assert sorted(str(t.get("name")) for t in trade.tags) == sorted(tags)
    assert len(await env.api.list_screenshots(number)) == 1
    assert len(await env.api.list_executions(number)) == 2
    responses = await env.api.list_protocol_responses(checklist["id"], trade_number=number)
    assert len(responses) == 1


async def test_journal_trade_partial_failure_reports_each_step(client: Client, env: Env) -> None:
    account = await _account(client)
    result = await client.call_tool(
        "journal_trade",
        {"trade": _trade(account), "tags": ["Definitely Not A Tag"]},
    )
    data = data_of(result)
    assert data["outcome"] == "partial"
    assert data["steps"]["create"] == "done"
    assert data["steps"]["tags"].startswith("failed: unknown tag")
    assert "tag_trade" in data["note"]


async def test_update_and_archive(client: Client, env: Env) -> None:
    account = await _account(client)
    number = data_of(await client.call_tool("create_trade", _trade(account)))["trade_number"]
    updated = data_of(
        await client.call_tool(
            "update_trade",
            {"trade_number": number, "changes": {"trade_quality_grade": "B", "bias": "Bullish"}},
        )
    )
    assert updated["grade"] == "B"
    bad = await client.call_tool(
        "update_trade", {"trade_number": number, "changes": {"symbol": "ES"}}
    )
    assert bad.is_error
    assert "symbol" in text_of(bad)
    archived = data_of(await client.call_tool("archive_trade", {"trade_number": number}))
    assert archived["archived"] == 1
    gone = await client.call_tool("get_trade", {"trade_number": number})
    assert "archived" in text_of(gone).casefold()


async def test_trigger_sync_cooldown_and_wait(client: Client, env: Env) -> None:
    first = data_of(
        await client.call_tool("trigger_sync", {"connection": _active(await _conns(client))})
    )
    assert first["outcome"] == "done"
    assert first["run_id"]
    conn = first["connection_id"]
    env.clock.advance(5)
    second = data_of(await client.call_tool("trigger_sync", {"connection": conn}))
    assert second["outcome"] == "cooling_down"
    assert second["retry_after_seconds"] == 15
    seen: list[float] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    waited = await client.call_tool(
        "trigger_sync", {"connection": conn, "wait": True}, progress_callback=progress
    )
    assert data_of(waited)["outcome"] == "done"
    assert seen
    assert seen[-1] == 15


async def test_token_expired_says_how_to_reconnect(client: Client, env: Env) -> None:
    conns = await _conns(client)
    expired = [c for c in conns if c.get("status") in {"token_expired", "expired"}]
    target = expired[0]["id"] if expired else None
    if target is None:
        for c in conns:
            result = await client.call_tool("trigger_sync", {"connection": c["id"]})
            if result.is_error and "reconnect" in text_of(result):
                target = c["id"]
    assert target is not None, conns
    result = await client.call_tool("trigger_sync", {"connection": target})
    assert result.is_error
    assert "Settings -> Auto-Sync" in text_of(result)


async def _conns(client: Client) -> list[dict[str, Any]]:
    return list(data_of(await client.call_tool("lookup", {"name": "connections"}))["items"])


def _active(conns: list[dict[str, Any]]) -> int:
    return int(
        next(c for c in conns if c.get("active") and c.get("status") != "token_expired")["id"]
    )


async def test_key_never_appears_in_results(client: Client, env: Env) -> None:
    account = await _account(client)
    outputs = [
        await client.call_tool("create_trade", _trade(account)),
        await client.call_tool("create_trade", {**_trade(account), "account": "nope"}),
        await client.call_tool("lookup", {"name": "me"}),
        await client.call_tool("get_stats", {}),
    ]
    for result in outputs:
        assert DEMO_KEY not in text_of(result)
        assert DEMO_KEY not in str(result.structured_content)
    me = await client.read_resource("tradavity://catalog/me")
    assert DEMO_KEY not in str(me)


async def test_archive_is_confirmed_by_elicitation(env: Env) -> None:
    from mcp.types import ElicitResult

    answers: list[bool] = []

    async def decline_then_accept(context: Any, params: Any) -> ElicitResult:
        answers.append(True)
        confirm = len(answers) > 1
        return ElicitResult(action="accept", content={"confirm": confirm})

    async with Client(env.server(), elicitation_callback=decline_then_accept) as client:
        account = await _account(client)
        number = data_of(await client.call_tool("create_trade", _trade(account)))["trade_number"]
        refused = await client.call_tool("archive_trade", {"trade_number": number})
        assert refused.is_error
        assert "did not confirm" in text_of(refused)
        assert (await env.api.get_trade(number)).trade_number == number  # still there
        done = data_of(await client.call_tool("archive_trade", {"trade_number": number}))
        assert done["archived"] == 1
    assert len(answers) == 2


async def test_screenshot_paths_allowed_by_the_clients_roots(env: Env, tmp_path: Path) -> None:
    from mcp.types import ListRootsResult, Root

    shared = tmp_path / "client-root"
    shared.mkdir()
    chart = shared / "chart.png"
    chart.write_bytes(png_bytes())

    async def roots(context: Any) -> ListRootsResult:
        return ListRootsResult(roots=[Root(uri=shared.as_uri())])

    async with Client(env.server(), list_roots_callback=roots) as client:
        account = await _account(client)
        number = data_of(await client.call_tool("create_trade", _trade(account)))["trade_number"]
        attached = data_of(
            await client.call_tool(
                "attach_screenshot", {"trade_number": number, "path": str(chart)}
            )
        )
        assert attached["screenshot_id"]
    async with Client(env.server()) as client:  # no roots: only the configured directories
        refused = await client.call_tool(
            "attach_screenshot", {"trade_number": number, "path": str(chart), "label": "again"}
        )
        assert refused.is_error
        assert "outside the allowed directories" in text_of(refused)


async def test_look_alike_tag_names_are_refused_not_created(client: Client, env: Env) -> None:
    """'FOMO' with a Cyrillic O or a zero-width joiner is not created beside the real
    FOMO: refused, naming the characters and the tag it imitates. A plain new name is."""
    account = await _account(client)
    number = data_of(await client.call_tool("create_trade", _trade(account)))["trade_number"]
    before = sorted(t.name for t in await env.api.list_tags())
    assert "FOMO" in before
    for fake, needle in (
        ("F\u041eMO", "U+041E CYRILLIC CAPITAL LETTER O, drawn like Latin 'O'"),
        ("FO\u200dMO", "U+200D ZERO WIDTH JOINER"),
    ):
        refused = await client.call_tool(
            "tag_trade", {"trade_number": number, "tags": [fake], "create_missing": True}
        )
        assert refused.is_error
        assert needle in text_of(refused)
        assert "the existing 'FOMO': use that one" in text_of(refused)
        journaled = data_of(
            await client.call_tool(
                "journal_trade",
                {
                    "trade": _trade(account, net_pnl=-3.25),
                    "tags": [fake],
                    "create_missing_tags": True,
                },
            )
        )
        assert journaled["outcome"] == "partial"
        assert journaled["steps"]["tags"].startswith("failed: tags not created:")
        assert needle in journaled["steps"]["tags"]
        # Without create_missing, the unknown-tag error says the same.
        unknown = await client.call_tool("tag_trade", {"trade_number": number, "tags": [fake]})
        assert needle in text_of(unknown)
    assert sorted(t.name for t in await env.api.list_tags()) == before
    made = data_of(
        await client.call_tool(
            "tag_trade",
            {"trade_number": number, "tags": ["Opening Drive"], "create_missing": True},
        )
    )
    assert made["created"] == ["Opening Drive"]
