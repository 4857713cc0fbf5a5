"""Op resolver generation: which ``MicroMutableOpResolver::AddXxx()`` each op of a model needs.

TFLM links only the kernels an application registers, so the firmware must register
exactly the op types of the optimised model (a missing one fails at
``AllocateTensors``; an extra one costs flash).  The mapping below is data, checked
against ``tensorflow/lite/micro/micro_mutable_op_resolver.h`` (tflite-micro 90b983c).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from ..errors import FdtError
from ..ir.graph import Model

# Builtin operator name (schema enum) -> MicroMutableOpResolver method.
BUILTIN_ADD_METHODS: dict[str, str] = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax", "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable", "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs", "BROADCAST_TO": "AddBroadcastTo", "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast", "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice", "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "ELU": "AddElu", "EQUAL": "AddEqual", "EXP": "AddExp", "EXPAND_DIMS": "AddExpandDims", "FILL": "AddFill",
    "FLOOR": "AddFloor", "FLOOR_DIV": "AddFloorDiv", "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather", "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual", "HARD_SWISH": "AddHardSwish", "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization", "L2_POOL_2D": "AddL2Pool2D", "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess", "LESS_EQUAL": "AddLessEqual", "LOG": "AddLog", "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot", "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax", "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D",
    "MIRROR_PAD": "AddMirrorPad", "MEAN": "AddMean", "MINIMUM": "AddMinimum", "MUL": "AddMul", "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual", "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2", "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize", "READ_VARIABLE": "AddReadVariable", "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax", "REDUCE_MIN": "AddReduceMin", "RELU": "AddRelu", "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "REVERSE_V2": "AddReverseV2", "ROUND": "AddRound",
    "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape", "SIN": "AddSin", "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax", "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd", "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV", "SQUEEZE": "AddSqueeze", "SQRT": "AddSqrt",
    "SQUARE": "AddSquare", "SQUARED_DIFFERENCE": "AddSquaredDifference", "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub", "SUM": "AddSum", "SVDF": "AddSvdf", "TANH": "AddTanh", "TRANSPOSE_CONV": "AddTransposeConv",
    "TRANSPOSE": "AddTranspose", "UNPACK": "AddUnpack",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM", "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile", "ZEROS_LIKE": "AddZerosLike",
}

# Custom op names TFLM itself registers with a dedicated method.
TFLM_CUSTOM_ADD_METHODS: dict[str, str] = {
    "CIRCULAR_BUFFER": "AddCircularBuffer", "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
    "ethos-u": "AddEthosU", "TFLM_DECODE": "AddDecode", "SignalDelay": "AddDelay", "SignalEnergy": "AddEnergy",
    "SignalFftAutoScale": "AddFftAutoScale", "SignalFilterBank": "AddFilterBank",
    "SignalFilterBankLog": "AddFilterBankLog", "SignalFilterBankSquareRoot": "AddFilterBankSquareRoot",
    "SignalFilterBankSpectralSubtraction": "AddFilterBankSpectralSubtraction", "SignalFramer": "AddFramer",
    "SignalIrfft": "AddIrfft", "SignalOverlapAdd": "AddOverlapAdd", "SignalPCAN": "AddPCAN",
    "SignalRfft": "AddRfft", "SignalStacker": "AddStacker", "SignalWindow": "AddWindow",
}


@dataclass(frozen=True)
class CustomKernel:
    """A project custom kernel: the header declaring it and its registration function."""

    header: str
    registration: str  # qualified name of a function returning a TFLMRegistration (by value or pointer)


# Custom kernels this project ships (firmware_template/fdt_kernels/).
PROJECT_CUSTOM_KERNELS: dict[str, CustomKernel] = {
    "FDT_PARTIAL": CustomKernel("fdt_kernels/fdt_partial.h", "tflite::Register_FDT_PARTIAL"),
}


@dataclass(frozen=True)
class Registration:
    """One line of the resolver: an op name and the C++ call that registers it."""

    op: str
    call: str  # e.g. "AddConv2D()"; custom ops: 'AddCustom("FDT_PARTIAL", {detail}(tflite::Register_FDT_PARTIAL()))'
    header: Optional[str] = None  # extra include needed (custom kernels)
    declare: Optional[str] = None  # registration function to forward-declare (unknown custom op)


def op_types(model: Model) -> list[str]:
    """Op type names used by any subgraph of the model, sorted (determinism)."""
    names = {op.type for sg in model.subgraphs for op in sg.operators}
    return sorted(names)


def _c_ident(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def registrations(model: Model, custom: Optional[Mapping[str, CustomKernel]] = None) -> list[Registration]:
    """One registration per distinct op type of ``model``.

    Unknown custom ops get ``AddCustom(name, tflite::Register_<NAME>())`` and a forward
    declaration, so the user only has to link their kernel; an unknown builtin has no TFLM
    kernel at all and is an error."""
    kernels = dict(PROJECT_CUSTOM_KERNELS)
    kernels.update(custom or {})
    custom_names = {oc.name for oc in model.operator_codes if oc.builtin_code == 32}
    out: list[Registration] = []
    for name in op_types(model):
        if name in custom_names:
            if name in TFLM_CUSTOM_ADD_METHODS:
                out.append(Registration(name, f"{TFLM_CUSTOM_ADD_METHODS[name]}()"))
            elif name in kernels:
                k = kernels[name]
                out.append(Registration(name, f'AddCustom("{name}", {{detail}}({k.registration}()))', header=k.header))
            else:
                fn = f"Register_{_c_ident(name)}"
                out.append(Registration(name, f'AddCustom("{name}", {{detail}}(tflite::{fn}()))', declare=fn))
        elif name in BUILTIN_ADD_METHODS:
            out.append(Registration(name, f"{BUILTIN_ADD_METHODS[name]}()"))
        else:
            raise FdtError(f"operator {name} has no TFLM kernel: cannot generate an op resolver")
    return out


def resolver_header(model: Model, prefix: str = "fdt", custom: Optional[Mapping[str, CustomKernel]] = None) -> str:
    """Text of ``<prefix>_op_resolver.h``: resolver type with the exact op count and an
    inline function that registers every op type of the model."""
    regs = registrations(model, custom)
    up = prefix.upper()
    guard = f"{up}_OP_RESOLVER_H_"
    lines = [
        "// Generated by fdt-tflm: registers exactly the operator types of the model.",
        "// Do not edit; regenerate with `python -m fdt_tflm optimize ... --emit-c DIR`.",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"',
    ]
    for h in sorted({r.header for r in regs if r.header}):
        lines.append(f'#include "{h}"')
    detail = f"{prefix}_detail::registration_ptr"
    if any("{detail}" in r.call for r in regs):
        # Kernels return their TFLMRegistration by value or by pointer; AddCustom copies it
        # from a pointer, and a temporary lives until the end of the call.
        lines += ["", f"namespace {prefix}_detail {{",
                  "inline const TFLMRegistration* registration_ptr(const TFLMRegistration* r) { return r; }",
                  "inline const TFLMRegistration* registration_ptr(const TFLMRegistration& r) { return &r; }",
                  f"}}  // namespace {prefix}_detail"]
    declares = sorted({r.declare for r in regs if r.declare})
    if declares:
        lines += ["", "// Custom operators of the model: link your kernel providing these.", "namespace tflite {"]
        lines += [f"const TFLMRegistration* {d}();" for d in declares]
        lines.append("}  // namespace tflite")
    lines += [
        "",
        f"// Operator types in the model: {', '.join(r.op for r in regs) or '(none)'}",
        f"#define {up}_OP_RESOLVER_SIZE {max(len(regs), 1)}",
        "",
        f"typedef tflite::MicroMutableOpResolver<{up}_OP_RESOLVER_SIZE> {prefix}_op_resolver_t;",
        "",
        "// Registers every operator of the model; returns kTfLiteError if one fails.",
        f"inline TfLiteStatus {prefix}_register_ops({prefix}_op_resolver_t& resolver) {{",
    ]
    for r in regs:
        lines.append(f"  if (resolver.{r.call.format(detail=detail)} != kTfLiteOk) return kTfLiteError;")
    if not regs:
        lines.append("  (void)resolver;")
    lines += ["  return kTfLiteOk;", "}", "", f"#endif  // {guard}", ""]
    return "\n".join(lines)
