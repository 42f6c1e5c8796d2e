"""``hai-edge report --stress``: the "Robustness under shifts" section from ``hai-edge stress``
output (issue #21's plot per shift in the report), on generated photos and the built-in
derm-demo bundle; no shared data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("scipy")
pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")

from hai_edge.cli import main  # noqa: E402
from tests.test_stress_cli import _image_corpus  # noqa: E402


@pytest.fixture(scope="module")
def stress_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stress")
    data = _image_corpus(root)
    out = root / "stress.json"
    assert main(["stress", "derm-demo", "--data", str(data), "--label", "dx", "--positive", "MEL",
                 "--models", "onnx-int8,tflite-int8", "--teacher", "none", "--shifts",
                 "jpeg,crop", "--severities", "1,3", "--bootstrap", "30", "--seed", "2",
                 "--quiet", "-o", str(out)]) == 0
    return out


def _section(html: str) -> str:
    m = re.search(r'<section id="robustness">(.*?)</section>', html, re.S)
    assert m, "no robustness section"
    return m.group(1)


def test_report_shows_each_shift_table_and_figure(stress_json: Path, tmp_path: Path) -> None:
    html = tmp_path / "r.html"
    assert main(["report", "derm-demo", "--stress", str(stress_json), "-o", str(html), "-q"]) == 0
    page = html.read_text()
    stress = json.loads(stress_json.read_text())
    rep = json.loads(html.with_suffix(".json").read_text())
    assert rep["robustness"][0]["results"] == stress["results"]  # kept as measured
    assert '<a href="#robustness">' in page
    sec = _section(page)
    assert "<h3>derm-demo</h3>" in sec and "Head malignant" in sec
    # one table row per (shift, severity) measured, each AUROC as printed by the stress suite
    rows = stress["results"]["heads"]["malignant"]["shifts"]
    assert [(r["shift"], r["severity"]) for r in rows] == [
        ("jpeg", 1), ("jpeg", 3), ("crop", 1), ("crop", 3)]
    assert sec.count("<tr>") == 1 + len(rows)
    for r in rows:
        auroc = r["scorers"]["onnx-int8"]["auroc"]["value"]
        assert f"{auroc:.3f}" in sec
    # one figure per shift, both students drawn, captioned with the shift's description
    assert sec.count("<svg") == 2
    for shift in stress["shifts"]:
        assert f"<figcaption>{shift['name']}: " in sec
        assert f'aria-label="derm-demo, {shift["name"]}: metric vs severity"' in sec
    assert "excess drop" not in sec  # no reference (no teacher): no excess drop is claimed


def test_report_without_stress_has_no_section(tmp_path: Path) -> None:
    html = tmp_path / "r.html"
    assert main(["report", "derm-demo", "-o", str(html), "-q"]) == 0
    page = html.read_text()
    assert 'id="robustness"' not in page and "#robustness" not in page
    links = re.findall(r'<a href="#([a-z-]+)">', page)  # every link of the nav has its section
    assert links and all(f'<section id="{sid}">' in page for sid in links)
    assert "robustness" not in json.loads(html.with_suffix(".json").read_text())


def test_a_file_that_is_not_stress_output_is_one_line(tmp_path: Path, capsys) -> None:
    other = tmp_path / "bench.json"
    other.write_text(json.dumps({"results": [], "model": "x"}))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for bad, says in ((other, "not `hai-edge stress` output"), (broken, "cannot read stress JSON"),
                      (tmp_path / "missing.json", "cannot read stress JSON")):
        assert main(["report", "derm-demo", "--stress", str(bad), "-o",
                     str(tmp_path / "r.html"), "-q"]) == 2
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1
        assert not (tmp_path / "r.html").exists()
