"""``pods/<name>/portforward`` over WebSocket, as the Python client speaks it, and a clear
answer for what cannot be served.

The channel protocol [kubernetes-client/python stream/ws_client.py ``PortForward``;
apimachinery util/portforward]: ``GET .../portforward?ports=80,8080`` upgraded with
subprotocol ``v4.channel.k8s.io`` (or v5); port number ``i`` of the list has data on
channel ``2i`` and errors on channel ``2i+1``, and the server first sends on each of the
two a 3-byte frame, the channel and the port as uint16 little-endian. Each port is one
TCP connection to ``127.0.0.1:<port>`` inside the pod's network namespace, as the
kubelet's port-forward opens it; when that connection ends, so does the stream.

kubectl's port-forward needs SPDY/3.1 framing in every version (plain, or tunnelled in
a WebSocket from 1.31), which is not served: it gets a 400 naming what to use instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from aiohttp import WSMsgType, web

from testbed import naming
from testbed.apiserver import resources, status
from testbed.apiserver.paths import Target
from testbed.netns import namespaces

PROTOCOLS = ("v4.channel.k8s.io", "v5.channel.k8s.io")
CONNECT_TIMEOUT = 5.0
READ_SIZE = 64 * 1024
NOT_SERVED = ("port-forward over SPDY (kubectl's only protocol for it) is not served by this lab: use the Python "
              "client's portforward, `testbed ui` for a NodePort, or `testbed exec` into the pod")  # fmt: skip


def initial_frame(channel: int, port: int) -> bytes:
    """The first frame of a channel: its number, then the port, little-endian (pure)."""
    return bytes([channel, port & 0xFF, port >> 8])


def parse_ports(text: str) -> list[int]:
    ports = []
    for word in text.split(","):
        if not word.strip().isdigit() or not 0 < int(word) < 65536:
            raise status.bad_request(f'invalid port "{word}"')
        ports.append(int(word))
    if not ports:
        raise status.bad_request("at least one port must be given (ports=)")
    return ports


async def serve_portforward(request: web.Request, backend: Any, target: Target) -> web.StreamResponse:
    offered = {p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")}
    if request.headers.get("Upgrade", "").lower() != "websocket" or not offered & set(PROTOCOLS):
        raise status.bad_request(NOT_SERVED)
    ports = parse_ports(",".join(request.query.getall("ports", [])) or request.query.get("port", ""))
    pod = await backend.run(lambda s: resources.get(s, Target(target.kind, target.namespace, target.name)))
    if pod.get("status", {}).get("phase") != "Running":
        raise status.bad_request(f"pod {target.name} is not running")
    netns = naming.pod_netns(backend.lab, str(target.namespace), str(target.name))
    loop = asyncio.get_running_loop()
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True, heartbeat=None, max_msg_size=0)
    await ws.prepare(request)
    streams: dict[int, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
    for i, port in enumerate(ports):
        await ws.send_bytes(initial_frame(2 * i, port))
        await ws.send_bytes(initial_frame(2 * i + 1, port))
        try:
            sock = await loop.run_in_executor(None, lambda p=port: namespaces.run_inside(
                netns, lambda: socket.create_connection(("127.0.0.1", p), timeout=CONNECT_TIMEOUT)))  # type: ignore[misc]
            sock.setblocking(False)
            streams[i] = await asyncio.open_connection(sock=sock)
        except OSError as exc:
            await ws.send_bytes(bytes([2 * i + 1]) + f"error forwarding port {port} to pod {target.name}: {exc}".encode())
    pumps = [asyncio.ensure_future(_from_pod(ws, i, reader)) for i, (reader, _w) in streams.items()]
    try:
        await _from_client(ws, streams, pumps)
    finally:
        for pump in pumps:
            pump.cancel()
        for _reader, writer in streams.values():
            writer.close()
        with contextlib.suppress(ConnectionResetError):
            await ws.close(code=1000)
    return ws


async def _from_pod(ws: web.WebSocketResponse, index: int, reader: asyncio.StreamReader) -> None:
    while chunk := await reader.read(READ_SIZE):
        await ws.send_bytes(bytes([2 * index]) + chunk)


async def _from_client(ws: web.WebSocketResponse, streams: dict[int, Any], pumps: list[asyncio.Future[None]]) -> None:
    """Client frames to the pod's connections, until the client goes or every connection ended."""
    receive = asyncio.ensure_future(ws.receive())
    while True:
        done, _ = await asyncio.wait([receive, *pumps], return_when=asyncio.FIRST_COMPLETED)
        if receive not in done:  # a connection to the pod ended
            if all(p.done() for p in pumps):
                receive.cancel()
                return
            pumps = [p for p in pumps if not p.done()]
            continue
        message = receive.result()
        if message.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
            return
        data = message.data if message.type == WSMsgType.BINARY else message.data.encode()
        channel, payload = (data[0], data[1:]) if data else (-1, b"")
        if channel % 2 == 0 and channel // 2 in streams and payload:
            writer = streams[channel // 2][1]
            writer.write(payload)
            with contextlib.suppress(ConnectionResetError):
                await writer.drain()
        receive = asyncio.ensure_future(ws.receive())
