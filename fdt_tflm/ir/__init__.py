"""Graph IR of a TFLite model."""
from .table import Table
from .graph import Buffer, Model, Operator, OperatorCode, Quantization, SignatureDef, Subgraph, Tensor
from .types import BUILTIN_CODES, BUILTIN_NAMES, DTYPE_CODES, DTYPE_NAMES, dtype_size, op_code

__all__ = ["Table", "Buffer", "Model", "Operator", "OperatorCode", "Quantization", "SignatureDef", "Subgraph",
           "Tensor", "BUILTIN_CODES", "BUILTIN_NAMES", "DTYPE_CODES", "DTYPE_NAMES", "dtype_size", "op_code"]
