"""`hai-edge kiosk` command line, bundle choice, and HTTPS (local CA, reuse, phone page)."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("cryptography")

from hai_edge.cli.kiosk import resolve_bundles
from hai_edge.apps.kiosk.server import bind_socket
from hai_edge.apps.kiosk.store import Store
from hai_edge.cli import main
from hai_edge.errors import HaiEdgeError

from ._kiosk_fixtures import make_client

ROOT = Path(__file__).resolve().parents[1]


def _adduser(monkeypatch, capsys, data: Path, *args: str, secret: str = "pin-24680") -> tuple:
    monkeypatch.setattr(sys, "stdin", io.StringIO(secret + "\n"))
    rc = main(["kiosk", "adduser", *args, "--data-dir", str(data), "--password-stdin"])
    return rc, capsys.readouterr().err


def test_adduser_first_is_admin_then_operators_and_errors_are_one_line(tmp_path, monkeypatch,
                                                                        capsys) -> None:
    data = tmp_path / "d"
    assert _adduser(monkeypatch, capsys, data, "chief")[0] == 0
    assert _adduser(monkeypatch, capsys, data, "nurse")[0] == 0
    rc, err = _adduser(monkeypatch, capsys, data, "nurse")
    assert rc == 2 and err.strip() == "hai-edge: error: user 'nurse' already exists"
    rc, err = _adduser(monkeypatch, capsys, data, "short", secret="123")
    assert rc == 2 and "at least 6" in err and err.count("\n") == 1
    rc, err = _adduser(monkeypatch, capsys, data, "bad name!")
    assert rc == 2 and "user names" in err
    assert _adduser(monkeypatch, capsys, data, "nurse", "--reset", secret="new-pin-1")[0] == 0
    s = Store(data)
    assert [(u.username, u.role) for u in s.users()] == [("chief", "admin"), ("nurse",
                                                                             "operator")]
    s.close()


def test_bundle_resolution(tmp_path, monkeypatch) -> None:
    pytest.importorskip("onnx")
    from ._onnx_models import make_onnx_bundle

    both = tmp_path / "both"
    make_onnx_bundle(both / "a", "audio")
    make_onnx_bundle(both / "i", "image")
    assert resolve_bundles(str(both), None, None) == ((both / "a").resolve(),
                                                      (both / "i").resolve())
    assert resolve_bundles(str(both / "a"), None, None) == ((both / "a").resolve(), None)
    make_onnx_bundle(both / "a2", "audio")
    with pytest.raises(HaiEdgeError, match="several audio bundles.*--cough-bundle"):
        resolve_bundles(str(both), None, None)
    assert resolve_bundles(str(both), str(both / "a2"), None)[0] == (both / "a2").resolve()
    (tmp_path / "empty").mkdir()
    with pytest.raises(HaiEdgeError, match="no bundle"):
        resolve_bundles(str(tmp_path / "empty"), None, None)
    import hai_edge.bundle

    monkeypatch.setattr(hai_edge.bundle, "builtin_bundles", lambda: {})
    with pytest.raises(HaiEdgeError, match="built-in cough-demo and derm-demo"):
        resolve_bundles(None, None, None)


def test_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(HaiEdgeError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind_socket("127.0.0.1", port)


def test_serve_refuses_bad_arguments(capsys) -> None:
    assert main(["kiosk", "--port", "70000"]) == 2
    assert "--port 70000" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- TLS
def test_certificates_are_created_once_reused_and_reissued_for_new_names(tmp_path) -> None:
    from cryptography import x509

    from hai_edge.apps.kiosk.tls import ensure_certificates

    f = ensure_certificates(tmp_path, "192.168.7.9")
    ca = x509.load_pem_x509_certificate(f.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(f.cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    assert {"192.168.7.9", "127.0.0.1"} <= ips
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert oct(f.ca_key.stat().st_mode & 0o777) == "0o600"
    assert oct(f.key.stat().st_mode & 0o777) == "0o600"
    before = (f.ca_cert.read_bytes(), f.cert.read_bytes())
    ensure_certificates(tmp_path, "192.168.7.9")
    assert (f.ca_cert.read_bytes(), f.cert.read_bytes()) == before  # reused
    ensure_certificates(tmp_path, "192.168.7.9", ["kiosk.clinic.lan"])
    assert f.ca_cert.read_bytes() == before[0] and f.cert.read_bytes() != before[1]
    cert2 = x509.load_pem_x509_certificate(f.cert.read_bytes())
    cert2.verify_directly_issued_by(ca)
    names = cert2.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kiosk.clinic.lan" in names.get_values_for_type(x509.DNSName)
    assert "192.168.7.9" in {str(i) for i in names.get_values_for_type(x509.IPAddress)}


def test_phone_page_shows_a_qr_code_and_the_ca(tmp_path) -> None:
    from starlette.testclient import TestClient

    from hai_edge.apps.kiosk import KioskConfig, MockAnalyzer, create_app
    from hai_edge.apps.kiosk.tls import ca_fingerprint, ensure_certificates

    with make_client(tmp_path / "plain") as c:
        assert "--host 0.0.0.0" in c.get("/phone").text
        assert c.get("/ca.pem").status_code == 404
    f = ensure_certificates(tmp_path / "d", "10.1.2.3")
    app = create_app(KioskConfig(data_dir=tmp_path / "d", https=True), MockAnalyzer(),
                     tls_ca=f.ca_cert)
    with TestClient(app, base_url="https://10.1.2.3:8080") as c:
        page = c.get("/phone").text
        assert "<svg" in page and "<script" not in page and " style=" not in page
        assert ca_fingerprint(f.ca_cert.read_bytes()) in page
        assert "https://10.1.2.3:8080/phone" in page
        r = c.get("/ca.pem")
        assert r.content == f.ca_cert.read_bytes()
        assert r.headers["content-type"] == "application/x-x509-ca-cert"


def test_lan_host_serves_https_with_the_local_ca_only(tmp_path) -> None:
    """A real server on 0.0.0.0: HTTPS by default, trusted with the kiosk's CA, no plain HTTP."""
    pytest.importorskip("onnx")
    httpx = pytest.importorskip("httpx")
    from ._kiosk_fixtures import tiny_bundles

    bundles = tiny_bundles(tmp_path / "b")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hai_edge.cli", "kiosk", "--host", "0.0.0.0", "--port", str(port),
         "--data-dir", str(tmp_path / "d"), "--bundle-dir", str(bundles), "--no-mic"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ca = tmp_path / "d" / "tls" / "ca.pem"
    import ssl

    try:
        deadline = time.time() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                r = httpx.get(f"https://127.0.0.1:{port}/api/health", timeout=2,
                              verify=ssl.create_default_context(cafile=str(ca)))
                break
            except (httpx.HTTPError, OSError):
                assert time.time() < deadline, "server did not start"
                time.sleep(0.2)
        assert r.status_code == 200 and "max-age" in r.headers["strict-transport-security"]
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"https://127.0.0.1:{port}/api/health", timeout=5)  # system trust only
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert f"serving https://127.0.0.1:{port}/" in out and "/phone" in out
