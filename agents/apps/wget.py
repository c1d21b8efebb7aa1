"""busybox's wget, as the lab's busybox image needs it: `wget -q --timeout=5 nginx -O -`.

Debian's busybox is built without wget's --timeout (and its -T crashes), so the busybox
image puts this one first on PATH. It follows busybox 1.35's wget: the same options
(-c -q -S -O -o -P -Y -U -T, --header, --post-data, --post-file, --spider), the same
lines on stderr, exit 1 on any failure. The timeout, as busybox's: connecting and each
header read must finish within it, and the body may stall for at most that long; when
it runs out, `wget: download timed out`. Names go through the system resolver, so the
pod's resolv.conf (search list, ndots) applies, and the first IPv4 address is used.

Standard library only: the launcher in busybox-bin/ runs this file directly, so it needs
neither the venv nor the project on the path.
"""

from __future__ import annotations

import getopt
import os
import shutil
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, NoReturn, TextIO

PROG = "wget"
DEFAULT_TIMEOUT = 900  # busybox's
REDIRECT_LIMIT = 16
USAGE = """\
BusyBox v1.35.0 (testbed) multi-call binary.

Usage: wget [-cqS] [--spider] [-O FILE] [-o LOGFILE] [--header STR]
	[--post-data STR | --post-file FILE] [-Y on/off]
	[--no-check-certificate] [-P DIR] [-U AGENT] [-T SEC] URL...

Retrieve files via HTTP or FTP

	--spider	Only check URL existence: $? is 0 if exists
	--header STR	Add STR (of form 'header: value') to headers
	--post-data STR	Send STR using POST method
	--post-file FILE	Send FILE using POST method
	--no-check-certificate	Don't validate the server's certificate
	-c		Continue retrieval of aborted transfer
	-q		Quiet
	-P DIR		Save to DIR (default .)
	-S    		Show server response
	-T SEC		Network read timeout is SEC seconds
	-O FILE		Save to FILE ('-' for stdout)
	-o LOGFILE	Log messages to FILE
	-U STR		Use STR for User-Agent header
	-Y on/off	Use proxy
"""

SHORT = "cqSO:o:P:Y:U:T:t:n:"
LONG = [
    "continue", "quiet", "server-response", "output-document=", "output-file=",
    "directory-prefix=", "proxy=", "user-agent=", "timeout=", "tries=", "header=",
    "post-data=", "spider", "no-check-certificate", "post-file=",
    # accepted and ignored, as busybox does
    "passive-ftp", "no-cache", "no-verbose", "no-clobber", "no-host-directories", "no-parent",
]  # fmt: skip


class WgetError(Exception):
    """A failure busybox reports as `wget: MESSAGE` before exiting 1."""


class UsageError(Exception):
    """Bad command line: the message, then the usage text, exit 1."""


@dataclass(frozen=True)
class Options:
    urls: tuple[str, ...]
    output: str | None = None  # -O: a file, or "-" for stdout; None: named after the URL
    log: str | None = None  # -o
    directory: str | None = None  # -P
    quiet: bool = False
    server_response: bool = False
    spider: bool = False
    resume: bool = False  # -c: accepted; the download starts again from the beginning
    timeout: int = DEFAULT_TIMEOUT  # 0: none
    user_agent: str = "Wget"
    headers: tuple[str, ...] = ()
    post_data: str | None = None
    post_file: str | None = None


@dataclass(frozen=True)
class Url:
    host: str  # as written, with ":port" if any (sent as Host:)
    port: int
    path: str  # without the leading "/"

    @property
    def hostname(self) -> str:
        """The name to resolve: host without its port or IPv6 brackets."""
        host = self.host
        if host.startswith("["):
            return host[1 : host.find("]")] if "]" in host else host[1:]
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@dataclass
class Response:
    status_line: str
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


def parse_args(argv: Sequence[str]) -> Options:
    """busybox's command line: options anywhere, long options may be abbreviated."""
    try:
        pairs, urls = getopt.gnu_getopt([a for a in argv if a != "-n"], SHORT, LONG)
    except getopt.GetoptError as exc:
        raise UsageError(_getopt_message(exc)) from None
    values: dict[str, object] = {}
    headers: list[str] = []
    for flag, value in pairs:
        if flag in ("-c", "--continue"):
            values["resume"] = True
        elif flag in ("-q", "--quiet"):
            values["quiet"] = True
        elif flag in ("-S", "--server-response"):
            values["server_response"] = True
        elif flag in ("-O", "--output-document"):
            values["output"] = value
        elif flag in ("-o", "--output-file"):
            values["log"] = value
        elif flag in ("-P", "--directory-prefix"):
            values["directory"] = value
        elif flag in ("-U", "--user-agent"):
            values["user_agent"] = value
        elif flag in ("-T", "--timeout"):
            values["timeout"] = _seconds(value)
        elif flag == "--header":
            headers.append(value)
        elif flag == "--post-data":
            values["post_data"] = value
        elif flag == "--post-file":
            values["post_file"] = value
        elif flag == "--spider":
            values["spider"] = True
        # -Y, -t, -n..., --no-check-certificate and the ignored ones: accepted, no effect
    if not urls:
        raise UsageError("")
    if "post_data" in values and "post_file" in values:
        raise UsageError("")
    return Options(urls=tuple(urls), headers=tuple(headers), **values)  # type: ignore[arg-type]


def _getopt_message(exc: getopt.GetoptError) -> str:
    """getopt's messages, worded as busybox's (glibc getopt_long) are."""
    opt = exc.opt
    if "requires argument" in exc.msg:
        return f"option requires an argument -- '{opt}'" if len(opt) == 1 else f"option '--{opt}' requires an argument"
    if len(opt) == 1:
        return f"invalid option -- '{opt}'"
    if "not a unique prefix" in exc.msg:
        return f"option '--{opt}' is ambiguous"
    if "must not have an argument" in exc.msg:
        return f"option '--{opt}' doesn't allow an argument"
    return f"unrecognized option '--{opt}'"


def _seconds(text: str) -> int:
    if not text.isdigit():
        raise WgetError(f"invalid number '{text}'")
    return int(text)


def parse_url(text: str) -> Url:
    """`nginx`, `nginx:8080/x`, `http://10.96.0.5/` -> host, port, path (busybox's rules)."""
    rest = text
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme.lower() != "http":
            raise WgetError(f"not an http or ftp url: {text}")
    cuts = [i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0]
    cut = min(cuts) if cuts else -1
    if cut < 0:
        host, path = rest, ""
    else:
        host, path = rest[:cut], rest[cut + 1 :] if rest[cut] == "/" else rest[cut:]
    host = host.rsplit("@", 1)[-1]  # user:password@ is dropped (no authentication here)
    port = 80
    if host.startswith("["):
        end = host.find("]")
        if end >= 0 and host[end + 1 : end + 2] == ":":
            port = _port(host[end + 2 :], text)
    elif host.count(":") == 1:
        port = _port(host.split(":", 1)[1], text)
    path = path.split("#", 1)[0]
    return Url(host=host, port=port, path=path)


def _port(text: str, url: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise WgetError(f"bad port spec '{url}'")
    return int(text)


def output_name(url: Url, options: Options) -> str:
    """-O's file, or the URL's last path part (index.html for none), under -P's folder."""
    if options.output is not None:
        return options.output
    last = url.path.split("?", 1)[0].rsplit("/", 1)[-1]
    name = last or "index.html"
    return os.path.join(options.directory, name) if options.directory else name


def request_bytes(url: Url, options: Options, body: bytes | None) -> bytes:
    """The request busybox sends: HTTP/1.1, Connection: close, its User-Agent."""
    method = "POST" if body is not None else "GET"
    user = {h.split(":", 1)[0].strip().lower() for h in options.headers}
    lines = [f"{method} /{url.path} HTTP/1.1"]
    if "host" not in user:
        lines.append(f"Host: {url.host}")
    if "user-agent" not in user:
        lines.append(f"User-Agent: {options.user_agent}")
    lines.append("Connection: close")
    lines.extend(options.headers)
    if body is not None:
        if "content-type" not in user:
            lines.append("Content-Type: application/x-www-form-urlencoded")
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def size_text(n: int) -> str:
    """busybox's 5-column size: bytes up to 99999, then k, M, G... (1024-based)."""
    if n < 100000:
        return f"{n:5d}"
    value, unit = float(n), ""
    for unit in "kMGTPE":
        value /= 1024
        if value < 1000:
            break
    text = f"{value:.1f}" if value < 10 else f"{int(value)}"
    return f"{text:>4}{unit}"


def progress_line(name: str, size: int, width: int, tty: bool) -> str:
    """The bar busybox leaves behind when a download is done (drawn once, at 100%)."""
    bar_width = min(width - 48, 999)
    bar = f"|{'*' * bar_width}| " if bar_width > 2 else ""
    return f"{'' if not tty else chr(13)}{name:<20.20} 100% {bar}{size_text(size)}  0:00:00 ETA\n"


def resolve(hostname: str, port: int) -> tuple[str, int]:
    """The first address of the name (IPv4 first), through the system resolver."""
    try:
        infos = socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise WgetError(f"bad address '{hostname}'") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    address = infos[0][4]
    return str(address[0]), int(address[1])


def dotted(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connect(address: tuple[str, int], timeout: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout or None)
    try:
        sock.connect(address)
    except TimeoutError:
        sock.close()
        raise WgetError("download timed out") from None
    except OSError as exc:
        sock.close()
        where = f" ({address[0]})" if family == socket.AF_INET else ""
        raise WgetError(f"can't connect to remote host{where}: {os.strerror(exc.errno or 0)}") from None
    return sock


def read_line(stream: BinaryIO) -> str:
    try:
        raw = stream.readline(8192)
    except TimeoutError:
        raise WgetError("download timed out") from None
    except OSError as exc:
        raise WgetError(f"error getting response: {os.strerror(exc.errno or 0)}") from None
    if not raw:
        raise WgetError("error getting response")
    return _sanitize(raw.decode("latin-1"))


def _sanitize(line: str) -> str:
    """Up to the first control character (tabs become spaces), as busybox trims lines."""
    out = []
    for ch in line.replace("\t", " "):
        if ch < " ":
            break
        out.append(ch)
    return "".join(out)


def read_response(stream: BinaryIO, show: TextIO | None) -> Response:
    """Status line and headers; 1xx answers are skipped. ``show``: -S's echo."""
    while True:
        line = read_line(stream)
        if show is not None:
            show.write(f"  {line}\n")
        parts = line.split(None, 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1][:3].isdigit() else 0
        response = Response(status_line=line, status=status)
        while True:
            header = read_line(stream)
            if show is not None:
                show.write(f"  {header}\n")
            if not header:
                break
            name, sep, value = header.partition(":")
            if not sep or not name or not all(c.isalnum() or c in "-._" for c in name):
                raise WgetError(f"bad header line: {header}")
            response.headers.append((name, value.strip()))
        if status not in (0, 100):
            return response


def is_success(status: int) -> bool:
    return status in (200, 201, 202, 203, 204)


def is_redirect(status: int) -> bool:
    return status in (300, 301, 302, 303, 307, 308)


def copy_body(stream: BinaryIO, response: Response, out: BinaryIO) -> int:
    """The body to ``out`` (by Content-Length, chunks, or until close); bytes written."""
    encoding = (response.header("transfer-encoding") or "").lower()
    if encoding and encoding != "chunked":
        raise WgetError(f"transfer encoding '{response.header('transfer-encoding')}' is not supported")
    length_text = response.header("content-length")
    total = 0
    try:
        if encoding == "chunked":
            while True:
                size_line = read_line(stream).split(";", 1)[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise WgetError(f"bad chunk length '{size_line}'") from None
                if size == 0:
                    break
                total += _copy(stream, out, size)
                read_line(stream)  # the CRLF after each chunk
        elif length_text is not None:
            if not length_text.isdigit():
                raise WgetError(f"content-length {length_text} is garbage")
            total = _copy(stream, out, int(length_text))
        else:
            total = _copy(stream, out, None)
    except TimeoutError:
        raise WgetError("download timed out") from None
    return total


def _copy(stream: BinaryIO, out: BinaryIO, size: int | None) -> int:
    done = 0
    while size is None or done < size:
        chunk = stream.read1(65536 if size is None else min(65536, size - done))  # type: ignore[attr-defined]
        if not chunk:
            if size is not None:
                raise WgetError("connection closed prematurely")
            break
        out.write(chunk)
        done += len(chunk)
    out.flush()
    return done


def download(text: str, options: Options, stdout: BinaryIO, stderr: TextIO) -> None:
    """One URL, following redirects; raises WgetError on any failure."""
    url = parse_url(text)
    body = _post_body(options)
    say = None if options.quiet else stderr
    redirects = REDIRECT_LIMIT
    address = resolve(url.hostname, url.port)
    if say:
        say.write(f"Connecting to {url.host} ({dotted(address)})\n")
    while True:
        sock = connect(address, options.timeout)
        with sock, sock.makefile("rb") as stream:
            sock.sendall(request_bytes(url, options, body))
            response = read_response(stream, stderr if options.server_response else None)
            if is_redirect(response.status):
                location = response.header("location")
                if location is not None:
                    redirects -= 1
                    if redirects == 0:
                        raise WgetError("too many redirections")
                    if location.startswith("/"):
                        url = Url(url.host, url.port, location[1:])
                    else:
                        url = parse_url(location)
                        address = resolve(url.hostname, url.port)
                        if say:
                            say.write(f"Connecting to {url.host} ({dotted(address)})\n")
                    continue
            elif not is_success(response.status):
                raise WgetError(f"server returned error: {response.status_line}")
            if options.spider:
                return
            _save(stream, response, url, options, stdout, say)
            return


def _post_body(options: Options) -> bytes | None:
    if options.post_file is not None:
        try:
            if options.post_file == "-":
                return sys.stdin.buffer.read()
            with open(options.post_file, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise WgetError(f"can't open '{options.post_file}': {exc.strerror}") from None
    return options.post_data.encode() if options.post_data is not None else None


def _save(
    stream: BinaryIO, response: Response, url: Url, options: Options, stdout: BinaryIO, say: TextIO | None
) -> None:
    name = output_name(url, options)
    to_stdout = name == "-"
    if say:
        say.write("writing to stdout\n" if to_stdout else f"saving to '{name}'\n")
    if to_stdout:
        size = copy_body(stream, response, stdout)
    else:
        # Without -O, an existing file is never overwritten (busybox opens with O_EXCL).
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (0 if options.output is not None else os.O_EXCL)
        try:
            fd = os.open(name, flags, 0o666)
        except OSError as exc:
            raise WgetError(f"can't open '{name}': {exc.strerror}") from None
        with os.fdopen(fd, "wb") as out:
            size = copy_body(stream, response, out)
    if say:
        tty = say.isatty()
        width = shutil.get_terminal_size((80, 24)).columns if tty else 80
        say.write(progress_line("-" if to_stdout else os.path.basename(name), size, width, tty))
        say.write("written to stdout\n" if to_stdout else f"'{name}' saved\n")


def main(argv: Sequence[str] | None = None, stdout: BinaryIO | None = None, stderr: TextIO | None = None) -> int:
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr
    args = sys.argv[1:] if argv is None else list(argv)
    if args == ["--help"]:  # busybox's applets answer a lone --help with their usage, exit 0
        out.write(USAGE.encode())
        out.flush()
        return 0
    try:
        options = parse_args(args)
        if options.log is not None and options.log != "-":
            err = open(options.log, "w")  # noqa: SIM115 - lives until exit, as busybox's dup2
        for url in options.urls:
            download(url, options, out, err)
    except UsageError as exc:
        if str(exc):
            err.write(f"{PROG}: {exc}\n")
        err.write(USAGE)
        return 1
    except WgetError as exc:
        err.write(f"{PROG}: {exc}\n")
        return 1
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        err.flush()
    return 0


def _exit(code: int) -> NoReturn:
    # Output may sit in a closed pipe (`wget ... | head -1`): do not let the interpreter's
    # final flush print a second error.
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)


if __name__ == "__main__":
    _exit(main())
