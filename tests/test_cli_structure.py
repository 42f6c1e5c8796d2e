"""The command line as a whole: every command module imports and shows in --help, every option
has help, one "[BUNDLE] INPUT..." rule for embed/cough/derm (built-in names included), the same
``modality`` key in their JSON, ``--heads``/``--head``, and one-line errors (exit 2) for a
precision the bundle lacks and for engines that return empty, misshaped or non-finite outputs."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hai_edge.cli
from hai_edge.bundle import Bundle, builtin_bundles, write_bundle
from hai_edge.cli import main
from hai_edge.cli._common import heads_from, split_bundle_and_inputs, with_modality
from hai_edge.cli._main import COMMAND_MODULES, build_parser
from hai_edge.errors import BackendError, HaiEdgeError
from hai_edge.runtime.verify import encode_array, verify_bundle

from ._onnx_models import make_onnx_bundle

needs_builtins = pytest.mark.skipif(
    not {"cough-demo", "derm-demo"} <= set(builtin_bundles()),
    reason="the built-in demo bundles are not installed")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _walk(parser: argparse.ArgumentParser, path: str = "hai-edge"):  # noqa: ANN202
    yield path, parser
    for name, sub in _subcommands(parser).items():
        yield from _walk(sub, f"{path} {name}")


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import soundfile as sf

    t = np.arange(32000) / 16000
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16000)
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(path)
    return path


# ------------------------------------------------------------------------- the parser
def test_every_cli_module_imports_and_every_command_is_in_help() -> None:
    names = [m.name for m in pkgutil.iter_modules(hai_edge.cli.__path__) if m.name != "__main__"]
    for name in names:
        importlib.import_module(f"hai_edge.cli.{name}")
    registered = {m.rsplit(".", 1)[1] for m in COMMAND_MODULES}
    assert registered == {n for n in names if not n.startswith("_")}, \
        "every public hai_edge.cli module is a command module"
    proc = subprocess.run([sys.executable, "-m", "hai_edge.cli", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    commands = _subcommands(build_parser())
    assert {"embed", "info", "backends", "verify", "cough", "probe", "derm"} <= set(commands)
    for command in commands:
        assert f"\n    {command} " in proc.stdout or f"\n    {command}\n" in proc.stdout, command


def test_a_command_module_that_fails_to_import_is_an_error(monkeypatch) -> None:
    import hai_edge.cli._main as cli_main

    monkeypatch.setattr(cli_main, "COMMAND_MODULES",
                        (*COMMAND_MODULES, "hai_edge.cli._no_such_command"))
    with pytest.raises(ModuleNotFoundError):
        cli_main.build_parser()


def test_every_option_and_command_has_help() -> None:
    missing = []
    for path, parser in _walk(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{path} {c.dest}" for c in action._choices_actions if not c.help]
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, missing


def test_heads_and_head_are_one_option() -> None:
    parser = build_parser()
    for command in ("cough", "derm"):
        a = parser.parse_args([command, "x", "--heads", "covid,tb", "--head", "flu"])
        b = parser.parse_args([command, "x", "--head", "covid", "--heads", "tb,flu"])
        assert heads_from(a.heads) == heads_from(b.heads) == ["covid", "tb", "flu"]
        assert heads_from(parser.parse_args([command, "x"]).heads) is None  # all heads
        assert heads_from(parser.parse_args([command, "x", "--heads", ""]).heads) == []  # none


# ----------------------------------------------------------------- [BUNDLE] INPUT...
def test_one_bundle_rule(tmp_path: Path, monkeypatch) -> None:
    bundle = make_onnx_bundle(tmp_path / "b", "audio")
    assert split_bundle_and_inputs(None, [str(bundle), "a.wav"]).bundle == str(bundle)
    assert split_bundle_and_inputs("x", [str(bundle), "a.wav"]).inputs == (str(bundle), "a.wav")
    assert split_bundle_and_inputs(None, ["a.wav", "b.wav"]).bundle is None
    with pytest.raises(HaiEdgeError, match="no INPUT files given after the bundle"):
        split_bundle_and_inputs(None, [str(bundle)])
    assert split_bundle_and_inputs(None, [str(bundle)], inputs_required=False).inputs == ()
    if "cough-demo" in builtin_bundles():
        assert split_bundle_and_inputs(None, ["cough-demo", "a.wav"]).bundle == "cough-demo"
        monkeypatch.chdir(tmp_path)
        (tmp_path / "cough-demo").write_bytes(b"")  # a file of that name here is an input
        assert split_bundle_and_inputs(None, ["cough-demo", "a.wav"]).bundle is None


@needs_builtins
def test_builtin_bundle_names_work_for_cough_embed_derm(tone: Path, photo: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    records = {}
    for command, item in (("cough", tone), ("embed", tone), ("derm", photo)):
        bundle = "derm-demo" if command == "derm" else "cough-demo"
        assert main([command, bundle, str(item), "--json"]) == 0, capsys.readouterr().err
        records[command] = json.loads(capsys.readouterr().out.splitlines()[0])
    assert records["cough"]["bundle"] == "cough-demo" and records["derm"]["bundle"] == "derm-demo"
    assert {k: r["modality"] for k, r in records.items()} == {
        "cough": "audio", "embed": "audio", "derm": "image"}
    assert all(list(r)[:2] == ["input", "modality"] for r in records.values())


@needs_builtins
def test_cough_builtin_name_from_the_shell(tone: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "hai_edge.cli", "cough", "cough-demo", str(tone),
                           "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["bundle"] == "cough-demo"


def test_with_modality_puts_the_key_after_input() -> None:
    assert list(with_modality({"input": "a", "x": 1}, "audio")) == ["input", "modality", "x"]
    assert with_modality({"modality": "image", "input": "a"}, "image") == {
        "input": "a", "modality": "image"}


# ------------------------------------------------------------------- precision fallback
@needs_builtins
@pytest.mark.parametrize(("command", "bundle"), [("cough", "cough-demo"), ("embed", "cough-demo"),
                                                 ("derm", "derm-demo")])
def test_precision_the_bundle_lacks_is_one_line(command: str, bundle: str, tone: Path,
                                                photo: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    item = photo if command == "derm" else tone
    assert main([command, bundle, str(item), "--precision", "fp32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"hai-edge: error: {bundle} has no fp32 model; it has: int8 "
                   "(onnx, openvino, tflite)"]


def test_precision_fallback_on_a_bundle_with_fp32_only(tmp_path: Path) -> None:
    from hai_edge.runtime.backends import select_model

    b = Bundle.load(make_onnx_bundle(tmp_path / "b", "audio"))
    with pytest.raises(HaiEdgeError, match=r"tiny-audio has no int8 model; it has: fp32 \(onnx\)"):
        select_model(b, precision="int8")
    info, entry = select_model(b, precision="fp32")
    assert entry.id == "onnx-fp32" and info.name == "onnxruntime"


# ------------------------------------------------------------------ broken engine output
@dataclasses.dataclass(frozen=True)
class _FakeInfo:
    """A registry row whose engine is a MockBackend answering with ``output``."""

    output: object
    name: str = "onnxruntime"
    extra: str = "onnx"

    @property
    def format(self):  # noqa: ANN201
        from hai_edge.bundle import ModelFormat

        return ModelFormat.ONNX

    def is_available(self) -> bool:
        return True

    def missing(self) -> list[str]:
        return []

    def open(self, path, entry, threads=None):  # noqa: ANN001, ANN201
        from hai_edge.runtime.backends import MockBackend

        return MockBackend(lambda inputs: {"embedding": self.output(inputs)})


@pytest.fixture()
def golden_bundle(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A tiny bundle with golden vectors: 2 inputs and their expected 16-d outputs."""
    src = make_onnx_bundle(tmp_path / "src", "audio")
    b = Bundle.load(src)
    shape = b.manifest.models[0].inputs[0].shape[1:]
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32)
    y = np.random.default_rng(1).normal(size=(2, 16)).astype(np.float32)
    doc = {"items": [{"input": encode_array(v)} for v in x],
           "models": {"onnx-fp32": {"outputs": encode_array(y),
                                    "tolerance": {"max_abs": 1e-4, "min_cosine": 0.9999}}}}
    manifest = dataclasses.replace(b.manifest, golden={"file": "golden.json"}, files={},
                                   created="")
    files = {n: src / n for n in b.manifest.files}
    files["golden.json"] = json.dumps(doc).encode()
    return write_bundle(tmp_path / "golden", manifest, files).root, y


@pytest.mark.parametrize(("kind", "reason"), [
    ("right", ""),
    ("empty", "empty output"),
    ("shape", "output of shape 2x15"),
    ("nan", "non-finite"),
    ("inf", "non-finite"),
])
def test_verify_reports_a_broken_engine_output_as_a_failed_check(
        kind: str, reason: str, golden_bundle, monkeypatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from hai_edge.runtime import backends

    root, y = golden_bundle
    bad = {"right": y, "empty": np.zeros((0,), np.float32), "shape": y[:, :15],
           "nan": np.where(np.arange(16) == 3, np.nan, y), "inf": y + np.inf}[kind]
    monkeypatch.setitem(backends.BACKENDS, "onnxruntime", _FakeInfo(lambda _i: bad))
    report = verify_bundle(Bundle.load(root))
    [check] = report.models
    assert check.status == ("passed" if kind == "right" else "failed")
    assert reason in check.note
    assert main(["verify", str(root)]) == (0 if kind == "right" else 2)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "internal error" not in captured.err
    if kind != "right":
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(
            "hai-edge: error: golden vectors failed: onnx-fp32 on onnxruntime: the engine ")
        assert reason in err[0]
        assert "FAILED" in captured.out or "failed" in captured.out


@pytest.mark.parametrize(("output", "reason"), [
    (np.zeros((0,), np.float32), "empty output"),
    (np.zeros((3, 5), np.float32), "output of shape 3x5"),
    (np.full((2, 16), np.nan, np.float32), "non-finite"),
])
def test_embedder_refuses_a_broken_engine_output(output: np.ndarray, reason: str,
                                                 tmp_path: Path) -> None:
    from hai_edge.runtime import Embedder
    from hai_edge.runtime.backends import MockBackend

    bundle = make_onnx_bundle(tmp_path / "b", "audio")
    shape = Bundle.load(bundle).manifest.models[0].inputs[0].shape[1:]
    x = np.zeros((2, *shape), np.float32)
    good = Embedder(bundle, engine=MockBackend(lambda _i: {"embedding": np.ones((2, 16))}))
    assert good.embed_inputs(x).shape == (2, 16)
    broken = Embedder(bundle, engine=MockBackend(lambda _i: {"embedding": output}))
    with pytest.raises(BackendError, match=reason) as info:
        broken.embed_inputs(x)
    assert "\n" not in str(info.value)
