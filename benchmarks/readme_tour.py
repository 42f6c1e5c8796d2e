"""Run the README's 5-minute tour as written, in an empty folder, and report each exit code.

    python benchmarks/readme_tour.py [--keep DIR]

Reads the first ```bash block after "## 5-minute tour" in README.md, runs each line with bash in
a fresh temporary folder (the ``hai-edge`` on PATH), and prints one line per command: exit code,
seconds, command. Exits 1 if any command failed. Needs the set-up command's install.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def tour_commands(readme: Path = README) -> list[str]:
    text = readme.read_text(encoding="utf-8")
    section = text[text.index("## 5-minute tour"):]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    if block is None:
        raise SystemExit("README.md: no ```bash block in the 5-minute tour")
    return [line for line in block.group(1).splitlines() if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="run in this (new) folder and keep it")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="hai-edge-tour-"))
    work.mkdir(parents=True, exist_ok=True)
    failed = 0
    for cmd in tour_commands():
        t0 = time.perf_counter()
        proc = subprocess.run(["bash", "-c", cmd], cwd=work, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        print(f"rc={proc.returncode}  {dt:6.1f} s  {cmd.split('  #')[0].strip()}", flush=True)
        if proc.returncode != 0:
            failed += 1
            print("    " + (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1])
    print(f"{failed} of {len(tour_commands())} commands failed; folder: {work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
