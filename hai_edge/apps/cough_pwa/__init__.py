"""Offline cough-screening progressive web app (``hai-edge pwa build|serve``).

The app itself is static HTML/JS under ``static/`` (docs/pwa.md); this package builds it for a
bundle and serves it. Standard library only, like the rest of the run side.
"""

from __future__ import annotations

from hai_edge.apps.cough_pwa._build import (APP_DIR, DEFAULT_BUNDLE, ORT_FILES, BuildReport, build_app, ensure_ort,
                     ort_version)
from hai_edge.apps.cough_pwa._serve import MIME_TYPES, is_loopback, make_server

__all__ = ["APP_DIR", "DEFAULT_BUNDLE", "MIME_TYPES", "ORT_FILES", "BuildReport", "build_app",
           "ensure_ort", "is_loopback", "make_server", "ort_version"]
