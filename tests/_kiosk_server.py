"""A real ``hai-edge kiosk`` server process on tiny real bundles, for the browser tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_kiosk(tmp: Path, *extra: str) -> Iterator[str]:
    """Start the kiosk (``--no-mic``, exports under ``tmp/exports``); yields its URL."""
    import httpx

    from ._kiosk_fixtures import tiny_bundles

    bundles = tiny_bundles(tmp / "bundles")
    port = free_port()
    log = tmp / "server.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hai_edge.cli", "kiosk", "--data-dir", str(tmp / "data"),
         "--bundle-dir", str(bundles), "--port", str(port), "--no-mic",
         "--export-root", str(tmp / "exports"), *extra],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"kiosk exited: {log.read_text()}")
            try:
                if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.time() > deadline:
                    pytest.fail("kiosk did not start")
                time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def launch_chromium(pw, mic_wav: Path | None = None):  # noqa: ANN201
    """Debian's Chromium, headless, with a fake camera and (optionally) a WAV as microphone."""
    args = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    if mic_wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={mic_wav}%noloop")
    return pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)


def sign_in(page, url: str, user: str, password: str) -> None:
    """Open the kiosk and sign in (first-run setup when it has no account yet)."""
    page.goto(url + "/")
    page.wait_for_selector("#view-setup:not([hidden]), #view-login:not([hidden])")
    if page.is_visible("#view-setup"):
        page.fill("#setup-user", user)
        page.fill("#setup-pass", password)
        page.fill("#setup-pass2", password)
        page.click("#setup-form button[type=submit]")
    else:
        page.fill("#login-user", user)
        page.fill("#login-pass", password)
        page.click("#login-submit")
    page.wait_for_selector("#view-history:not([hidden])")
