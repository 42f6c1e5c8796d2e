"""`hai-edge samples`: the bundled sample set as files, with labels CSVs that load as corpora."""

from __future__ import annotations

from pathlib import Path

import pytest

from hai_edge.cli import main
from hai_edge.corpus import load_corpus


def test_samples_write_loadable_corpora(tmp_path: Path, capsys) -> None:
    dest = tmp_path / "samples"
    assert main(["samples", "-o", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "32 cough recordings" in out and "36 skin-lesion photos" in out
    coughs = load_corpus(dest / "coughs" / "metadata.csv", "audio", group_col="content_group")
    lesions = load_corpus(dest / "lesions" / "metadata.csv", "image", group_col="patient_id")
    assert len(coughs) == 32 and len(lesions) == 36
    assert all(item.path.is_file() and dest in item.path.parents for item in coughs + lesions)
    assert {item.meta["malignant"] for item in lesions} == {"0", "1"}
    assert (dest / "ATTRIBUTION.md").read_text().count("CC") >= 2


def test_samples_never_overwrite_silently(tmp_path: Path, capsys) -> None:
    dest = tmp_path / "samples"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep")
    assert main(["samples", "-o", str(dest)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (dest / "mine.txt").read_text() == "keep"
    assert main(["samples", "-o", str(dest), "--overwrite"]) == 0
    assert not (dest / "mine.txt").exists() and (dest / "coughs" / "metadata.csv").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left behind


@pytest.mark.parametrize("empty", [True, False])
def test_samples_into_new_or_empty_folder(tmp_path: Path, empty: bool) -> None:
    dest = tmp_path / "s"
    if empty:
        dest.mkdir()
    assert main(["samples", "-o", str(dest)]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["ATTRIBUTION.md", "coughs", "lesions"]
