"""The route table: every route is reachable, and nothing registers itself on import."""

from __future__ import annotations

import importlib
import inspect
import re

from tradavity_mcp.sandbox import endpoints, routes


def _concrete(path: str) -> str:
    return re.sub(r"\{\w+\}", "7", path)


def test_each_method_and_path_reaches_its_own_handler() -> None:
    compiled = routes.routes()
    assert len(compiled) == len(routes.TABLE)
    assert len({(method, path) for method, path, _, _ in routes.TABLE}) == len(routes.TABLE)
    for method, path, scope, handler in routes.TABLE:
        first = next(
            r for r in compiled if r.method == method and r.pattern.fullmatch(_concrete(path))
        )
        assert (first.handler, first.scope) == (handler, scope), (method, path)
        assert inspect.iscoroutinefunction(handler)
        assert scope is None or re.fullmatch(r"(read|write):\w+", scope)


def test_path_segments_reach_the_handler_by_name() -> None:
    compiled = routes.routes()
    match = next(
        r.pattern.fullmatch("/protocols/3/responses/9")
        for r in compiled
        if r.method == "GET" and r.pattern.fullmatch("/protocols/3/responses/9")
    )
    assert match is not None
    assert match.groupdict() == {"id": "3", "rid": "9"}
    assert not any(r.pattern.fullmatch("/trades/1/extra/2") for r in compiled)


def test_importing_the_endpoints_again_adds_no_routes() -> None:
    before = [(r.method, r.pattern.pattern) for r in routes.routes()]
    for name in ("accounts", "tags", "trades", "reports"):
        importlib.reload(importlib.import_module(f"{endpoints.__name__}.{name}"))
    assert [(r.method, r.pattern.pattern) for r in routes.routes()] == before
