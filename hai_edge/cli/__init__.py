"""``hai-edge`` command line: one module per command group (``embed``, ``cough``, ``derm``, ...),
the parser and dispatch in ``_main``, shared pieces in ``_common``. Each command parses its
arguments, calls one library function and prints; heavy imports happen inside commands.
"""

from __future__ import annotations

from hai_edge.cli._main import main, main_entry

__all__ = ["main", "main_entry"]
