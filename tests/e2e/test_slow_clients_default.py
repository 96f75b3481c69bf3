"""The issue's slow client at the default deadline: a header byte every 3 s, on a real
socket, is closed within 40 s (about 30 s: the default deadline counts from the
connection's opening, not from the last byte)."""

from __future__ import annotations

from tradavity_mcp.sandbox import SandboxConfig, create_app, serve_in_thread

from ._slow import HEALTHZ, port_of, trickle


def test_a_header_byte_every_3_s_is_closed_within_40_s_at_the_defaults() -> None:
    with serve_in_thread(create_app(SandboxConfig(db=":memory:"))) as base:
        elapsed, reply = trickle(port_of(base), HEALTHZ[:-2], every=3.0, within=60.0)
    assert reply.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"took longer than 30 s" in reply
    assert 27 < elapsed < 40  # ten bytes came, none of them bought more time
