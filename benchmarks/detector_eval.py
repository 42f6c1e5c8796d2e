"""Cough detector on real held-out recordings, per sound type (issue #17).

    PYTHONPATH=. python benchmarks/detector_eval.py [--data ../shared/data] [--bundle cough-demo]
        [--cache /tmp/hai-detector-cache] [--scenes 60] [--json out.json]
        [--train] [--install DEST_BUNDLE_DIR]

Clips and split: ``hai_edge.heads.detector_data`` (held out by participant / speaker / group).
Each held-out clip is analysed alone in a quiet bed; a detector *alarms* on a clip when it
reports at least one cough event. Cough recall = cough clips with an alarm / cough clips;
specificity of a type = its clips without an alarm / its clips; 95% Wilson intervals. Event F1:
``cough_scenes`` scenes (6 segments, half coughs) built only from held-out clips, scored as in
``cough_scenes.score_events``; 95% interval from 1000 bootstrap resamples of the scenes.

Detectors compared: the energy baseline (every candidate is an event), the bundle's current
``energy_head`` detector and, with ``--train``, a head retrained on the training split
(``hai_edge.heads.detector_real``). Verification follows ``VerifiedDetector.verify`` exactly
(one window per model call, the head's calibrated probability against its threshold).
``--install DIR`` writes the bundle + the retrained detector head to DIR (a new bundle; every
other file unchanged).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of k successes in n."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


class Verifier:
    """Energy candidates of an audio, each with its single-window embedding (cached per
    window), scored by any number of heads exactly as ``VerifiedDetector.verify`` does."""

    def __init__(self, emb: Any, after_s: float) -> None:
        from hai_edge.runtime.events import EnergyDetector

        self.emb, self.after_s = emb, after_s
        self.spec = emb.bundle.manifest.preprocessing
        self.energy = EnergyDetector(self.spec.sample_rate)

    def candidates(self, audio: np.ndarray) -> tuple[list[Any], np.ndarray]:
        from hai_edge.runtime.events_learned import verification_window
        from hai_edge.runtime.frontends import window_features

        cands = self.energy.detect(audio)
        z = [self.emb.embed_inputs(window_features(
            verification_window(audio, audio.size, c.end_s, self.after_s, self.spec)[None],
            self.spec))[0] for c in cands]
        return cands, (np.asarray(z) if z else np.zeros((0, 1), dtype=np.float32))


def _kept(head: Any, z: np.ndarray) -> np.ndarray:
    if head is None:
        return np.ones(len(z), dtype=bool)
    if not len(z):
        return np.zeros(0, dtype=bool)
    p = np.array([float(head.predict_proba(z[i : i + 1])[0]) for i in range(len(z))])
    return p >= head.threshold


def eval_clips(held: list[Any], ver: Verifier, heads: dict[str, Any]) -> dict[str, Any]:
    """Per sound type (and per channel): alarms per detector on held-out clips."""
    from hai_edge.heads.detector_data import clip_scene

    alarms: dict[str, dict[tuple[str, str], list[int]]] = {n: defaultdict(list) for n in heads}
    people: dict[str, dict[str, set]] = {n: defaultdict(set) for n in heads}
    for i, clip in enumerate(held):
        audio, _, _ = clip_scene(clip)
        _, z = ver.candidates(audio)
        for name, head in heads.items():
            a = int(bool(np.any(_kept(head, z))))
            chan = "8k" if clip.band_limited else "wide"
            for key in ((clip.sound.value, "all"), (clip.sound.value, chan),
                        (clip.sound.value, clip.source)):
                alarms[name][key].append(a)
            if a and clip.source == "coswara":
                people[name][clip.sound.value].add(clip.group)
        if (i + 1) % 300 == 0:
            print(f"  clips {i + 1}/{len(held)}", file=sys.stderr, flush=True)
    out: dict[str, Any] = {}
    for name in heads:
        rows = {}
        for (sound, part), a in sorted(alarms[name].items()):
            k = sum(a) if sound == "cough" else len(a) - sum(a)
            lo, hi = wilson(k, len(a))
            rows[f"{sound}/{part}"] = {"metric": "recall" if sound == "cough" else "specificity",
                                       "k": k, "n": len(a), "rate": round(k / len(a), 4),
                                       "ci95": [round(lo, 4), round(hi, 4)]}
        n_people = len({c.group for c in held if c.source == "coswara"})
        rows["coswara_participants_with_alarm"] = {
            s: f"{len(g)}/{n_people}" for s, g in sorted(people[name].items())}
        out[name] = rows
    return out


def eval_scenes(held: list[Any], ver: Verifier, heads: dict[str, Any], n_scenes: int,
                seed: int = 1) -> dict[str, Any]:
    from hai_edge.heads.cough_scenes import make_scenes, score_events
    from hai_edge.heads.detector_data import load_clip, scene_clips

    sclips, lookup = scene_clips(held)
    scenes = make_scenes(sclips, n_scenes, seed, load=lambda p: load_clip(lookup[str(p)]),
                         prefix="heldout")
    events: dict[str, list[list[tuple[float, float]]]] = {n: [] for n in heads}
    for sc in scenes:
        cands, z = ver.candidates(sc.audio)
        for name, head in heads.items():
            keep = _kept(head, z)
            events[name].append([(c.start_s, c.end_s) for c, k in zip(cands, keep) if k])
    rng = np.random.default_rng(seed)
    boots = [rng.integers(0, len(scenes), len(scenes)) for _ in range(1000)]
    out: dict[str, Any] = {"scenes": n_scenes, "audio_s": round(
        sum(sc.audio.size for sc in scenes) / 16000, 1)}
    for name in heads:
        res = score_events(scenes, events[name])
        f1s = [score_events([scenes[j] for j in b], [events[name][j] for j in b])["f1"]
               for b in boots]
        res["f1_ci95"] = [round(float(np.percentile(f1s, 2.5)), 4),
                          round(float(np.percentile(f1s, 97.5)), 4)]
        out[name] = res
    return out


def table(clips: dict[str, Any], scenes: dict[str, Any]) -> str:
    names = list(clips)
    lines = ["| held-out clips | metric | " + " | ".join(names) + " |",
             "|---|---|" + "---:|" * len(names)]
    keys = [k for k in clips[names[0]] if k.endswith("/all")]
    keys = sorted(keys, key=lambda k: (k != "cough/all", k))
    keys += sorted(k for k in clips[names[0]] if "/" in k and not k.endswith("/all"))
    for k in keys:
        r0 = clips[names[0]][k]
        cells = [f"{r['rate']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] ({r['k']}/{r['n']})"
                 for r in (clips[n][k] for n in names)]
        lines.append(f"| {k.replace('/all', '')} | {r0['metric']} | " + " | ".join(cells) + " |")
    cells = [f"{scenes[n]['f1']:.3f} [{scenes[n]['f1_ci95'][0]:.3f}, {scenes[n]['f1_ci95'][1]:.3f}]"
             f" (P {scenes[n]['precision']:.3f}, R {scenes[n]['recall']:.3f})" for n in names]
    lines.append(f"| scenes ({scenes['scenes']}) | event F1 | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    p.add_argument("--bundle", default="cough-demo")
    p.add_argument("--cache", type=Path, default=Path("/tmp/hai-detector-cache"))
    p.add_argument("--scenes", type=int, default=60)
    p.add_argument("--train", action="store_true", help="retrain the head on the training split")
    p.add_argument("--head", type=Path, help="also evaluate this detector head file")
    p.add_argument("--install", type=Path, help="write bundle + retrained detector here")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from hai_edge.bundle import Bundle, builtin_bundles
    from hai_edge.heads.detector_data import detector_clips, stable_unit
    from hai_edge.runtime import Embedder
    from hai_edge.runtime.heads import load_head_entry

    bundle = Bundle.load(builtin_bundles().get(args.bundle, args.bundle))
    det_entry = next(h for h in bundle.manifest.heads if h.get("role") == "detector")
    after_s = float(det_entry.get("after_s", 0.25))
    old = load_head_entry(bundle, {"kind": "logistic", **{
        k: det_entry[k] for k in ("name", "file", "threshold", "labels") if k in det_entry}})
    clips = detector_clips(args.data)
    held = [c for c in clips if c.held_out]
    heads: dict[str, Any] = {"energy only": None, f"{args.bundle} detector (before)": old}
    if args.train or args.install:
        from hai_edge.heads.detector_real import train_real_detector

        train = [c for c in clips if not c.held_out
                 and not (c.source == "fsdd" and stable_unit(c.item_id) < 0.5)]
        new = train_real_detector(bundle, train, after_s=after_s, cache=args.cache)
        new.save(args.cache / "cough-detector.json")
        print(f"saved {args.cache / 'cough-detector.json'}", file=sys.stderr, flush=True)
        heads["retrained on real negatives"] = new
        if args.install:
            install(bundle, new, args.install)
    if args.head:
        from hai_edge.runtime.heads import load_head_file

        heads[f"head {args.head.name}"] = load_head_file(args.head)
    with Embedder(bundle, None, threads=1, batch_size=1) as emb:
        ver = Verifier(emb, after_s)
        res_clips = eval_clips(held, ver, heads)
        res_scenes = eval_scenes(held, ver, heads, args.scenes)
    print(table(res_clips, res_scenes))
    if args.json:
        args.json.write_text(json.dumps({"clips": res_clips, "scenes": res_scenes}, indent=1))
    return 0


def install(bundle: Any, head: Any, dest: Path) -> None:
    """Bundle + the retrained detector head -> a new bundle at ``dest``."""
    from hai_edge.heads.bundle_heads import add_head_to_bundle
    from hai_edge.heads.detector_train import detector_entry

    entry = detector_entry(f"heads/{head.name}.json", head.threshold)
    add_head_to_bundle(bundle, head, str(dest), entry=entry, overwrite=True)
    print(f"wrote {dest}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
