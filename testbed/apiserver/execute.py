"""``pods/<name>/exec`` over WebSocket: `kubectl exec` (1.30+) and the Python client's
``stream``.

The protocol [apimachinery util/remotecommand; client-go tools/remotecommand/websocket.go]:
the client upgrades ``GET .../exec?command=a&command=b&container=c&stdin=&stdout=&stderr=&tty=``
with subprotocol ``v5.channel.k8s.io`` (kubectl) or ``v4.channel.k8s.io`` (the Python
client before v36). Each binary message is a channel byte and a payload: 0 stdin (from the
client), 1 stdout, 2 stderr, 3 the closing Status, 4 terminal resizes as JSON
``{"Width": W, "Height": H}``; v5 adds ``[255, channel]``, the client closing its stdin. The
command ends with a Status on channel 3 (``Success``, or ``Failure`` / ``NonZeroExitCode``
with the code as the first cause, which both kubectl and the Python client read) and a
close frame with code 1000. With ``tty`` the command gets a terminal and its stderr is its
stdout. The client pings every 5 s; aiohttp answers.

The command runs as `testbed exec` runs it: in the pod's sandbox (``sandbox.exec_argv``:
nsenter into the pause's namespaces, the container's securityContext), or in its netns
only when the sandbox is gone. kubectl older than 1.30 speaks only SPDY, which is not
served: the handshake's 400 Status says to use a newer kubectl or `testbed exec`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import struct
import termios
from typing import Any

from aiohttp import WSMsgType, web

from testbed import images, naming
from testbed.apiserver import resources, status
from testbed.apiserver.paths import Target
from testbed.netns import processes, sandbox, security

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
READ_SIZE = 32 * 1024


def exit_status(code: int) -> dict[str, Any]:
    """The Status that ends a command (pure)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {}, "status": "Failure", "message": f"command terminated with non-zero exit code: exit status {code}",
        "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }  # fmt: skip


def frame(channel: int, data: bytes) -> bytes:
    return bytes([channel]) + data


async def serve_attach(request: web.Request, backend: Any, target: Target) -> web.StreamResponse:
    """``pods/<name>/attach`` (`kubectl attach`, `kubectl run -i`): a container with ``stdin``
    waits in its placeholder (the kubelet's ``STDIN_PLACEHOLDER``) for this; its own
    command then runs in the pod with the client's stdin and terminal, its exit code is
    left for the kubelet, and the placeholder is stopped, so the container ends as the
    command did (``stdinOnce``). A container without ``stdin``: its output, followed."""
    from agents.kubelet.containers import attached_file  # noqa: PLC0415

    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise status.bad_request("attach is served over WebSocket only (v5.channel.k8s.io, v4.channel.k8s.io): "
                                 "use kubectl 1.30 or newer")  # fmt: skip
    query = request.query
    pod = await backend.run(lambda s: resources.get(s, Target(target.kind, target.namespace, target.name)))
    specs = pod.get("spec", {}).get("containers", [])
    name = query.get("container") or (specs[0].get("name") if specs else None)
    spec = next((c for c in specs if c.get("name") == name), None)
    if spec is None:
        raise status.bad_request(f"container {name} is not valid for pod {target.name}")
    statuses = pod.get("status", {}).get("containerStatuses") or []
    running = next((c for c in statuses if c.get("name") == name and "running" in (c.get("state") or {})), None)
    if running is None:
        raise status.bad_request(f"container {name} is not running in pod {target.name}")
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, heartbeat=None, max_msg_size=0)
    await ws.prepare(request)
    if not spec.get("stdin"):
        from testbed.runtime import programs  # noqa: PLC0415

        await _follow_output(ws, programs.log_path(backend.lab, str(target.namespace), str(target.name)))
        return ws
    command = [*(spec.get("command") or []), *(spec.get("args") or [])]
    argv, env = command_argv(backend.lab, pod, name, command)
    code = await _run(ws, argv, env, query)
    marker = attached_file(backend.lab, str(target.namespace), str(target.name), str(name))
    marker.parent.mkdir(exist_ok=True)
    marker.write_text(f"{code}\n")
    placeholder = str(running.get("containerID", "")).rpartition("://")[2]
    if placeholder.isdigit():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(placeholder), 9)
    with contextlib.suppress(ConnectionResetError):
        await ws.send_bytes(frame(ERROR, json.dumps(exit_status(0)).encode()))  # the code is the pod's to report
        await ws.close(code=1000)
    return ws


async def _follow_output(ws: web.WebSocketResponse, path: Any) -> None:
    """What the container writes from now on, on stdout, until the client goes."""
    from testbed.apiserver.subresources import FOLLOW_POLL, grown  # noqa: PLC0415

    offset = path.stat().st_size if path.exists() else 0
    closed = asyncio.ensure_future(_until_closed(ws))
    try:
        while not closed.done():
            chunk, offset = grown(path, offset)
            if chunk:
                with contextlib.suppress(ConnectionResetError):
                    await ws.send_bytes(frame(STDOUT, chunk))
            await asyncio.sleep(FOLLOW_POLL)
    finally:
        closed.cancel()


async def _until_closed(ws: web.WebSocketResponse) -> None:
    async for _message in ws:
        pass


async def _run(ws: web.WebSocketResponse, argv: list[str], env: dict[str, str], query: Any) -> int:
    """The command with the client's terminal (``tty``) or its pipes; its exit code."""
    if resources.truthy(query.get("tty")):
        return await _run_tty(ws, argv, env)
    return await _run_pipes(ws, argv, env, resources.truthy(query.get("stdin")))


def command_argv(lab: str, pod: dict[str, Any], container: str | None, command: list[str],
                 ) -> tuple[list[str], dict[str, str]]:  # fmt: skip
    """How to run ``command`` in ``pod``'s container, as `testbed kubectl exec` runs it: the
    image's environment and its programs (busybox's applets, agnhost's subcommands), in
    the pod's sandbox with the container's securityContext; argv and environment."""
    meta = pod["metadata"]
    specs = pod.get("spec", {}).get("containers", [])
    containers = [c.get("name") for c in specs]
    if container is not None and container not in containers:
        raise status.bad_request(f"container {container} is not valid for pod {meta['name']}")
    index = containers.index(container) if container is not None else 0
    try:
        who = security.of_pod_record(pod, index)
        argv, env = images.interactive_argv(str(specs[index].get("image", "busybox")) if specs else "busybox",
                                            tuple(command))  # fmt: skip
    except (security.SecurityError, images.UnknownImage) as exc:
        raise status.bad_request(f"pod {meta['name']}: {exc}") from None
    netns = naming.pod_netns(lab, meta["namespace"], meta["name"])
    pause = sandbox.find(netns)
    environment = {**os.environ, **env}
    if pause is None:
        return processes.netns_exec_argv(netns, list(argv)), environment
    return sandbox.exec_argv(pause, argv, who), environment


async def serve_exec(request: web.Request, backend: Any, target: Target) -> web.StreamResponse:
    query = request.query
    command = query.getall("command", [])
    if not command:
        raise status.bad_request("you must specify at least one command for the container")
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise status.bad_request("exec is served over WebSocket only (v5.channel.k8s.io, v4.channel.k8s.io): "
                                 "use kubectl 1.30 or newer, or `testbed exec`")  # fmt: skip
    pod = await backend.run(lambda s: resources.get(s, Target(target.kind, target.namespace, target.name)))
    phase = pod.get("status", {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise status.bad_request(f"cannot exec into a container in a completed pod; current phase is {phase}")
    argv, env = command_argv(backend.lab, pod, query.get("container"), command)
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, heartbeat=None, max_msg_size=0)
    await ws.prepare(request)
    if ws.ws_protocol is None:
        await ws.close(code=1002, message=b"no supported subprotocol")
        return ws
    code = await _run(ws, argv, env, query)
    with contextlib.suppress(ConnectionResetError):
        await ws.send_bytes(frame(ERROR, json.dumps(exit_status(code)).encode()))
        await ws.close(code=1000)
    return ws


async def _pump(reader: asyncio.StreamReader, ws: web.WebSocketResponse, channel: int) -> None:
    while chunk := await reader.read(READ_SIZE):
        with contextlib.suppress(ConnectionResetError):
            await ws.send_bytes(frame(channel, chunk))


async def _stdin(ws: web.WebSocketResponse, write: Any, close: Any, resize: Any = None) -> None:
    """Client frames to the command: stdin data, stdin closed (v5), resizes."""
    async for message in ws:
        if message.type == WSMsgType.BINARY:
            data = message.data
        elif message.type == WSMsgType.TEXT:  # the Python client may send stdin as text
            data = message.data.encode()
        else:
            break
        if not data:
            continue
        channel, payload = data[0], data[1:]
        if channel == STDIN and payload:
            await write(payload)
        elif channel == CLOSE and payload[:1] == bytes([STDIN]):
            await close()
        elif channel == RESIZE and resize is not None:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                size = json.loads(payload)
                resize(int(size["Width"]), int(size["Height"]))
    await close()


async def _run_pipes(ws: web.WebSocketResponse, argv: list[str], env: dict[str, str], with_stdin: bool) -> int:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if with_stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None

    async def write(data: bytes) -> None:
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(data)
            with contextlib.suppress(ConnectionResetError, BrokenPipeError):
                await proc.stdin.drain()

    async def close() -> None:
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()

    feeder = asyncio.ensure_future(_stdin(ws, write, close))
    try:
        await asyncio.gather(_pump(proc.stdout, ws, STDOUT), _pump(proc.stderr, ws, STDERR))
        return await proc.wait()
    finally:
        feeder.cancel()
        if proc.returncode is None:  # the client went away first
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def _run_tty(ws: web.WebSocketResponse, argv: list[str], env: dict[str, str]) -> int:
    master, slave = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, preexec_fn=_controlling_tty,
            env={**env, "TERM": env.get("TERM", "xterm")},
        )  # fmt: skip
    finally:
        os.close(slave)
    loop = asyncio.get_running_loop()
    output: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            output.put_nowait(os.read(master, READ_SIZE))
        except OSError:  # EIO: the terminal's last writer is gone
            loop.remove_reader(master)
            output.put_nowait(b"")

    loop.add_reader(master, readable)

    async def write(data: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(master, data)

    async def close() -> None:
        await write(b"\x04")  # end of input at the terminal

    def resize(width: int, height: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    feeder = asyncio.ensure_future(_stdin(ws, write, close, resize))
    try:
        while chunk := await output.get():
            with contextlib.suppress(ConnectionResetError):
                await ws.send_bytes(frame(STDOUT, chunk))
        return await proc.wait()
    finally:
        feeder.cancel()
        loop.remove_reader(master)
        os.close(master)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def _controlling_tty() -> None:
    """In the child, after setsid: stdin (the pty's slave) becomes its controlling terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
