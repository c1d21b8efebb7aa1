"""The stars demo's probe (`calico/star-probe`): which of its URLs answer, served as JSON.

Each URL gets its own thread that sends `GET <url>` every ``--http-probe-seconds``: any
HTTP answer, whatever its status, means reachable; a connection error, a reset or a
timeout means unreachable. Targets start unreachable. Unlike the original (no client
timeout) a request gives up after ``--timeout`` seconds: a SYN that a policy drops
would otherwise hold the target's last state for minutes. One thread per URL keeps a
slow target (a DNS wait, a dropped SYN) from delaying the others.

`GET /status` answers `{"status":{"targets":[{"url":..., "reachable":...}, ...]}}` in
the order of ``--urls``; every other path gets 404.

Usage (the argv of the lab's manifests, after the image's `probe`):
    python -m agents.apps.star_probe [--http-port=9000] --urls=U1,U2,... [--http-probe-seconds=5]

Requests never use a proxy from the environment: the probe talks to the lab only.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = logging.getLogger("agents.apps.star_probe")

DEFAULT_PORT = 9000
DEFAULT_PERIOD = 5.0
DEFAULT_TIMEOUT = 2.0

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy from the env


def reachable(url: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """One probe: True when the URL gives any HTTP answer (an error status too)."""
    try:
        request = urllib.request.Request(url, headers={"Connection": "close"})
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError:
        return True  # an answer, whatever its status
    except (OSError, ValueError, urllib.error.URLError):
        return False  # refused, reset, timed out, no such name, not HTTP
    except Exception:  # noqa: BLE001 - http.client's odd answers (bad status line): not HTTP
        return False
    return True


def parse_urls(text: str) -> list[str]:
    """`U1,U2,...` -> the URLs, blanks left out."""
    return [url.strip() for url in text.split(",") if url.strip()]


def status_document(urls: Sequence[str], states: dict[str, bool]) -> dict[str, object]:
    """The `/status` body; a URL not probed yet is unreachable."""
    return {"status": {"targets": [{"url": url, "reachable": bool(states.get(url, False))} for url in urls]}}


class Prober:
    """The targets' last results, updated by one thread per URL."""

    def __init__(self, urls: Sequence[str], period: float, timeout: float) -> None:
        self.urls = list(urls)
        self.period = period
        self.timeout = timeout
        self._states: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def document(self) -> dict[str, object]:
        with self._lock:
            states = dict(self._states)
        return status_document(self.urls, states)

    def start(self) -> None:
        for url in dict.fromkeys(self.urls):  # a URL given twice is probed once
            threading.Thread(target=self._loop, args=(url,), name=f"probe {url}", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self, url: str) -> None:
        """Probe at once, then every period (measured start to start)."""
        while not self._stop.is_set():
            started = time.monotonic()
            result = reachable(url, self.timeout)
            with self._lock:
                changed = self._states.get(url) != result
                self._states[url] = result
            if changed:
                LOG.info("%s %s", url, "reachable" if result else "unreachable")
            self._stop.wait(max(0.0, started + self.period - time.monotonic()))


def make_handler(document: Callable[[], dict[str, object]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "star-probe"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?", 1)[0] != "/status":
                self.send_error(404)
                return
            send_json(self, document())

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's signature
            pass  # polled every few seconds: no access log

    return Handler


def send_json(handler: BaseHTTPRequestHandler, body: object, status: int = 200) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("Access-Control-Allow-Origin", "*")
    handler.end_headers()
    handler.wfile.write(data)


def serve(prober: Prober, address: str, port: int) -> ThreadingHTTPServer:
    """The status server, bound (port 0: any free one) and not yet serving."""
    server = ThreadingHTTPServer((address, port), make_handler(prober.document))
    server.daemon_threads = True
    return server


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="probe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--http-port", type=int, default=DEFAULT_PORT, help="port of GET /status (default: 9000)")
    parser.add_argument("--urls", default="", help="comma-separated URLs to probe")
    parser.add_argument("--http-probe-seconds", type=float, default=DEFAULT_PERIOD, help="seconds between probes (default: 5)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds a probe waits (default: 2)")
    parser.add_argument("--address", default="0.0.0.0", help="address to listen on (default: 0.0.0.0)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s star-probe %(levelname)s %(message)s")
    prober = Prober(parse_urls(args.urls), args.http_probe_seconds, args.timeout)
    try:
        server = serve(prober, args.address, args.http_port)
    except OSError as exc:
        LOG.error("cannot listen on %s:%d: %s", args.address, args.http_port, exc.strerror or exc)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    prober.start()
    LOG.info("serving /status on %s:%d, probing %d URLs every %gs", args.address, server.server_address[1],
             len(prober.urls), prober.period)  # fmt: skip
    with server:
        server.serve_forever(poll_interval=0.2)
    prober.stop()
    LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
