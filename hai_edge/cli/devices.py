"""``hai-edge devices`` (list the device profiles) and ``hai-edge benchmark BUNDLE``.

Light at import: the benchmark harness and bundle code load inside the command functions.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def _cmd_devices(args: argparse.Namespace) -> int:
    from hai_edge.devices.profiles import load_profiles

    profiles = load_profiles()
    if args.json:
        print(json.dumps([p.to_dict() for p in profiles.values()], indent=2))
        return 0
    w = max(len(i) for i in profiles)
    print(f"{'id':<{w}}  {'threads':>7}  {'audio ms':>8}  {'photo ms':>8}  {'mem MB':>6}  "
          f"{'preset':<22}  preferred (format/engine/precision)")
    for p in profiles.values():
        pref = ", ".join(f"{c.format.value}/{c.engine}/{c.precision.value}" for c in p.preferred[:3])
        print(f"{p.id:<{w}}  {p.threads:>7}  {p.latency_budget_ms['audio_window']:>8.0f}  "
              f"{p.latency_budget_ms['photo']:>8.0f}  {p.memory_budget_mb:>6.0f}  "
              f"{p.quant_preset:<22}  {pref}")
        print(f"{'':<{w}}  {p.title}")
        print(f"{'':<{w}}  {p.verification_summary()}")
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from hai_edge.bundle import Bundle
    from hai_edge.devices.bench import render_table, run_benchmark
    from hai_edge.devices.profiles import load_profile

    bundle = Bundle.load(args.bundle, verify=True)
    profile = load_profile(args.device) if args.device else None
    models = [m for m in (args.models or "").split(",") if m] or None
    results = run_benchmark(bundle, profile, runs=args.runs, warmup=args.warmup,
                            threads=args.threads, models=models)
    if args.json:
        doc: dict[str, Any] = {"bundle": bundle.manifest.name, "root": str(bundle.root),
                               "profile": profile.to_dict() if profile else None,
                               "results": [r.to_dict() for r in results]}
        from hai_edge.devices.bench import host_description

        doc["host"] = host_description()
        print(json.dumps(doc, indent=2))
    else:
        print(render_table(bundle, results, profile))
    failed = [r for r in results if r.status in ("FAIL", "ERROR")]
    return 1 if profile is not None and failed and args.strict else 0


def register(subparsers: Any) -> None:
    d = subparsers.add_parser("devices", help="list device profiles (budgets, engines, presets)")
    d.add_argument("--json", action="store_true", help="print the profiles as JSON")
    d.set_defaults(func=_cmd_devices)

    b = subparsers.add_parser(
        "benchmark", help="latency, peak memory and fidelity of a bundle's models on this machine",
        usage="hai-edge benchmark BUNDLE [--device PROFILE] [--json] [--runs N]")
    b.add_argument("bundle", help="bundle directory or built-in name")
    b.add_argument("--device", "-d", help="device profile id (see `hai-edge devices`) or .json file")
    b.add_argument("--runs", type=int, default=50, help="timed runs per measurement (default 50)")
    b.add_argument("--warmup", type=int, default=5, help="untimed warm-up runs (default 5)")
    b.add_argument("--threads", type=int, default=None,
                   help="N for the N-thread column (default: the profile's threads)")
    b.add_argument("--models", help="comma-separated model ids (default: all)")
    b.add_argument("--json", action="store_true", help="print results as JSON")
    b.add_argument("--strict", action="store_true",
                   help="exit 1 when a model fails the profile's budgets")
    b.set_defaults(func=_cmd_benchmark)
