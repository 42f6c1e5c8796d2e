"""Fuzzing in the default run: bounded, coverage-guided runs of every target from the committed
seed corpus, and replays of every crasher ever found (tests/fuzz/crashers/<target>/).

Each target (tests/fuzz/targets.py) must end every input in a result or a HaiEdgeError, within
10 s per input and 6 GB of address space. Where atheris cannot run (not installed, not x86-64),
hypothesis mutates the seeds instead. Longer runs: ``python tests/fuzz/run_atheris.py TARGET
COPY_OF_CORPUS -max_total_time=600`` (libFuzzer adds what it finds to that folder).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS, run_target

FUZZ = Path(__file__).resolve().parent / "fuzz"
ROOT = FUZZ.parents[1]
SECONDS = int(os.environ.get("HAI_EDGE_FUZZ_SECONDS", "6"))


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seed_corpus_is_valid_input(target: str) -> None:
    """Every seed decodes without any error: the fuzzer starts from real files, not junk."""
    seeds = _files(FUZZ / "corpus" / target)
    assert len(seeds) >= 2
    for seed in seeds:
        TARGETS[target](seed.read_bytes())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_crashers_stay_fixed(target: str) -> None:
    for crasher in _files(FUZZ / "crashers" / target):
        run_target(target, crasher.read_bytes())


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris not installed")
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_coverage_guided_fuzzing_finds_nothing(target: str, tmp_path: Path) -> None:
    corpus = shutil.copytree(FUZZ / "corpus" / target, tmp_path / "corpus")
    proc = subprocess.run(
        [sys.executable, str(FUZZ / "run_atheris.py"), target, str(corpus),
         f"-max_total_time={SECONDS}", "-print_final_stats=1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=SECONDS + 120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    findings = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-"))]
    assert proc.returncode == 0 and not findings, (findings, proc.stderr[-3000:])
    runs = [line for line in proc.stderr.splitlines() if "stat::number_of_executed_units" in line]
    assert runs and int(runs[-1].split(":")[-1]) > 50  # it really ran


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_mutated_seeds(target: str) -> None:
    """Byte flips and truncations of every seed (hypothesis): also where atheris cannot run."""
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    seeds = [p.read_bytes() for p in _files(FUZZ / "corpus" / target)]

    @hypothesis.settings(max_examples=300, deadline=10_000, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(st.sampled_from(seeds), st.lists(st.tuples(st.integers(0, 1 << 16),
                                                                 st.integers(0, 255)), max_size=8),
                      st.integers(0, 1 << 16))
    def check(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
        data = bytearray(seed)
        for pos, value in flips:
            if data:
                data[pos % len(data)] = value
        run_target(target, bytes(data[: max(1, cut)] if cut < len(data) else data))

    check()
