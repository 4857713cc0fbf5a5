"""fdt-tflm: shrink the TensorFlow Lite Micro tensor arena.

Fused depthwise tiling (channel splits, no recomputation), fused feature-map tiling
(spatial splits), operator reordering and optimal offline memory plans, written into a
standard .tflite that stock TFLM runs and verified against the TFLM host interpreter.

    import fdt_tflm
    res = fdt_tflm.optimize("kws.tflite")
    res.save("kws.fdt.tflite"); print(res.summary())
"""
from .version import __version__
from .errors import FdtError, VerificationError
from .io import read_model, write_model
from .api import Result, optimize

__all__ = ["optimize", "Result", "read_model", "write_model", "FdtError", "VerificationError", "__version__"]
