"""hai-edge: distil, quantize, export and run health foundation encoders offline.

The top level stays tiny (no heavy imports, no side effects): the run side lives in
``hai_edge.runtime`` and ``hai_edge.bundle``; the build side in ``hai_edge.export`` and
``hai_edge.quantize`` (which need the ``export`` extra).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
