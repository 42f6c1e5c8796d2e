"""Quiet by default: third-party INFO lines caught at their source, each notice once per run;
``--verbose`` lets the engines speak."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hai_edge.demo.samples import write_samples

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HAI_EDGE_VERBOSE"}
    return subprocess.run([sys.executable, "-m", "hai_edge.cli", *args], capture_output=True,
                          text=True, timeout=300, env={**env, "PYTHONPATH": str(ROOT)})


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None, reason="needs LiteRT")
def test_litert_info_line_only_with_verbose(tmp_path: Path) -> None:
    clip = write_samples(tmp_path / "s").coughs_csv.parent / "00f16a68.mp3"
    quiet = _cli("embed", "cough-demo", str(clip), "--backend", "tflite")
    assert quiet.returncode == 0, quiet.stderr
    assert "XNNPACK" not in quiet.stderr + quiet.stdout
    loud = _cli("--verbose", "embed", "cough-demo", str(clip), "--backend", "tflite")
    assert loud.returncode == 0 and "XNNPACK" in loud.stderr + loud.stdout


def test_cough_text_output_gives_each_notice_once(tmp_path: Path) -> None:
    folder = write_samples(tmp_path / "s").coughs_csv.parent
    few = tmp_path / "few"
    few.mkdir()
    for clip in sorted(folder.glob("*.mp3"))[:3]:
        (few / clip.name).write_bytes(clip.read_bytes())
    proc = _cli("cough", str(few))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sum(line.startswith(str(few)) for line in lines) == 3  # one result line per file
    assert lines.count("notice: demo, not for clinical use") == 1
