"""``python -m testbed.apiserver --lab LAB (--fd N | --port P)``: the lab's API server.

It runs in the machine's network namespace (its listener is on 127.0.0.1 and nowhere
else) and reaches the lab's etcd through the UNIX socket in the lab's state folder, as
the CLI does. `up` binds the port and hands the socket over (``--fd``), so a taken port is
its error at once; the supervisor restarts a dead server on the recorded port
(``--port``). On SIGTERM it stops serving and notes a clean exit (the supervisor then
leaves it down).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from aiohttp import web

from testbed.apiserver import certs
from testbed.apiserver.app import Backend, make_app
from testbed.datastore.etcd import EtcdDatastore
from testbed.runtime import etcd_server, state

LOG = logging.getLogger("testbed.apiserver")
NAME = "apiserver"


def listener(fd: int | None, port: int | None) -> socket.socket:
    """The socket `up` bound (``fd``), or ``port`` bound again (a restart)."""
    from testbed.runtime import apiserver  # noqa: PLC0415

    sock = socket.socket(fileno=fd) if fd is not None else apiserver.listen(port)
    sock.setblocking(False)
    return sock


async def serve(lab: str, sock: socket.socket) -> None:
    folder = state.folder(lab)
    from testbed.runtime import apiserver  # noqa: PLC0415

    certs.ensure_bundle(apiserver.folder(lab), lab)  # the lab's CA on first start (here: off `up`'s critical path)
    context = certs.server_ssl_context(apiserver.folder(lab))
    path = etcd_server.socket_path(folder)
    from testbed.apiserver.crds import CrdCache  # noqa: PLC0415

    crds = CrdCache()  # with a store client of its own: its watch thread re-lists with it
    crd_store = EtcdDatastore.over_unix_socket(path)
    await asyncio.get_running_loop().run_in_executor(None, crds.start, crd_store)
    backend = Backend(lab, lambda: EtcdDatastore.over_unix_socket(path), crds=crds)
    runner = web.AppRunner(make_app(backend), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=context, shutdown_timeout=1.0)
    await site.start()
    LOG.info("serving on https://%s:%d", *sock.getsockname()[:2])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()
    crds.stop()
    backend.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testbed.apiserver", description=__doc__)
    parser.add_argument("--lab", required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--fd", type=int, help="a listening socket made by `up`")
    where.add_argument("--port", type=int, help="bind 127.0.0.1:PORT (a restart)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format=f"%(asctime)s apiserver lab={args.lab} %(levelname)s %(message)s")  # fmt: skip
    if not state.folder(args.lab).exists():
        LOG.error("no lab named %s", args.lab)
        return 2
    asyncio.run(serve(args.lab, listener(args.fd, args.port)))
    from testbed.runtime.supervisor import note_clean_exit  # noqa: PLC0415 - stopped on request: stay down

    note_clean_exit(args.lab, NAME, os.getpid())
    return 0
