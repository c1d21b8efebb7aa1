"""How a lab's etcd is started and when it is ready. The runtime spawns the process (in
the fabric netns, cwd = the lab's state folder); this module only builds its argv,
names its files and waits for it.

etcd 3.4 takes UNIX listeners only as ``unix://<name>:<port>`` and creates a socket file
literally named ``<name>:<port>`` in its working directory (an absolute path is refused).
That socket is how the CLI, in the root netns with no route to the lab, reaches etcd.

Start-up flags, measured on this machine (single member, empty data dir, time from
spawn to ``/health`` true over the socket, 15 runs each):

- defaults (heartbeat 100 ms, election 1000 ms): median 620 ms, 116-1041 ms;
- ``--heartbeat-interval 20 --election-timeout 100``: median 80 ms, 38-122 ms;
- ``--heartbeat-interval 10 --election-timeout 100``: median 84 ms, 39-122 ms;
- ``--snapshot-count 1000`` on top of either: no change (it only bounds memory).

A lone member must win one election before it serves, so the election timeout is the
start-up time; a lone member cannot lose its leadership, so a short one costs nothing
but idle ticks (idle CPU: heartbeat 100 ms 0.5 %, 20 ms 1.6 %, 10 ms 2.2 %; RSS about
24 MiB). With these flags, spawn to healthy through ``wait_healthy`` measured a median
of 100 ms (40-136 ms, 20 runs). ``--logger zap`` at ``warn`` writes one line at start
(capnslog would still print raft INFO lines).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections import deque
from pathlib import Path

from testbed import addressing
from testbed.datastore.base import Datastore

ETCD_BINARY = "/usr/bin/etcd"
MEMBER_NAME = "testbed"
SOCKET_NAME = "etcd.sock:2379"  # the file etcd makes for unix://etcd.sock:2379
DATA_DIR_NAME = "etcd-data"
LOG_NAME = "etcd.log"
HEARTBEAT_MS = 20
ELECTION_MS = 100  # etcd wants at least 5 heartbeats per election timeout
POLL_INTERVAL = 0.01


class EtcdStartError(RuntimeError):
    """etcd exited or did not become healthy in time; the message ends with its log."""


def data_dir(state_dir: Path) -> Path:
    return state_dir / DATA_DIR_NAME


def log_path(state_dir: Path) -> Path:
    return state_dir / LOG_NAME


def socket_path(state_dir: Path) -> Path:
    """The UNIX socket etcd makes when started with cwd = ``state_dir``."""
    return state_dir / SOCKET_NAME


def etcd_command(
    data_dir: Path,
    listen_ip: str | None,
    *,
    client_port: int = addressing.ETCD_CLIENT_PORT,
    peer_port: int = addressing.ETCD_PEER_PORT,
    loopback: bool = True,
) -> list[str]:
    """argv of a single-member, throwaway etcd: run it with cwd = the state folder.

    Clients: http://<listen_ip>:<client_port> (the lab), http://127.0.0.1:<client_port>
    (the fabric netns itself, unless ``loopback`` is False) and always the UNIX socket
    ``etcd.sock:2379``. ``listen_ip`` None with ``loopback`` False means the socket only
    (tests: no TCP client port to collide with). Peers: 127.0.0.1:<peer_port> only, so
    the fabric netns needs ``lo`` up.
    """
    urls = []
    if listen_ip is not None:
        urls.append(f"http://{listen_ip}:{client_port}")
    if loopback:
        urls.append(f"http://127.0.0.1:{client_port}")
    urls.append(f"unix://{SOCKET_NAME}")
    advertise = f"http://{listen_ip or '127.0.0.1'}:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    return [
        ETCD_BINARY,
        "--name", MEMBER_NAME,
        "--data-dir", str(data_dir),
        "--listen-client-urls", ",".join(urls),
        "--advertise-client-urls", advertise,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"{MEMBER_NAME}={peer}",
        "--initial-cluster-state", "new",
        "--heartbeat-interval", str(HEARTBEAT_MS),
        "--election-timeout", str(ELECTION_MS),
        "--logger", "zap",
        "--log-outputs", "stderr",
        "--log-level", "warn",
    ]  # fmt: skip


def clear_stale_socket(state_dir: Path) -> bool:
    """Remove a socket file left by a killed etcd (else the next one cannot bind).

    Only call it when this lab's etcd is known to be stopped. True if a file was removed.
    """
    path = socket_path(state_dir)
    if path.is_socket():
        path.unlink()
        return True
    return False


def last_lines(path: Path | None, count: int = 10) -> list[str]:
    if path is None:
        return []
    with contextlib.suppress(OSError), path.open(errors="replace") as handle:
        return list(deque((line.rstrip() for line in handle if line.strip()), maxlen=count))
    return []


def _fail(summary: str, log: Path | None) -> EtcdStartError:
    lines = last_lines(log)
    if not lines:
        return EtcdStartError(summary)
    tail = "\n".join(f"  {line}" for line in lines)
    return EtcdStartError(f"{summary}; last lines of {log}:\n{tail}")


def wait_healthy(
    target: Datastore | Path,
    timeout: float,
    *,
    log: Path | None = None,
    process: subprocess.Popen[bytes] | None = None,
) -> float:
    """Poll ``/health`` (over the UNIX socket when ``target`` is its path) until etcd
    says true; return the seconds waited. EtcdStartError if ``process`` exits or
    ``timeout`` passes, with the last lines of ``log``.
    """
    from testbed.datastore.etcd import EtcdDatastore  # here: importing this module stays cheap

    if isinstance(target, Path):
        store: Datastore = EtcdDatastore.over_unix_socket(target, timeout=max(0.2, min(1.0, timeout)))
        owned = True
    else:
        store, owned = target, False
    start = time.monotonic()
    try:
        while True:
            if store.healthy():
                return time.monotonic() - start
            if process is not None and process.poll() is not None:
                raise _fail(f"etcd ({store.endpoint}) exited with status {process.returncode}", log)
            if time.monotonic() - start > timeout:
                raise _fail(f"etcd ({store.endpoint}) not healthy after {timeout:g} s", log)
            time.sleep(POLL_INTERVAL)
    finally:
        if owned:
            store.close()
