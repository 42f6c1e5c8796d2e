"""The apps' message catalogue (``ui_shared/messages.json``) for Python: the kiosk server words
its refusals with the same sentences the kiosk page and the phone app show."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

__all__ = ["CATALOGUE", "message"]

CATALOGUE = Path(__file__).parent / "ui_shared" / "messages.json"


@functools.lru_cache(maxsize=4)
def _language(lang: str | None) -> dict[str, str]:
    cat = json.loads(CATALOGUE.read_text(encoding="utf-8"))
    return {**cat["languages"][cat["default"]], **cat["languages"].get(lang or "", {})}


def message(key: str, lang: str | None = None, **values: Any) -> str:
    """The catalogue's text for ``key`` with ``{name}`` placeholders filled (the key itself when
    missing, so a typo shows instead of hiding)."""
    text = _language(lang).get(key, key)
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), m.group(0))), text)
