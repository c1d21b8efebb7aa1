"""A lab API server's certificate files: where they live, read and written, and the
server's TLS context. No cryptography here (making them is ``certs``'s): `up` and the
CLI read the files without importing it (about 8 MB and 30 ms a process).

Files are written 0600 in a 0700 folder, each atomically (a temp file made with
O_CREAT|O_EXCL and mode 0600 in the same folder, then ``os.replace``), so a reader sees
either the old file or the new one and a key is never readable by others, even briefly.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

CA_CERT = "ca.crt"
SERVER_CERT = "apiserver.crt"
SERVER_KEY = "apiserver.key"
ADMIN_CERT = "admin.crt"
ADMIN_KEY = "admin.key"
FILES = (CA_CERT, SERVER_CERT, SERVER_KEY, ADMIN_CERT, ADMIN_KEY)

FOLDER_MODE = 0o700
FILE_MODE = 0o600


@dataclass(frozen=True)
class Bundle:
    """A lab's CA certificate and its two leaves with their keys, all PEM (keys PKCS8, unencrypted)."""

    ca_cert: bytes
    server_cert: bytes
    server_key: bytes
    admin_cert: bytes
    admin_key: bytes


def _contents(bundle: Bundle) -> dict[str, bytes]:
    return {
        CA_CERT: bundle.ca_cert,
        SERVER_CERT: bundle.server_cert,
        SERVER_KEY: bundle.server_key,
        ADMIN_CERT: bundle.admin_cert,
        ADMIN_KEY: bundle.admin_key,
    }


def write_private(path: Path, data: bytes, owner: tuple[int, int] | None = None) -> None:
    """Replace path's file (a symlink's target) with data, mode 0600, owned by ``owner``
    when given, atomically (mkstemp opens O_CREAT|O_EXCL, mode 0600): the certificates,
    and the kubeconfigs that carry the admin's key."""
    real = Path(os.path.realpath(path))
    fd, temp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), FILE_MODE)
            if owner is not None:
                os.fchown(file.fileno(), *owner)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, real)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_bundle(folder: Path, bundle: Bundle) -> None:
    """Write the bundle's five files into folder (made 0700, and made 0700 again if it exists), each 0600."""
    folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    os.chmod(folder, FOLDER_MODE)
    for name, data in _contents(bundle).items():
        write_private(folder / name, data)


def read_bundle(folder: Path) -> Bundle | None:
    """The bundle written in folder, or None if any of its files is missing."""
    try:
        data = {name: (folder / name).read_bytes() for name in FILES}
    except FileNotFoundError:
        return None
    return Bundle(
        ca_cert=data[CA_CERT],
        server_cert=data[SERVER_CERT],
        server_key=data[SERVER_KEY],
        admin_cert=data[ADMIN_CERT],
        admin_key=data[ADMIN_KEY],
    )


def server_ssl_context(folder: Path) -> ssl.SSLContext:
    """The API server's TLS context: its certificate, the lab CA for clients, TLS 1.2 or later, HTTP/1.1.

    A client certificate is optional: a request without one must reach the HTTP layer,
    which answers 401 as the API server does, rather than fail in the handshake. A
    certificate that is sent must still verify against the lab's CA.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(folder / SERVER_CERT, folder / SERVER_KEY)
    context.load_verify_locations(cafile=folder / CA_CERT)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["http/1.1"])
    return context
