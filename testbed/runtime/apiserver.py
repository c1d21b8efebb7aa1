"""The lab's API server process: started by `up`, restarted by the supervisor, and the
kubeconfig that reaches it.

The server listens on 127.0.0.1 in the machine's network namespace (the one `up` runs in;
the supervisor, which sits in the lab's fabric netns, restarts it there through a
descriptor of that netns it got from `up`), on 6443 for the
first lab and the next free port for others, and is recorded as ``apiserver`` in the
lab's state (so `down` stops it with the rest). It makes the lab's CA and certificates
itself, in ``<lab folder>/apiserver/`` (0700), off `up`'s critical path; `up` waits until
it answers, then merges a ``testbed-<lab>`` cluster, user and context into the invoking
user's kubeconfig, as kind does [kind pkg/cluster/internal/kubeconfig].
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from testbed.netns import processes
from testbed.runtime import state

NAME = "apiserver"
LISTEN_HOST = "127.0.0.1"
FIRST_PORT = 6443
LAST_PORT = 6543
PORT_FILE = "port"
READY_TIMEOUT = 10.0


class PortTaken(RuntimeError):
    """No port of the API server's range (or not the one asked for) is free."""


def folder(lab: str) -> Path:
    return state.folder(lab) / NAME


def url(port: int) -> str:
    return f"https://{LISTEN_HOST}:{port}"


def port_of(lab: str) -> int | None:
    """The lab's API server port, or None (a lab from before the API server)."""
    try:
        return int((folder(lab) / PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def listen(port: int | None = None) -> socket.socket:
    """A listening socket on 127.0.0.1: ``port``, or the first free one from 6443 (bound as
    the UI forwarder binds its port)."""
    from testbed import ui_forward  # noqa: PLC0415

    for candidate in [port] if port else range(FIRST_PORT, LAST_PORT + 1):
        try:
            return ui_forward.listen(candidate)
        except ui_forward.PortTaken:
            continue
    if port:
        raise PortTaken(f"{LISTEN_HOST}:{port} is already in use")
    raise PortTaken(f"no free port for the API server on {LISTEN_HOST}:{FIRST_PORT}-{LAST_PORT}")


def start(lab: str, lab_state: state.LabState, port: int | None = None) -> int:
    """Bind the port, spawn the server on it and record both; the port."""
    target = folder(lab)
    target.mkdir(mode=0o700, exist_ok=True)
    os.chmod(target, 0o700)
    sock = listen(port)
    try:
        bound = sock.getsockname()[1]
        (target / PORT_FILE).write_text(f"{bound}\n")
        fd = sock.fileno()
        os.set_inheritable(fd, True)
        proc = _spawn(lab, ["--fd", str(fd)], pass_fds=(fd,))
    finally:
        sock.close()
    state.record_process(lab_state, NAME, "", proc.pid)
    return bound


def restart(lab: str, recorded: state.LabState, machine_netns_fd: int | None = None) -> int:
    """The supervisor's restart: the recorded port, bound by the server itself, in the
    machine's netns (``machine_netns_fd``; None: the caller is in it); its PID."""
    port = port_of(lab)
    if port is None:
        raise RuntimeError(f"lab {lab!r} has no API server port recorded")
    proc = _spawn(lab, ["--port", str(port)], machine_netns_fd=machine_netns_fd)
    state.record_process(recorded, NAME, "", proc.pid)
    return proc.pid


def _spawn(lab: str, where: list[str], pass_fds: tuple[int, ...] = (), machine_netns_fd: int | None = None,
           ) -> subprocess.Popen[bytes]:  # fmt: skip
    argv = [sys.executable, "-m", "testbed.apiserver", "--lab", lab, *where]
    if machine_netns_fd is not None:  # nsenter opens its own inherited copy of the descriptor
        argv = [processes.NSENTER, f"--net=/proc/self/fd/{machine_netns_fd}", "--", *argv]
        pass_fds = (*pass_fds, machine_netns_fd)
    log = state.folder(lab) / "logs" / f"{NAME}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, pass_fds=pass_fds,
        )  # fmt: skip


def client_context(lab: str) -> ssl.SSLContext:
    """TLS as the lab's admin: the lab's CA, the admin certificate."""
    from testbed.apiserver import bundle  # noqa: PLC0415

    base = folder(lab)
    context = ssl.create_default_context(cafile=str(base / bundle.CA_CERT))
    context.load_cert_chain(str(base / bundle.ADMIN_CERT), str(base / bundle.ADMIN_KEY))
    return context


def wait_ready(lab: str, timeout: float = READY_TIMEOUT) -> None:
    """Until the server answers ``/readyz`` as the admin; TimeoutError naming its log."""
    port = port_of(lab)
    deadline = time.monotonic() + timeout
    problem = "not started"
    while time.monotonic() < deadline:
        try:
            from testbed.apiserver import bundle  # noqa: PLC0415

            if port is not None and all((folder(lab) / f).exists() for f in bundle.FILES):
                connection = http.client.HTTPSConnection(LISTEN_HOST, port, timeout=2.0, context=client_context(lab))
                try:
                    connection.request("GET", "/readyz")
                    if connection.getresponse().status == 200:
                        return
                finally:
                    connection.close()
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            problem = str(exc)
        time.sleep(0.02)
    raise TimeoutError(f"the API server of lab {lab!r} did not answer within {timeout:.0f} s ({problem}; "
                       f"see {state.folder(lab) / 'logs' / (NAME + '.log')})")  # fmt: skip


def standalone_kubeconfig(lab: str) -> dict[str, Any]:
    """A kubeconfig holding only this lab, as the admin."""
    from testbed.apiserver import bundle, kubeconfig  # noqa: PLC0415

    files = bundle.read_bundle(folder(lab))
    port = port_of(lab)
    if files is None or port is None:
        raise RuntimeError(f"lab {lab!r} has no API server (it was made before the API server existed?)")
    return kubeconfig.standalone(lab, url(port), files.ca_cert, files.admin_cert, files.admin_key)


def merge_user_kubeconfig(lab: str, *, switch: bool = True, environ: dict[str, str] | None = None) -> Path:
    """Merge the lab into the invoking user's kubeconfig (``$KUBECONFIG`` or
    ``~/.kube/config``, owned by them, 0600); the file written."""
    from testbed.apiserver import kubeconfig  # noqa: PLC0415

    env = dict(os.environ if environ is None else environ)
    uid, gid, home = kubeconfig.invoking_user(env)
    path = kubeconfig.target_path(None, env, home)
    kubeconfig.write_merged(path, lab, standalone_kubeconfig(lab), switch=switch, owner=(uid, gid))
    return path


def remove_user_kubeconfig(lab: str, environ: dict[str, str] | None = None) -> Path | None:
    """Take the lab's entries out of the invoking user's kubeconfig; the file, if it had any."""
    from testbed.apiserver import kubeconfig  # noqa: PLC0415

    env = dict(os.environ if environ is None else environ)
    _uid, _gid, home = kubeconfig.invoking_user(env)
    path = kubeconfig.target_path(None, env, home)
    try:
        return path if path.exists() and kubeconfig.remove_entries(path, lab) else None
    except (OSError, ValueError):
        return None
