"""Load test of the kiosk on loopback: N concurrent clients upload photos and coughs for T s.

Starts a real ``hai-edge kiosk`` server (own process, fresh data dir), signs N clients in, gives
each one encounter, and has every client loop: upload a photo, upload a cough recording, repeat
(closed loop, no think time: the worst case of a busy clinic). Prints throughput and latency
percentiles per kind, and how many uploads were refused with 503 (queue full; a client then
waits Retry-After and retries, as the UI does; the retry's latency is counted from the first try).

    python benchmarks/kiosk_load.py                          # built-in demo bundles or stand-ins
    python benchmarks/kiosk_load.py --bundle-dir BUNDLES --clients 20 --seconds 60
    python benchmarks/kiosk_load.py --tiny                   # tiny test bundles (needs onnx)

Bundles: --bundle-dir, else the built-in cough-demo/derm-demo, else stand-ins sized like the
planned students (built with the export extra, as benchmarks/runtime_startup.py does).
Media: a phone-sized JPEG (default 4032x3024) and a 5 s 44.1 kHz 16-bit WAV, as the page sends.
Target: p95 <= 1 s for a photo.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-pin-1234"


def _media(width: int, height: int, cough_s: float) -> tuple[bytes, bytes]:
    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([150 + (xx // 9) % 60, 100 + (yy // 7) % 50, 90 + (xx + yy) // 40 % 40], -1)
    img = (img + rng.integers(0, 12, img.shape)).astype(np.uint8)  # sensor-like texture
    jpg = io.BytesIO()
    Image.fromarray(img).save(jpg, "JPEG", quality=90)
    sr = 44100
    x = 0.01 * rng.standard_normal(int(cough_s * sr))
    for s in np.arange(0.5, cough_s - 0.4, 1.3):
        i, n = int(s * sr), int(0.3 * sr)
        x[i:i + n] += 0.5 * rng.standard_normal(n) * np.exp(-np.arange(n) / (0.06 * sr))
    wav = io.BytesIO()
    sf.write(wav, np.clip(x, -1, 1).astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return jpg.getvalue(), wav.getvalue()


def _bundles(args: argparse.Namespace, tmp: Path) -> tuple[Path | None, str]:
    """(--bundle-dir to pass or None for the built-ins, description)."""
    from hai_edge.bundle import builtin_bundles

    if args.bundle_dir:
        return Path(args.bundle_dir), f"--bundle-dir {args.bundle_dir}"
    if args.tiny:
        sys.path.insert(0, str(ROOT))
        from tests._kiosk_fixtures import tiny_bundles

        return tiny_bundles(tmp / "bundles"), "tiny test bundles (32 px / 1 s linear models)"
    have = builtin_bundles()
    if "cough-demo" in have and "derm-demo" in have:
        return None, "built-in cough-demo + derm-demo"
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from runtime_startup import _stand_in_bundles  # export extra (torch)

    out = tmp / "bundles"
    out.mkdir()
    made = _stand_in_bundles(tmp)
    for key, path in made.items():
        path.rename(out / path.name)
    return out, ("stand-in FP32 CNNs (audio 64x200 log-mel -> 512-d; image 224 px MobileNet-"
                 "like -> 512-d), no heads")


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the server process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _runq_wait_s(pid: int) -> float:
    """Seconds the server's threads spent runnable but waiting for a CPU (Linux schedstat)."""
    total = 0
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((t / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


async def _client(base: str, h: dict[str, str], cookies: dict, jpg: bytes, wav: bytes,
                  deadline: float, out: dict[str, list]) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base, cookies=cookies, timeout=120) as c:
        r = await c.post("/api/encounters", json={"note": "load test"}, headers=h)
        r.raise_for_status()
        eid = r.json()["id"]
        kinds = [("photo", jpg, "photo.jpg", "image/jpeg"), ("cough", wav, "cough.wav",
                                                               "audio/wav")]
        i = 0
        while time.perf_counter() < deadline:
            kind, data, name, mime = kinds[i % 2]
            i += 1
            t0 = time.perf_counter()
            while True:
                r = await c.post(f"/api/encounters/{eid}/{kind}", headers=h,
                                 files={"file": (name, data, mime)})
                if r.status_code != 503:
                    break
                out["refused"].append(kind)
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))
            dt = time.perf_counter() - t0
            if r.status_code == 201:
                out[kind].append((t0, dt))
                res = r.json()["result"]
                timing = dict(res.get("timing_ms", {}))
                if kind == "photo" and res.get("frames"):  # per-frame timings + queue wait
                    timing = {**res["frames"][0].get("timing_ms", {}), **timing}
                out["server_" + kind].append(timing)
            else:
                out["errors"].append(f"{kind}: {r.status_code} {r.text[:120]}")


async def _run(base: str, clients: int, seconds: float, jpg: bytes, wav: bytes) -> dict:
    import httpx

    async with httpx.AsyncClient(base_url=base) as c:
        await c.get("/api/session")
        r = await c.post("/api/login", json={"username": "bench", "password": PASSWORD},
                         headers={"X-CSRF-Token": c.cookies.get("kiosk_csrf")})
        r.raise_for_status()
        h = {"X-CSRF-Token": r.json()["csrf"]}
        cookies = dict(c.cookies)
    out: dict[str, list] = {"photo": [], "cough": [], "refused": [], "errors": [],
                            "server_photo": [], "server_cough": []}
    t0 = time.perf_counter()
    await asyncio.gather(*(_client(base, h, cookies, jpg, wav, t0 + seconds, out)
                           for _ in range(clients)))
    out["wall_s"] = time.perf_counter() - t0
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle-dir")
    ap.add_argument("--tiny", action="store_true", help="tiny test bundles (needs onnx)")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--photo-size", default="4032x3024", help="WxH of the JPEG (default 12 MP)")
    ap.add_argument("--cough-seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=None, help="engine threads per model")
    ap.add_argument("--queue-depth", type=int, default=16)
    ap.add_argument("--photo-workers", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from hai_edge.apps.kiosk.auth import hash_password
    from hai_edge.apps.kiosk.store import Store

    w, h = (int(v) for v in args.photo_size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="kiosk-load-") as tmp_s:
        tmp = Path(tmp_s)
        bundle_dir, what = _bundles(args, tmp)
        jpg, wav = _media(w, h, args.cough_seconds)
        store = Store(tmp / "data")
        store.add_user("bench", hash_password(PASSWORD), "operator")
        store.close()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "hai_edge.cli", "kiosk", "--data-dir", str(tmp / "data"),
               "--port", str(port), "--no-mic", "--queue-depth", str(args.queue_depth)]
        if bundle_dir is not None:
            cmd += ["--bundle-dir", str(bundle_dir)]
        if args.photo_workers != 2:
            cmd += ["--photo-workers", str(args.photo_workers)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        log = open(tmp / "server.log", "wb")
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        import httpx

        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(base + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
            if proc.poll() is not None:
                print((tmp / "server.log").read_text(), file=sys.stderr)
                return 2
        load0 = os.getloadavg()
        cpu0, wait0, client0 = _cpu_s(proc.pid), _runq_wait_s(proc.pid), time.process_time()
        try:
            out = asyncio.run(_run(base, args.clients, args.seconds, jpg, wav))
            server_cpu = _cpu_s(proc.pid) - cpu0
            server_wait = _runq_wait_s(proc.pid) - wait0
            client_cpu = time.process_time() - client0
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        load1 = os.getloadavg()
    print(f"kiosk load: {args.clients} clients x {args.seconds:g} s on loopback, bundles: {what}")
    print(f"media: photo {w}x{h} JPEG {len(jpg) / 1e6:.2f} MB, cough {args.cough_seconds:g} s "
          f"44.1 kHz WAV {len(wav) / 1e6:.2f} MB; threads "
          f"{args.threads or 'kiosk default (half the CPUs)'}, "
          f"queue depth {args.queue_depth}/kind, photo workers {args.photo_workers}; "
          f"{os.cpu_count()} CPUs, load avg "
          f"{load0[0]:.1f} -> {load1[0]:.1f}")
    print(f"{'kind':<6} {'done':>6} {'per s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'503s':>5}  server ms (median): decode / inference / total / queue")
    for kind in ("photo", "cough"):
        lat = [dt * 1e3 for _, dt in out[kind]]
        flat = out["server_" + kind]

        def med(key: str, rows: list = flat) -> str:
            vals = [r[key] for r in rows if key in r]
            return f"{statistics.median(vals):.0f}" if vals else "-"

        print(f"{kind:<6} {len(lat):>6} {len(lat) / out['wall_s']:>7.2f} {_pct(lat, 50):>8.0f} "
              f"{_pct(lat, 95):>8.0f} {_pct(lat, 99):>8.0f} {max(lat, default=float('nan')):>8.0f} "
              f"{out['refused'].count(kind):>5}  {med('decode')} / {med('inference')} / "
              f"{med('total')} / {med('queue')}")
    done = len(out["photo"]) + len(out["cough"])
    if done:
        print(f"server CPU: {server_cpu:.1f} s for {done} uploads = {server_cpu / done * 1e3:.0f} "
              f"ms per upload (photo and cough together); at that cost {os.cpu_count()} idle "
              f"cores would serve ~{os.cpu_count() * done / server_cpu:.1f} uploads/s")
        print(f"server threads waited {server_wait:.1f} s in the run queue for a CPU (other "
              f"processes on this machine) while using {server_cpu:.1f} s of CPU; the load "
              f"clients used {client_cpu:.1f} s of CPU")
    if out["errors"]:
        print(f"errors: {len(out['errors'])}, first: {out['errors'][0]}")
    photo_p95 = _pct([dt for _, dt in out["photo"]], 95)
    print(f"photo p95 {photo_p95 * 1e3:.0f} ms: target <= 1000 ms "
          f"{'met' if photo_p95 <= 1.0 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
