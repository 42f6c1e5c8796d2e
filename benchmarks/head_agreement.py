"""Issue #18 acceptance: for cough-demo and derm-demo on their held-out rows, the head's
recording scores on the three engines side by side: max |score difference| per pair of engines
and verdict flips (recordings whose verdict is not the same on every engine).

    python benchmarks/head_agreement.py --data ../shared/data [--bundles DIR] [--work DIR]

``--bundles DIR`` reads DIR/cough-demo and DIR/derm-demo (e.g. the output of
``benchmarks/robust_heads.py --write DIR``) instead of the built-in bundles. Acceptance: max
|score difference| <= 0.02 and 0 flips for both.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from head_data import DEMOS, demo_rows  # noqa: E402

from hai_edge.bundle import Bundle  # noqa: E402


def measure(bundle_dir: Path | None, data: Path, work: Path) -> dict[str, dict]:
    from hai_edge.heads.robust import engine_scores, score_agreement
    from hai_edge.runtime.heads import load_heads

    out = {}
    for name, (head_name, *_rest) in DEMOS.items():
        bundle = Bundle.load(bundle_dir / name if bundle_dir else name)
        head = load_heads(bundle, [head_name])[0]
        held = demo_rows(bundle, name, data, work, "heldout")
        scores = engine_scores(head, held)
        out[name] = {"head": head_name, "threshold": round(head.threshold, 4),
                     "recipe": (head.training.get("head_recipe") or {}).get("name", "standard"),
                     "borderline": head.borderline,
                     "flips_bare_threshold": score_agreement(scores, head.threshold)["flips"],
                     **score_agreement(scores, head.threshold, head.borderline)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--bundles", type=Path, help="directory holding cough-demo/ and derm-demo/")
    p.add_argument("--work", type=Path, default=Path("/tmp/hai-heads"),
                   help="embedding cache (per bundle model and detector)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    res = measure(args.bundles, args.data.resolve(), args.work)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    pairs = sorted({k for r in res.values() for k in r["pairs"]})
    print(f"{'bundle':<11} {'head':<11} {'recipe':<9} {'n':>4} "
          + " ".join(f"{k:>24}" for k in pairs) + f" {'max':>7} {'flips':>5} {'borderline':>10}"
          f" {'bare flips':>10}")
    for name, r in res.items():
        print(f"{name:<11} {r['head']:<11} {r['recipe']:<9} {r['n']:>4} "
              + " ".join(f"{r['pairs'].get(k, float('nan')):>24.4f}" for k in pairs)
              + f" {r['max_abs_diff']:>7.4f} {r['flips']:>5} {r['borderline_changes']:>10}"
              f" {r['flips_bare_threshold']:>10}")
    ok = all(r["max_abs_diff"] <= 0.02 and r["flips"] == 0 for r in res.values())
    print("flips: recordings one engine calls positive and another negative (with the head's "
          "borderline band); borderline: recordings only some engines call borderline; bare "
          "flips: verdicts at the bare threshold, without the band")
    print("acceptance (max |score diff| <= 0.02, 0 flips): " + ("met" if ok else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
