"""Device profiles (data) and the benchmark harness. Run side: no torch/onnx/nncf imports."""

from __future__ import annotations

from hai_edge.devices.profiles import DeviceProfile, EngineChoice, load_profile, load_profiles

__all__ = ["DeviceProfile", "EngineChoice", "load_profile", "load_profiles"]
