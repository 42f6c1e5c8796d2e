"""Where teacher weights come from (a local path or a Hugging Face id) and lazy heavy imports.

Hugging Face ids resolve through ``huggingface_hub.snapshot_download``: online first, falling back
to the local cache on any hub/connection error; cache only when ``HF_HUB_OFFLINE=1`` (or
``TRANSFORMERS_OFFLINE=1``). Environment variables are read at call time (the hub library reads
them once at import), so a cache directory set by ``HF_HUB_CACHE``/``HUGGINGFACE_HUB_CACHE``/
``HF_HOME`` after start-up is honoured. Nothing is installed or downloaded without the user asking
for that model.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from hai_edge.errors import HaiEdgeError, MissingDependencyError

__all__ = [
    "ResolvedModel",
    "hub_cache_dir",
    "import_tensorflow",
    "import_torch",
    "import_transformers",
    "resolve_model_dir",
]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    path: Path
    repo_id: str | None = None  # None for a local path
    revision: str | None = None  # the snapshot's commit hash when it came from the hub cache

    def describe(self, spec_prefix: str) -> str:
        """The teacher id: the hub id when it came from the hub, else ``prefix:abs-path``."""
        return self.repo_id or f"{spec_prefix}:{self.path}"

    def note(self, what: str) -> str:
        return f"{what}; snapshot {self.revision}" if self.revision else what


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def hub_cache_dir() -> Path:
    """The hub cache folder, from the environment as it is now."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def _not_cached(repo_id: str, why: str) -> HaiEdgeError:
    return HaiEdgeError(
        f"{repo_id} is not in the local Hugging Face cache and {why}: download it on a connected "
        f"machine with `hf download {repo_id}` (formerly `huggingface-cli download {repo_id}`) "
        f"and copy the cache, or pass a local path"
    )


def resolve_model_dir(ref: str, *, what: str) -> ResolvedModel:
    """A local directory/file as given, else a hub snapshot folder for ``org/name[@revision]``."""
    if not ref:
        raise HaiEdgeError(f"{what}: no model path or Hugging Face id given")
    path = Path(ref).expanduser()
    if path.exists():
        return ResolvedModel(path.resolve())
    if not _REPO_ID.match(ref) or ref.startswith((".", "/", "~")):
        raise HaiEdgeError(f"{ref}: no such file or directory (nor a Hugging Face model id)")
    repo_id, _, revision = ref.partition("@")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise MissingDependencyError(f"{what} from the Hugging Face hub", "teachers",
                                     "huggingface_hub") from None
    kwargs: dict[str, Any] = {"revision": revision or None, "cache_dir": str(hub_cache_dir())}
    why = "the hub cannot be reached (HF_HUB_OFFLINE is set)"
    if not (_env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")):
        try:
            return _resolved(snapshot_download(repo_id, **kwargs), repo_id)
        except Exception as exc:  # connection, gated, not found: fall back to the cache below
            why = _hub_reason(exc)
    try:
        return _resolved(snapshot_download(repo_id, local_files_only=True, **kwargs), repo_id)
    except Exception:
        raise _not_cached(repo_id, why) from None


def _resolved(folder: str | os.PathLike[str], repo_id: str) -> ResolvedModel:
    p = Path(folder)
    return ResolvedModel(p, repo_id, p.name if p.parent.name == "snapshots" else None)


def _hub_reason(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "GatedRepoError":
        return ("the hub refused it (a gated model: accept its terms on huggingface.co and log in "
                "with `hf auth login`)")
    if name in ("RepositoryNotFoundError", "RevisionNotFoundError"):
        return "the hub does not serve it (unknown id, revision, or gated without a login)"
    return "the hub cannot be reached"


# ------------------------------------------------------------------------------ heavy imports
def import_tensorflow(what: str) -> Any:
    try:
        import tensorflow as tf
    except ImportError:
        raise MissingDependencyError(what, "teachers-tf", "tensorflow-cpu") from None
    return tf


def import_torch(what: str) -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(what, "export", "torch") from None
    return torch


def import_transformers(what: str) -> Any:
    import_torch(what)
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError(what, "teachers", "transformers") from None
    return transformers
