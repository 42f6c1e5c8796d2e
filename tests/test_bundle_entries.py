"""Typed manifest entries (hai_edge.bundle): heads, the detector, provenance and fidelity.

They round-trip key for key (unknown keys kept), the built-in bundles' manifests re-serialise
byte for byte, and a bad entry is refused with one line naming the field.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from hai_edge.bundle import (
    Bundle,
    DetectorEntry,
    DetectorKind,
    Fidelity,
    HeadEntry,
    HeadRole,
    Manifest,
    ModelFidelity,
    Provenance,
    TeacherInfo,
    WindowAlign,
    builtin_bundles,
    detector_entry_of,
    parse_head_entry,
    probe_entries,
    write_bundle,
)
from hai_edge.errors import BundleError

NAMES = ("cough-demo", "derm-demo")


def _raw(name: str) -> dict:
    return json.loads((builtin_bundles()[name] / "manifest.json").read_text(encoding="utf-8"))


def _same_order(a: dict, b: dict) -> bool:
    return a == b and list(a) == list(b)


@pytest.mark.parametrize("name", NAMES)
def test_builtin_manifest_reserialises_byte_for_byte(name: str) -> None:
    text = (builtin_bundles()[name] / "manifest.json").read_text(encoding="utf-8")
    m = Bundle.load(name).manifest  # typed views built and checked on load
    assert json.dumps(m.to_dict(), indent=2) + "\n" == text  # as write_bundle writes it
    assert m.schema_version == 1


@pytest.mark.parametrize("name", NAMES)
def test_every_builtin_entry_round_trips_key_for_key(name: str) -> None:
    raw = _raw(name)
    for i, h in enumerate(raw["heads"]):
        entry = parse_head_entry(h, f"heads[{i}]")
        assert _same_order(entry.to_dict(), h), h.get("name")
        assert type(entry).from_dict(entry.to_dict()) == entry
    prov = Provenance.from_dict(raw["provenance"])
    assert _same_order(prov.to_dict(), raw["provenance"])
    fid = Fidelity.from_dict(raw["fidelity"])
    assert _same_order(fid.to_dict(), raw["fidelity"])
    for model in raw["models"]:
        figures = ModelFidelity.from_dict(model["fidelity"])
        assert _same_order(figures.to_dict(), model["fidelity"])


def test_typed_accessors_on_the_builtin_bundles() -> None:
    cough = Bundle.load("cough-demo", verify=False).manifest
    det = cough.detector_entry()
    assert det is not None and det.kind is DetectorKind.ENERGY_HEAD
    assert det.role is HeadRole.DETECTOR and det.align is WindowAlign.END
    assert det.window_after_s == 0.25 and det.file == "heads/cough-detector.json"
    assert det.labels == ("other", "cough") and det.energy_params == {}
    [covid] = cough.head_entries()
    assert covid.name == "covid-demo" and covid.role is HeadRole.PROBE
    assert covid.labels == ("negative", "positive") and 0 < covid.threshold < 1
    assert covid.file_summary()["calibration"]["kind"] == "platt"
    # manifest order (the detector was re-added after the probe when it was retrained)
    assert [e.name for e in cough.all_head_entries()] == [h["name"] for h in cough.heads]
    assert sorted(e.name for e in cough.all_head_entries()) == ["cough-detector", "covid-demo"]
    prov = cough.provenance_info()
    assert prov.teacher is not None and prov.teacher.is_reference and not prov.teacher.is_hai_def
    assert prov.teacher.licence.startswith("reference-demo")
    assert prov.data_hash == cough.provenance["data_hash"] and prov.tool_versions["onnx"]
    assert prov.calibration["n"] == 256 and "quantization" in prov.extra
    fid = cough.fidelity_info()
    assert not fid.is_degraded and fid.int8_gate["passed"] and fid.overrides == ()
    for e in cough.models:
        assert e.fidelity_info().mean_cosine >= 0.99 and e.fidelity_info().passed is True
    derm = Bundle.load("derm-demo", verify=False).manifest
    assert derm.detector_entry() is None and [h.name for h in derm.head_entries()] == ["malignant"]


def test_constructed_entries_round_trip_and_unknown_keys_are_kept() -> None:
    probe = HeadEntry(name="flu", kind="logistic", file="heads/flu.json", input="embedding",
                      labels=("no", "yes"), threshold=0.3, calibration={"kind": "none"},
                      training={"n": 10}, notice="research use only",
                      extra={"future_field": [1, 2]})
    assert HeadEntry.from_dict(probe.to_dict()) == probe
    assert list(probe.to_dict())[-1] == "future_field"
    det = DetectorEntry(kind=DetectorKind.ENERGY, name="ev", params={"on_db": 20.0})
    assert det.to_dict() == {"name": "ev", "role": "detector", "kind": "energy",
                             "params": {"on_db": 20.0}}
    assert DetectorEntry.from_dict(det.to_dict()) == det and det.window_after_s == 0.25
    teacher = TeacherInfo(id="google/hear", licence="HAI-DEF", extra={"notes": "x"})
    assert teacher.is_hai_def and TeacherInfo.from_dict(teacher.to_dict()) == teacher
    prov = Provenance(teacher=teacher, data_hash="ab", tool_versions={"onnx": "1"},
                      extra={"calibration_data": "/x"})
    assert Provenance.from_dict(prov.to_dict()) == prov
    fid = Fidelity(degraded=True, overrides=("int8_gate",), extra={"new_gate": {"passed": 1}})
    assert Fidelity.from_dict(fid.to_dict()) == fid and fid.is_degraded
    mf = ModelFidelity(mean_cosine=0.99, passed=True, parity={"max_abs_diff": 1e-5})
    assert ModelFidelity.from_dict(mf.to_dict()) == mf
    # an explicit probe role and nulls survive too; absent fields stay absent
    h = {"role": "head", "name": "a", "kind": "logistic", "notice": None}
    assert _same_order(HeadEntry.from_dict(h).to_dict(), h)
    back = HeadEntry.from_dict(h)
    assert back.notice is None and "labels" not in back.to_dict()


def test_manifest_keeps_unknown_top_level_keys_and_takes_typed_heads() -> None:
    d = _raw("derm-demo")
    d["future_section"] = {"a": 1}
    d["heads"][0]["future_field"] = "kept"
    m = Manifest.from_dict(copy.deepcopy(d))
    signer = {"signer": d["signer"]} if "signer" in d else {}  # built-in bundles are signed
    assert m.extra == {**signer, "future_section": {"a": 1}}
    assert _same_order(m.to_dict(), d)
    entry = m.head_entries()[0]
    ood = {"ood": d["heads"][0]["ood"]} if "ood" in d["heads"][0] else {}  # the abstention gate
    assert entry.extra == {**ood, "future_field": "kept"}
    # typed entries given to the constructor are stored as their JSON
    m2 = dataclasses.replace(m, heads=(entry,))
    assert m2.heads == (entry.to_dict(),) and m2.head_entries() == (entry,)


def test_one_parser_for_raw_heads_lists() -> None:
    heads = [{"name": "covid", "kind": "logistic"},
             {"name": "ev", "role": "detector", "kind": "energy", "params": {}}]
    assert [e.name for e in probe_entries(heads)] == ["covid"]
    assert detector_entry_of(heads) == DetectorEntry(kind=DetectorKind.ENERGY, name="ev",
                                                     params={})
    assert detector_entry_of(heads[:1]) is None
    assert HeadRole.of(heads[0]) is HeadRole.PROBE and HeadRole.of(heads[1]) is HeadRole.DETECTOR


def _det(d: dict) -> dict:
    return next(h for h in d["heads"] if h.get("role") == "detector")


def _probe(d: dict) -> dict:
    return next(h for h in d["heads"] if h.get("role") is None)


BAD = [
    (lambda d: _probe(d).update(role="teacher"), r"heads\[{p}\]\.role is 'teacher'"),
    (lambda d: _probe(d).update(threshold=1.5), r"heads\[{p}\]\.threshold must be a finite"),
    (lambda d: _probe(d).update(labels=["only-one"]), r"heads\[{p}\]\.labels must be two"),
    (lambda d: _probe(d).pop("kind"), r"heads\[{p}\] is missing required field 'kind'"),
    (lambda d: _probe(d).update(name=""), r"heads\[{p}\]\.name '' is not a valid head name"),
    (lambda d: _probe(d).update(file="../x.json"), r"heads\[{p}\]\.file file name .* escapes"),
    (lambda d: _probe(d).update(file="heads/gone.json"), r"heads\[{p}\] \(covid-demo\): its file "
                                                          r"'heads/gone.json' is not listed"),
    (lambda d: _probe(d).update(calibration="platt"), r"heads\[{p}\]\.calibration has the wrong"),
    (lambda d: _det(d).update(kind="energy_mlp"), r"heads\[{d}\]: event detector kind "
                                                  r"'energy_mlp' .*upgrade hai-edge"),
    (lambda d: _det(d).update(kind=["energy"]), r"heads\[{d}\]: event detector kind \['energy'\]"),
    (lambda d: _det(d).update(align="centre"), r"heads\[{d}\]: align 'centre' is not supported"),
    (lambda d: _det(d).update(after_s="soon"), r"heads\[{d}\]\.after_s has the wrong type"),
    (lambda d: _det(d).update(params=[1]), r"heads\[{d}\]\.params has the wrong type"),
    (lambda d: _det(d).pop("file"), r"heads\[{d}\] is missing required field 'file'"),
    (lambda d: d["heads"].append(dict(_det(d), name="second")), r"more than one event detector"),
    (lambda d: d["provenance"].update(teacher="hear"), r"provenance\.teacher has the wrong type"),
    (lambda d: d["provenance"]["teacher"].update(id=7), r"provenance\.teacher\.id has the wrong"),
    (lambda d: d["provenance"]["tool_versions"].update(onnx=1), r"provenance\.tool_versions "
                                                                r"must map names to version"),
    (lambda d: d["provenance"].update(data_hash=["ab"]), r"provenance\.data_hash has the wrong"),
    (lambda d: d["fidelity"].update(degraded="no"), r"fidelity\.degraded has the wrong type"),
    (lambda d: d["fidelity"].update(overrides="x"), r"fidelity\.overrides has the wrong type"),
    (lambda d: d.update(provenance=[]), r"manifest: provenance must be an object"),
]


@pytest.mark.parametrize("change,message", BAD)
def test_bad_entries_are_refused_with_one_line_naming_the_field(change, message: str) -> None:
    d = _raw("cough-demo")
    where = {"p": d["heads"].index(_probe(d)), "d": d["heads"].index(_det(d))}  # either order
    message = message.replace("{p}", str(where["p"])).replace("{d}", str(where["d"]))
    change(d)
    with pytest.raises(BundleError, match=message) as exc:
        Manifest.from_dict(d)
    assert "\n" not in str(exc.value) and str(exc.value).startswith("manifest: ")


def test_bad_model_figures_are_refused_when_read(tmp_path: Path) -> None:
    d = _raw("cough-demo")
    d["models"][0]["fidelity"]["mean_cosine"] = "high"
    e = Manifest.from_dict(d).models[0]
    with pytest.raises(BundleError, match=r"model onnx-int8\.fidelity\.mean_cosine has the wrong"):
        e.fidelity_info()


def test_a_bad_entry_in_a_bundle_on_disk_names_the_bundle(tmp_path: Path) -> None:
    import shutil

    dest = tmp_path / "b"
    shutil.copytree(builtin_bundles()["cough-demo"], dest)
    d = json.loads((dest / "manifest.json").read_text())
    _probe(d)["threshold"] = -0.1
    (dest / "manifest.json").write_text(json.dumps(d))
    (dest / "manifest.sig").unlink()  # signed: an edited manifest is refused for that first
    index = d["heads"].index(_probe(d))
    with pytest.raises(BundleError, match=rf"heads\[{index}\]\.threshold") as exc:
        Bundle.load(dest, verify=False)
    assert str(exc.value).startswith(str(dest)) and "\n" not in str(exc.value)


def test_write_bundle_keeps_unknown_keys_but_not_a_signer_record(tmp_path: Path) -> None:
    src = Bundle.load("derm-demo")
    m = dataclasses.replace(src.manifest, files={}, created="",
                            extra={"future_section": [1], "signer": {"key_id": "x"}})
    files = {n: src.root / n for n in src.manifest.files}
    out = write_bundle(tmp_path / "b", m, files).manifest
    assert out.extra == {"future_section": [1]}
    assert Bundle.load(tmp_path / "b").manifest.extra == {"future_section": [1]}
