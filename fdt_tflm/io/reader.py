"""Read a .tflite flatbuffer into the graph IR (once; passes never touch bytes).

The reader is where untrusted bytes stop: anything the passes, the planner or the runtimes
cannot handle safely is refused here with an :class:`FdtError` (one line, exit code 2).
Sizes are bounded before anything is allocated for them:

- a tensor in the arena (no data) may claim at most ``MAX_ARENA_TENSOR_BYTES`` (64 MiB, far
  above any microcontroller's RAM) and rank ``MAX_RANK``;
- a constant's data must be exactly what its shape and type need;
- the whole read may materialise at most ``2 * file size + 64 KiB`` (offsets that point many
  times at the same data);
- every tensor, buffer and opcode index is in range.

:func:`check_dataflow` (run before any pass) refuses cycles, tensors with two writers, writes
into constants and reads of activations nobody writes.
"""
from __future__ import annotations

import math
import os
from typing import Optional, Union

import flatbuffers
import numpy as np
from tflite.Model import Model as FbModel

from ..errors import FdtError
from ..ir.graph import Buffer, Model, Operator, OperatorCode, Quantization, SignatureDef, Subgraph, Tensor
from ..ir.table import Table
from ..ir.types import DTYPE_CODES, DTYPE_NUMPY, dtype_size
from .fbgeneric import ReadBudget, read_table

MAX_ARENA_TENSOR_BYTES = 64 << 20
MAX_RANK = 8
_BUILTIN_CODE_SLOT = 10  # vtable offset of OperatorCode.builtin_code (field 3)
_PACKED = {DTYPE_CODES["INT4"]}  # stored two per byte; TFLM unpacks them

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
        fb = FbModel.GetRootAs(data, 0)
        root = read_table(fb, "Model", ReadBudget(2 * len(data) + (64 << 10)))
        model = _to_ir(root, _builtin_codes(fb))
    except FdtError as e:
        raise FdtError(f"{label}: {e}") from None
    except Exception:  # corrupt offsets surface as any of several exceptions
        raise FdtError(f"{label}: truncated or corrupt TFLite flatbuffer ({len(data)} bytes; reading it failed)") from None
    return model


def _builtin_codes(fb: FbModel) -> list[int]:
    """Each operator code's builtin code as TFLM reads it: the larger of the raw builtin_code and
    deprecated_builtin_code fields.  (The tflite package's ``BuiltinCode()`` returns the
    deprecated field for codes below 127: a model whose two fields disagree was read unlike TFLM
    and written back as a model TFLM cannot run; found by benchmarks/fuzz.py.)"""
    out = []
    for i in range(fb.OperatorCodesLength()):
        oc = fb.OperatorCodes(i)
        o = oc._tab.Offset(_BUILTIN_CODE_SLOT)
        raw = oc._tab.Get(flatbuffers.number_types.Int32Flags, oc._tab.Pos + o) if o else 0
        out.append(max(raw, oc.DeprecatedBuiltinCode()))
    return out


def _to_ir(root: Table, builtin_codes: list[int]) -> Model:
    f = root.fields
    fb_buffers = f.get("Buffers", [])
    buffers: list[Buffer] = []
    for b in fb_buffers:
        if b.get("Offset", 0) or b.get("Size", 0):
            raise FdtError("models with buffers stored outside the flatbuffer (over 2 GB) are not supported")
        data = b.get("Data")
        buffers.append(Buffer(b"" if data is None else data.tobytes()))
    opcodes = []
    for oc, code in zip(f.get("OperatorCodes", []), builtin_codes):
        dep = oc.get("DeprecatedBuiltinCode", 0)
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
    model.signature_defs = [_signature(sd, model.subgraphs) for sd in f.get("SignatureDefs", [])]
    _check_plan(model)
    return model


def _signature(sd: Table, subgraphs: list[Subgraph]) -> SignatureDef:
    """A signature def with its tensor indices resolved to the tensors of its subgraph."""
    key, sgi = sd.get("SignatureKey"), sd.get("SubgraphIndex", 0)
    what = f"signature {key.decode(errors='replace')!r}" if key is not None else "a signature"
    if not 0 <= sgi < len(subgraphs):
        raise FdtError(f"{what} refers to subgraph {sgi}, the model has {len(subgraphs)}")
    tensors = subgraphs[sgi].tensors

    def maps(field: str, kind: str) -> list[tuple[bytes, Tensor]]:
        names = [tm.get("Name", b"") for tm in sd.get(field, [])]
        refs = _refs(np.array([tm.get("TensorIndex", 0) for tm in sd.get(field, [])], dtype=np.int64),
                     tensors, f"{what} {kind}", False)
        return list(zip(names, refs))
    return SignatureDef(key, sgi, maps("Inputs", "input"), maps("Outputs", "output"))


def _check_plan(model: Model) -> None:
    """An ``OfflineMemoryAllocation`` entry must decode: offsets are -1 (online) or >= 0."""
    from .plan_format import METADATA_NAME, decode_plan
    buf = model.get_metadata(METADATA_NAME)
    if buf is None:
        return
    plan = decode_plan(buf.data)
    if plan and min(plan) < -1:
        raise FdtError(f"{METADATA_NAME} metadata has a negative offset {min(plan)}")


def _quant(q: Table | None) -> Quantization | None:
    if q is None:
        return None
    return Quantization(scale=q.get("Scale"), zero_point=q.get("ZeroPoint"), min=q.get("Min"),
                        max=q.get("Max"), axis=q.get("QuantizedDimension", 0), details=q.get("Details"))


def _tensor(t: Table, buffers: list[Buffer]) -> Tensor:
    name = (t.get("Name") or b"").decode(errors="replace")
    bidx = t.get("Buffer", 0)
    if bidx >= len(buffers):
        raise FdtError(f"tensor {name!r} names buffer {bidx}, the model has {len(buffers)}")
    shape = t.get("Shape")
    sig = t.get("ShapeSignature")
    tensor = Tensor(
        name=name, shape=[] if shape is None else [int(x) for x in shape],
        dtype=t.get("Type", 0), buffer=buffers[bidx], quantization=_quant(t.get("Quantization")),
        is_variable=bool(t.get("IsVariable", False)),
        shape_signature=None if sig is None else [int(x) for x in sig],
        sparsity=t.get("Sparsity"), has_rank=bool(t.get("HasRank", False)),
        extra={k: v for k, v in t.fields.items() if k not in _TENSOR_FIELDS})
    tensor.extra["_shape_present"] = shape is not None
    _check_size(tensor)
    return tensor


def _check_size(t: Tensor) -> None:
    """Bound what a tensor claims before anything allocates it (TFLM needs static shapes)."""
    if len(t.shape) > MAX_RANK or any(d < 0 for d in t.shape):
        raise FdtError(f"tensor {t.name!r} has an invalid shape {_short(t.shape)} "
                       f"(TFLM needs at most {MAX_RANK} non-negative dimensions)")
    n = math.prod(t.shape)
    if t.is_constant:
        if t.dtype in DTYPE_NUMPY and t.dtype not in _PACKED and t.sparsity is None \
                and len(t.buffer.data) != n * dtype_size(t.dtype):
            raise FdtError(f"constant tensor {t.name!r} of shape {_short(t.shape)} has {len(t.buffer.data):,} B "
                           f"of data, its shape and type need {n * dtype_size(t.dtype):,} B")
    elif n * dtype_size(t.dtype) > MAX_ARENA_TENSOR_BYTES:
        raise FdtError(f"tensor {t.name!r} of shape {_short(t.shape)} claims {n * dtype_size(t.dtype):,} B; "
                       f"a tensor in the arena is limited to {MAX_ARENA_TENSOR_BYTES:,} B")


def _short(shape: list[int]) -> str:
    return str(shape) if len(shape) <= MAX_RANK else f"[{', '.join(map(str, shape[:MAX_RANK]))}, ...] (rank {len(shape)})"


def _refs(indices: Optional[np.ndarray], tensors: list[Tensor], what: str, optional: bool) -> list[Optional[Tensor]]:
    """Tensors by index; -1 (an omitted optional input) only where ``optional``."""
    out: list[Optional[Tensor]] = []
    for i in (() if indices is None else indices.tolist()):
        if i == -1 and optional:
            out.append(None)
        elif 0 <= i < len(tensors):
            out.append(tensors[i])
        else:
            raise FdtError(f"{what} refers to tensor {i}, the subgraph has {len(tensors)}")
    return out


def _operator(o: Table, index: int, tensors: list[Tensor], opcodes: list[OperatorCode]) -> Operator:
    oi = o.get("OpcodeIndex", 0)
    if oi >= len(opcodes):
        raise FdtError(f"operator {index} uses opcode {oi}, the model has {len(opcodes)}")
    co = o.get("CustomOptions")
    return Operator(
        opcode=opcodes[oi],
        inputs=_refs(o.get("Inputs"), tensors, f"operator {index}'s input", True),
        outputs=_refs(o.get("Outputs"), tensors, f"operator {index}'s output", False),
        options=o.get("BuiltinOptions"), options2=o.get("BuiltinOptions2"),
        custom_options=None if co is None else co.tobytes(),
        custom_options_format=o.get("CustomOptionsFormat", 0),
        mutating_variable_inputs=o.get("MutatingVariableInputs"),
        intermediates=_refs(o.get("Intermediates"), tensors, f"operator {index}'s intermediate", True),
        extra={k: v for k, v in o.fields.items() if k not in _OP_FIELDS})


def check_dataflow(sg: Subgraph) -> None:
    """What the passes assume of a graph (:meth:`fdt_tflm.ir.graph.Subgraph.validate`).  TFLM
    itself runs ill-formed graphs blindly in the stored order, so the reader accepts them
    (``inspect``, ``verify``); ``check_optimizable`` refuses them."""
    sg.validate()


def _subgraph(sg: Table, buffers: list[Buffer], opcodes: list[OperatorCode]) -> Subgraph:
    tensors = [_tensor(t, buffers) for t in sg.get("Tensors", [])]
    ops = [_operator(o, k, tensors, opcodes) for k, o in enumerate(sg.get("Operators", []))]
    out = Subgraph(tensors=tensors, operators=ops,
                   inputs=_refs(sg.get("Inputs"), tensors, "a graph input", False),
                   outputs=_refs(sg.get("Outputs"), tensors, "a graph output", False),
                   name=sg.get("Name"), extra={k: v for k, v in sg.fields.items() if k not in _SG_FIELDS})
    return out
