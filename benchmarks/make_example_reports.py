"""Example evaluation reports for docs/examples: HTML + a PNG of its first screen + the CLI output.

    python benchmarks/make_example_reports.py --name derm-demo --run RUN_DIR --bundle BUNDLE \
        --data /work/shared/data/pad-ufes-20/metadata.csv --label diagnostic \
        --positive BCC,SCC,MEL --subgroups gender,age,fitspatrick --device x86-avx2-kiosk \
        [--replica /tmp/hai-edge-bench/teacher_vs_student.json] [--out docs/examples]

Writes ``OUT/report-NAME.html``, ``report-NAME.json``, ``report-NAME.png`` (1280 x 900 viewport,
the first screen, rendered offline in headless Debian Chromium with JavaScript off and every
request other than the page itself aborted) and ``report-NAME.txt`` (the exact stdout of
``hai-edge report``, so the committed figures can be checked against the CLI). With ``--device``
the bundle is first benchmarked (``hai-edge benchmark --json``, kept as
``report-NAME.bench-PROFILE.json``) and the results go into the report. Everything runs through
the real CLI in subprocesses.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cli(args: list[str], **kw) -> subprocess.CompletedProcess:  # noqa: ANN003
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run([sys.executable, "-m", "hai_edge.cli", *args], env=env, check=True,
                          text=True, **kw)


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 900) -> list[str]:
    """First screen of ``html`` as PNG; returns the requests other than the page (must be [])."""
    from playwright.sync_api import sync_playwright

    url = html.resolve().as_uri()
    stray: list[str] = []

    def route(r) -> None:  # noqa: ANN001
        if r.request.url == url:
            r.continue_()
        else:
            stray.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        try:
            ctx = browser.new_context(viewport={"width": width, "height": height},
                                      java_script_enabled=False, offline=True)
            ctx.route("**/*", route)
            page = ctx.new_page()
            page.goto(url, wait_until="load")
            page.screenshot(path=str(png))
        finally:
            browser.close()
    return stray


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="example name, e.g. derm-demo or cough-demo")
    ap.add_argument("--run", required=True, help="the bundle's distillation run directory")
    ap.add_argument("--bundle", required=True, help="the exported bundle")
    ap.add_argument("--data", help="labels CSV (shared data metadata)")
    ap.add_argument("--id-col", help="id column of --data (default: the one matching the run)")
    ap.add_argument("--label", help="label column")
    ap.add_argument("--positive", help="positive values, comma-separated")
    ap.add_argument("--label-filter", action="append", default=[], metavar="COL=VALUE")
    ap.add_argument("--group", help="group column (default: the run's groups)")
    ap.add_argument("--subgroups", help="subgroup columns, comma-separated")
    ap.add_argument("--device", action="append", default=[],
                    help="device profile to benchmark on (repeatable)")
    ap.add_argument("--replica", help="teacher_vs_student.json from "
                                      "benchmarks/teacher_vs_student.py")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--runs", type=int, default=50, help="benchmark runs per model")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "examples")
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    html = args.out / f"report-{args.name}.html"
    benches = []
    for dev in args.device:  # kept next to the report: the raw numbers its speed section shows
        out = _cli(["benchmark", args.bundle, "--device", dev, "--json", "--runs",
                    str(args.runs)], stdout=subprocess.PIPE).stdout
        path = args.out / f"report-{args.name}.bench-{dev}.json"
        path.write_text(out)
        benches.append(path)
    cmd = ["report", args.run, "--bundle", args.bundle, "--repeats", str(args.repeats),
           "-o", str(html)]
    for flag, value in (("--data", args.data), ("--id-col", args.id_col),
                        ("--label", args.label), ("--positive", args.positive),
                        ("--group", args.group), ("--subgroups", args.subgroups)):
        if value:
            cmd += [flag, value]
    for f in args.label_filter:
        cmd += ["--label-filter", f]
    for b in benches:
        cmd += ["--benchmark", str(b)]
    if args.replica:
        cmd += ["--benchmark", args.replica]
    res = _cli(cmd, stdout=subprocess.PIPE)  # progress lines stream to stderr
    (args.out / f"report-{args.name}.txt").write_text(res.stdout)
    print(res.stdout, end="")
    stray = screenshot(html, args.out / f"report-{args.name}.png")
    if stray:
        sys.exit(f"the report tried to load {stray}")
    print(f"wrote {html}, {html.with_suffix('.json')}, {html.with_suffix('.png')} and "
          f"{html.with_suffix('.txt')}")


if __name__ == "__main__":
    main()
