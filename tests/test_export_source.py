"""``hai_edge.export.source.ExportSource`` (what ``hai-edge export`` loads before building) and the
licence notices of ``hai_edge.export.notice``: fast, no converter needed (torch only where a
checkpoint is loaded)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from hai_edge.bundle.frontend import AudioFrontendSpec
from hai_edge.errors import HaiEdgeError
from hai_edge.export.notice import (
    DEGRADED_NOTICE,
    HAI_DEF_NOTICE,
    HAI_DEF_TERMS_URL,
    REFERENCE_NOTICE,
    licence_notices,
)
from hai_edge.export.source import MAX_CALIB_ROWS, ExportSource, evenly

SPEC = AudioFrontendSpec(n_mels=32, window_s=1.0, hop_s=1.0)


def _media(root: Path, n: int) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = [root / f"{i:02d}.wav" for i in range(n)]
    for p in paths:
        p.write_bytes(b"")  # listed by suffix; the fake student_inputs never decodes them
    return paths


@pytest.fixture
def fake_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """``student_inputs`` that gives each item one row filled with its file number."""

    def student_inputs(spec, items):  # noqa: ANN001, ANN202
        rows = [np.full((1, *spec.input_shape()), float(Path(i.path).stem), np.float32)
                for i in items]
        return np.concatenate(rows) if rows else np.zeros((0, *spec.input_shape()), np.float32)

    fake = types.ModuleType("hai_edge.distill.run")
    fake.student_inputs = student_inputs
    monkeypatch.setitem(sys.modules, "hai_edge.distill.run", fake)


def _ids(x: np.ndarray) -> set[int]:
    return {int(v) for v in x[:, 0, 0, 0]}


def test_from_path_refuses_what_is_not_a_source(tmp_path: Path) -> None:
    with pytest.raises(HaiEdgeError, match="no such run directory or checkpoint"):
        ExportSource.from_path(tmp_path / "nope")
    with pytest.raises(HaiEdgeError, match=r"not a distillation run directory \(no run.json\)"):
        ExportSource.from_path(tmp_path)


def test_evenly_caps_rows_and_keeps_both_ends() -> None:
    x = np.arange(1000)
    assert evenly(x, 5).tolist() == [0, 250, 500, 749, 999]
    assert evenly(x[:3], 5).tolist() == [0, 1, 2]
    assert len(evenly(np.zeros((MAX_CALIB_ROWS + 7, 2)), MAX_CALIB_ROWS)) == MAX_CALIB_ROWS


def test_calibration_corpus_of_a_checkpoint_is_split_into_calibration_and_gate(
        tmp_path: Path, fake_inputs: None) -> None:
    _media(tmp_path / "media", 12)
    src = ExportSource(model=None, spec=SPEC, name="ck", provenance={"checkpoint": "x.pt"})
    got = src.with_calibration(tmp_path / "media")
    cal, held = _ids(got.calibration), _ids(got.heldout)
    assert cal and held and not cal & held and cal | held == set(range(12))
    assert got.provenance == {"checkpoint": "x.pt", "calibration_data": str(tmp_path / "media")}
    assert src.calibration is None and src.provenance == {"checkpoint": "x.pt"}  # a new source


def test_calibration_corpus_of_a_run_never_takes_its_held_out_media(
        tmp_path: Path, fake_inputs: None) -> None:
    paths = _media(tmp_path / "media", 6)
    held = np.zeros((4, *SPEC.input_shape()), np.float32)
    src = ExportSource(model=None, spec=SPEC, name="run", heldout=held,
                       heldout_paths=frozenset(str(p.resolve()) for p in paths[:2]))
    said: list[str] = []
    got = src.with_calibration(tmp_path / "media", said.append)
    assert _ids(got.calibration) == {2, 3, 4, 5}
    assert got.heldout is held  # the run's own held-out rows still gate
    assert said == [f"calibration: 4 item(s) from {tmp_path / 'media'}"]
    everything = dataclasses.replace(src, heldout_paths=frozenset(str(p.resolve()) for p in paths))
    with pytest.raises(HaiEdgeError, match="no items left"):
        everything.with_calibration(tmp_path / "media")


def test_calibration_corpus_needs_two_items(tmp_path: Path, fake_inputs: None) -> None:
    _media(tmp_path / "media", 1)
    with pytest.raises(HaiEdgeError, match="need at least 2 items"):
        ExportSource(model=None, spec=SPEC, name="ck").with_calibration(tmp_path / "media")


def test_build_passes_the_source_and_merges_provenance(monkeypatch: pytest.MonkeyPatch) -> None:
    from hai_edge.export import bundle_builder

    seen: dict[str, object] = {}
    monkeypatch.setattr(bundle_builder, "build_bundle", lambda *a, **kw: seen.update(a=a, kw=kw))
    cal = np.zeros((2, 1))
    src = ExportSource(model="m", spec=SPEC, name="run-name", calibration=cal,
                       provenance={"command": "distill", "data_hash": "abc"})
    src.build("out", options=bundle_builder.BuildOptions(), provenance={"command": "export"})
    assert seen["a"] == ("m", SPEC, "out")
    kw = seen["kw"]
    assert kw["name"] == "run-name" and kw["calibration"] is cal and kw["heldout"] is None
    assert kw["provenance"] == {"command": "export", "data_hash": "abc"}
    src.build("out", options=bundle_builder.BuildOptions(), name="given")
    assert seen["kw"]["name"] == "given"


def test_checkpoint_refusals_are_one_line_errors(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    sd = tmp_path / "sd.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, sd)
    with pytest.raises(HaiEdgeError, match="a state_dict needs 'arch'"):
        ExportSource.from_checkpoint(sd)
    pickled = tmp_path / "module.pt"
    torch.save({"model": torch.nn.Linear(2, 2), "spec": SPEC.to_dict()}, pickled)
    with pytest.raises(HaiEdgeError, match="--trust-checkpoint"):
        ExportSource.from_path(pickled)
    src = ExportSource.from_path(pickled, trust_checkpoint=True)
    assert isinstance(src.model, torch.nn.Linear) and not src.model.training
    assert src.name == "module" and src.spec == SPEC and src.calibration is None
    assert src.provenance == {"checkpoint": str(pickled)}
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(HaiEdgeError, match="not a torch checkpoint"):
        ExportSource.from_checkpoint(garbage, trust_checkpoint=True)


def test_state_dict_checkpoint_rebuilds_the_preset_with_its_front_end(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from hai_edge.distill.students import EmbeddingModel, get_preset

    preset = get_preset("audio-s")
    exported = EmbeddingModel(preset.build(seed=3), None)
    path = tmp_path / "student.pt"
    torch.save({"model": exported.state_dict(), "arch": "audio-s", "name": "s"}, path)
    src = ExportSource.from_checkpoint(path)
    assert isinstance(src.model, EmbeddingModel) and src.spec == preset.frontend
    assert src.name == "s" and src.provenance["student"] == {"arch": "audio-s"}
    x = torch.zeros(1, *preset.input_shape)
    with torch.no_grad():
        assert torch.equal(src.model(x), exported.eval()(x))


def test_licence_notices() -> None:
    prov: dict[str, object] = {"teacher": {"id": "reference:audio", "licence": "Apache-2.0"}}
    said = licence_notices(prov, ["b.onnx"], ["own"], degraded=False)
    assert said.notices == (REFERENCE_NOTICE, "own") and said.notice_file is None
    assert "licence_terms" not in prov
    prov = {"teacher": {"id": "google/hear", "licence": "HAI-DEF terms"}}
    said = licence_notices(prov, ["b.onnx", "a.xml"], ["own", "own"], degraded=True)
    assert said.notices[:2] == ("own", HAI_DEF_NOTICE) and said.notices[-1] == DEGRADED_NOTICE
    assert prov["licence_terms"] == HAI_DEF_TERMS_URL
    text = said.notice_file.decode()
    assert "google/hear" in text and text.index("a.xml") < text.index("b.onnx")


def test_export_source_and_builder_import_without_torch() -> None:
    """Loading the CLI's export helpers and the quantize package must not import a framework."""
    code = (
        "import sys\n"
        "import hai_edge.export.source, hai_edge.export.bundle_builder, hai_edge.quantize\n"
        "import hai_edge.quantize.inspect, hai_edge.evaluation.metrics, hai_edge.export.steps\n"
        "heavy = ('torch', 'onnx', 'openvino', 'litert_torch', 'onnxruntime', 'ai_edge_litert',\n"
        "         'nncf', 'tensorflow')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]", proc.stdout


def test_reference_outputs_of_read_only_inputs_raise_no_warning() -> None:
    """Feature caches are memmaps (read-only): torch must not warn about them during export."""
    import warnings

    import numpy as np

    torch = pytest.importorskip("torch")
    from hai_edge.export.steps import torch_outputs

    x = np.ones((2, 3), np.float32)
    x.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = torch_outputs(torch.nn.Linear(3, 2), x)
    assert out.shape == (2, 2) and not x.flags.writeable


def test_export_defaults_to_the_installed_exporters(capsys) -> None:
    """After `pip install 'hai-edge[demo]'` (no TFLite exporter) `hai-edge export RUN` still
    works: it exports what it can and says which format it skipped and how to add it."""
    from hai_edge.cli.export import _installed_formats

    class Fmt:
        def __init__(self, ok: bool, extra: str) -> None:
            self.ok, self.extra = ok, extra

        def is_available(self) -> bool:
            return self.ok

    got = _installed_formats({"onnx": Fmt(True, "build"), "openvino": Fmt(True, "build"),
                              "tflite": Fmt(False, "export")})
    assert got == ("onnx", "openvino")
    err = capsys.readouterr().err
    assert "skipping tflite" in err and "hai-edge[export]" in err


def test_export_of_a_student_that_never_learned_says_so_first(tmp_path: Path) -> None:
    """The INT8 gate failure of an untrained student names the real cause (the run's report)."""
    import json

    from hai_edge.cli.export import _not_learned
    from hai_edge.distill.fidelity import not_learned_warning

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"schema_version": 1}))
    assert _not_learned(run) is None  # no report yet
    (run / "fidelity.json").write_text(json.dumps({"rows": {"centred_cosine_mean": 0.0011}}))
    said = _not_learned(run)
    assert said and "has not learned its teacher" in said and "0.001" in said
    assert not_learned_warning({"rows": {"centred_cosine_mean": 0.93}}) is None
    assert _not_learned(tmp_path) is None  # a checkpoint or anything else: nothing to say
