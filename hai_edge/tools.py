"""Third-party tools used politely: no telemetry, nothing written to the home directory, no noise.

- OpenVINO: ``import openvino`` and ``convert_model`` send Google-Analytics events unless consent
  is declined, and create ``~/intel/...``. The telemetry code checks ``CI=true`` before touching
  any file, so imports happen with ``CI=true`` set for the duration, and the telemetry singleton
  is then told ``consent = False``.
- onnxruntime: ``import onnxruntime`` creates ``~/.cache/Microsoft/DeveloperTools`` unless
  ``ORT_DISABLE_TELEMETRY=1`` is set before its first import.
- Converters and quantizers (torch.export, litert-torch, NNCF, onnxruntime's quantizer) log a lot,
  partly from C++ straight to fds 1/2: ``quiet()`` captures it and replays it only on failure.

Nothing happens at import of this module; the guards run only when an engine is first imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["VERBOSE_ENV", "env_override", "import_onnxruntime", "import_openvino",
           "no_openvino_telemetry", "one_blas_thread", "verbose",
           "openvino_telemetry_consent", "quiet"]


@contextlib.contextmanager
def env_override(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block and restore them afterwards."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _telemetry_singleton() -> Any:
    tm = sys.modules.get("openvino_telemetry")
    cls = getattr(tm, "Telemetry", None) if tm is not None else None
    # SingletonMetaClass keeps the instance in a name-mangled class attribute.
    return getattr(cls, "_SingletonMetaClass__single_instance", None) if cls is not None else None


def openvino_telemetry_consent() -> bool | None:
    """Consent of OpenVINO's telemetry singleton (None: not created in this process)."""
    inst = _telemetry_singleton()
    return None if inst is None else bool(getattr(inst, "consent", False))


def _decline() -> None:
    inst = _telemetry_singleton()
    if inst is not None:
        with contextlib.suppress(Exception):
            inst.consent = False


@contextlib.contextmanager
def no_openvino_telemetry() -> Iterator[None]:
    """Import/use OpenVINO (runtime or converter) with telemetry declined and nothing written."""
    with env_override({"CI": "true"}):
        _decline()
        with contextlib.suppress(ImportError):
            import openvino  # noqa: F401  (its import-time event runs here, declined)
        _decline()
        try:
            yield
        finally:
            _decline()


def import_openvino() -> Any:
    with no_openvino_telemetry():
        import openvino

    return openvino


def import_onnxruntime() -> Any:
    with env_override({"ORT_DISABLE_TELEMETRY": "1"}):
        import onnxruntime

    return onnxruntime


_BLAS: list[Any] = []  # one threadpoolctl controller, made on first use


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's BLAS on one thread inside the block (also usable as a decorator).

    The run side's matrices are small (a mel projection, a resize): a multi-threaded BLAS only
    adds thread hand-offs, and on a busy 2-core machine they cost 10x (measured: 14 ms instead
    of 1.2 ms for one 2 s log-mel window). Without threadpoolctl this does nothing.
    """
    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS.append(None)
        else:
            _BLAS.append(ThreadpoolController())
    if _BLAS[0] is None:
        yield
        return
    with _BLAS[0].limit(limits=1, user_api="blas"):
        yield


VERBOSE_ENV = "HAI_EDGE_VERBOSE"


def verbose() -> bool:
    """``--verbose`` (or ``HAI_EDGE_VERBOSE=1``): let third-party INFO lines and warnings through."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


@contextlib.contextmanager
def quiet(enabled: bool = True) -> Iterator[None]:
    """Silence converter chatter for the duration of one export, without a subprocess.

    Python warnings and the ``torch``/``absl`` loggers are raised to ERROR; native (C++) log lines
    written straight to fds 1/2 (TFLite's flatbuffer exporter, absl, oneDNN) go to a temporary file
    that is replayed on stderr only if the export fails, so a failure still shows its diagnostics.
    """
    if not enabled or verbose():
        yield
        return
    loggers = [logging.getLogger(n) for n in ("torch", "torch.onnx", "torch.export", "absl", "jax")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), _native_output_to_tempfile() as replay:
            warnings.simplefilter("ignore")
            try:
                yield
            except BaseException:
                replay()
                raise
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _native_output_to_tempfile() -> Iterator[Callable[[], None]]:
    """Point fds 1 and 2 at a temp file; yield a function that replays its tail on stderr."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = (os.dup(1), os.dup(2))
    except (OSError, ValueError, AttributeError):  # no usable fds (embedded interpreter): no-op
        yield lambda: None
        return
    sink = tempfile.TemporaryFile(mode="w+b")

    def replay() -> None:
        try:
            sink.flush()
            sink.seek(0)
            text = sink.read()[-20000:].decode("utf-8", "replace")
            if text.strip():
                os.write(saved[1], text.encode())
        except OSError:
            pass

    try:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        yield replay
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        sink.close()
