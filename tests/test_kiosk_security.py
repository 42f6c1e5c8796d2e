"""Kiosk security: every refusal the issue lists, with the right status and a one-line error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")

from hai_edge.apps.kiosk import auth
from hai_edge.apps.kiosk.export import ExportPathError, resolve_export_dir

from ._kiosk_fixtures import csrf, jpeg_bytes, make_client, new_encounter, sign_in, wav_bytes

STATIC = Path(__file__).resolve().parents[1] / "hai_edge" / "apps" / "kiosk" / "static"

PROTECTED = [
    ("GET", "/api/info"), ("GET", "/api/encounters"), ("GET", "/api/encounters/abc"),
    ("GET", "/api/users"), ("GET", "/api/media/" + "0" * 64),
    ("POST", "/api/encounters"), ("POST", "/api/encounters/abc/photo"),
    ("POST", "/api/encounters/abc/cough"), ("POST", "/api/encounters/abc/cough/mic"),
    ("POST", "/api/export"), ("POST", "/api/users"), ("POST", "/api/users/x/unlock"),
    ("POST", "/api/retention/apply"), ("POST", "/api/logout"),
]


def _one_line_error(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error", "status"} and body["status"] == status
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


@pytest.fixture()
def client(tmp_path: Path):
    with make_client(tmp_path, max_photo_bytes=200_000, max_audio_bytes=200_000,
                     export_root=tmp_path / "exports") as c:
        yield c


@pytest.mark.parametrize("method,path", PROTECTED)
def test_unauthenticated_requests_get_401(client, method: str, path: str) -> None:
    r = client.request(method, path, headers=csrf(client), json={})
    assert "sign in" in _one_line_error(r, 401)


@pytest.mark.parametrize("method,path", [p for p in PROTECTED if p[0] == "POST"])
def test_posts_without_or_with_a_wrong_csrf_token_get_403(client, method: str,
                                                          path: str) -> None:
    h = sign_in(client)
    assert "missing CSRF" in _one_line_error(client.post(path, json={}), 403)
    assert "invalid CSRF" in _one_line_error(
        client.post(path, json={}, headers={"X-CSRF-Token": "forged"}), 403)
    cross = {**h, "Origin": "https://evil.example"}
    assert "cross-origin" in _one_line_error(client.post(path, json={}, headers=cross), 403)


def test_login_itself_needs_the_double_submit_token(client) -> None:
    sign_in(client)
    client.post("/api/logout", headers={"X-CSRF-Token": client.cookies.get("kiosk_csrf")})
    body = {"username": "admin", "password": "pin-123456"}
    _one_line_error(client.post("/api/login", json=body), 403)
    _one_line_error(client.post("/api/login", json=body, headers={"X-CSRF-Token": "x"}), 403)
    assert client.post("/api/login", json=body, headers=csrf(client)).status_code == 200


def test_session_csrf_token_is_not_the_anonymous_one(client) -> None:
    anon = csrf(client)
    h = sign_in(client)
    assert h != anon  # the session gets a fresh token at sign-in
    _one_line_error(client.post("/api/encounters", json={}, headers=anon), 403)
    assert client.post("/api/encounters", json={}, headers=h).status_code == 201


def test_operators_cannot_use_admin_routes(client) -> None:
    h = sign_in(client, "ops", "operator")
    _one_line_error(client.get("/api/users"), 403)
    _one_line_error(client.post("/api/users", json={"username": "x", "password": "123456"},
                                headers=h), 403)


def test_cookies_are_httponly_samesite_strict(client, tmp_path: Path) -> None:
    sign_in(client, create=True)
    r = client.post("/api/login", json={"username": "admin", "password": "pin-123456"},
                    headers=csrf(client))
    cookies = r.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("kiosk_session="))
    assert "HttpOnly" in session and "SameSite=strict" in session.replace("Strict", "strict")
    assert "Secure" not in session  # plain http on loopback
    token = next(c for c in cookies if c.startswith("kiosk_csrf="))
    assert "HttpOnly" not in token and "samesite=strict" in token.lower()
    with make_client(tmp_path / "tls", https=True) as c2:
        sign_in(c2)
        r = c2.post("/api/login", json={"username": "admin", "password": "pin-123456"},
                    headers=csrf(c2))
        assert all("Secure" in c for c in r.headers.get_list("set-cookie"))
        assert "max-age" in c2.get("/").headers["strict-transport-security"]


def test_session_token_is_stored_only_as_a_hash(client, tmp_path: Path) -> None:
    sign_in(client)
    token = client.cookies.get("kiosk_session")
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("kiosk.sqlite3*"))
    assert token.encode() not in raw and auth.token_hash(token).encode() in raw


# ---------------------------------------------------------------------------- uploads
def test_oversized_uploads_get_413_before_analysis(client) -> None:
    h = sign_in(client)
    eid = new_encounter(client, h)["id"]
    big = b"\xff\xd8\xff" + b"\0" * 300_000
    r = client.post(f"/api/encounters/{eid}/photo", headers=h,
                    files={"file": ("big.jpg", big, "image/jpeg")})
    assert "limit" in _one_line_error(r, 413)

    def chunks():  # a valid multipart body without Content-Length: counted while streaming
        yield (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
               b"Content-Type: audio/wav\r\n\r\nRIFF")
        for _ in range(40):
            yield b"\0" * 10_000
        yield b"\r\n--xyz--\r\n"

    r = client.post(f"/api/encounters/{eid}/cough", headers={**h, "content-type":
                    "multipart/form-data; boundary=xyz"}, content=chunks())
    _one_line_error(r, 413)
    # just over the per-kind limit but under the body limit: checked after reading
    r = client.post(f"/api/encounters/{eid}/photo", headers=h,
                    files={"file": ("b.jpg", b"\xff\xd8\xff" + b"\0" * 210_000, "image/jpeg")})
    _one_line_error(r, 413)
    assert client.app.state.store.encounter(eid).captures == ()


@pytest.mark.parametrize("kind,name,data,status,words", [
    ("photo", "notes.txt", b"patient notes, not an image", 415, "not an image"),
    ("photo", "cough.wav", wav_bytes(), 415, "not an image"),
    ("photo", "fake.jpg", b"\xff\xd8\xff\xe0" + b"garbage" * 50, 422, "fake.jpg"),
    ("photo", "empty.jpg", b"", 422, "empty"),
    ("cough", "photo.jpg", jpeg_bytes(), 415, "not an audio file"),
    ("cough", "broken.wav", b"RIFF\x10\x00\x00\x00WAVEfmt " + b"\x01" * 8, 422, "broken.wav"),
])
def test_non_media_uploads_are_refused_with_one_line(client, kind: str, name: str, data: bytes,
                                                     status: int, words: str) -> None:
    h = sign_in(client)
    eid = new_encounter(client, h)["id"]
    r = client.post(f"/api/encounters/{eid}/{kind}", headers=h,
                    files={"file": (name, data, "image/jpeg")})
    assert words in _one_line_error(r, status)
    assert client.app.state.store.encounter(eid).captures == ()


def test_upload_without_a_file_field_is_a_400(client) -> None:
    h = sign_in(client)
    eid = new_encounter(client, h)["id"]
    _one_line_error(client.post(f"/api/encounters/{eid}/photo", headers=h, json={"a": 1}), 400)
    _one_line_error(client.post("/api/encounters", headers=h, content=b"{not json"), 400)
    _one_line_error(client.post("/api/encounters", headers=h, json={"note": 5}), 400)


# ----------------------------------------------------------------------------- export
@pytest.mark.parametrize("folder", ["../outside", "/etc", "a/../../b", "..", "a\\..\\b",
                                    "C:/x", "ok/\x00bad", "a/./../.."])
def test_export_path_traversal_is_refused(client, folder: str) -> None:
    h = sign_in(client)
    eid = new_encounter(client, h)["id"]
    r = client.post("/api/export", headers=h, json={"encounter_ids": [eid],
                                                    "destination": "folder", "folder": folder})
    assert "export" in _one_line_error(r, 400)


def test_export_through_a_symlink_out_of_the_root_is_refused(client, tmp_path: Path) -> None:
    root = tmp_path / "exports"
    root.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    h = sign_in(client)
    eid = new_encounter(client, h)["id"]
    r = client.post("/api/export", headers=h, json={"encounter_ids": [eid],
                                                    "destination": "folder", "folder": "link/x"})
    assert "leaves the export root" in _one_line_error(r, 400)
    assert list((tmp_path / "elsewhere").iterdir()) == []
    with pytest.raises(ExportPathError):
        resolve_export_dir(root, "link")
    assert resolve_export_dir(root, "a/b") == (root / "a" / "b").resolve()


def test_media_route_only_serves_hashes(client) -> None:
    sign_in(client)
    _one_line_error(client.get("/api/media/..%2F..%2Fkiosk.sqlite3"), 404)
    _one_line_error(client.get("/api/media/" + "a" * 64), 404)


# ------------------------------------------------------------------- pages and headers
def test_strict_csp_and_no_inline_or_external_code() -> None:
    from hai_edge.apps.kiosk.web import CSP

    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
    html = (STATIC / "index.html").read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert 'src="/static/' in tag
    assert re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S) == [""]
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert not re.search(r"\sstyle\s*=", html), "inline style"
    for f in STATIC.iterdir():
        text = f.read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), f.name


def test_every_response_carries_the_security_headers(client) -> None:
    for path in ("/", "/api/session", "/static/app.js", "/phone", "/api/nope"):
        r = client.get(path)
        assert r.headers["content-security-policy"].startswith("default-src 'self'"), path
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
    assert client.get("/api/session").headers["cache-control"] == "no-store"
    assert client.get("/docs").status_code == 404  # no Swagger UI pulling a CDN


def test_host_header_is_checked_when_configured(tmp_path: Path) -> None:
    with make_client(tmp_path, allowed_hosts=("127.0.0.1", "localhost", "::1")) as c:
        for ok in ("127.0.0.1:8080", "localhost", "[::1]:8080"):
            assert c.get("/api/health", headers={"host": ok}).status_code == 200, ok
        for bad in ("rebind.evil.example", "rebind.evil.example:8080", "127.0.0.1.evil", ""):
            r = c.get("/api/health", headers={"host": bad})
            assert "Host" in _one_line_error(r, 400), bad


def test_password_hashing_parameters_and_verification() -> None:
    params = auth.KdfParams(n=2**12)
    h = auth.hash_password("246810", params)
    kind, cost, salt, key = h.split("$")
    assert kind == "scrypt" and cost == "n=4096,r=8,p=1"
    assert auth.verify_password("246810", h) and not auth.verify_password("246811", h)
    assert auth.hash_password("246810", params) != h  # per-user salt
    for broken in ("", "md5$x$y$z", "scrypt$n=abc$x$y", h[:-4]):
        assert auth.verify_password("246810", broken) is False
    assert auth.KdfParams().n == 2**15 and 128 * auth.KdfParams().r * auth.KdfParams().n == 2**25


def test_a_bug_in_the_analyzer_is_a_one_line_500_and_nothing_is_stored(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from hai_edge.apps.kiosk import KioskConfig, MockAnalyzer, create_app

    class Broken(MockAnalyzer):
        def analyze_photo(self, data: bytes, name: str):
            raise RuntimeError("boom\nwith a second line")

    app = create_app(KioskConfig(data_dir=tmp_path / "d"), Broken())
    with TestClient(app, client=("127.0.0.1", 1), raise_server_exceptions=False) as c:
        h = sign_in(c)
        eid = new_encounter(c, h)["id"]
        r = c.post(f"/api/encounters/{eid}/photo", headers=h,
                   files={"file": ("a.jpg", jpeg_bytes(), "image/jpeg")})
        assert _one_line_error(r, 500) == "internal error: RuntimeError"
        assert c.app.state.store.encounter(eid).captures == ()
