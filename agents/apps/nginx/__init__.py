"""The nginx image: real nginx, with every file of its own under the pod's folder.

Debian's nginx, started as ``nginx -p FOLDER -c FOLDER/nginx.conf -e stderr``, would
otherwise use /etc/nginx, /var/log/nginx, /var/lib/nginx and /run/nginx.pid: files the
machine's own nginx owns, and that two pods would share. So the config names every
path nginx writes (pid, lock, logs, the five temp folders), and ``-e stderr`` covers the
moment before the config is read. The page is upstream's "Welcome to nginx!" as the
lab shows it (index.html beside this file), not Debian's variant of it.
"""

from __future__ import annotations

from pathlib import Path

NGINX = "/usr/sbin/nginx"  # Debian's package puts it there
PAGE = Path(__file__).with_name("index.html")
CONFIG = "nginx.conf"
PORT = 80

# Every temp path nginx's modules compile in (Debian's build has all five); each one left
# out would fall back to /var/lib/nginx.
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

# Enough types for what a lab serves; /etc/nginx/mime.types stays the machine's.
MIME_TYPES = (
    ("text/html", "html htm"),
    ("text/css", "css"),
    ("text/plain", "txt"),
    ("application/javascript", "js"),
    ("application/json", "json"),
    ("image/png", "png"),
    ("image/svg+xml", "svg"),
)


def page() -> str:
    return PAGE.read_text()


def config_path(folder: Path) -> Path:
    return folder / CONFIG


def argv(folder: Path, *extra: str) -> tuple[str, ...]:
    """nginx in the foreground on the pod's own prefix and config; ``extra`` are the
    user's own nginx options (``-g ...``)."""
    return (NGINX, "-p", f"{folder}/", "-c", str(config_path(folder)), "-e", "stderr", *extra)


def folders(folder: Path) -> tuple[Path, ...]:
    """What must exist before nginx starts (it makes the temp folders' last level itself)."""
    return (folder / "html", folder / "logs", folder / "tmp")


def render_config(folder: Path, port: int = PORT) -> str:
    """nginx.conf for one pod: serves FOLDER/html on ``port``, writes only under FOLDER.

    Workers run as root, as every other process of a lab does: a lab's state folder
    may not be readable by others (root's umask decides), and nothing here is exposed
    beyond the lab's namespaces. Errors go to the folder's error.log and to stderr
    (the pod's log); requests to access.log and to stdout, as the upstream image logs them.
    """
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not in 1..65535")

    def q(path: Path) -> str:
        return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'

    logs, tmp = folder / "logs", folder / "tmp"
    types = "\n".join(f"        {mime} {exts};" for mime, exts in MIME_TYPES)
    temps = "\n".join(f"    {name}_temp_path {q(tmp / name)};" for name in TEMP_PATHS)
    return f"""\
# nginx of one pod, rendered by testbed: every path is under {folder}.
daemon off;
user root;
worker_processes 1;
pid {q(folder / "nginx.pid")};
lock_file {q(folder / "nginx.lock")};
error_log {q(logs / "error.log")} notice;
error_log stderr notice;

events {{
    worker_connections 1024;
}}

http {{
    types {{
{types}
    }}
    default_type application/octet-stream;
    access_log {q(logs / "access.log")};
    access_log /dev/stdout;
{temps}
    sendfile on;
    keepalive_timeout 65;

    server {{
        listen {port};
        server_name localhost;
        root {q(folder / "html")};
        index index.html;
    }}
}}
"""
