"""Exception hierarchy of hai-edge.

Every error a user can cause derives from :class:`HaiEdgeError`; the CLI turns it into a one-line
message and exit code 2 (never a traceback)::

    HaiEdgeError
    ├── InputError              bad media file (empty, truncated, corrupt, too short, silent, NaN, bomb)
    ├── BundleError             bundle missing, malformed, unknown schema, tampered file (hash mismatch)
    ├── MissingDependencyError  an optional extra is not installed; says which `pip install` fixes it
    ├── BackendError            an engine failed to load or run a model
    └── GateError               a parity/fidelity gate failed (carries the measured figures)
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BundleError",
    "GateError",
    "HaiEdgeError",
    "InputError",
    "MissingDependencyError",
]


class HaiEdgeError(Exception):
    """Base of all errors a user can cause; ``exit_code`` is what the CLI returns."""

    exit_code = 2


class InputError(HaiEdgeError):
    """A media input cannot be used. The message names the file and the problem."""

    def __init__(self, source: object, problem: str) -> None:
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class BundleError(HaiEdgeError):
    """A bundle is missing, malformed, of an unknown schema, or was modified after it was written."""


class MissingDependencyError(HaiEdgeError):
    """An optional dependency is missing. Never installed at run time: the message says how."""

    def __init__(self, what: str, extra: str, package: str | None = None) -> None:
        self.what = what
        self.extra = extra
        pkg = f" ({package})" if package else ""
        super().__init__(
            f"{what} needs an optional dependency{pkg} that is not installed: "
            f"pip install 'hai-edge[{extra}]'"
        )


class BackendError(HaiEdgeError):
    """An inference engine failed to load or run a model."""


class GateError(HaiEdgeError):
    """A parity or fidelity gate failed; ``figures`` holds what was measured."""

    def __init__(self, message: str, figures: dict | None = None) -> None:
        self.figures = dict(figures or {})
        super().__init__(message)
