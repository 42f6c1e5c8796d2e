"""Heads and bundles: train a probe on a bundle's embeddings of a labelled CSV, evaluate one,
and write a NEW bundle = bundle + head. The library behind ``hai-edge probe train|eval`` (and the
demo bundle build), so no caller needs the command line.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hai_edge.errors import HaiEdgeError

__all__ = ["ProbeData", "TrainedProbe", "add_head_to_bundle", "evaluate_probe", "train_probe"]


@dataclasses.dataclass(frozen=True)
class ProbeData:
    """Which recordings/photos a probe is trained or evaluated on, and how they are embedded.

    ``bundle`` is a bundle directory, a built-in name or a loaded ``Bundle``; ``data`` a CSV with
    a path column (relative to the CSV) and label/group columns."""

    bundle: Any
    data: str
    label: str
    positive: tuple[str, ...] = ()
    group: str | None = None
    file_column: str | None = None
    backend: str | None = None
    precision: str | None = None
    threads: int | None = None
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class TrainedProbe:
    """What ``train_probe`` wrote: the head (saved to ``head_file``) and the new bundle, if any."""

    head: Any
    head_file: Path
    bundle: Any = None


def _say_skipped(failed: Any, say: Callable[[str], None]) -> None:
    for msg in failed[:5]:
        say(f"skipped: {msg}")


def _stderr(msg: str) -> None:
    print(f"hai-edge: {msg}", file=sys.stderr)


def _embedded_rows(data: ProbeData, bundle: Any) -> Any:
    from hai_edge.heads.probe_train import _require_sklearn, embed_corpus_rows

    _require_sklearn()
    return embed_corpus_rows(bundle, data.data, data.label, data.positive, data.group,
                             data.file_column, data.backend, data.precision, data.threads,
                             progress=sys.stderr.isatty())


def train_probe(data: ProbeData, output: str | Path, *, name: str | None = None,
                labels: tuple[str, ...] = ("negative", "positive"),
                sensitivity: float | None = None, notice: str = "",
                add_to_bundle: str | Path | None = None, overwrite: bool = False,
                say: Callable[[str], None] = _stderr, recipe: str = "auto",
                heldout: str | None = None, allow_degraded: bool = False) -> TrainedProbe:
    """Fit a calibrated linear head (grouped CV, Platt, threshold) and save it to ``output``
    (``.json``); with ``add_to_bundle`` also write bundle + head there (the source is only read).

    When the bundle runs on two or more installed engines (and no ``--backend`` is forced) the
    head is fitted on every engine's embeddings and must pass the decision gate on ``heldout``
    (a CSV like ``data``; default: the training rows): recipe ``auto`` tries ``standard``, then
    ``robust``; the head's ``training["decision_gate"]`` records the rung that passed."""
    from hai_edge.bundle import Bundle
    from hai_edge.heads.probe_train import train_head

    if sensitivity is not None and not 0 < sensitivity <= 1:
        raise HaiEdgeError("--sensitivity must be in (0, 1]")
    if len(labels) != 2:
        raise HaiEdgeError("--labels needs exactly two names: NEG,POS")
    name = name or data.label
    if not name or any(ch in name for ch in "/\\\x00") or name.startswith("."):
        raise HaiEdgeError(f"invalid head name {name!r}")
    out = Path(output)
    if out.suffix.lower() != ".json":
        raise HaiEdgeError(f"{out}: the head file must end in .json")
    if add_to_bundle and Path(add_to_bundle).exists() and not overwrite:
        raise HaiEdgeError(f"{add_to_bundle}: already exists (pass --overwrite to replace)")
    bundle = data.bundle if isinstance(data.bundle, Bundle) else Bundle.load(data.bundle)
    extra = {"bundle": bundle.manifest.name, "embedding_dim": bundle.manifest.embedding_dim,
             "file_column": data.file_column, "group_column": data.group}
    from hai_edge.heads.engine_rows import bundle_engines

    engines = [] if data.backend else bundle_engines(bundle)
    if len(engines) >= 2:
        head = _train_gated(data, bundle, engines, name, (labels[0], labels[1]), sensitivity,
                            notice, extra, recipe, heldout, allow_degraded, say)
    else:
        if recipe not in ("auto", "standard"):
            raise HaiEdgeError(f"--recipe {recipe} needs a bundle with two or more installed "
                               "engines (the recipe fits on every engine's embeddings)")
        rows = _embedded_rows(data, bundle)
        _say_skipped(rows.failed, say)
        head = train_head(rows, name, labels=(labels[0], labels[1]), sensitivity=sensitivity,
                          seed=data.seed, notice=notice, extra_training=extra)
    head.save(out)
    new = None
    if add_to_bundle:
        new = add_head_to_bundle(bundle, head, str(add_to_bundle), overwrite=overwrite)
    return TrainedProbe(head, out, new)


def _train_gated(data: ProbeData, bundle: Any, engines: list[str], name: str,
                 labels: tuple[str, str], sensitivity: float | None, notice: str,
                 extra: dict[str, Any], recipe: str, heldout: str | None, allow: bool,
                 say: Callable[[str], None]) -> Any:
    """The head-recipe ladder: each rung is fitted, then gated; the first that passes wins."""
    from hai_edge.errors import GateError
    from hai_edge.heads.decisions import gate_head_decisions
    from hai_edge.heads.engine_rows import embed_per_engine
    from hai_edge.heads.probe_train import _require_sklearn
    from hai_edge.heads.robust import RECIPES, ROBUST, STANDARD, train_engine_head

    _require_sklearn()
    if recipe != "auto" and recipe not in RECIPES:
        raise HaiEdgeError(f"unknown --recipe {recipe!r} (auto, {', '.join(RECIPES)})")
    rungs = [STANDARD, ROBUST] if recipe == "auto" else [RECIPES[recipe]]

    def embed(csv: str) -> Any:
        return embed_per_engine(bundle, csv, data.label, data.positive, data.group,
                                engines=engines, file_column=data.file_column,
                                threads=data.threads)

    rows = embed(data.data)
    _say_skipped(rows.first.failed, say)
    gate_rows = embed(heldout) if heldout else rows
    where = "held-out rows" if heldout else "training rows (no --heldout given)"
    errors: list[str] = []
    head = None
    for n, rung in enumerate(rungs):
        head = train_engine_head(rows, name, rung, labels=labels, sensitivity=sensitivity,
                                 seed=data.seed, notice=notice, extra_training=extra)
        last = n == len(rungs) - 1
        try:
            head, record = gate_head_decisions(head, gate_rows,
                                               allow_degraded=allow and last, say=say)
        except GateError as exc:
            errors.append(f"recipe {rung.name}: {exc}")
            if last:
                raise GateError(" | ".join(errors), figures=exc.figures) from None
            say(f"recipe {rung.name} failed the decision gate; trying {rungs[n + 1].name}")
            continue
        gate = {**head.training["decision_gate"], "rung": rung.name, "rows": where,
                "rungs_failed": errors}
        return dataclasses.replace(head, training={**head.training, "decision_gate": gate})
    raise AssertionError("unreachable")


def evaluate_probe(data: ProbeData, head: str, *, subgroups: tuple[str, ...] = (),
                   bootstrap: int = 1000, say: Callable[[str], None] = _stderr
                   ) -> tuple[Any, dict[str, Any]]:
    """(the head, its report): recording-level AUROC with a grouped bootstrap CI, sensitivity and
    specificity at its threshold, overall and per subgroup. ``head``: a head of the bundle or a
    head file."""
    from hai_edge.bundle import Bundle
    from hai_edge.heads.probe_train import evaluate_head
    from hai_edge.runtime.heads import load_head_file, load_heads

    bundle = data.bundle if isinstance(data.bundle, Bundle) else Bundle.load(data.bundle)
    if head.lower().endswith(".json") or Path(head).is_file():
        loaded = load_head_file(head)
        if loaded.dim != bundle.manifest.embedding_dim:
            raise HaiEdgeError(f"{head}: a head for {loaded.dim}-d embeddings; the bundle's "
                               f"are {bundle.manifest.embedding_dim}-d")
    else:
        loaded = load_heads(bundle, [head])[0]
    if bootstrap < 0:
        raise HaiEdgeError("--bootstrap must be >= 0")
    rows = _embedded_rows(data, bundle)
    _say_skipped(rows.failed, say)
    return loaded, evaluate_head(loaded, rows, subgroups, bootstrap, data.seed)


def add_head_to_bundle(bundle: Any, head: Any, dest: str, *, overwrite: bool = False,
                       entry: dict[str, Any] | None = None) -> Any:
    """A NEW bundle = ``bundle`` + ``head`` (replacing a head of the same name), written
    atomically by ``write_bundle``; the source bundle is only read. ``entry`` replaces the
    head's own manifest entry, e.g. a learned detector's (``role: detector``, which also
    replaces any detector the bundle had: a bundle has at most one)."""
    from hai_edge.bundle import HeadRole, write_bundle

    file = f"heads/{head.name}.json"
    new_entry = entry if entry is not None else head.manifest_entry(file)
    if new_entry.get("file") != file:
        raise HaiEdgeError(f"head entry must point at {file}")
    is_detector = HeadRole.of(new_entry) is HeadRole.DETECTOR
    files: dict[str, Any] = {n: bundle.root / n for n in bundle.manifest.files}
    files[file] = head.to_json().encode("utf-8")

    def replaced(h: Any) -> bool:
        return h.get("name") == head.name or (is_detector
                                              and HeadRole.of(h) is HeadRole.DETECTOR)

    heads = [h for h in bundle.manifest.heads if not replaced(h)]
    for old in (h for h in bundle.manifest.heads if replaced(h)):
        old_file = old.get("file")
        if old_file and old_file != file and old_file in files:
            del files[old_file]
    heads.append(new_entry)
    manifest = dataclasses.replace(bundle.manifest, heads=tuple(heads), files={}, created="")
    bundle.verify()  # never copy a bundle that was modified since it was loaded
    return write_bundle(dest, manifest, files, overwrite=overwrite)
