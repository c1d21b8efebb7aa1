"""The lab's UI on the machine's localhost: 127.0.0.1:PORT -> a host's NodePort, in the lab.

The one thing of a lab in the root network namespace, and only a localhost listener: no
route, address or rule. Each accepted connection is matched by a connection opened from
inside the lab's fabric netns (the socket is made by a thread that joined that netns, so
it lives there), and bytes are piped both ways. The parent binds the port itself, so a
taken port is a clear error at once, then hands the socket to a daemon (``python -m
testbed.ui_forward``) whose PID the lab records: `down` stops it with the rest.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from testbed.netns import namespaces

LISTEN_HOST = "127.0.0.1"
DEFAULT_PORT = 30002
CONNECT_TIMEOUT = 5.0
CHECK_EVERY = 2.0  # seconds between checks that the lab's fabric still exists
CHUNK = 65536


class PortTaken(RuntimeError):
    """The local port is already in use."""


def url(port: int) -> str:
    return f"http://{LISTEN_HOST}:{port}"


def listen(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:port (inheritable, for the daemon), or PortTaken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((LISTEN_HOST, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortTaken(f"{LISTEN_HOST}:{port} is already in use: choose another port with --port") from None
        raise
    sock.listen(64)
    return sock


def spawn(sock: socket.socket, netns: str, target: tuple[str, int], log: Path) -> subprocess.Popen[bytes]:
    """Start the daemon on the listening ``sock``; the caller closes its own copy."""
    log.parent.mkdir(parents=True, exist_ok=True)
    fd = sock.fileno()
    os.set_inheritable(fd, True)
    argv = [sys.executable, "-m", "testbed.ui_forward", "--fd", str(fd), "--netns", netns,
            "--target", f"{target[0]}:{target[1]}"]
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, pass_fds=(fd,),
        )


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy until ``src`` ends, then end ``dst``'s writing side (half-close, as TCP allows)."""
    try:
        while data := src.recv(CHUNK):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _connect_inside(netns: str, target: tuple[str, int]) -> socket.socket:
    return namespaces.run_inside(netns, lambda: socket.create_connection(target, timeout=CONNECT_TIMEOUT))


def serve_connection(client: socket.socket, netns: str, target: tuple[str, int]) -> None:
    """One browser connection: its twin in the lab, then bytes both ways until both end."""
    try:
        upstream = _connect_inside(netns, target)
    except OSError:
        client.close()  # the browser sees the connection close, as with a refused NodePort
        return
    upstream.settimeout(None)
    back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join()
    upstream.close()
    client.close()


def serve(listener: socket.socket, netns: str, target: tuple[str, int]) -> None:
    """Accept until the lab's fabric netns is gone (the lab was removed without `down`)."""
    listener.settimeout(CHECK_EVERY)
    while namespaces.exists(netns):
        try:
            client, _ = listener.accept()
        except TimeoutError:
            continue
        client.settimeout(None)
        threading.Thread(target=serve_connection, args=(client, netns, target), daemon=True).start()


def _target(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="testbed.ui_forward", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the inherited listening socket")
    parser.add_argument("--netns", required=True, help="the netns outgoing connections start from")
    parser.add_argument("--target", type=_target, required=True, help="IP:PORT inside the lab")
    args = parser.parse_args(argv)
    listener = socket.socket(fileno=args.fd)
    serve(listener, args.netns, args.target)


if __name__ == "__main__":
    main()
