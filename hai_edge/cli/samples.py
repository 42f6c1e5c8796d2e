"""`hai-edge samples`: write the bundled sample recordings and photos (with labels CSVs)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def _cmd_samples(args: argparse.Namespace) -> int:
    from hai_edge.demo.samples import write_samples

    made = write_samples(args.output, overwrite=args.overwrite)
    print(f"{made.n_coughs} cough recordings (CC0): {made.coughs_csv}")
    print(f"{made.n_lesions} skin-lesion photos (CC BY 4.0): {made.lesions_csv}")
    print(f"sources and licences: {made.root / 'ATTRIBUTION.md'}  (demo, not for clinical use)")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "samples", help="write the bundled sample coughs and skin photos, with labels CSVs",
        description="Copy the sample set that ships with hai-edge (32 CC0 cough recordings, 36 CC BY "
                    "4.0 lesion photos) to a folder, each part with a metadata.csv of labels, so "
                    "every command of the README's tour has real files to work on.")
    p.add_argument("-o", "--output", default="samples",
                   help="folder to create (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier copy in that folder")
    p.set_defaults(func=_cmd_samples)
