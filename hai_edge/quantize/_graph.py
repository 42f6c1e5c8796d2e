"""Backend-neutral graph logic: which ops are the float front end, which layers are sensitive.

Every backend describes its model as an :class:`OpGraph` (op names, types, the tensors they read
and write, whether the exporter tagged them with the front-end module path). The algorithms here
only see that description, so the front-end rule and the per-layer error ranking are written once
for onnxruntime, NNCF/OpenVINO and ai-edge-quantizer (NNCF's algorithm/backend split).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Op", "OpGraph", "find_frontend_scope", "rank_sensitive_ops"]

# Op types whose own output error is meaningless to rank (pure data movement / shape ops).
_SHAPE_OPS = frozenset(t.lower() for t in (
    "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Slice", "Concat", "Pad",
    "Gather", "Shape", "Constant", "Identity", "Parameter", "Result", "Convert", "Split",
    "StridedSlice", "ShapeOf", "QuantizeLinear", "DequantizeLinear", "FakeQuantize", "QUANTIZE",
    "DEQUANTIZE", "RESHAPE", "TRANSPOSE", "PAD", "SLICE", "SQUEEZE", "CONCATENATION",
    "STRIDED_SLICE", "GATHER",
))


@dataclasses.dataclass(frozen=True)
class Op:
    name: str
    type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    frontend: bool = False  # tagged with the front-end module path by the exporter


@dataclasses.dataclass
class OpGraph:
    """Ops in topological order (as the file stores them)."""

    ops: list[Op]

    def producer(self) -> dict[str, Op]:
        return {t: op for op in self.ops for t in op.outputs}

    def ancestors(self, names: Iterable[str]) -> set[str]:
        """The named ops and every op they depend on."""
        prod = self.producer()
        by_name = {op.name: op for op in self.ops}
        todo = [by_name[n] for n in names if n in by_name]
        seen: set[str] = set()
        while todo:
            op = todo.pop()
            if op.name in seen:
                continue
            seen.add(op.name)
            todo.extend(prod[t] for t in op.inputs if t in prod)
        return seen

    def frontend_ops(self) -> list[str]:
        """Tagged front-end ops plus everything upstream of them ("leading ops"), in order."""
        keep = self.ancestors(op.name for op in self.ops if op.frontend)
        return [op.name for op in self.ops if op.name in keep]

    def frontend_boundary(self) -> list[str]:
        """Tensors written by front-end ops and read by other ops: the front end's outputs."""
        fe = set(self.frontend_ops())
        produced = {t for op in self.ops if op.name in fe for t in op.outputs}
        return sorted({t for op in self.ops if op.name not in fe for t in op.inputs if t in produced})

    def excluded_ops(self, frontend: Sequence[str], requested: Iterable[str],
                     quantize_frontend: bool = False) -> list[str]:
        """Ops every quantizer keeps float: the front end (unless forced into INT8 for a debug
        run) plus the requested names that exist in this graph, in order, without repeats."""
        names = {op.name for op in self.ops}
        extra = [n for n in requested if n in names]
        return list(dict.fromkeys(([] if quantize_frontend else list(frontend)) + extra))

    def ops_before(self, tensors: Iterable[str]) -> list[str]:
        """Ops producing ``tensors`` and everything upstream (maps a boundary onto another graph)."""
        prod = self.producer()
        keep = self.ancestors(prod[t].name for t in tensors if t in prod)
        return [op.name for op in self.ops if op.name in keep]


def find_frontend_scope(model: Any, declared: str | None = None) -> str | None:
    """Module path of an in-graph front end: ``declared``; else ``model.frontend_scope`` (str);
    else the first submodule named ``frontend`` (e.g. ``"frontend"`` or ``"student.frontend"``).
    Works on any object with ``named_modules`` (torch is not imported here)."""
    if declared:
        return declared
    attr = getattr(model, "frontend_scope", None)
    if isinstance(attr, str) and attr:
        return attr
    named = getattr(model, "named_modules", None)
    if named is None:
        return None
    for name, _ in named():
        if name and name.rsplit(".", 1)[-1] == "frontend":
            return name
    return None


def _noise(ref: np.ndarray, got: np.ndarray) -> float:
    """Relative squared error ||ref - got||^2 / ||ref||^2 (0 = identical; inf = non-finite)."""
    ref = np.asarray(ref, dtype=np.float64).ravel()
    got = np.asarray(got, dtype=np.float64).ravel()
    if ref.shape != got.shape:
        return float("nan")
    if not np.all(np.isfinite(got)):
        return float("inf") if np.all(np.isfinite(ref)) else float("nan")
    den = float(np.dot(ref, ref))
    num = float(np.dot(ref - got, ref - got))
    return num / den if den > 0 else (0.0 if num == 0 else 1.0)


_FOLLOWERS = frozenset((
    "add", "multiply", "mul", "sub", "subtract", "relu", "relu6", "clamp", "clip", "sigmoid",
    "hardswish", "hard_swish", "hardsigmoid", "batchnormalization", "batchnorminference", "prelu",
    "leakyrelu", "leaky_relu", "logistic", "swish", "gelu", "tanh",
))


def _weighted(op_type: str) -> bool:
    t = op_type.lower()
    return "conv" in t or t in ("gemm", "matmul", "fully_connected", "batch_matmul")


def rank_sensitive_ops(
    graph: OpGraph,
    fp32: Mapping[str, np.ndarray],
    int8: Mapping[str, np.ndarray],
    *,
    candidates: Sequence[str] | None = None,
) -> list[tuple[tuple[str, ...], float]]:
    """Layers sorted by the error they *add*: noise of their output minus the worst noise of
    their inputs (per-node output error of the INT8 model vs FP32, on the same inputs).

    ``fp32``/``int8`` map tensor names to activations. A layer is a weighted op (conv, matmul,
    fully-connected) with the single-consumer chain of elementwise ops after it (bias add, BN,
    activation), or any other op on its own; ops upstream whose outputs vanished in the INT8 model
    (fused, e.g. Conv into Relu) join the layer. Excluding a layer keeps all of its ops float, so
    the weighted op itself is never left out (an error measured after a bias add is the conv's).
    Non-finite INT8 outputs count as infinite error. Layers led by shape ops, or with an op outside
    ``candidates``, are not ranked.
    """
    allowed = set(candidates) if candidates is not None else None
    noise = {t: _noise(fp32[t], int8[t]) for t in fp32 if t in int8}
    prod = graph.producer()
    consumers: dict[str, list[Op]] = {}
    for op in graph.ops:
        for t in op.inputs:
            consumers.setdefault(t, []).append(op)
    absorbed: set[str] = set()
    ranked: list[tuple[tuple[str, ...], float]] = []
    for op in graph.ops:
        if op.name in absorbed or op.type.lower() in _SHAPE_OPS or not op.outputs:
            continue
        chain = [op]
        if _weighted(op.type):
            cur = op
            while cur.outputs and len(consumers.get(cur.outputs[0], [])) == 1:
                nxt = consumers[cur.outputs[0]][0]
                if nxt.type.lower() not in _FOLLOWERS or _weighted(nxt.type):
                    break
                chain.append(nxt)
                cur = nxt
        measured = [c for c in chain if c.outputs and c.outputs[0] in noise
                    and not np.isnan(noise[c.outputs[0]])]
        if not measured:
            continue
        absorbed.update(c.name for c in chain)
        out = noise[measured[-1].outputs[0]]
        unit, ins, todo = [c.name for c in chain], [], list(op.inputs)
        seen: set[str] = set()
        while todo:
            t = todo.pop()
            if t in seen:
                continue
            seen.add(t)
            if t in noise or t not in prod or t not in fp32:
                if t in noise and not np.isnan(noise[t]):
                    ins.append(noise[t])
                continue
            up = prod[t]  # output vanished in the INT8 model: fused into this layer
            if up.name not in unit:
                unit.insert(0, up.name)
                todo.extend(up.inputs)
        if allowed is not None and not set(unit) <= allowed:
            continue
        worst_in = max(ins) if ins else 0.0
        added = 0.0 if (np.isinf(out) and np.isinf(worst_in)) else out - worst_in
        ranked.append((tuple(unit), float(added)))
    ranked.sort(key=lambda r: -r[1])
    return ranked
