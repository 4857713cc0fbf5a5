"""Bit-exact NumPy reference of TFLM's int8 kernels and of the FDT_PARTIAL custom op."""
from .graph import run_reference, run_reference_tensors
from .ops import KERNELS, ReferenceUnsupported, kernel, supports
from .partial_op import FDT_PARTIAL_CODE, PartialParams, fdt_partial_eval

__all__ = ["run_reference", "run_reference_tensors", "KERNELS", "ReferenceUnsupported", "kernel", "supports",
           "FDT_PARTIAL_CODE", "PartialParams", "fdt_partial_eval"]
