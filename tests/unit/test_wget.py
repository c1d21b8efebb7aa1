"""The busybox image's wget: busybox's options, lines and exit codes, against local servers."""

from __future__ import annotations

import io
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agents.apps import nginx, wget
from testbed import images

PAGE = nginx.page().encode()
LAUNCHER = images.BUSYBOX_BIN / "wget"


class Handler(BaseHTTPRequestHandler):
    """/ is the nginx page, /moved redirects to it, the rest is 404 as nginx words it."""

    protocol_version = "HTTP/1.1"
    requests: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        Handler.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        if self.path == "/moved":
            self._send(301, "Moved Permanently", b"", {"Location": "/"})
        elif self.path in ("/", "/index.html"):
            self._send(200, "OK", PAGE, {"Content-Type": "text/html"})
        else:
            self._send(404, "Not Found", b"<html>404</html>\n", {})

    def _send(self, status: int, reason: str, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status, reason)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    """http://127.0.0.1:PORT of a local server in this process."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    Handler.requests = []
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def raw_server(answer: Callable[[socket.socket], None]) -> Iterator[int]:
    """A one-connection server that reads the request and runs ``answer`` on the socket."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(timeout=5)


def run(*argv: str) -> tuple[int, bytes, str]:
    out, err = io.BytesIO(), io.StringIO()
    code = wget.main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def launch(*argv: str) -> tuple[int, bytes, bytes]:
    """busybox-bin/wget in a subprocess, as a shell in a pod finds it on PATH."""
    proc = subprocess.run([str(LAUNCHER), *argv], capture_output=True, timeout=10)
    return proc.returncode, proc.stdout, proc.stderr


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- command line ------------------------------------------------------------


def test_the_labs_command_lines() -> None:
    first = wget.parse_args(["-q", "nginx", "-O", "-"])
    assert (first.urls, first.quiet, first.output, first.timeout) == (("nginx",), True, "-", 900)
    second = wget.parse_args(["-q", "--timeout=5", "nginx", "-O", "-"])
    assert (second.urls, second.quiet, second.output, second.timeout) == (("nginx",), True, "-", 5)


@pytest.mark.parametrize(
    "argv",
    [["-T", "5", "x"], ["-T5", "x"], ["--timeout", "5", "x"], ["--time=5", "x"], ["x", "-T", "5"]],
)
def test_timeout_spellings(argv: list[str]) -> None:
    assert wget.parse_args(argv).timeout == 5


def test_other_options() -> None:
    options = wget.parse_args(["-S", "-O-", "-U", "agent/1", "--header", "X-A: 1", "--spider", "-nv", "-c", "u"])
    assert options.server_response and options.spider and options.resume
    assert (options.output, options.user_agent, options.headers) == ("-", "agent/1", ("X-A: 1",))
    assert wget.parse_args(["-P", "/tmp", "u"]).directory == "/tmp"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus", "x"], "unrecognized option '--bogus'"),
        (["-z", "x"], "invalid option -- 'z'"),
        (["x", "-O"], "option requires an argument -- 'O'"),
        (["--no", "x"], "option '--no' is ambiguous"),
        ([], ""),
    ],
)
def test_bad_command_lines_print_usage(argv: list[str], message: str) -> None:
    code, out, err = run(*argv)
    assert code == 1 and out == b""
    expected = (f"wget: {message}\n" if message else "") + "BusyBox v1.35.0 (testbed) multi-call binary.\n"
    assert err.startswith(expected)
    assert "\nUsage: wget [-cqS]" in err


def test_bad_timeout_number() -> None:
    assert run("-T", "five", "x") == (1, b"", "wget: invalid number 'five'\n")


@pytest.mark.parametrize(
    ("url", "host", "port", "path"),
    [
        ("nginx", "nginx", 80, ""),
        ("nginx/", "nginx", 80, ""),
        ("http://nginx.policy-demo:8080/a/b.html", "nginx.policy-demo:8080", 8080, "a/b.html"),
        ("10.96.0.5?x=1#top", "10.96.0.5", 80, "?x=1"),
        ("http://user:pw@web/x#frag", "web", 80, "x"),
        ("http://[fd00::1]:81/", "[fd00::1]:81", 81, ""),
    ],
)
def test_parse_url(url: str, host: str, port: int, path: str) -> None:
    assert wget.parse_url(url) == wget.Url(host, port, path)


def test_parse_url_errors() -> None:
    with pytest.raises(wget.WgetError, match="not an http or ftp url: https://x/"):
        wget.parse_url("https://x/")
    with pytest.raises(wget.WgetError, match="bad port spec 'x:http'"):
        wget.parse_url("x:http")


def test_hostname_drops_port_and_brackets() -> None:
    assert wget.parse_url("web:81").hostname == "web"
    assert wget.parse_url("http://[fd00::1]:81/").hostname == "fd00::1"


def test_output_name() -> None:
    plain = wget.parse_args(["u"])
    assert wget.output_name(wget.parse_url("nginx"), plain) == "index.html"
    assert wget.output_name(wget.parse_url("nginx/a/b.txt?x=1"), plain) == "b.txt"
    assert wget.output_name(wget.parse_url("nginx/a/"), wget.parse_args(["-P", "d", "u"])) == "d/index.html"
    assert wget.output_name(wget.parse_url("nginx/a"), wget.parse_args(["-O", "-", "u"])) == "-"


def test_request_is_busyboxs() -> None:
    request = wget.request_bytes(wget.parse_url("nginx/x"), wget.parse_args(["u"]), None)
    assert request == b"GET /x HTTP/1.1\r\nHost: nginx\r\nUser-Agent: Wget\r\nConnection: close\r\n\r\n"
    posted = wget.request_bytes(wget.parse_url("n"), wget.parse_args(["--header", "Host: h", "u"]), b"a=1")
    assert posted.startswith(b"POST / HTTP/1.1\r\nUser-Agent: Wget\r\nConnection: close\r\nHost: h\r\n")
    assert posted.endswith(b"Content-Length: 3\r\n\r\na=1")


def test_size_text() -> None:
    assert wget.size_text(612) == "  612"
    assert wget.size_text(99999) == "99999"
    assert wget.size_text(200 * 1024) == " 200k"
    assert wget.size_text(3 * 1024 * 1024) == " 3.0M"


# --- against a local server --------------------------------------------------


def test_quiet_prints_the_page_and_nothing_else(server: str) -> None:
    assert run("-q", server, "-O", "-") == (0, PAGE, "")
    assert Handler.requests[0]["user-agent"] == "Wget"
    assert Handler.requests[0]["connection"] == "close"


def test_not_quiet_says_what_it_does_on_stderr(server: str) -> None:
    code, out, err = run(server + "/", "-O", "-")
    assert (code, out) == (0, PAGE)
    lines = err.splitlines()
    assert lines[0] == f"Connecting to {server[7:]} ({server[7:]})"
    assert lines[1] == "writing to stdout"
    assert lines[2].startswith("-                    100% |") and lines[2].endswith("|   612  0:00:00 ETA")
    assert lines[3] == "written to stdout"


def test_http_error_line_and_exit_code(server: str) -> None:
    error = "wget: server returned error: HTTP/1.1 404 Not Found\n"
    assert run("-q", server + "/nothing", "-O", "-") == (1, b"", error)


def test_redirect_is_followed(server: str) -> None:
    assert run("-q", server + "/moved", "-O", "-") == (0, PAGE, "")
    assert [r["path"] for r in Handler.requests] == ["/moved", "/"]


def test_server_response_shows_headers(server: str) -> None:
    code, _, err = run("-q", "-S", server, "-O", "-")
    assert code == 0
    assert err.startswith("  HTTP/1.1 200 OK\n")
    assert "  Content-Length: 612\n" in err
    assert err.endswith("  \n")


def test_spider_writes_nothing(server: str) -> None:
    assert run("-q", "--spider", server) == (0, b"", "")


def test_saves_to_a_file_and_never_overwrites_without_o(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(server)
    assert code == 0
    assert (tmp_path / "index.html").read_bytes() == PAGE
    assert "saving to 'index.html'\n" in err and err.endswith("'index.html' saved\n")
    assert run("-q", server) == (1, b"", "wget: can't open 'index.html': File exists\n")
    assert run("-q", server, "-O", "index.html") == (0, b"", "")
    assert run("-q", server, "-O", "page.html")[0] == 0
    assert (tmp_path / "page.html").read_bytes() == PAGE


def test_connection_refused_line() -> None:
    port = free_port()
    assert run("-q", f"127.0.0.1:{port}", "-O", "-") == (
        1,
        b"",
        "wget: can't connect to remote host (127.0.0.1): Connection refused\n",
    )


def test_bad_address_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_name(*_args: object, **_kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)
    assert run("-q", "nginx", "-O", "-") == (1, b"", "wget: bad address 'nginx'\n")


def test_timeout_against_a_server_that_never_answers() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # the kernel completes the handshake; nobody ever answers
    with listener:
        started = time.monotonic()
        # A subprocess with a deadline: a wget that ignored --timeout fails here, not hangs.
        result = launch("-q", "--timeout=1", f"127.0.0.1:{listener.getsockname()[1]}", "-O", "-")
        elapsed = time.monotonic() - started
    assert result == (1, b"", b"wget: download timed out\n")
    assert 0.9 <= elapsed < 4, elapsed


def test_timeout_when_the_body_stalls() -> None:
    def half(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        conn.recv(1)  # until wget gives up and closes

    with raw_server(half) as port:
        assert launch("-q", "-T", "1", f"127.0.0.1:{port}", "-O", "-") == (1, b"partial", b"wget: download timed out\n")


def test_chunked_body() -> None:
    def chunked(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        conn.sendall(b"5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\n\r\n")

    with raw_server(chunked) as port:
        assert run("-q", f"127.0.0.1:{port}", "-O", "-") == (0, b"hello, world", "")


def test_body_until_close_and_premature_close() -> None:
    def until_close(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\nall of it")

    with raw_server(until_close) as port:
        assert run("-q", f"127.0.0.1:{port}", "-O", "-") == (0, b"all of it", "")

    def short(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")

    with raw_server(short) as port:
        assert run("-q", f"127.0.0.1:{port}", "-O", "-") == (1, b"abc", "wget: connection closed prematurely\n")


def test_launcher_runs_it_with_exit_codes(server: str) -> None:
    assert launch("-q", server, "-O", "-") == (0, PAGE, b"")
    assert launch("-q", server + "/x", "-O", "-") == (1, b"", b"wget: server returned error: HTTP/1.1 404 Not Found\n")
    code, out, _ = launch("--help")
    assert code == 0 and b"-T SEC" in out
