"""Write the graph IR back to a .tflite flatbuffer (once, at the end of a pipeline).

Buffer indices are assigned here: buffer 0 is the conventional empty buffer,
then the data buffers of constant tensors in subgraph/tensor order, then the
metadata buffers.  Buffers nothing refers to any more (e.g. the weights of an
operator a pass replaced) are dropped.  Tensor data is 16-byte aligned as TFLM
expects.  The output is a pure function of the IR, so it is deterministic.
"""
from __future__ import annotations

import flatbuffers
import numpy as np

from ..errors import FdtError
from ..ir.graph import Buffer, Model, SignatureDef, Subgraph, Tensor
from ..ir.table import Table
from .fbgeneric import _module, write_numpy_vector, write_offset_vector, write_table

TENSOR_DATA_ALIGNMENT = 16


def write_model(model: Model) -> bytes:
    """Serialise ``model`` as it is (an offline plan in its metadata is the plan pass's, proved
    there and by the pipeline before writing: :func:`fdt_tflm.tflm_model.offline_plan.check_offline_plan`).
    Every tensor an op or a graph names must be in its subgraph (else it has no index to write)."""
    for sg in model.subgraphs:
        sg.validate(dataflow=False)
    buffers: list[Buffer] = [Buffer()]
    index: dict[int, int] = {id(buffers[0]): 0}

    def buf_index(b: Buffer) -> int:
        if not b.data:
            return 0
        if id(b) not in index:
            index[id(b)] = len(buffers)
            buffers.append(b)
        return index[id(b)]

    sg_tables = [_subgraph_table(sg, buf_index, model) for sg in model.subgraphs]
    meta = [Table("Metadata", {"Name": name, "Buffer": _meta_index(b, buffers, index)})
            for name, b in model.metadata]

    root = Table("Model", {"Version": model.version})
    root.fields["OperatorCodes"] = [_opcode_table(oc) for oc in _used_opcodes(model)]
    root.fields["Subgraphs"] = sg_tables
    if model.description is not None:
        root.fields["Description"] = model.description
    if model.metadata:
        root.fields["Metadata"] = meta
        if "MetadataBuffer" in model.extra:
            root.fields["MetadataBuffer"] = np.array([m["Buffer"] for m in meta], dtype=np.int32)
    if model.signature_defs:
        root.fields["SignatureDefs"] = [_signature_table(sd, model) for sd in model.signature_defs]
    for k, v in model.extra.items():
        if not k.startswith("_") and k != "MetadataBuffer":
            root.fields[k] = v

    builder = flatbuffers.Builder(1024 + sum(len(b.data) + 32 for b in buffers))
    # buffers carry alignment; write them by hand, the rest through the generic codec
    buf_offsets = []
    FbBuffer = _module("Buffer")
    for b in buffers:
        if b.data:
            vec = write_numpy_vector(builder, np.frombuffer(b.data, dtype=np.uint8), TENSOR_DATA_ALIGNMENT)
            FbBuffer.Start(builder)
            FbBuffer.AddData(builder, vec)
            buf_offsets.append(FbBuffer.End(builder))
        else:
            FbBuffer.Start(builder)
            buf_offsets.append(FbBuffer.End(builder))
    buffers_vec = write_offset_vector(builder, buf_offsets)
    fields_offsets = {}
    for name, val in root.fields.items():
        if isinstance(val, list):
            fields_offsets[name] = write_offset_vector(builder, [write_table(builder, v) for v in val])
        elif isinstance(val, bytes):
            fields_offsets[name] = builder.CreateString(val)
        elif isinstance(val, np.ndarray):
            fields_offsets[name] = write_numpy_vector(builder, val)
        elif isinstance(val, Table):
            fields_offsets[name] = write_table(builder, val)
        else:
            fields_offsets[name] = val
    FbModel = _module("Model")
    FbModel.Start(builder)
    FbModel.AddBuffers(builder, buffers_vec)
    for name, val in fields_offsets.items():
        getattr(FbModel, "Add" + name)(builder, val)
    builder.Finish(FbModel.End(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _signature_table(sd: SignatureDef, model: Model) -> Table:
    """The signature with each tensor's index in its written subgraph.  A signature tensor a
    rewrite dropped from the subgraph is an error: any index written for it would be wrong."""
    if not 0 <= sd.subgraph_index < len(model.subgraphs):
        raise FdtError(f"internal error: signature {sd.key!r} names subgraph {sd.subgraph_index}, "
                       f"the model has {len(model.subgraphs)}")
    idx = {id(t): i for i, t in enumerate(model.subgraphs[sd.subgraph_index].tensors)}

    def tensor_map(name: bytes, t: Tensor) -> Table:
        if id(t) not in idx:
            raise FdtError(f"internal error: signature {sd.key!r} refers to tensor {t.name!r} ({name!r}), "
                           f"which is not in subgraph {sd.subgraph_index}'s tensor list")
        return Table("TensorMap", {"Name": name, "TensorIndex": idx[id(t)]})
    return Table("SignatureDef", {
        **({"SignatureKey": sd.key} if sd.key is not None else {}),
        "SubgraphIndex": sd.subgraph_index,
        "Inputs": [tensor_map(n, t) for n, t in sd.inputs],
        "Outputs": [tensor_map(n, t) for n, t in sd.outputs]})


def _meta_index(b: Buffer, buffers: list[Buffer], index: dict[int, int]) -> int:
    if id(b) not in index:  # metadata buffers keep their own slot even when empty
        index[id(b)] = len(buffers)
        buffers.append(b)
    return index[id(b)]


def _used_opcodes(model: Model):
    """Operator codes used by some operator, in first-use order (unused ones are dropped)."""
    seen: dict[int, object] = {}
    for oc in model.operator_codes:
        seen.setdefault(id(oc), oc)
    used = {id(op.opcode) for sg in model.subgraphs for op in sg.operators}
    out = [oc for oc in seen.values() if id(oc) in used]
    for sg in model.subgraphs:
        for op in sg.operators:
            if id(op.opcode) not in {id(o) for o in out}:
                out.append(op.opcode)
    model.operator_codes = out
    return out


def _opcode_table(oc) -> Table:
    f = {"DeprecatedBuiltinCode": oc.deprecated_builtin_code if oc.deprecated_builtin_code is not None
         else min(oc.builtin_code, 127)}
    if oc.custom_code is not None:
        f["CustomCode"] = oc.custom_code
    f["Version"] = oc.version
    f["BuiltinCode"] = oc.builtin_code
    return Table("OperatorCode", f)


def _quant_table(q) -> Table:
    f = {}
    for key, arr in (("Min", q.min), ("Max", q.max), ("Scale", q.scale), ("ZeroPoint", q.zero_point)):
        if arr is not None:
            f[key] = arr
    if q.details is not None:  # a member of the QuantizationDetails union
        f["DetailsType"] = getattr(_module("QuantizationDetails").QuantizationDetails, q.details.type_name)
        f["Details"] = q.details
    f["QuantizedDimension"] = q.axis
    return Table("QuantizationParameters", f)


def _subgraph_table(sg: Subgraph, buf_index, model: Model) -> Table:
    idx = {id(t): i for i, t in enumerate(sg.tensors)}

    def ti(t) -> int:
        if t is None:
            return -1
        if id(t) not in idx:
            raise FdtError(f"internal error: tensor {t.name!r} is used but not in the subgraph's tensor list")
        return idx[id(t)]

    tensors = []
    for t in sg.tensors:
        f: dict = {}
        if t.shape or t.extra.get("_shape_present", True):
            f["Shape"] = np.array(t.shape, dtype=np.int32)
        f["Type"] = t.dtype
        f["Buffer"] = buf_index(t.buffer)
        f["Name"] = t.name.encode()
        if t.quantization is not None:
            f["Quantization"] = _quant_table(t.quantization)
        if t.is_variable:
            f["IsVariable"] = True
        if t.sparsity is not None:
            f["Sparsity"] = t.sparsity
        if t.shape_signature is not None:
            f["ShapeSignature"] = np.array(t.shape_signature, dtype=np.int32)
        if t.has_rank:
            f["HasRank"] = True
        f.update({k: v for k, v in t.extra.items() if not k.startswith("_")})
        tensors.append(Table("Tensor", f))
    ops = []
    opcodes = _used_opcodes(model)
    oc_index = {id(oc): i for i, oc in enumerate(opcodes)}
    enum_mod = _module("BuiltinOptions").BuiltinOptions
    enum2_mod = _module("BuiltinOptions2").BuiltinOptions2
    for op in sg.operators:
        f = {"OpcodeIndex": oc_index[id(op.opcode)],
             "Inputs": np.array([ti(t) for t in op.inputs], dtype=np.int32),
             "Outputs": np.array([ti(t) for t in op.outputs], dtype=np.int32)}
        if op.options is not None:
            f["BuiltinOptionsType"] = getattr(enum_mod, op.options.type_name)
            f["BuiltinOptions"] = op.options
        if op.custom_options is not None:
            f["CustomOptions"] = np.frombuffer(op.custom_options, dtype=np.uint8)
        if op.custom_options_format:
            f["CustomOptionsFormat"] = op.custom_options_format
        if op.mutating_variable_inputs is not None:
            f["MutatingVariableInputs"] = op.mutating_variable_inputs
        if op.intermediates:
            f["Intermediates"] = np.array([ti(t) for t in op.intermediates], dtype=np.int32)
        if op.options2 is not None:
            f["BuiltinOptions2Type"] = getattr(enum2_mod, op.options2.type_name)
            f["BuiltinOptions2"] = op.options2
        f.update(op.extra)
        ops.append(Table("Operator", f))
    out = {"Tensors": tensors,
           "Inputs": np.array([ti(t) for t in sg.inputs], dtype=np.int32),
           "Outputs": np.array([ti(t) for t in sg.outputs], dtype=np.int32),
           "Operators": ops}
    if sg.name is not None:
        out["Name"] = sg.name
    out.update(sg.extra)
    return Table("SubGraph", out)
