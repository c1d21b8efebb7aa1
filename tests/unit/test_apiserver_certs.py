"""The lab API server's certificates: a real TLS handshake on loopback, the names, the files."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from testbed.apiserver import certs


@dataclass
class Seen:
    """What the server side of one connection saw."""

    peer_der: bytes | None = None
    peer: object = None
    alpn: str | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def _serve_once(listener: socket.socket, context: ssl.SSLContext, seen: Seen) -> None:
    try:
        sock, _ = listener.accept()
        with context.wrap_socket(sock, server_side=True) as conn:
            seen.peer_der = conn.getpeercert(binary_form=True)
            seen.peer = conn.getpeercert()
            seen.alpn = conn.selected_alpn_protocol()
            conn.sendall(b"ok")
    except BaseException as exc:  # reported by the test
        seen.error = exc
    finally:
        seen.done.set()


def _handshake(folder: Path, client: ssl.SSLContext, hostname: str = certs.SERVER_IP) -> tuple[Seen, bytes]:
    """Connect client to a server using the folder's bundle on 127.0.0.1; what it saw and what we read."""
    seen = Seen()
    with socket.create_server((certs.SERVER_IP, 0)) as listener:
        listener.settimeout(10)
        thread = threading.Thread(target=_serve_once, args=(listener, certs.server_ssl_context(folder), seen))
        thread.start()
        received = b""
        try:
            with socket.create_connection(listener.getsockname(), timeout=10) as raw:
                with client.wrap_socket(raw, server_hostname=hostname) as conn:
                    received = conn.recv(2)
        except (ssl.SSLError, ConnectionError):
            pass  # the server refused us; seen.error says why
        thread.join(10)
    assert seen.done.is_set()
    return seen, received


def _client(folder: Path, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=folder / certs.CA_CERT)
    context.set_alpn_protocols(["http/1.1"])
    if with_cert:
        context.load_cert_chain(folder / certs.ADMIN_CERT, folder / certs.ADMIN_KEY)
    return context


@pytest.fixture(scope="module")
def bundle() -> certs.Bundle:
    return certs.make_bundle("lab1")


@pytest.fixture
def folder(tmp_path: Path, bundle: certs.Bundle) -> Path:
    target = tmp_path / "apiserver"
    certs.write_bundle(target, bundle)
    return target


@pytest.mark.parametrize("hostname", [certs.SERVER_IP, certs.SERVER_DNS])
def test_admin_client_and_server_verify_each_other(folder: Path, hostname: str) -> None:
    seen, received = _handshake(folder, _client(folder, with_cert=True), hostname)
    assert seen.error is None, seen.error
    assert received == b"ok"
    assert seen.alpn == "http/1.1"
    assert seen.peer_der is not None
    assert certs.subject_of(seen.peer_der) == ("testbed-admin", ("system:masters",))
    assert certs.subject_of(seen.peer_der) == certs.admin_subject()


def test_a_client_without_a_certificate_completes_the_handshake(folder: Path) -> None:
    seen, received = _handshake(folder, _client(folder, with_cert=False))
    assert seen.error is None, seen.error
    assert received == b"ok"
    assert not seen.peer
    assert seen.peer_der is None


def test_a_certificate_of_another_lab_is_refused(folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    certs.write_bundle(other, certs.make_bundle("lab2"))
    client = ssl.create_default_context(cafile=folder / certs.CA_CERT)
    client.load_cert_chain(other / certs.ADMIN_CERT, other / certs.ADMIN_KEY)
    seen, received = _handshake(folder, client)
    assert isinstance(seen.error, ssl.SSLError), seen.error
    assert received == b""


def test_the_server_certificate_names_loopback_and_localhost(bundle: certs.Bundle) -> None:
    cert = x509.load_pem_x509_certificate(bundle.server_cert)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert certs.subject_of(cert.public_bytes(serialization.Encoding.DER)) == ("testbed-lab1-apiserver", ())


def test_the_ca_signs_both_leaves_and_only_them(bundle: certs.Bundle) -> None:
    ca = x509.load_pem_x509_certificate(bundle.ca_cert)
    assert ca.subject.rfc4514_string() == "CN=testbed-lab1-ca"
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    for pem in (bundle.server_cert, bundle.admin_cert):
        leaf = x509.load_pem_x509_certificate(pem)
        leaf.verify_directly_issued_by(ca)
        aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == ca_ski
    admin = x509.load_pem_x509_certificate(bundle.admin_cert)
    assert list(admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH
    ]


def test_files_are_0600_in_a_0700_folder(tmp_path: Path, bundle: certs.Bundle) -> None:
    folder = tmp_path / "apiserver"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)  # an existing folder is tightened too
    certs.write_bundle(folder, bundle)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == sorted(certs.FILES)  # no temp files left behind
    for name in certs.FILES:
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name
    assert (folder / certs.SERVER_KEY).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS8, unencrypted


def test_a_partial_folder_reads_as_none(folder: Path, tmp_path: Path) -> None:
    assert certs.read_bundle(tmp_path / "missing") is None
    (folder / certs.ADMIN_KEY).unlink()
    assert certs.read_bundle(folder) is None


def test_ensure_bundle_makes_once_then_reads(tmp_path: Path) -> None:
    folder = tmp_path / "state" / "apiserver"
    first = certs.ensure_bundle(folder, "lab1")
    second = certs.ensure_bundle(folder, "lab1")
    assert second == first
    assert certs.read_bundle(folder) == first
