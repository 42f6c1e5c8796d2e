"""Text formatting shared by the report page (``_html``) and its headline (``_headline``):
HTML-escaped values, fixed decimals, "value [low, high]" intervals, embedder labels."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

__all__ = ["ci_text", "embedder_labels", "esc", "num"]


def esc(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def num(v: Any, nd: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return esc(v)


def ci_text(f: Mapping[str, Any], key: str = "auroc", lo: str = "ci_low", hi: str = "ci_high",
            nd: int = 3) -> str:
    if f.get(key) is None:
        return "–"
    return f"{f[key]:.{nd}f} [{num(f.get(lo), nd)}, {num(f.get(hi), nd)}]"


def embedder_labels(rep: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: e["label"] for e in rep.get("embedders", [])}
