"""Read a .tflite flatbuffer into the graph IR (once; passes never touch bytes)."""
from __future__ import annotations

import os
from typing import Union

import numpy as np
from tflite.Model import Model as FbModel

from ..errors import FdtError
from ..ir.graph import Buffer, Model, Operator, OperatorCode, Quantization, SignatureDef, Subgraph, Tensor
from ..ir.table import Table
from .fbgeneric import read_table

_TENSOR_FIELDS = {"Shape", "Type", "Buffer", "Name", "Quantization", "IsVariable", "Sparsity",
                  "ShapeSignature", "HasRank"}
_OP_FIELDS = {"OpcodeIndex", "Inputs", "Outputs", "BuiltinOptionsType", "BuiltinOptions", "CustomOptions",
              "CustomOptionsFormat", "MutatingVariableInputs", "Intermediates", "BuiltinOptions2Type",
              "BuiltinOptions2"}
_SG_FIELDS = {"Tensors", "Inputs", "Outputs", "Operators", "Name"}
_MODEL_FIELDS = {"Version", "OperatorCodes", "Subgraphs", "Description", "Buffers", "Metadata",
                 "SignatureDefs", "MetadataBuffer"}


def load_bytes(source: Union[str, os.PathLike, bytes, bytearray]) -> bytes:
    """The model bytes from a path or bytes, with a one-line error for a missing file."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = os.fspath(source)
    if not os.path.exists(path):
        raise FdtError(f"{path}: no such file")
    if os.path.isdir(path):
        raise FdtError(f"{path}: is a directory, not a .tflite file")
    with open(path, "rb") as f:
        return f.read()


def read_model(source: Union[str, os.PathLike, bytes, bytearray]) -> Model:
    """Parse a TFLite model.  Raises :class:`FdtError` for anything that is not one."""
    data = load_bytes(source)
    label = source if isinstance(source, (str, os.PathLike)) else "input"
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise FdtError(f"{label}: not a TFLite flatbuffer (no TFL3 identifier)")
    try:
        root = read_table(FbModel.GetRootAs(data, 0), "Model")
        model = _to_ir(root, len(data))
    except FdtError:
        raise
    except Exception:  # corrupt offsets surface as any of several exceptions
        raise FdtError(f"{label}: truncated or corrupt TFLite flatbuffer ({len(data)} bytes; reading it failed)") from None
    return model


def _to_ir(root: Table, size: int) -> Model:
    f = root.fields
    fb_buffers = f.get("Buffers", [])
    buffers: list[Buffer] = []
    for b in fb_buffers:
        if b.get("Offset", 0) or b.get("Size", 0):
            raise FdtError("models with buffers stored outside the flatbuffer (over 2 GB) are not supported")
        data = b.get("Data")
        buffers.append(Buffer(b"" if data is None else data.tobytes()))
    opcodes = []
    for oc in f.get("OperatorCodes", []):
        dep = oc.get("DeprecatedBuiltinCode", 0)
        code = max(oc.get("BuiltinCode", 0), dep)
        opcodes.append(OperatorCode(code, oc.get("CustomCode"), oc.get("Version", 1), dep))
    model = Model(version=f.get("Version", 0), description=f.get("Description"), operator_codes=opcodes,
                  extra={k: v for k, v in f.items() if k not in _MODEL_FIELDS})
    if "MetadataBuffer" in f:
        model.extra["MetadataBuffer"] = f["MetadataBuffer"]
    for sg in f.get("Subgraphs", []):
        model.subgraphs.append(_subgraph(sg, buffers, opcodes))
    if not model.subgraphs:
        raise FdtError("the model has no subgraph")
    for m in f.get("Metadata", []):
        idx = m.get("Buffer", 0)
        model.metadata.append((m.get("Name", b""), buffers[idx] if idx < len(buffers) else Buffer()))
    for sd in f.get("SignatureDefs", []):
        model.signature_defs.append(SignatureDef(
            sd.get("SignatureKey"), sd.get("SubgraphIndex", 0),
            [(tm.get("Name", b""), tm.get("TensorIndex", 0)) for tm in sd.get("Inputs", [])],
            [(tm.get("Name", b""), tm.get("TensorIndex", 0)) for tm in sd.get("Outputs", [])]))
    return model


def _required(t, what: str):
    if t is None:
        raise FdtError(f"an {what} refers to no tensor (index -1)")
    return t


def _quant(q: Table | None) -> Quantization | None:
    if q is None:
        return None
    return Quantization(scale=q.get("Scale"), zero_point=q.get("ZeroPoint"), min=q.get("Min"),
                        max=q.get("Max"), axis=q.get("QuantizedDimension", 0), details=q.get("Details"))


def _subgraph(sg: Table, buffers: list[Buffer], opcodes: list[OperatorCode]) -> Subgraph:
    tensors = []
    for t in sg.get("Tensors", []):
        bidx = t.get("Buffer", 0)
        if bidx >= len(buffers):
            raise FdtError(f"tensor {t.get('Name', b'')!r} names buffer {bidx}, the model has {len(buffers)}")
        shape = t.get("Shape")
        sig = t.get("ShapeSignature")
        tensors.append(Tensor(
            name=(t.get("Name") or b"").decode(errors="replace"),
            shape=[] if shape is None else [int(x) for x in shape],
            dtype=t.get("Type", 0), buffer=buffers[bidx], quantization=_quant(t.get("Quantization")),
            is_variable=bool(t.get("IsVariable", False)),
            shape_signature=None if sig is None else [int(x) for x in sig],
            sparsity=t.get("Sparsity"), has_rank=bool(t.get("HasRank", False)),
            extra={k: v for k, v in t.fields.items() if k not in _TENSOR_FIELDS}))
        tensors[-1].extra["_shape_present"] = shape is not None

    def tref(i: int) -> Tensor | None:
        if i < 0:
            return None
        if i >= len(tensors):
            raise FdtError(f"operator refers to tensor {i}, the subgraph has {len(tensors)}")
        return tensors[i]

    for t in tensors:
        if any(d < -1 for d in t.shape):
            raise FdtError(f"tensor {t.name!r} has an invalid shape {t.shape}")
    ops = []
    for o in sg.get("Operators", []):
        oi = o.get("OpcodeIndex", 0)
        if oi >= len(opcodes):
            raise FdtError(f"operator uses opcode {oi}, the model has {len(opcodes)}")
        co = o.get("CustomOptions")
        ops.append(Operator(
            opcode=opcodes[oi],
            inputs=[tref(int(i)) for i in o.get("Inputs", np.zeros(0, np.int32))],
            outputs=[_required(tref(int(i)), "operator output") for i in o.get("Outputs", np.zeros(0, np.int32))],
            options=o.get("BuiltinOptions"), options2=o.get("BuiltinOptions2"),
            custom_options=None if co is None else co.tobytes(),
            custom_options_format=o.get("CustomOptionsFormat", 0),
            mutating_variable_inputs=o.get("MutatingVariableInputs"),
            intermediates=[tref(int(i)) for i in o.get("Intermediates", np.zeros(0, np.int32))],
            extra={k: v for k, v in o.fields.items() if k not in _OP_FIELDS}))
    return Subgraph(tensors=tensors, operators=ops,
                    inputs=[tref(int(i)) for i in sg.get("Inputs", np.zeros(0, np.int32))],
                    outputs=[tref(int(i)) for i in sg.get("Outputs", np.zeros(0, np.int32))],
                    name=sg.get("Name"), extra={k: v for k, v in sg.fields.items() if k not in _SG_FIELDS})
