"""OpenVINO IR export: ``ov.convert_model`` from torch, FP32 weights, dynamic batch, no telemetry.

Telemetry — what the installed code does (openvino 2026.4.1, openvino-telemetry 2025.2.0):

* ``import openvino`` imports ``openvino.tools.ovc`` (for ``ov.convert_model``), whose
  ``__init__`` calls ``init_ovc_telemetry('OpenVINO')`` and ``send_event("ov", "import", ...)``;
  every ``convert_model`` call re-initialises it (``init_ovc_telemetry()`` with app 'OVC') and sends
  session/version/parameter/result events (``convert_impl._convert``).
* ``init_ovc_telemetry`` passes ``enable_opt_in_dialog=False, disable_in_ci=True``. In
  ``openvino_telemetry.Telemetry.init`` consent is then ``ACCEPTED or NO_FILE``: with no consent
  file (``~/intel/openvino_telemetry``) telemetry is **on by default** — it creates
  ``~/intel/openvino_ga_cid`` and ``~/intel/stats`` in the home directory and posts to Google
  Analytics from a background thread. (Verified: a plain ``import openvino`` + ``convert_model``
  with ``HOME`` pointed at an empty directory writes both files and sets ``consent=True``.) So the
  runtime's "opt-in" assumption does not hold for the ``openvino`` package as installed.
* The documented opt-out (``opt_in_out --opt_out``) writes a consent file into the user's home,
  which we must not do. ``convert_model`` has no telemetry argument and there is no dedicated
  environment variable. What the code *does* honour is ``disable_in_ci=True``:
  ``OptInChecker._run_in_ci()`` returns DECLINED when ``CI=true`` (or ``TF_BUILD``/``JENKINS_URL``)
  is set, and this check runs *before* any file is touched, so DECLINED writes nothing and sends
  nothing. The Telemetry object is a process-wide singleton; it re-reads consent only when
  re-initialised (app name change, as convert_model does), while later calls (including NNCF's
  ``Telemetry(...)``, which just returns the singleton) use the stored ``consent``.

So ``no_telemetry()`` sets ``CI=true`` only for the duration of the block (covering the first
``import openvino`` and every ``convert_model`` re-initialisation inside it), and forces
``consent=False`` on the singleton on entry and exit, so events fired later in the process by a
non-re-initialising caller are dropped too. It writes nothing anywhere and needs no network. An
``import openvino`` that happens *outside* such a block (e.g. the run-side backend imported first)
still runs the import-time event with the default consent — callers should import openvino
inside ``no_telemetry()`` (``hai_edge.export.steps.run_quiet`` does).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hai_edge.bundle import ModelFormat
from hai_edge.tools import no_openvino_telemetry, openvino_telemetry_consent
from hai_edge.export.formats import INPUT_NAME, OUTPUT_NAME, ExportedModel
from hai_edge.quantize.inspect import inspect_openvino

if TYPE_CHECKING:
    import torch

__all__ = ["export_openvino", "no_telemetry", "telemetry_consent"]


def telemetry_consent() -> bool | None:
    """Current consent of the OpenVINO telemetry singleton (None: not initialised/installed)."""
    return openvino_telemetry_consent()


no_telemetry = no_openvino_telemetry


def export_openvino(
    model: torch.nn.Module, example: torch.Tensor, out_dir: Path, basename: str
) -> ExportedModel:
    """Export to ``out_dir/basename.xml`` + ``.bin`` with uncompressed (FP32) weights.

    The input tensor is renamed ``input`` and the output ``embedding`` (port ``any_name``), so the
    run side feeds the same names as for ONNX.
    """
    with no_telemetry():
        import openvino as ov

        xml = Path(out_dir) / f"{basename}.xml"
        rest = [int(d) for d in example.shape[1:]]
        try:
            ov_model = ov.convert_model(
                model, example_input=example, input=[ov.PartialShape([-1, *rest])]
            )
            batch = "dynamic"
        except Exception:  # a model that cannot take a symbolic batch: fix it to 1
            ov_model = ov.convert_model(
                model, example_input=example[:1], input=[ov.PartialShape([1, *rest])]
            )
            batch = "static"
        if len(ov_model.inputs) != 1 or len(ov_model.outputs) != 1:
            raise RuntimeError(
                f"expected one input and one output, OpenVINO model has "
                f"{len(ov_model.inputs)} and {len(ov_model.outputs)}"
            )
        ov_model.inputs[0].get_tensor().set_names({INPUT_NAME})
        ov_model.outputs[0].get_tensor().set_names({OUTPUT_NAME})
        ov.save_model(ov_model, str(xml), compress_to_fp16=False)
        inputs, outputs = inspect_openvino(xml)
        version = ov.get_version()
    return ExportedModel(
        format=ModelFormat.OPENVINO,
        files=[xml, xml.with_suffix(".bin")],
        inputs=inputs,
        outputs=outputs,
        options={
            "exporter": f"openvino.convert_model {version}",
            "compress_to_fp16": False,
            "batch": batch,
        },
    )

