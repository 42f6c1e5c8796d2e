"""Calibrate and measure derm abstention (issue #17): the OOD gate of the derm-demo head and the
blocking quality checks, on PAD-UFES-20 split by patient and on images of other kinds.

* in distribution: the 686 PAD-UFES-20 photos, split by ``patient_id`` exactly as the demo
  build splits them (``split_by_group(items, 0.2, seed 0)``: the head was trained on the
  training patients); the gate is fitted on the training photos' embeddings, its threshold is
  the 99th percentile of grouped out-of-fold distances (``hai_edge.heads.ood_fit``), and the
  false-withhold rate is measured on the held-out patients' photos;
* degraded copies of the held-out photos (heavy blur, -3/+2 stops) for the quality blocks;
* other kinds of image that must not get a verdict: random-noise JPEGs, screenshot-like flat
  graphics, synthetic non-skin images (benchmarks/quality_calibration.py), crops of natural
  non-skin photos shipped with scikit-learn/matplotlib, and a dermoscopy-like proxy (held-out
  photos zoomed 2x inside a black circular field of view).

    python benchmarks/derm_abstain.py [--data ../shared/data] [--write-bundle DIR]

``--write-bundle`` writes derm-demo with the gate in its head (through ``add_head_to_bundle``:
model files byte-identical; the rewritten bundle is unsigned). Embeddings are cached in
``--cache`` (default /tmp/derm-abstain.npz) so a rerun only re-reports.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_calibration import blur, non_skin_images, stops, u8  # noqa: E402

from hai_edge.runtime import quality as q  # noqa: E402


def _png(a: np.ndarray, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, fmt, **({"quality": 92} if fmt == "JPEG"
                                                               else {}))
    return buf.getvalue()


def _screens(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Screenshot-like images: flat panels, buttons, text lines (PIL)."""
    from PIL import Image, ImageDraw

    out = []
    for i in range(n):
        w, h = int(rng.integers(360, 1280)), int(rng.integers(480, 900))
        bg = tuple(int(v) for v in rng.integers(200, 256, 3)) if i % 2 else (30, 30, 36)
        im = Image.new("RGB", (w, h), bg)
        d = ImageDraw.Draw(im)
        d.rectangle([0, 0, w, int(h * 0.08)], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        for _ in range(int(rng.integers(3, 9))):
            x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(int(h * 0.1), h - 30))
            d.rectangle([x0, y0, x0 + int(rng.integers(40, 300)), y0 + int(rng.integers(20, 90))],
                        fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        ink = (0, 0, 0) if i % 2 else (230, 230, 230)
        for y in range(int(h * 0.12), h - 20, 22):
            d.text((12, y), "Lorem ipsum 12:45 Settings > Wi-Fi  " * 3, fill=ink)
        out.append(np.asarray(im))
    return out


def _natural(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random crops of natural non-lesion photos that ship with scikit-learn and matplotlib."""
    from PIL import Image

    import matplotlib
    import sklearn

    paths = [Path(sklearn.__file__).parent / "datasets/images/china.jpg",
             Path(sklearn.__file__).parent / "datasets/images/flower.jpg",
             Path(matplotlib.__file__).parent / "mpl-data/sample_data/grace_hopper.jpg"]
    imgs = [np.asarray(Image.open(p).convert("RGB")) for p in paths if p.is_file()]
    out = [im for im in imgs]
    while len(out) < n:
        im = imgs[int(rng.integers(len(imgs)))]
        side = int(rng.integers(120, min(im.shape[:2])))
        y, x = int(rng.integers(0, im.shape[0] - side)), int(rng.integers(0, im.shape[1] - side))
        out.append(im[y:y + side, x:x + side])
    return out


def _dermoscopy_like(a: np.ndarray) -> np.ndarray:
    """2x zoom on the centre inside a black circular field of view (a dermatoscope's look)."""
    h, w = a.shape[:2]
    c = a[h // 4: h // 4 + h // 2, w // 4: w // 4 + w // 2]
    z = np.repeat(np.repeat(c, 2, 0), 2, 1)[:h, :w]
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (yy - h / 2) ** 2 + (xx - w / 2) ** 2 <= (0.48 * min(h, w)) ** 2
    return np.where(inside[..., None], z, 0).astype(np.uint8)


def _sets(items: list, held_ids: set[str], rng: np.random.Generator) -> dict[str, list]:
    from PIL import Image

    held = [np.asarray(Image.open(it.path).convert("RGB")) for it in items
            if it.item_id in held_ids]
    sets: dict[str, list] = {
        "held-out blur sigma 3": [u8(blur(a, 3.0)) for a in held],
        "held-out blur sigma 6": [u8(blur(a, 6.0)) for a in held],
        "held-out -3 stops": [stops(a, -3.0) for a in held],
        "held-out +2.5 stops": [stops(a, 2.5) for a in held],
        "dermoscopy-like (held-out, 2x zoom, black circle)": [_dermoscopy_like(a) for a in held],
        "random-noise JPEG": [rng.integers(0, 256, (int(rng.integers(200, 900)),
                                                     int(rng.integers(200, 900)), 3),
                                           dtype=np.uint8) for _ in range(40)],
        "screenshot-like": _screens(30, rng),
        "natural non-skin photo crops": _natural(40, rng),
    }
    for kind, imgs in non_skin_images(10, seed=1).items():
        sets[f"synthetic {kind}"] = imgs
    return sets


def _embed_all(data: Path, cache: Path) -> dict[str, object]:
    from hai_edge.corpus import load_corpus, split_by_group
    from hai_edge.runtime.derm import DermPipeline

    items = load_corpus(data / "pad-ufes-20" / "metadata.csv", "image", group_col="patient_id",
                        id_col="img_id")
    _, held = split_by_group(items, 0.2, 0)
    held_ids = {it.item_id for it in held}
    rng = np.random.default_rng(0)
    rows: list[dict] = []
    embs: list[np.ndarray] = []
    with DermPipeline("derm-demo", heads=[]) as pipe:
        def add(set_name: str, r: object, group: str = "") -> None:
            sc = {c.name.value: c.score for c in r.quality.checks}
            rows.append({"set": set_name, "group": group, **sc})
            embs.append(r.embedding)

        for it in items:
            r = pipe.analyze_path(it.path)[0]
            add("PAD held-out" if it.item_id in held_ids else "PAD train", r, it.group or "")
        for lesion in sorted((Path(__file__).resolve().parents[1]
                              / "hai_edge/demo_data/lesions").glob("*.jpg")):
            add("bundled demo photos", pipe.analyze_path(lesion)[0], lesion.stem)
        for name, imgs in _sets(items, held_ids, rng).items():
            fmt = "JPEG" if "JPEG" in name or "natural" in name else "PNG"
            for a in imgs:
                add(name, pipe.analyze_bytes(_png(a, fmt), f"x.{fmt.lower()}")[0])
    np.savez(cache, emb=np.asarray(embs), rows=json.dumps(rows))
    return {"emb": np.asarray(embs), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--cache", type=Path, default=Path("/tmp/derm-abstain.npz"))
    p.add_argument("--percentile", type=float, default=99.0)
    p.add_argument("--components", type=int, default=16)
    p.add_argument("--write-bundle", type=Path, metavar="DIR")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    if args.cache.is_file():
        z = np.load(args.cache)
        data = {"emb": z["emb"], "rows": json.loads(str(z["rows"]))}
    else:
        data = _embed_all(args.data, args.cache)
    from hai_edge.heads.ood_fit import fit_ood_gate

    emb, rows = data["emb"], data["rows"]
    sets = np.array([r["set"] for r in rows])
    train = sets == "PAD train"
    photo = {k: np.array([r[k] for r in rows]) for k in ("blur", "exposure_over", "not_skin")}
    gate = fit_ood_gate(emb[train], [r["group"] for r, t in zip(rows, train) if t],
                        photo={k: v[train] for k, v in photo.items()},
                        components=args.components, percentile=args.percentile)
    dist = gate.joint.distance(gate.feature_vectors(emb, photo))
    report: dict[str, dict] = {}
    print(f"OOD threshold {gate.threshold:.3f} ({gate.info['threshold_source']})")
    print(f"{'set':<52} {'n':>4} {'OOD':>6} {'block':>6} {'either':>6}  block reasons")
    for name in dict.fromkeys(sets):
        m = sets == name
        sub = [r for r, k in zip(rows, m) if k]
        reports = [q.QualityReport(tuple(_checks_from(r))) for r in sub]
        blocked = np.array([bool(q.blocking_checks(rep)) for rep in reports])
        ood = dist[m] > gate.threshold
        why: dict[str, int] = {}
        for rep in reports:
            for c in q.blocking_checks(rep):
                why[c.name.value] = why.get(c.name.value, 0) + 1
        report[name] = {"n": int(m.sum()), "ood": round(float(ood.mean()), 4),
                        "blocked": round(float(blocked.mean()), 4),
                        "withheld": round(float((ood | blocked).mean()), 4),
                        "withheld_count": int((ood | blocked).sum()), "block_reasons": why,
                        "distance_median": round(float(np.median(dist[m])), 2)}
        r = report[name]
        print(f"{name:<52} {r['n']:>4} {r['ood']:>6.3f} {r['blocked']:>6.3f} "
              f"{r['withheld']:>6.3f}  {why}")
    held = report["PAD held-out"]
    gate = dataclasses.replace(gate, info={
        **gate.info, "false_withhold_heldout": {
            "n": held["n"], "withheld": int(round(held["ood"] * held["n"])), "rate": held["ood"],
            "data": "PAD-UFES-20 photos of held-out patients (split_by_group 0.2, seed 0)"}})
    if args.json:
        args.json.write_text(json.dumps({"threshold": gate.threshold, "sets": report}, indent=1))
    if args.write_bundle:
        from hai_edge.bundle import Bundle
        from hai_edge.heads.bundle_heads import add_head_to_bundle
        from hai_edge.runtime.heads import load_heads

        src = Bundle.load("derm-demo")
        head = dataclasses.replace(load_heads(src, ["malignant"])[0], ood=gate)
        new = add_head_to_bundle(src, head, str(args.write_bundle), overwrite=True)
        print(f"wrote {new.root}")
    return 0


def _checks_from(r: dict) -> list:
    """QualityChecks rebuilt from cached scores (the flags as the runtime would set them)."""
    return [q.QualityCheck(q.CheckName(k), float(v), 0.0, q.Flag.PASS) for k, v in r.items()
            if k in {c.value for c in q.CheckName}]


if __name__ == "__main__":
    sys.exit(main())
