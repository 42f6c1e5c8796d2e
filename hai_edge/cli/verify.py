"""``hai-edge verify BUNDLE``: the bundle's golden vectors through every installed engine.

Run side only (numpy and the engines), and light on purpose: the parser imports this module.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    v = subparsers.add_parser("verify",
                              help="run a bundle's golden vectors on every installed engine")
    v.add_argument("bundle", help="bundle directory or built-in name")
    v.add_argument("--backend", "-e", help="only this engine (onnxruntime | openvino | tflite)")
    v.add_argument("--threads", type=int, default=1, help="engine threads (default 1)")
    v.add_argument("--device", "-d", help="device profile id or .json: skip (or, with -e, refuse) "
                                          "the engines it excludes")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.set_defaults(func=_cmd_verify)


def _device_exclusions(device: str | None, backend: str | None) -> dict[str, str]:
    """Engines the ``--device`` profile excludes (engine -> one line); forcing one is an error."""
    if not device:
        return {}
    from hai_edge.devices.profiles import load_profile

    profile = load_profile(device)
    if backend:
        profile.require_engine(backend)
    return {e: line for e in profile.excluded_engines if (line := profile.exclusion(e))}


def _cmd_verify(args: argparse.Namespace) -> int:
    from hai_edge.bundle import Bundle
    from hai_edge.runtime.verify import verify_bundle

    bundle = Bundle.load(args.bundle, verify=True)
    report = verify_bundle(bundle, args.backend, threads=args.threads,
                           exclude=_device_exclusions(args.device, args.backend))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.table())
    report.raise_for_failure(bundle.root)
    return 0
