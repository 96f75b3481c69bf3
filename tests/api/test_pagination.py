"""Offset lists: the client walks every page at the reference's largest page size."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from ._scripted import Script, make_client, ok

pytestmark = pytest.mark.anyio


def _tags(start: int, count: int) -> list[dict[str, Any]]:
    return [{"tag_id": i, "name": f"T{i}"} for i in range(start, start + count)]


def _page(rows: list[dict[str, Any]], **extra: Any) -> httpx2.Response:
    return ok({"tags": rows, **extra})


async def test_pages_follow_has_more_at_the_largest_page_size() -> None:
    script = Script(
        _page(_tags(1, 500), total_count=1100, has_more=True),
        _page(_tags(501, 500), total_count=1100, has_more=True),
        _page(_tags(1001, 100), total_count=1100, has_more=False),
    )
    async with make_client(script) as api:
        tags = await api.list_tags()
    assert [t.id for t in tags] == list(range(1, 1101))
    sent = [dict(r.url.params) for r in script.requests]
    assert sent == [
        {"limit": "500", "offset": "0"},
        {"limit": "500", "offset": "500"},
        {"limit": "500", "offset": "1000"},
    ]


async def test_total_count_alone_drives_the_walk() -> None:
    script = Script(
        _page(_tags(1, 500), total_count=600),
        _page(_tags(501, 100), total_count=600),
        _page(_tags(9000, 5), total_count=600),
    )
    async with make_client(script) as api:
        tags = await api.list_tags()
    assert len(tags) == 600
    assert len(script.requests) == 2


async def test_a_list_without_paging_fields_is_one_page() -> None:
    script = Script(_page(_tags(1, 3)), _page(_tags(4, 3)))
    async with make_client(script) as api:
        assert len(await api.list_tags()) == 3
    assert len(script.requests) == 1


async def test_rows_shifted_between_pages_are_kept_once() -> None:
    # A tag created between two requests pushes one row of page one onto page two.
    script = Script(
        _page(_tags(1, 500), has_more=True),
        _page(_tags(500, 3), has_more=False),
    )
    async with make_client(script) as api:
        ids = [t.id for t in await api.list_tags()]
    assert ids == list(range(1, 503))


async def test_a_server_ignoring_offset_cannot_loop_forever() -> None:
    script = Script(_page(_tags(1, 500), has_more=True))  # the same page, again and again
    async with make_client(script) as api:
        assert len(await api.list_tags()) == 500
    assert len(script.requests) == 2


async def test_filters_ride_along_on_every_page() -> None:
    script = Script(
        ok({"accounts": [{"account_id": 1, "account_name": "A"}], "has_more": True}),
        ok({"accounts": [{"account_id": 2, "account_name": "B"}], "has_more": False}),
    )
    async with make_client(script) as api:
        accounts = await api.list_accounts(include_archived=True)
    assert [a.account_name for a in accounts] == ["A", "B"]
    assert all(r.url.params["include_archived"] == "true" for r in script.requests)


async def test_high_volume_lists_page_by_200_and_stop_at_a_limit() -> None:
    rows = [{"log_id": i} for i in range(1000, 0, -1)]
    script = Script(
        ok({"log": rows[:200], "has_more": True}),
        ok({"log": rows[200:250], "has_more": True}),
    )
    async with make_client(script) as api:
        log = await api.sync_log(limit=250)
    assert [r["log_id"] for r in log] == list(range(1000, 750, -1))
    assert [r.url.params["limit"] for r in script.requests] == ["200", "50"]


async def test_protocol_responses_walk_every_page() -> None:
    script = Script(
        ok({"responses": [{"response_id": i} for i in range(200)], "has_more": True}),
        ok({"responses": [{"response_id": 200}], "has_more": False}),
    )
    async with make_client(script) as api:
        rows = await api.list_protocol_responses(1, trade_number=7)
    assert len(rows) == 201
    assert [r.url.params["limit"] for r in script.requests] == ["200", "200"]
    assert script.requests[1].url.params["offset"] == "200"
    assert script.requests[1].url.params["trade_number"] == "7"
