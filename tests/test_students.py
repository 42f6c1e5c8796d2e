"""Student presets: shapes, size/MAC budgets, the folded export head, and ONNX (dynamo) parity."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hai_edge.bundle import Modality  # noqa: E402
from hai_edge.errors import HaiEdgeError  # noqa: E402
from hai_edge.distill.students import (  # noqa: E402
    STUDENTS,
    count_params_and_macs,
    get_preset,
)
from hai_edge.distill.students._nets import DistillNet, EmbeddingModel  # noqa: E402
from hai_edge.runtime.frontends import AudioFrontendSpec, ImageFrontendSpec  # noqa: E402

# budgets from the issue: audio <= 1.5 MB INT8 and ~20-60 MMACs; image <= 4 MB INT8, 50-150 MMACs
BUDGETS = {Modality.AUDIO: (1_200_000, 15e6, 65e6), Modality.IMAGE: (2_500_000, 40e6, 160e6)}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small tensors: one torch thread is faster than two, and far faster on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics/affines (fresh BNs are identity maps; zero-init gammas would
    switch residual branches off), so parity checks exercise every layer."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)


def test_registry_rows_are_consistent() -> None:
    assert {"audio-s", "audio-m", "image-s", "image-m"} <= set(STUDENTS)
    for name, p in STUDENTS.items():
        assert p.name == name
        kind = AudioFrontendSpec if p.modality is Modality.AUDIO else ImageFrontendSpec
        assert isinstance(p.frontend, kind)
        assert p.input_shape == tuple(p.frontend.input_shape())
        assert p.to_dict()["activation"] in ("relu", "relu6")
    assert STUDENTS["audio-s"].input_shape == (1, 64, 200)
    with pytest.raises(HaiEdgeError, match="unknown student preset"):
        get_preset("audio-xxl")


@pytest.mark.parametrize("name", sorted(STUDENTS))
def test_preset_shapes_and_budgets(name: str) -> None:
    p = STUDENTS[name]
    net = p.build(seed=0).eval()
    x = torch.randn(2, *p.input_shape)
    assert net(x).shape == (2, p.dim)
    exported = EmbeddingModel(net, DistillNet(net, 512).head)
    assert exported(x).shape == (2, 512)
    params, macs = count_params_and_macs(exported, p.input_shape)
    max_params, min_macs, max_macs = BUDGETS[p.modality]
    assert params <= max_params, f"{name}: {params} params"
    assert min_macs <= macs <= max_macs, f"{name}: {macs / 1e6:.1f} MMACs"
    # nothing that is slow in INT8 (HardSwish, HardSigmoid, SiLU, GELU)
    bad = (torch.nn.Hardswish, torch.nn.Hardsigmoid, torch.nn.SiLU, torch.nn.GELU)
    assert not [m for m in net.modules() if isinstance(m, bad)]


def test_build_is_deterministic_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = STUDENTS["audio-s"].build(seed=7).state_dict()
    b = STUDENTS["audio-s"].build(seed=7).state_dict()
    c = STUDENTS["audio-s"].build(seed=8).state_dict()
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_count_params_and_macs_by_hand() -> None:
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Flatten(),
                          nn.Linear(8 * 5 * 5, 4))
    params, macs = count_params_and_macs(model, (3, 10, 10))
    assert params == (3 * 8 * 9 + 8) + (8 * 9 + 8) + (200 * 4 + 4)
    assert macs == 25 * 8 * 3 * 9 + 25 * 8 * 9 + 200 * 4


def test_export_model_folds_projection_and_denormalisation() -> None:
    p = STUDENTS["audio-s"]
    net = DistillNet(p.build(seed=1), 40)
    _randomise_bn(net)
    with torch.no_grad():
        net.head.shift.copy_(torch.linspace(-1, 1, 40))
        net.head.scale.fill_(2.5)
    net.eval()
    x = torch.randn(3, *p.input_shape)
    with torch.no_grad():
        want = net.denorm(net(x))
        got = EmbeddingModel(net.student, net.head)(x)
        own = EmbeddingModel(net.student, None)(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(own, net.student(x), rtol=1e-6, atol=1e-6)
    assert own.shape == (3, p.dim)


@pytest.mark.parametrize("name", ["audio-s", "image-s"])
def test_preset_exports_to_onnx_and_matches_torch(name: str, tmp_path) -> None:
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    p = STUDENTS[name]
    net = DistillNet(p.build(seed=0), 512)
    _randomise_bn(net, seed=1)
    model = EmbeddingModel(net.student, net.head).eval()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, *p.input_shape))
                         .astype(np.float32))
    program = torch.onnx.export(model, (x,), dynamo=True, input_names=["input"],
                                output_names=["embedding"],
                                dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = tmp_path / f"{name}.onnx"
    program.save(str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x3 = torch.cat([x, -x[:1]])  # a batch size other than the traced one
    got = sess.run(None, {"input": x3.numpy()})[0]
    with torch.no_grad():
        want = model(x3).numpy()
    assert got.shape == (3, 512)
    assert np.max(np.abs(got - want)) < 1e-4
