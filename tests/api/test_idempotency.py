"""Deterministic idempotency keys."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tradavity_mcp.api.idempotency import IDEMPOTENCY_KEY_PATTERN, derive_key, principal_for_key

text = st.text(max_size=200)


@given(text, text, text, text)
def test_keys_are_deterministic_and_always_valid(p: str, call: str, tool: str, step: str) -> None:
    key = derive_key(p, call, tool, step)
    assert key == derive_key(p, call, tool, step)
    assert IDEMPOTENCY_KEY_PATTERN.fullmatch(key)
    assert 1 <= len(key) <= 64


@given(text, text, text, text, text)
def test_different_principals_never_share_a_key(
    p1: str, p2: str, call: str, tool: str, step: str
) -> None:
    if p1 != p2:
        assert derive_key(p1, call, tool, step) != derive_key(p2, call, tool, step)


def test_every_part_matters_and_parts_do_not_run_together() -> None:
    base = derive_key("p", "call-1", "journal_trade", "create")
    assert derive_key("p", "call-2", "journal_trade", "create") != base
    assert derive_key("p", "call-1", "create_trade", "create") != base
    assert derive_key("p", "call-1", "journal_trade", "tags") != base
    assert derive_key("ab", "c", "t", "s") != derive_key("a", "bc", "t", "s")


def test_principal_is_a_one_way_fingerprint() -> None:
    key = "tvty_" + "0f" * 24
    principal = principal_for_key(key)
    assert principal == principal_for_key(key)
    assert principal != principal_for_key("tvty_" + "1f" * 24)
    assert key[5:] not in principal
    assert key[5:17] not in principal
