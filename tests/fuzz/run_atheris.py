"""Coverage-guided fuzzing of one target with atheris (libFuzzer).

    python tests/fuzz/run_atheris.py TARGET [CORPUS_DIR ...] [-max_total_time=60] [-runs=N]

TARGET is one of audio, image, dicom, manifest (tests/fuzz/targets.py). libFuzzer flags pass
through; by default each input is bounded to 10 s and the process to 6 GB of address space, so a
hang or a memory blow-up is reported as a finding, like an exception other than HaiEdgeError. A finding is written
as ``crash-*`` / ``timeout-*`` / ``oom-*`` in the working directory: copy it into
tests/fuzz/crashers/TARGET/ once fixed, and the regression test replays it.
"""

from __future__ import annotations

import logging
import resource
import sys
import warnings
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["hai_edge"]):
    from tests.fuzz.targets import TARGETS, run_target


_ADDRESS_SPACE = 6 << 30  # bytes: a MemoryError past it is a finding (not a HaiEdgeError)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: run_atheris.py {{{','.join(TARGETS)}}} [corpus dirs] [libFuzzer flags]")
    name = sys.argv.pop(1)
    logging.disable(logging.CRITICAL)  # decoders log warnings for broken files; not findings
    warnings.simplefilter("ignore")
    # Memory: an address-space limit of this process, not libFuzzer's -rss_limit_mb, which reads
    # getrusage's peak RSS: Linux carries that over from the parent across fork + exec, so a
    # fuzzer started by a 2 GB pytest would report "out of memory" before its first input.
    resource.setrlimit(resource.RLIMIT_AS, (_ADDRESS_SPACE, _ADDRESS_SPACE))
    defaults = ["-timeout=10", "-rss_limit_mb=0"]
    argv = sys.argv[:1] + [a for a in defaults if a.split("=")[0] not in " ".join(sys.argv)] + sys.argv[1:]
    atheris.Setup(argv, lambda data: run_target(name, data))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
