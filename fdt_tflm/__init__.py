"""fdt-tflm: shrink the TensorFlow Lite Micro tensor arena.

Fused depthwise tiling (channel splits, no recomputation), fused feature-map tiling
(spatial splits), operator reordering and optimal offline memory plans, written into a
standard .tflite that stock TFLM runs and verified against the TFLM host interpreter.

    import fdt_tflm
    res = fdt_tflm.optimize("kws.tflite")
    res.save("kws.fdt.tflite"); print(res.summary())
"""
__version__ = "0.1.0"

from .errors import FdtError, VerificationError  # noqa: E402
from .io import read_model, write_model  # noqa: E402
from .api import Result, optimize  # noqa: E402

__all__ = ["optimize", "Result", "read_model", "write_model", "FdtError", "VerificationError", "__version__"]
