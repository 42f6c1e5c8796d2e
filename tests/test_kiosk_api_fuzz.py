"""The kiosk's JSON API under generated requests (schemathesis, from the OpenAPI schema FastAPI
builds for the app): no 5xx and no stack trace for anyone; no state change without sign-in, and
none signed in without the CSRF token. Bounded (a few examples per operation and role), in
process: the requests never leave this interpreter (starlette's test client, no socket).

The routes read their bodies themselves, so the schema gets a generic JSON-object body for every
POST and a multipart ``file`` for the uploads: schemathesis then generates wrong types, missing
fields, huge strings and random files against them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from hai_edge.apps.kiosk import KioskConfig, MockAnalyzer, create_app  # noqa: E402
from tests._kiosk_fixtures import PASSWORD, add_user  # noqa: E402

EXAMPLES = 6  # per operation and role
UPLOADS = ("/photo", "/cough", "/api/admin/bundles")
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
_KWARGS = ("method", "url", "headers", "params", "json", "content", "files", "data")


def _with_bodies(spec: dict[str, Any]) -> dict[str, Any]:
    for path, ops in spec["paths"].items():
        post = ops.get("post")
        if post is None or "requestBody" in post:
            continue
        if path.endswith(UPLOADS):
            body = {"multipart/form-data": {"schema": {
                "type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}}}
        else:
            body = {"application/json": {"schema": {"type": "object"}}}
        post["requestBody"] = {"content": body}
    return spec


_DATA = Path(tempfile.mkdtemp(prefix="hai-kiosk-fuzz-"))
APP = create_app(KioskConfig(data_dir=_DATA / "data", export_root=_DATA / "exports"),
                 MockAnalyzer())
SCHEMA = schemathesis.openapi.from_dict(_with_bodies(APP.openapi()))
SCHEMA.app = APP


def _client() -> TestClient:
    return TestClient(APP, client=("127.0.0.1", 40000)).__enter__()


ANONYMOUS = _client()
add_user(ANONYMOUS, "admin", "admin")
SIGNED_IN = _client()
_r = SIGNED_IN.get("/api/session")
_r = SIGNED_IN.post("/api/login", json={"username": "admin", "password": PASSWORD},
                    headers={"X-CSRF-Token": SIGNED_IN.cookies.get("kiosk_csrf")})
assert _r.status_code == 200, _r.text
CSRF = {"X-CSRF-Token": _r.json()["csrf"]}


def _send(client: TestClient, case: Any, extra_headers: dict[str, str] | None = None) -> Any:
    kw = case.as_transport_kwargs(base_url="http://testserver")
    kw = {k: v for k, v in kw.items() if k in _KWARGS}
    kw["headers"] = {**(kw.get("headers") or {}), **(extra_headers or {})}
    response = client.request(**kw)
    text = response.text
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, text)
    assert "Traceback" not in text and 'File "' not in text, text[:500]
    return response


_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                     suppress_health_check=list(HealthCheck), database=None)


@SCHEMA.parametrize()
@_SETTINGS
def test_signed_out_requests_change_nothing(case: Any) -> None:
    response = _send(ANONYMOUS, case)
    if case.method.upper() in STATE_CHANGING:
        assert response.status_code >= 400, (case.method, case.formatted_path, response.text)


@SCHEMA.parametrize()
@_SETTINGS
def test_signed_in_requests_without_csrf_change_nothing(case: Any) -> None:
    response = _send(SIGNED_IN, case)
    if case.method.upper() in STATE_CHANGING:
        assert response.status_code >= 400, (case.method, case.formatted_path, response.text)


@SCHEMA.parametrize()
@_SETTINGS
def test_signed_in_admin_gets_no_server_error(case: Any) -> None:
    if case.formatted_path == "/api/logout":
        return  # it would end the session the other operations are tried under
    response = _send(SIGNED_IN, case, CSRF)
    ADMIN_STATUSES.append((case.method.upper(), response.status_code))


ADMIN_STATUSES: list[tuple[str, int]] = []


def test_the_admin_run_got_past_authentication() -> None:
    """The generated requests reached the handlers: successes and validation errors alike."""
    if not ADMIN_STATUSES:
        pytest.skip("run with the generated admin requests (the test above)")
    codes = {code for _, code in ADMIN_STATUSES}
    assert any(200 <= c < 300 for method, c in ADMIN_STATUSES if method == "POST"), codes
    assert codes & {400, 404, 409, 413, 415, 422}, codes
