"""The lab API server's certificates: a CA of its own, a server certificate, an admin client certificate.

The API server speaks HTTPS on 127.0.0.1 and knows clients by their certificate, as
kubeadm's clusters do: the subject's CN is the user name and each O a group, and the
group ``system:masters`` is cluster-admin (kubeadm's admin.conf carries exactly such a
certificate). Each lab makes its own CA on its first ``up`` and keeps the bundle in its
state folder, so a kubeconfig written once keeps working while the lab lives.

- Keys are EC P-256, not RSA-2048: an RSA-2048 key costs about 31 ms to generate (median of
  15 on the development machine), a P-256 key well under 1 ms, and ``up`` would otherwise pay
  for three keys every time it makes a bundle. Signatures are ECDSA with SHA-256.
- The server certificate names 127.0.0.1 and ``localhost`` in its subjectAltName: Go
  clients (kubectl, client-go) ignore the CN for host names since Go 1.15 and reject a
  certificate that has none.
- Everything is valid from an hour ago (clock skew) for ten years, the leaves too: a lab
  lives minutes or days, and a certificate expiring under a long-lived lab helps no one.
- The files themselves (names, modes, reading and writing) are ``bundle``'s, which needs no
  cryptography: only the API server, which makes the bundle, imports this module.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from testbed.apiserver.bundle import (  # noqa: F401 - the bundle's files, re-exported for callers of certs
    ADMIN_CERT, ADMIN_KEY, CA_CERT, FILES, SERVER_CERT, SERVER_KEY, Bundle, read_bundle, server_ssl_context,
    write_bundle,
)

ADMIN_USER = "testbed-admin"
ADMIN_GROUPS = ("system:masters",)  # cluster-admin, as in kubeadm's admin.conf
SERVER_IP = "127.0.0.1"
SERVER_DNS = "localhost"

VALID_FROM = timedelta(hours=1)  # before now: tolerates a client clock a little behind
VALIDITY = timedelta(days=3650)  # ten years, leaves too: labs are short-lived


def ca_name(lab: str) -> str:
    return f"testbed-{lab}-ca"


def server_name(lab: str) -> str:
    return f"testbed-{lab}-apiserver"


def admin_subject() -> tuple[str, tuple[str, ...]]:
    """The admin certificate's user and groups, as the API server reads them (CN, Os)."""
    return ADMIN_USER, ADMIN_GROUPS


def subject_of(cert_der: bytes) -> tuple[str, tuple[str, ...]]:
    """(CN, Os) of a DER certificate: Kubernetes' user name and groups ("" when it has no CN)."""
    subject = x509.load_der_x509_certificate(cert_der).subject
    names = [str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    groups = tuple(str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return (names[0] if names else ""), groups


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, digital_signature: bool, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,  # RSA key transport; meaningless for an ECDSA key
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, now: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - VALID_FROM)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _make_ca(lab: str, now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(ca_name(lab))
    cert = (
        _builder(name, name, key, now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(digital_signature=True, cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    now: datetime,
    names: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        _builder(subject, ca_cert.subject, key, now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True, cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_bundle(lab: str, now: datetime | None = None) -> Bundle:
    """A new CA for the lab, a server certificate for 127.0.0.1/localhost and an admin client certificate."""
    now = now or datetime.now(timezone.utc)
    ca = _make_ca(lab, now)
    server_names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(SERVER_IP)),
        x509.DNSName(SERVER_DNS),
    ]
    server = _make_leaf(_name(server_name(lab)), ExtendedKeyUsageOID.SERVER_AUTH, ca, now, server_names)
    admin = _make_leaf(_name(ADMIN_USER, ADMIN_GROUPS), ExtendedKeyUsageOID.CLIENT_AUTH, ca, now)
    return Bundle(
        ca_cert=_cert_pem(ca[0]),
        server_cert=_cert_pem(server[0]),
        server_key=_key_pem(server[1]),
        admin_cert=_cert_pem(admin[0]),
        admin_key=_key_pem(admin[1]),
    )


def ensure_bundle(folder: Path, lab: str) -> Bundle:
    """The lab's bundle: the one in folder, or a new one written there."""
    existing = read_bundle(folder)
    if existing is not None:
        return existing
    bundle = make_bundle(lab)
    write_bundle(folder, bundle)
    return bundle


