"""Offline clinic kiosk (``hai-edge kiosk``): a local web app with a real database.

FastAPI + uvicorn (``pip install 'hai-edge[kiosk]'``), HTML/CSS/JS shipped in ``static/``, SQLite
storage, inference off the request threads. The JSON API under ``/api/`` is documented in
docs/kiosk.md. Nothing is imported here: the web stack loads only when the app is created.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Analysis", "Analyzer", "KioskConfig", "MockAnalyzer", "PipelineAnalyzer",
           "create_app"]

_LAZY = {"Analysis": ".analysis", "Analyzer": ".analysis", "MockAnalyzer": ".analysis",
         "PipelineAnalyzer": ".analysis", "KioskConfig": ".config", "create_app": ".app"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(name)
