"""Teacher registry: ``load_teacher("PREFIX:ARG")`` -> a :class:`Teacher`.

============================  ================================================================
spec                          teacher
============================  ================================================================
``hear:PATH_OR_HF_ID``        HeAR TF SavedModel (default ``google/hear``); ``teachers-tf``
``hear-pytorch:PATH_OR_ID``   HeAR ViT in transformers + numpy PCEN front end
                              (default ``google/hear-pytorch``); ``teachers`` + ``export``
``derm-foundation:PATH_OR_ID``  Derm Foundation TF SavedModel (default
                              ``google/derm-foundation``); ``teachers-tf``
``medsiglip:PATH_OR_HF_ID``   MedSigLIP vision tower (default ``google/medsiglip-448``);
                              ``teachers`` + ``export``
``onnx:FILE``                 any ONNX encoder (audio ``[N, samples]`` / image ``[N, 3, H, W]``)
``torch:MODULE:CALLABLE``     ``MODULE.CALLABLE()`` -> an ``nn.Module`` or a Teacher
``embeddings:FILE``           precomputed embeddings by id (a lookup teacher: ``embed_ids``)
``reference:audio|image``     the project's small reference teachers
============================  ================================================================

Adapters are imported only when their prefix is used, so this module is light: TensorFlow,
torch and transformers load inside the adapter that needs them. Hugging Face ids resolve from the
local cache when the hub cannot be reached (see ``_hub``). HAI-DEF models carry licence
``HAI-DEF`` in their :class:`TeacherInfo`.
"""

from __future__ import annotations

import importlib
from typing import Any

from hai_edge.errors import HaiEdgeError
from hai_edge.teachers._base import Teacher, TeacherInfo

__all__ = ["TEACHER_PREFIXES", "Teacher", "TeacherInfo", "is_lookup_teacher", "load_teacher"]

# prefix -> (module relative to this package, loader function(arg, *, device) -> Teacher)
_ADAPTERS: dict[str, tuple[str, str]] = {
    "hear": (".hear", "load_hear"),
    "hear-pytorch": (".hear", "load_hear_pytorch"),
    "derm-foundation": (".derm", "load_derm_foundation"),
    "medsiglip": (".medsiglip", "load_medsiglip"),
    "onnx": (".generic", "load_onnx"),
    "torch": (".generic", "load_torch"),
    "embeddings": (".precomputed", "load_embeddings"),
    "reference": ("._reference", "load_reference_teacher"),
}
TEACHER_PREFIXES = tuple(_ADAPTERS)


def load_teacher(spec: str, *, device: str = "cpu") -> Teacher:
    """Load the teacher named by ``spec`` (``PREFIX:ARG``; see the module docstring)."""
    prefix, sep, arg = str(spec).partition(":")
    if not sep or prefix not in _ADAPTERS:
        raise HaiEdgeError(f"unknown teacher {spec!r}: expected one of "
                           f"{', '.join(p + ':...' for p in TEACHER_PREFIXES)}")
    module_name, func_name = _ADAPTERS[prefix]
    try:
        module = importlib.import_module(module_name, __name__)
    except ModuleNotFoundError as exc:
        if exc.name == __name__ + module_name:
            raise HaiEdgeError(f"teacher {prefix}: is not available in this build") from None
        raise
    loader: Any = getattr(module, func_name)
    return loader(arg, device=device)


def is_lookup_teacher(teacher: Any) -> bool:
    """True for teachers that answer by sample id (precomputed embeddings) instead of media."""
    return callable(getattr(teacher, "embed_ids", None))
