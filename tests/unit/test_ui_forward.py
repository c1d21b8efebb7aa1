"""The UI forwarder: localhost only, a taken port is a clear error, bytes pass both ways."""

from __future__ import annotations

import socket
import threading

import pytest

from testbed import ui_forward


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_listens_on_localhost_only_and_a_taken_port_is_refused() -> None:
    port = free_port()
    listener = ui_forward.listen(port)
    try:
        assert listener.getsockname() == ("127.0.0.1", port)
        with pytest.raises(ui_forward.PortTaken, match=rf"127\.0\.0\.1:{port} is already in use"):
            ui_forward.listen(port)
    finally:
        listener.close()
    assert ui_forward.url(port) == f"http://127.0.0.1:{port}"


def test_a_connection_is_piped_both_ways_with_half_close(monkeypatch: pytest.MonkeyPatch) -> None:
    """Upstream here is a local echo server; the real one is opened inside the lab's fabric."""
    upstream = socket.create_server(("127.0.0.1", 0))
    target = upstream.getsockname()

    def echo() -> None:
        conn, _ = upstream.accept()
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
        conn.sendall(data.upper())
        conn.close()

    threading.Thread(target=echo, daemon=True).start()
    monkeypatch.setattr(ui_forward, "_connect_inside", lambda _netns, t: socket.create_connection(t))
    left, right = socket.socketpair()
    worker = threading.Thread(target=ui_forward.serve_connection, args=(right, "lab.fabric", target))
    worker.start()
    left.sendall(b"get /status")
    left.shutdown(socket.SHUT_WR)
    answer = b""
    while chunk := left.recv(4096):
        answer += chunk
    worker.join(5)
    assert answer == b"GET /STATUS"
    upstream.close()


def test_an_unreachable_lab_closes_the_browsers_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_netns: str, _target: tuple[str, int]) -> socket.socket:
        raise ConnectionRefusedError

    monkeypatch.setattr(ui_forward, "_connect_inside", refuse)
    left, right = socket.socketpair()
    ui_forward.serve_connection(right, "lab.fabric", ("172.18.203.11", 30002))
    assert left.recv(10) == b""
