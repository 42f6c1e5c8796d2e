"""HTTPS for LAN access: a local CA and a server certificate, generated once and reused.

Phones reach the kiosk by its LAN address, and browsers give camera/microphone only to secure
origins. The kiosk therefore makes its own CA (``tls/ca.pem``, ECDSA P-256, 10 years; the key
never leaves the data dir, mode 0600) and a server certificate signed by it (``tls/server.pem``,
825 days, SANs = the bind host, localhost, 127.0.0.1, ::1, this machine's addresses and any
``--san``). The server certificate is re-issued, by the same CA, when a needed name is missing or
it expires within 30 days. Installing ``ca.pem`` on a phone (see the /phone page) makes the
kiosk's origin trusted there.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import os
import socket
from collections.abc import Iterable
from pathlib import Path

from hai_edge.errors import MissingDependencyError

__all__ = ["TlsFiles", "ca_fingerprint", "certificate_names", "ensure_certificates",
           "local_addresses", "qr_svg"]


class TlsFiles:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca_cert = folder / "ca.pem"
        self.ca_key = folder / "ca-key.pem"
        self.cert = folder / "server.pem"
        self.key = folder / "server-key.pem"


def _crypto():  # noqa: ANN202
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise MissingDependencyError("HTTPS for the kiosk", "kiosk", "cryptography") from None
    return x509, hashes, serialization, ec, NameOID, ExtendedKeyUsageOID


def local_addresses() -> list[str]:
    """This machine's IP addresses (best effort, no packets sent)."""
    found: set[str] = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]).split("%")[0])
    except OSError:
        pass
    for family, probe in ((socket.AF_INET, "10.255.255.255"), (socket.AF_INET6, "fd00::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 1))  # UDP connect picks the outgoing interface; sends nothing
                found.add(s.getsockname()[0])
        except OSError:
            pass
    return sorted(found)


def _names(host: str, extra: Iterable[str]) -> tuple[set[str], set[str]]:
    dns, ips = {"localhost"}, {"127.0.0.1", "::1"}
    wanted = [host, *extra] + (local_addresses() if host in ("0.0.0.0", "::", "") else [])
    for name in wanted:
        if not name or name in ("0.0.0.0", "::"):
            continue
        try:
            ips.add(str(ipaddress.ip_address(name.strip("[]"))))
        except ValueError:
            dns.add(name.lower())
    try:
        dns.add(socket.gethostname().lower())
    except OSError:
        pass
    return dns, ips


def _write_private(path: Path, data: bytes) -> None:
    from hai_edge.fileio import atomic_write

    with atomic_write(path) as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(data)


def ensure_certificates(data_dir: Path, host: str, extra_names: Iterable[str] = ()) -> TlsFiles:
    """Create or reuse the CA and server certificate for ``host``; returns their paths."""
    x509, hashes, serialization, ec, NameOID, EKU = _crypto()
    files = TlsFiles(Path(data_dir) / "tls")
    files.folder.mkdir(parents=True, exist_ok=True)
    os.chmod(files.folder, 0o700)
    now = _dt.datetime.now(_dt.timezone.utc)
    pem = serialization.Encoding.PEM
    key_fmt = (serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    if files.ca_cert.is_file() and files.ca_key.is_file():
        ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), None)
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hai-edge kiosk local CA"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hai-edge kiosk")])
        ca_cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - _dt.timedelta(minutes=5))
                   .not_valid_after(now + _dt.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                False, False), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                                  critical=False)
                   .sign(ca_key, hashes.SHA256()))
        _write_private(files.ca_key, ca_key.private_bytes(pem, *key_fmt))
        _write_private(files.ca_cert, ca_cert.public_bytes(pem))
        files.cert.unlink(missing_ok=True)
    dns, ips = _names(host, extra_names)
    if files.cert.is_file() and files.key.is_file():
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            have_dns = set(san.get_values_for_type(x509.DNSName))
            have_ip = {str(i) for i in san.get_values_for_type(x509.IPAddress)}
        except x509.ExtensionNotFound:
            have_dns, have_ip = set(), set()
        fresh = cert.not_valid_after_utc - now > _dt.timedelta(days=30)
        if fresh and dns <= have_dns and ips <= have_ip and cert.issuer == ca_cert.subject:
            return files
        dns |= have_dns
        ips |= have_ip
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(d) for d in sorted(dns)] + \
        [x509.IPAddress(ipaddress.ip_address(i)) for i in sorted(ips)]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                        sorted(dns)[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([EKU.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_private(files.key, key.private_bytes(pem, *key_fmt))
    _write_private(files.cert, cert.public_bytes(pem))
    return files


def certificate_names(cert_pem: Path) -> list[str]:
    """The DNS names and IP addresses a certificate is valid for."""
    x509, *_ = _crypto()
    cert = x509.load_pem_x509_certificate(Path(cert_pem).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + \
        [str(v) for v in san.get_values_for_type(x509.IPAddress)]


def ca_fingerprint(ca_pem: bytes) -> str:
    """SHA-256 fingerprint of the CA, as phones show it (AB:CD:...)."""
    x509, hashes, *_ = _crypto()
    fp = x509.load_pem_x509_certificate(ca_pem).fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in fp)


def qr_svg(text: str) -> str:
    """An inline SVG QR code (no scripts, no style attributes: passes the strict CSP)."""
    try:
        import segno
    except ImportError:
        raise MissingDependencyError("the QR code page", "kiosk", "segno") from None
    svg = segno.make(text, error="m").svg_inline(scale=6, border=2, dark="#000", light="#fff")
    return str(svg)
