"""Device profiles: data (``profiles/*.json``), loaded into frozen dataclasses and validated.

A profile says what a class of clinic hardware runs best (an ordered list of (format, engine,
precision)), how many threads to use, the latency budgets per audio window and per photo, the
memory budget, and the quantization preset the export should use for it. ``host_slowdown`` is a
rough single-core factor against the build machine (AVX-512 server core) used by the benchmark to
project measured latencies onto the target; it is an estimate, and the benchmark says so.
Run side: standard library only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hai_edge.bundle import ModelFormat, Precision
from hai_edge.errors import HaiEdgeError

__all__ = [
    "PROFILES_DIR",
    "QUANT_PRESETS",
    "DeviceProfile",
    "EngineChoice",
    "EngineExcludedError",
    "VerifiedOn",
    "load_profile",
    "load_profiles",
]

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

# preset -> what the export side changes (hai_edge.cli.export applies it)
QUANT_PRESETS: dict[str, str] = {
    "x86_u8s8": "onnxruntime uint8 activations / int8 weights (VNNI)",
    "x86_u8s8_reduce_range": "onnxruntime U8S8 with 7-bit weights (no VNNI: avoids saturation)",
    "arm_s8s8": "onnxruntime int8 activations / int8 weights (Arm)",
    "wasm_u8s8": "onnxruntime-web uint8 activations / int8 weights",
}

_ENGINE_FORMAT = {"onnxruntime": ModelFormat.ONNX, "openvino": ModelFormat.OPENVINO,
                  "tflite": ModelFormat.TFLITE}


class ProfileError(HaiEdgeError):
    """A device profile file is malformed."""


class EngineExcludedError(HaiEdgeError):
    """The user forced an engine that the device profile excludes (e.g. OpenVINO on ARM)."""


@dataclasses.dataclass(frozen=True)
class VerifiedOn:
    """Where the built-in bundles passed ``hai-edge verify`` with one engine (data, not prose):
    ``arch`` as ``platform.machine()`` says it, the CPU model when it matters (``cortex-a72``:
    no dotprod), and whether the CPU was emulated (qemu user mode, scripts/aarch64_check.py)."""

    arch: str
    cpu: str = ""
    emulated: bool = False

    @property
    def label(self) -> str:
        extra = ", ".join(x for x in (self.cpu, "emulated" if self.emulated else "") if x)
        return f"{self.arch} ({extra})" if extra else self.arch

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "cpu": self.cpu, "emulated": self.emulated}


@dataclasses.dataclass(frozen=True)
class EngineChoice:
    format: ModelFormat
    engine: str
    precision: Precision

    @property
    def model_id(self) -> str:
        return f"{self.format.value}-{self.precision.value}"

    def to_dict(self) -> dict[str, str]:
        return {"format": self.format.value, "engine": self.engine,
                "precision": self.precision.value}


@dataclasses.dataclass(frozen=True)
class DeviceProfile:
    id: str
    title: str
    isa: tuple[str, ...]
    preferred: tuple[EngineChoice, ...]
    threads: int
    latency_budget_ms: Mapping[str, float]  # "audio_window", "photo"
    memory_budget_mb: float
    quant_preset: str
    host_slowdown: float = 1.0
    notes: str = ""
    # engine -> where the built-in bundles were verified with it
    verified_on: Mapping[str, tuple[VerifiedOn, ...]] = dataclasses.field(default_factory=dict)
    # engine -> why it must not be used on this device (one line)
    excluded_engines: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def budget_for(self, modality: str) -> float:
        return float(self.latency_budget_ms["audio_window" if modality == "audio" else "photo"])

    def formats(self) -> tuple[str, ...]:
        """Formats in preference order, each once (the export's default ``--formats``)."""
        return tuple(dict.fromkeys(c.format.value for c in self.preferred))

    def verification_summary(self) -> str:
        """One line for ``hai-edge devices``: per engine where the built-in bundles were
        verified, then the engines this device excludes."""
        groups: dict[tuple[VerifiedOn, ...], list[str]] = {}
        for engine, where in self.verified_on.items():
            groups.setdefault(where, []).append(engine)
        parts = [f"{', '.join(es)} on {', '.join(v.label for v in vs) or 'nothing yet'}"
                 for vs, es in groups.items()]
        text = "verified: " + ("; ".join(parts) or "-")
        if self.excluded_engines:
            text += f"; excluded: {', '.join(self.excluded_engines)}"
        return text

    def exclusion(self, engine: str) -> str | None:
        """One line saying why ``engine`` is excluded on this device, or None."""
        why = self.excluded_engines.get(engine)
        return None if why is None else f"device profile {self.id} excludes {engine}: {why}"

    def require_engine(self, engine: str) -> None:
        """Raise :class:`EngineExcludedError` (exit 2, one line) when ``engine`` is excluded."""
        line = self.exclusion(engine)
        if line is not None:
            raise EngineExcludedError(line)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "isa": list(self.isa),
                "preferred": [c.to_dict() for c in self.preferred], "threads": self.threads,
                "latency_budget_ms": dict(self.latency_budget_ms),
                "memory_budget_mb": self.memory_budget_mb, "quant_preset": self.quant_preset,
                "host_slowdown": self.host_slowdown, "notes": self.notes,
                "verified_on": {e: [v.to_dict() for v in vs] for e, vs in self.verified_on.items()},
                "excluded_engines": dict(self.excluded_engines)}

    @classmethod
    def from_dict(cls, d: Any, where: str = "profile") -> DeviceProfile:
        def fail(msg: str) -> ProfileError:
            return ProfileError(f"{where}: {msg}")

        if not isinstance(d, dict):
            raise fail("must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise fail(f"unknown field(s) {unknown}")
        for key in ("id", "title", "isa", "preferred", "threads", "latency_budget_ms",
                    "memory_budget_mb", "quant_preset"):
            if key not in d:
                raise fail(f"missing field '{key}'")
        if not isinstance(d["id"], str) or not d["id"]:
            raise fail("id must be a non-empty string")
        prefs = d["preferred"]
        if not isinstance(prefs, list) or not prefs:
            raise fail("preferred must be a non-empty list")
        choices = []
        for i, p in enumerate(prefs):
            if not isinstance(p, dict):
                raise fail(f"preferred[{i}] must be an object")
            engine = p.get("engine")
            if engine not in _ENGINE_FORMAT:
                raise fail(f"preferred[{i}].engine {engine!r} is not one of "
                           f"{'|'.join(_ENGINE_FORMAT)}")
            try:
                fmt, prec = ModelFormat(p.get("format")), Precision(p.get("precision", "int8"))
            except ValueError as exc:
                raise fail(f"preferred[{i}]: {exc}") from None
            if _ENGINE_FORMAT[engine] is not fmt:
                raise fail(f"preferred[{i}]: engine {engine} does not run {fmt.value} models")
            choices.append(EngineChoice(fmt, engine, prec))
        threads = d["threads"]
        if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 256:
            raise fail("threads must be an integer in 1..256")
        budgets = d["latency_budget_ms"]
        if not isinstance(budgets, dict) or set(budgets) != {"audio_window", "photo"}:
            raise fail("latency_budget_ms needs exactly 'audio_window' and 'photo'")
        if not all(isinstance(v, (int, float)) and v > 0 for v in budgets.values()):
            raise fail("latency budgets must be positive numbers")
        mem = d["memory_budget_mb"]
        if not isinstance(mem, (int, float)) or mem <= 0:
            raise fail("memory_budget_mb must be a positive number")
        if d["quant_preset"] not in QUANT_PRESETS:
            raise fail(f"quant_preset {d['quant_preset']!r} is not one of {'|'.join(QUANT_PRESETS)}")
        slow = d.get("host_slowdown", 1.0)
        if not isinstance(slow, (int, float)) or not 0 < slow <= 100:
            raise fail("host_slowdown must be in (0, 100]")
        isa = d["isa"]
        if not isinstance(isa, list) or not all(isinstance(s, str) for s in isa):
            raise fail("isa must be a list of strings")
        excluded = _excluded(d.get("excluded_engines", {}), fail)
        clash = sorted({c.engine for c in choices} & set(excluded))
        if clash:
            raise fail(f"engine(s) {clash} are both preferred and excluded")
        return cls(id=d["id"], title=str(d["title"]), isa=tuple(isa), preferred=tuple(choices),
                   threads=threads, latency_budget_ms={k: float(v) for k, v in budgets.items()},
                   memory_budget_mb=float(mem), quant_preset=d["quant_preset"],
                   host_slowdown=float(slow), notes=str(d.get("notes", "")),
                   verified_on=_verified_on(d.get("verified_on", {}), fail),
                   excluded_engines=excluded)


def _verified_on(raw: Any, fail: Callable[[str], ProfileError]
                 ) -> dict[str, tuple[VerifiedOn, ...]]:
    """``{"engine": [{"arch", "cpu", "emulated"}, ...]}`` validated."""
    if not isinstance(raw, dict):
        raise fail("verified_on must be an object: engine -> list of {arch, cpu, emulated}")
    out = {}
    for engine, entries in raw.items():
        if engine not in _ENGINE_FORMAT:
            raise fail(f"verified_on: engine {engine!r} is not one of {'|'.join(_ENGINE_FORMAT)}")
        if not isinstance(entries, list):
            raise fail(f"verified_on.{engine} must be a list")
        items = []
        for e in entries:
            if (not isinstance(e, dict) or set(e) - {"arch", "cpu", "emulated"}
                    or not isinstance(e.get("arch"), str) or not e["arch"]
                    or not isinstance(e.get("cpu", ""), str)
                    or not isinstance(e.get("emulated", False), bool)):
                raise fail(f"verified_on.{engine}: each entry is {{arch, cpu, emulated}}")
            items.append(VerifiedOn(e["arch"], e.get("cpu", ""), e.get("emulated", False)))
        out[engine] = tuple(items)
    return out


def _excluded(raw: Any, fail: Callable[[str], ProfileError]) -> dict[str, str]:
    """``{"engine": "one-line reason"}`` validated."""
    if not isinstance(raw, dict):
        raise fail("excluded_engines must be an object: engine -> reason")
    for engine, why in raw.items():
        if engine not in _ENGINE_FORMAT:
            raise fail(f"excluded_engines: engine {engine!r} is not one of "
                       f"{'|'.join(_ENGINE_FORMAT)}")
        if not isinstance(why, str) or not why.strip() or "\n" in why:
            raise fail(f"excluded_engines.{engine} must be a one-line reason")
    return dict(raw)


def _read(path: Path) -> DeviceProfile:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProfileError(f"{path.name}: cannot read profile ({exc})") from None
    prof = DeviceProfile.from_dict(data, path.name)
    if prof.id != path.stem:
        raise ProfileError(f"{path.name}: id {prof.id!r} does not match the file name")
    return prof


def load_profiles(directory: Path = PROFILES_DIR) -> dict[str, DeviceProfile]:
    """Every profile of ``directory`` by id (sorted)."""
    return {p.id: p for p in (_read(f) for f in sorted(Path(directory).glob("*.json")))}


def load_profile(name_or_path: str) -> DeviceProfile:
    """A profile by id, or a path to a profile JSON file."""
    p = Path(name_or_path)
    if p.suffix == ".json" and p.is_file():
        return DeviceProfile.from_dict(json.loads(p.read_text(encoding="utf-8")), p.name)
    profiles = load_profiles()
    if name_or_path in profiles:
        return profiles[name_or_path]
    import difflib

    close = difflib.get_close_matches(name_or_path, list(profiles), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ProfileError(f"unknown device profile {name_or_path!r}{hint}; known: "
                       f"{', '.join(profiles)}")
