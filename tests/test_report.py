"""``hai-edge report`` on a tiny real run (fake conv teacher -> tiny image student -> ONNX INT8
bundle -> real benchmark JSON): the JSON numbers against an independent recomputation (numpy
cosines, scikit-learn refits on the recorded folds), the HTML offline in headless Chromium."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("onnx")

from hai_edge.cli import main  # noqa: E402
from hai_edge.distill import students  # noqa: E402
from hai_edge.corpus import load_corpus  # noqa: E402
from hai_edge.distill.store import EmbeddingStore  # noqa: E402
from hai_edge.distill.teacher_embed import embed_corpus  # noqa: E402

from ._distill_fixtures import TINY, ConvTeacher, write_csv  # noqa: E402

SECTION_IDS = ("summary", "provenance", "fidelity", "probe", "label-efficiency", "subgroups",
               "speed", "method")


def _corpus(root: Path, n: int = 60) -> tuple[Path, Path]:
    """Photos whose label (MEL vs NEV) follows their colour, 2 photos per patient; a separate
    labels CSV (other id column name, extra subgroup column) like the shared data's metadata."""
    from PIL import Image

    rng = np.random.default_rng(5)
    root.mkdir(parents=True)
    rows, labels = [], []
    for i in range(n):
        h, w = (int(v) for v in rng.integers(48, 72, size=2))
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        red = bool(rng.random() < 0.45)
        colour = np.array([150, 90, 100]) if red else np.array([110, 95, 140])
        colour = colour + rng.normal(0, 30, 3)
        pattern = 0.6 + 0.4 * np.sin(rng.uniform(2, 12) * xx + rng.uniform(0, 6)) * np.cos(
            rng.uniform(2, 12) * yy)
        img = colour * pattern[..., None] + rng.normal(0, 10, (h, w, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / f"p{i:02d}.png")
        rows.append({"path": f"p{i:02d}.png", "patient_id": f"P{i // 2}"})
        labels.append({"image_name": f"p{i:02d}.png", "diagnosis": "MEL" if red else "NEV",
                       "sex": "FM"[(i // 2) % 2], "age": str(20 + (i * 7) % 60)})
    return write_csv(root / "corpus.csv", rows), write_csv(root / "labels.csv", labels)


def _with_head(src: Path, dest: Path, run: Path, store: Path, labels: Path) -> Path:
    """``src`` + a MEL head fitted on the teacher embeddings of the run's TRAINING items."""
    from sklearn.linear_model import LogisticRegression

    from hai_edge.bundle import Bundle
    from hai_edge.heads.bundle_heads import add_head_to_bundle
    from hai_edge.runtime.heads import Head

    rows = EmbeddingStore(store).load()
    train = set(json.loads((run / "split.json").read_text())["train"])
    mel = {r["image_name"]: r["diagnosis"] == "MEL" for r in csv.DictReader(open(labels))}
    sel = [i for i, (iid, v) in enumerate(zip(rows["item_id"], rows["view"]))
           if str(iid) in train and v == 0]
    x = rows["vector"][sel].astype(np.float64)
    y = np.array([mel[str(rows["item_id"][i])] for i in sel], dtype=int)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    clf = LogisticRegression(class_weight="balanced", max_iter=1000).fit((x - mean) / scale, y)
    head = Head(name="mel", weights=clf.coef_[0], bias=float(clf.intercept_[0]), mean=mean,
                scale=scale, threshold=0.5, labels=("NEV", "MEL"), notice="test head",
                training={"n": len(y), "label": {"column": "diagnosis", "positive": ["MEL"],
                                                 "filters": []}})
    add_head_to_bundle(Bundle.load(src), head, str(dest))
    return dest


@contextlib.contextmanager
def _stdout() -> io.StringIO:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield buf


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from PIL import Image

    from hai_edge.distill.run import DistillConfig, distill

    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp:
        for name, preset in TINY.items():
            mp.setitem(students.STUDENTS, name, preset)
        corpus, labels = _corpus(root / "data")
        items = load_corpus(corpus, "image")
        photos = [np.asarray(Image.open(it.path).convert("RGB")) for it in items]
        teacher = ConvTeacher("image", 24).centre_on(photos)
        teacher.info = dataclasses.replace(teacher.info, notes="demo, not for clinical use")
        embed_corpus(teacher, items, root / "store", views=1, seed=0)
        run = root / "run"
        distill(DistillConfig(data=str(corpus), student="t-image", run_dir=str(run),
                              targets=str(root / "store"), epochs=2, batch_size=8, lr=1e-2,
                              holdout=0.5, seed=0, progress=False, num_threads=1))
        exported = root / "exported"
        assert main(["export", str(run), "-o", str(exported), "--formats", "onnx",
                     "--allow-degraded", "-q"]) == 0
        bundle = _with_head(exported, root / "bundle", run, root / "store", labels)
        with _stdout() as out:
            assert main(["benchmark", str(bundle), "--device", "x86-avx2-kiosk", "--json",
                         "--runs", "5", "--warmup", "1", "--threads", "1"]) == 0
        bench = root / "bench.json"
        bench.write_text(out.getvalue())
        replica = root / "teacher_vs_student.json"
        replica.write_text(json.dumps([{
            "modality": "image", "teacher": "Derm Foundation replica", "teacher_params": 3.8e8,
            "teacher_ms": 1500.0, "student": "onnx-int8", "student_engine": "onnxruntime",
            "student_params": 4224, "student_size_mb": 0.05, "student_ms": 0.5,
            "frontend_ms": 1.5, "ratio_model": 3000.0, "ratio_with_frontend": 750.0}]))
        html = root / "out" / "report.html"
        args = ["report", str(run), "--bundle", str(bundle), "--data", str(labels),
                "--label", "diagnosis", "--positive", "MEL", "--subgroups", "sex,age",
                "--benchmark", str(bench), "--benchmark", str(replica),
                "--label-sizes", "6,10,all", "--repeats", "2", "--bootstrap", "200", "--folds", "3",
                "-o", str(html), "-q"]
        with _stdout() as out:
            assert main(args) == 0
        yield {"root": root, "run": run, "bundle": bundle, "labels": labels, "html": html,
               "rep": json.loads(html.with_suffix(".json").read_text()), "cli": out.getvalue(),
               "args": args}


# ------------------------------------------------------------------------------ recomputation
def _heldout(env: dict) -> dict:
    """Teacher rows, student FP32 (torch) and ONNX INT8 (onnxruntime directly) on the run's
    held-out photos, computed here without the report's code."""
    import onnxruntime as ort
    from PIL import Image

    from hai_edge.distill.run import load_run
    from hai_edge.runtime.frontends import prepare_image

    with pytest.MonkeyPatch.context() as mp:
        for name, preset in TINY.items():
            mp.setitem(students.STUDENTS, name, preset)
        art = load_run(env["run"])
    held = {it.item_id: it for it in art.heldout_items}
    rows = EmbeddingStore(art.meta["targets"]["store"]).load()
    ids = [str(i) for i in rows["item_id"]]
    sel = [i for i, (iid, v) in enumerate(zip(ids, rows["view"])) if iid in held and v == 0]
    train = [i for i, iid in enumerate(ids) if iid not in held]
    x = np.stack([prepare_image(np.asarray(Image.open(held[ids[i]].path).convert("RGB")),
                                art.spec) for i in sel]).astype(np.float32)
    with torch.no_grad():
        student = art.model(torch.from_numpy(x)).numpy().astype(np.float64)
    manifest = json.loads((env["bundle"] / "manifest.json").read_text())
    entry = next(m for m in manifest["models"] if m["id"] == "onnx-int8")
    sess = ort.InferenceSession(str(env["bundle"] / entry["files"][0]),
                                providers=["CPUExecutionProvider"])
    int8 = sess.run(None, {sess.get_inputs()[0].name: x})[0].astype(np.float64)
    return {"items": [ids[i] for i in sel], "teacher": rows["vector"][sel].astype(np.float64),
            "train_mean": rows["vector"][train].astype(np.float32).mean(axis=0).astype(float),
            "student-fp32": student, "onnx-int8": int8}


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _knn(a: np.ndarray, b: np.ndarray, k: int) -> float:
    def nn(x: np.ndarray) -> list[set[int]]:
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        sim = xn @ xn.T
        np.fill_diagonal(sim, -np.inf)
        return [set(np.argsort(-s, kind="stable")[:k].tolist()) for s in sim]

    return float(np.mean([len(p & q) / k for p, q in zip(nn(a), nn(b))]))


def _refit(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, c: float
           ) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(x[train])
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=1000)
    clf.fit(sc.transform(x[train]), y[train])
    return clf.predict_proba(sc.transform(x[test]))[:, 1]


def test_json_matches_an_independent_recomputation(env: dict) -> None:
    from sklearn.metrics import roc_auc_score

    rep, ref = env["rep"], _heldout(env)
    fid = rep["fidelity"]
    comps = {c["id"]: c for c in fid["comparisons"]}
    assert set(comps) == {"student-fp32|teacher", "onnx-int8|teacher", "onnx-int8|student-fp32"}
    assert fid["rows"] == len(ref["items"]) > 20
    for cid, centre in (("student-fp32|teacher", ref["train_mean"]),
                        ("onnx-int8|student-fp32", ref["student-fp32"].mean(axis=0))):
        cand, other = cid.split("|")
        cos = _cos(ref[cand], ref[other])
        ctr = _cos(ref[cand] - centre, ref[other] - centre)
        np.testing.assert_allclose(comps[cid]["values"]["cosine"], cos, atol=2e-6)
        np.testing.assert_allclose(comps[cid]["values"]["centred_cosine"], ctr, atol=2e-6)
        assert comps[cid]["cosine"]["mean"] == pytest.approx(cos.mean(), abs=2e-6)
        assert comps[cid]["cosine"]["p5"] == pytest.approx(np.percentile(cos, 5), abs=2e-6)
        assert comps[cid]["knn5"] == pytest.approx(_knn(ref[cand], ref[other], 5), abs=1e-6)

    # the same figures as the run's own fidelity report (distill computed them independently)
    rows = json.loads((env["run"] / "fidelity.json").read_text())["rows"]
    st = comps["student-fp32|teacher"]
    assert (st["cosine"]["mean"], st["centred_cosine"]["mean"], st["knn5"]) == pytest.approx(
        (rows["cosine_mean"], rows["centred_cosine_mean"], rows["knn5_overlap"]), abs=1e-4)

    # probe: refit on the recorded folds with the recorded C, score with roc_auc_score
    p = rep["probe"]
    labels = {r["image_name"]: r for r in csv.DictReader(open(env["labels"]))}
    items = p["items"]
    y = np.array([labels[i]["diagnosis"] == "MEL" for i in items], dtype=int)
    assert p["y"] == y.tolist() and p["n_positive"] == int(y.sum())
    fold_of = np.array(p["fold_of_item"])
    groups = {i: g for i, g in zip(items, p["groups"])}
    for f in range(p["folds"]):  # grouped: no patient on both sides of any fold
        assert not {groups[i] for i in np.array(items)[fold_of == f]} & {
            groups[i] for i in np.array(items)[fold_of != f]}
    row_of = {iid: r for r, iid in enumerate(ref["items"])}
    oof = {}
    for name in ("teacher", "student-fp32", "onnx-int8"):
        x = ref[name][[row_of[i] for i in items]]
        s = np.full(len(y), np.nan)
        for f, c in enumerate(p["scorers"][name]["chosen_C"]):
            te = np.flatnonzero(fold_of == f)
            s[te] = _refit(x, y, np.flatnonzero(fold_of != f), te, c)
        oof[name] = s
        assert p["scorers"][name]["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-6)
        np.testing.assert_allclose(p["oof_scores"][name], s, atol=1e-5)
    assert p["scorers"]["teacher"]["auroc"] > 0.7  # the colour signal is there

    # the shipped head, exactly as deployed (no refit), on the same held-out items
    from hai_edge.bundle import Bundle
    from hai_edge.runtime.heads import load_heads

    head = load_heads(Bundle.load(env["bundle"]))[0]
    (shipped,) = p["heads"]
    for name in ("teacher", "onnx-int8"):
        prob = head.predict_proba(ref[name][[row_of[i] for i in items]])
        fig = shipped["scorers"][name]
        assert fig["auroc"] == pytest.approx(roc_auc_score(y, prob), abs=1e-6)
        assert fig["sensitivity"] == pytest.approx(np.mean(prob[y == 1] >= 0.5), abs=1e-9)
        assert fig["specificity"] == pytest.approx(np.mean(prob[y == 0] < 0.5), abs=1e-9)

    # grouped bootstrap, as docs/report.md describes it
    g = np.array(p["groups"])
    uniq = np.unique(g)
    rng = np.random.default_rng(rep["generator"]["options"]["seed"])
    draws = []
    for _ in range(p["bootstrap"]["n_boot"]):
        idx = np.concatenate([np.flatnonzero(g == uniq[k]) for k in
                              rng.integers(0, len(uniq), len(uniq))])
        if 0 < y[idx].sum() < len(idx):
            draws.append(roc_auc_score(y[idx], oof["teacher"][idx]))
    lo, hi = np.percentile(draws, [2.5, 97.5])
    t = p["scorers"]["teacher"]
    assert (t["ci_low"], t["ci_high"]) == pytest.approx((lo, hi), abs=1e-6)
    assert t["ci_low"] <= t["auroc"] <= t["ci_high"]

    # label efficiency: each draw refits on its recorded labels and scores the fixed eval fold
    le = rep["label_efficiency"]
    ev = np.array(le["eval"]["items"])
    assert not set(ev) & {i for d in le["draws"] for i in d["train"]}
    assert le["sizes"][-1] == le["pool"]["n"] and le["sizes"][:2] == [6, 10]
    for d in le["draws"][::2]:
        x = ref["student-fp32"][[row_of[i] for i in items]]
        s = _refit(x, y, np.array(d["train"]), ev, d["C"]["student-fp32"])
        assert d["auroc"]["student-fp32"] == pytest.approx(roc_auc_score(y[ev], s), abs=1e-6)
        assert len(d["train"]) == d["n_labels"] and 2 <= y[d["train"]].sum() <= d["n_labels"] - 2
    first = [d["auroc"]["teacher"] for d in le["draws"] if d["n_labels"] == 6]
    assert len(first) == 2
    assert le["curves"]["teacher"][0]["mean"] == pytest.approx(np.mean(first), abs=1e-6)

    # subgroups: AUROC on the subgroup's out-of-fold scores; the highlighted drop is the largest
    sg = rep["subgroups"]["columns"]["sex"]
    best = None
    for v in sg["values"]:
        m = np.array([labels[i]["sex"] == v["value"] for i in items])
        assert v["n_labelled"] == int(m.sum())
        if v.get("auroc"):
            for name, fig in v["auroc"].items():
                assert fig["auroc"] == pytest.approx(roc_auc_score(y[m], oof[name][m]), abs=1e-6)
            for name, drop in v["drop"].items():
                if best is None or drop > best[0]:
                    best = (drop, v["value"], name)
    assert best is not None and sg["largest_drop"]["drop"] == pytest.approx(best[0], abs=1e-9)
    assert (sg["largest_drop"]["value"], sg["largest_drop"]["scorer"]) == best[1:]
    assert {v["value"] for v in rep["subgroups"]["columns"]["age"]["values"]} <= {
        "0-29", "30-44", "45-59", "60-74", "75+"}

    # speed/size from the manifest and the benchmark JSON
    manifest = json.loads((env["bundle"] / "manifest.json").read_text())
    for s in rep["speed"]["sizes"]:
        entry = next(m for m in manifest["models"] if m["id"] == s["model"])
        assert s["size_mb"] == pytest.approx(sum(manifest["files"][f]["size"]
                                                 for f in entry["files"]) / 1e6, abs=1e-6)
    bench = json.loads((env["root"] / "bench.json").read_text())
    got = rep["speed"]["benchmarks"][0]
    assert got["profile"]["id"] == "x86-avx2-kiosk"
    assert [r["p95_ms"][0] for r in got["results"]] == pytest.approx(
        [r["p95_ms"][0] for r in bench["results"]], abs=1e-6)
    assert rep["speed"]["teacher_replica"][0]["ratio_model"] == 3000.0


def test_provenance_notices_and_cli_summary(env: dict) -> None:
    rep = env["rep"]
    prov = rep["provenance"]
    assert prov["teacher"]["id"] == "fake:conv-image"
    # the teacher's own notice reaches the page's banner (here it is only in the teacher's notes)
    assert prov["not_for_clinical_use"] and any("not for clinical use" in n
                                                for n in prov["notices"])
    assert "⚠ " in env["html"].read_text()
    assert prov["data"]["corpus_hash"] == json.loads(
        (env["run"] / "run.json").read_text())["data"]["corpus_hash"]
    assert prov["data"]["labels"]["id_col"] == "image_name"
    assert len(prov["data"]["labels"]["sha256"]) == 64
    assert prov["bundle"]["degraded"] in (True, False)
    assert {"numpy", "scikit-learn", "matplotlib"} <= set(prov["tool_versions"]["report"])
    # every headline figure the CLI printed is the one in the JSON (and on the page)
    page = env["html"].read_text()
    for h in rep["headline"]:
        assert f"{h['label']}: {h['value']}" in env["cli"]
        assert h["value"].replace("&", "&amp;") in page


def test_render_is_deterministic_and_self_contained(env: dict) -> None:
    from hai_edge.report import render

    page = env["html"].read_text()
    import matplotlib

    before = (matplotlib.get_backend(), matplotlib.rcParams["svg.hashsalt"])
    # the page is a function of the JSON alone, byte for byte (seeded, fixed SVG hash salt)
    assert render(json.loads(json.dumps(env["rep"]))) == page
    assert (matplotlib.get_backend(), matplotlib.rcParams["svg.hashsalt"]) == before
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in page
    assert "default-src 'none'" in page
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b", page, re.I)
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)""", page, re.I)  # only in-page anchors
    assert page.count("<svg ") >= 6 and "Okabe" not in page
    # strict JSON next to it (no NaN), written atomically (no temp file left behind)
    text = env["html"].with_suffix(".json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert sorted(p.name for p in env["html"].parent.iterdir()) == ["report.html", "report.json"]


@pytest.mark.skipif(shutil.which("chromium") is None and not Path("/usr/bin/chromium").exists(),
                    reason="Debian chromium is not installed (/usr/bin/chromium)")
def test_html_renders_offline_in_headless_chromium(env: dict, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright missing")
    url = env["html"].resolve().as_uri()
    requests: list[str] = []
    blocked: list[str] = []

    def route(r) -> None:  # noqa: ANN001
        if r.request.url == url:
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 900},
                                      java_script_enabled=False, offline=True)
            ctx.route("**/*", route)
            page = ctx.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url, wait_until="load")
            visible = {sid: page.locator(f"section#{sid}").is_visible() for sid in SECTION_IDS}
            heads = page.locator("h2").all_inner_texts()
            svgs = page.locator("figure svg").count()
            box = page.locator("figure svg").first.bounding_box()
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert requests == [url] and blocked == []
    assert all(visible.values()), visible
    assert {"Provenance", "Fidelity", "Downstream probe", "Label efficiency", "Subgroups",
            "Speed and size"} <= set(heads)
    assert svgs >= 6 and box and box["width"] > 300
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bundle_alone_finds_its_run_and_a_bare_bundle_still_reports(env: dict,
                                                                    tmp_path: Path) -> None:
    from ._onnx_models import make_onnx_bundle

    from hai_edge.report import ReportOptions, make_report, write_report

    with pytest.MonkeyPatch.context() as mp:
        for name, preset in TINY.items():
            mp.setitem(students.STUDENTS, name, preset)
        rep = make_report(str(env["bundle"]), options=ReportOptions(bootstrap=100, repeats=1,
                                                                    label_sizes=("all",)))
    assert rep["provenance"]["run_dir"] == str(env["run"])  # via provenance.run_dir
    assert "probe" not in rep and any("no label" in n for n in rep["notes"])
    bare = make_onnx_bundle(tmp_path / "bare", "image", 8, 0)
    rep = make_report(str(bare))
    assert rep["fidelity"] == {"manifest": {}} and any("no run directory" in n
                                                       for n in rep["notes"])
    html, js = write_report(rep, tmp_path / "bare.html")
    assert '<section id="speed">' in html.read_text() and js.is_file()


def test_without_torch_the_fp32_student_is_the_bundles_fp32_model(env: dict,
                                                                     monkeypatch) -> None:
    from hai_edge.report import ReportOptions, _collect, make_report

    monkeypatch.setattr(_collect, "_have_torch", lambda: False)
    rep = make_report(str(env["run"]), bundle=str(env["bundle"]),
                      options=ReportOptions(subgroups=()))
    student = next(e for e in rep["embedders"] if e["name"] == "student-fp32")
    assert student["source"] == "onnxruntime, bundle model onnx-fp32"
    assert any("torch is not installed" in n for n in rep["notes"])
    got = {c["id"]: c for c in rep["fidelity"]["comparisons"]}
    want = {c["id"]: c for c in env["rep"]["fidelity"]["comparisons"]}
    for cid in ("student-fp32|teacher", "onnx-int8|teacher"):  # ONNX FP32 == torch (parity)
        np.testing.assert_allclose(got[cid]["values"]["cosine"], want[cid]["values"]["cosine"],
                                   atol=1e-4)


@pytest.mark.parametrize("extra, message", [
    (["--label-sizes", "2,all"], "must be >= 4"),
    (["--label-sizes", "many"], "neither a number"),
    (["--label", "nope"], "no column(s) nope"),
    (["--positive", "MEL"], "need --label"),
    (["-o", "report.pdf"], "must be an .html file"),
])
def test_bad_arguments_are_one_line_errors(env: dict, tmp_path: Path, capsys, extra: list,
                                           message: str) -> None:
    args = ["report", str(env["run"]), "--bootstrap", "100", "-q", "-o",
            str(tmp_path / "r.html"), *extra]
    with pytest.MonkeyPatch.context() as mp:
        for name, preset in TINY.items():
            mp.setitem(students.STUDENTS, name, preset)
        assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "r.json").exists()


def test_missing_sources_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path / "nothing"), "-o", str(tmp_path / "r.html")]) == 2
    assert "no such bundle" in capsys.readouterr().err


def test_importing_the_report_package_is_light() -> None:
    code = ("import sys, hai_edge.report, hai_edge.cli.report; "
            "print(sorted(m for m in ('matplotlib', 'sklearn', 'torch', 'scipy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_head_decisions_show_sensitivity_at_fixed_specificity_and_calibration(env: dict) -> None:
    """Issue #18: per head and embedder, sensitivity at 90/95 % specificity with CIs, ECE."""
    from hai_edge.bundle import Bundle
    from hai_edge.evaluation.decisions import ece, sensitivity_at_specificity
    from hai_edge.runtime.heads import load_heads

    p, ref = env["rep"]["probe"], _heldout(env)
    (dec,) = p["head_decisions"]
    assert dec["name"] == "mel" and dec["reference"] == "student-fp32"
    assert {"student-fp32", "onnx-int8"} <= set(dec["embedders"])
    head = load_heads(Bundle.load(env["bundle"]))[0]
    items, y, row_of = p["items"], np.asarray(p["y"]), {i: k for k, i in enumerate(ref["items"])}
    for name, fig in dec["embedders"].items():
        prob = head.predict_proba(ref[name][[row_of[i] for i in items]])
        for sp in (90, 95):
            got, (lo, hi) = fig[f"sens_at_spec{sp}"], fig[f"sens_at_spec{sp}_ci95"]
            assert got == pytest.approx(sensitivity_at_specificity(y, prob, sp / 100), abs=1e-4)
            assert lo is None or lo <= hi
        assert fig["ece"] == pytest.approx(ece(y, prob)[0], abs=1e-4)
        assert sum(r["n"] for r in fig["reliability"]) == len(y)
        assert name == "student-fp32" or fig["flips"] >= 0 <= fig["max_abs_diff"]
    html = env["html"].read_text()
    assert all(s in html for s in ("Head decisions", "sens @ 95 % spec", "ECE",
                                   'aria-label="reliability diagram"'))
