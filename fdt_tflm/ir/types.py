"""Schema enums as plain lookup tables (names, numpy dtypes, element sizes)."""
from __future__ import annotations

import numpy as np
from tflite.BuiltinOperator import BuiltinOperator
from tflite.TensorType import TensorType

BUILTIN_CODES: dict[str, int] = {k: v for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
BUILTIN_NAMES: dict[int, str] = {v: k for k, v in BUILTIN_CODES.items()}
DTYPE_CODES: dict[str, int] = {k: v for k, v in vars(TensorType).items() if not k.startswith("_")}
DTYPE_NAMES: dict[int, str] = {v: k for k, v in DTYPE_CODES.items()}

DTYPE_NUMPY: dict[int, type] = {
    TensorType.FLOAT32: np.float32, TensorType.FLOAT16: np.float16, TensorType.INT32: np.int32,
    TensorType.UINT8: np.uint8, TensorType.INT64: np.int64, TensorType.BOOL: np.bool_,
    TensorType.INT16: np.int16, TensorType.INT8: np.int8, TensorType.FLOAT64: np.float64,
    TensorType.UINT64: np.uint64, TensorType.UINT32: np.uint32, TensorType.UINT16: np.uint16,
    TensorType.COMPLEX64: np.complex64, TensorType.COMPLEX128: np.complex128,
    TensorType.INT4: np.int8,
}
NUMPY_DTYPE: dict[type, int] = {np.dtype(v).type: k for k, v in DTYPE_NUMPY.items() if k != TensorType.INT4}


def dtype_size(code: int) -> int:
    """Bytes per element as TFLM allocates it (INT4 activations are unpacked to int8)."""
    if code in DTYPE_NUMPY:
        return np.dtype(DTYPE_NUMPY[code]).itemsize
    if code == TensorType.BFLOAT16:
        return 2
    return 1


def op_code(name: str) -> int:
    return BUILTIN_CODES[name]
