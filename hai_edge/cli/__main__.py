"""``python -m hai_edge.cli``: the same as the ``hai-edge`` command."""

from hai_edge.cli import main_entry

main_entry()
