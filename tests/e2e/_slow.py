"""Raw sockets for the slow-client tests: a client that trickles its request in, and
what it can see of the server (the answer, a closed connection)."""

from __future__ import annotations

import select
import socket
import time

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1].split("/", maxsplit=1)[0])


def trickle(port: int, data: bytes, every: float, within: float = 60.0) -> tuple[float, bytes]:
    """On a fresh connection, send `data` a byte every `every` seconds (then nothing)
    until the server closes the connection or `within` seconds pass: how long it was
    open, and what the server sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return trickle_on(sock, data, every, within)


def trickle_on(
    sock: socket.socket, data: bytes, every: float, within: float
) -> tuple[float, bytes]:
    start = time.monotonic()
    reply = b""
    sent = 0
    while time.monotonic() - start < within:
        if sent < len(data):
            try:
                sock.sendall(data[sent : sent + 1])
            except OSError:  # reset: closed
                break
            sent += 1
        ready, _, _ = select.select([sock], [], [], every)
        if ready:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
    return time.monotonic() - start, reply


def response(sock: socket.socket) -> bytes:
    """One whole response (with a content-length) from the connection."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def receive_until_closed(sock: socket.socket, within: float = 10.0) -> bytes:
    sock.settimeout(within)
    reply = b""
    while chunk := sock.recv(65536):
        reply += chunk
    return reply


def is_closed(sock: socket.socket) -> bool:
    """The server has closed (or reset) the connection: reading gives EOF."""
    ready, _, _ = select.select([sock], [], [], 0)
    if not ready:
        return False
    try:
        while sock.recv(65536, socket.MSG_DONTWAIT):
            pass
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    return True


# --- a small app, served as every server here is ---------------------------------------


def post_head(length: int, path: str = "/echo", host: str = "127.0.0.1") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n"
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\r\n"
    ).encode()
