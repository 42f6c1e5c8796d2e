"""The ``hai-edge`` parser and dispatch. Heavy imports happen inside commands, never here.

Every error a user can cause ends as one line on stderr and exit code 2 (no traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hai_edge import __version__
from hai_edge.cli._common import run_command

__all__ = ["COMMAND_MODULES", "build_parser", "main", "main_entry"]

# Each module defines ``register(subparsers)``; ordered as they appear in --help. A module that
# fails to import is an error (never a command silently missing from --help).
COMMAND_MODULES = (
    "hai_edge.cli.embed",  # hai-edge embed
    "hai_edge.cli.info",  # hai-edge info / backends
    "hai_edge.cli.keys",  # hai-edge keygen / sign
    "hai_edge.cli.teacher",  # hai-edge teacher embed
    "hai_edge.cli.distill",  # hai-edge distill
    "hai_edge.cli.export",  # hai-edge export
    "hai_edge.cli.verify",  # hai-edge verify
    "hai_edge.cli.devices",  # hai-edge devices / benchmark
    "hai_edge.cli.cough",  # hai-edge cough
    "hai_edge.cli.probe",  # hai-edge probe train|eval
    "hai_edge.cli.derm",  # hai-edge derm
    "hai_edge.cli.demo",  # hai-edge demo
    "hai_edge.cli.samples",  # hai-edge samples
    "hai_edge.cli.report",  # hai-edge report
    "hai_edge.cli.stress",  # hai-edge stress
    "hai_edge.cli.kiosk",  # hai-edge kiosk / kiosk adduser
    "hai_edge.cli.pwa",  # hai-edge pwa build / serve
)


def build_parser() -> argparse.ArgumentParser:
    """The whole ``hai-edge`` parser: every command module registers its commands."""
    p = argparse.ArgumentParser(
        prog="hai-edge",
        description="Run, distil, quantize and export health foundation encoders offline.",
    )
    p.add_argument("--version", action="version", version=f"hai-edge {__version__}")
    p.add_argument("--verbose", action="store_true",
                   help="show the engines' and converters' own INFO lines and warnings")
    p.add_argument("--trust", action="append", default=[], metavar="KEY.pub",
                   help="only load bundles signed by this public key (file or folder of .pub "
                        "files; repeatable; adds to $HAI_EDGE_TRUSTED_KEYS and the config folder)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``hai-edge`` command; returns its exit code (2: a user error, 1: a bug)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.trust:
        _trust(args.trust)
    if args.verbose:
        import os

        from hai_edge.tools import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"
    return run_command(args.func, args)


def _trust(keys: Sequence[str]) -> None:
    """``--trust``: add the keys to this process's trust store (the environment variable every
    ``Bundle.load`` reads, so benchmark workers and apps started from here inherit it)."""
    import os

    from hai_edge.bundle.signing import TRUST_ENV

    have = [p for p in os.environ.get(TRUST_ENV, "").split(os.pathsep) if p]
    os.environ[TRUST_ENV] = os.pathsep.join([*have, *(os.path.abspath(k) for k in keys)])


def main_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
