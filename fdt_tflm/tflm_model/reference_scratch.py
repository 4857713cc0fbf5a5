"""Kernel scratch buffers TFLM's reference kernels request with ``RequestScratchBufferInArena``
(:mod:`.scratch` gives every kernel set's, per target).

They live only while their op runs and TFLM always places them at run time, into the
first gap of the (offline) plan that fits.  An offline plan must therefore leave room
for them at their op's step, or TFLM grows the head past the plan.  Sizes are read off
the reference kernels' Prepare functions (tflite-micro, tensorflow/lite/micro/kernels):

* UNIDIRECTIONAL_SEQUENCE_LSTM: 4 x batch * state_dim * sizeof(cell state)
  (unidirectional_sequence_lstm.cc; the hidden-state tensor is batch x state_dim);
* MEAN / SUM: int32 accumulator per output element for int8/int16 inputs, then one int
  per input dimension and one per axis entry; REDUCE_MAX / REDUCE_MIN: the last two
  (reduce_common.cc);
* TRANSPOSE_CONV: int32 (int8 input) or int64 (int16 input) per output element, plus
  int64 per bias element for int16 biases (transpose_conv.cc);
* SVDF: int32 per (batch, filter) and, for int8, per (batch, unit) (svdf_common.cc);
* ADD_N: one data pointer per input (add_n.cc; 8-byte pointers on the host
  interpreter we calibrate against, 4 on 32-bit MCUs);
* MIRROR_PAD: two int arrays of input rank (mirror_pad.cc);
* CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED with INT4 weights: an unpacked copy of
  the filter, one byte per element (conv_common.cc, depthwise_conv_common.cc,
  fully_connected.cc).

Which rule applies to an op is the catalog's ``OpInfo.scratch`` (:mod:`fdt_tflm.catalog.ops`);
ops it marks ``ScratchKind.NONE`` (:data:`NO_SCRATCH`) request nothing (no
``RequestScratchBufferInArena`` in their source).  Every other op (custom ops such as TFLM's
Signal library, builtins newer than the catalog) is unknown: :func:`fdt_tflm.verify.probe.learn_kernel_scratch`
measures its scratch in TFLM and stores it on the op (``Operator.learned_scratch``);
an unknown op that was not probed, or that TFLM could not run alone, is assumed to
request nothing.  Each request is rounded up to 16 bytes by the planner.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Mapping, Optional

from tflite.TensorType import TensorType

from ..catalog.ops import CATALOG, ScratchKind, info
from ..ir.graph import Operator, Tensor
from ..ir.types import dtype_size

INT_BYTES = 4
HOST_POINTER_BYTES = 8

def _numel(t: Optional[Tensor]) -> int:
    return 0 if t is None else t.num_elements


def _rank(t: Optional[Tensor]) -> int:
    return 0 if t is None else len(t.shape)


def _input(op: Operator, i: int) -> Optional[Tensor]:
    return op.inputs[i] if i < len(op.inputs) else None


def _lstm(op: Operator) -> list[int]:
    hidden_i, cell_i = info(op).roles.state  # the output (hidden) state, then the cell state
    hidden, cell = _input(op, hidden_i), _input(op, cell_i)
    if hidden is None or cell is None:
        return []
    return [_numel(hidden) * dtype_size(cell.dtype)] * 4


def _mean_or_sum(op: Operator) -> list[int]:
    x, axis = _input(op, 0), _input(op, 1)
    out = []
    if x is not None and x.dtype in (TensorType.INT8, TensorType.INT16):
        out.append(INT_BYTES * _numel(op.outputs[0]))
    return out + [INT_BYTES * _rank(x), INT_BYTES * _numel(axis)]


def _min_max(op: Operator) -> list[int]:
    return [INT_BYTES * _rank(_input(op, 0)), INT_BYTES * _numel(_input(op, 1))]


def _transpose_conv(op: Operator) -> list[int]:
    x, bias = _input(op, 2), _input(op, 3)  # inputs: output_shape, weights, input, bias
    out = []
    if x is not None and x.dtype == TensorType.INT16 and bias is not None and bias.dtype == TensorType.INT16:
        out.append(8 * _numel(bias))
    if x is not None and x.dtype == TensorType.INT8:
        out.append(4 * _numel(op.outputs[0]))
    elif x is not None and x.dtype == TensorType.INT16:
        out.append(8 * _numel(op.outputs[0]))
    return out


def _svdf(op: Operator) -> list[int]:
    x, feat = _input(op, 0), _input(op, 1)  # weights_feature: [num_filters, input_size]
    if x is None or feat is None:
        return []
    batch, filters = x.shape[0], feat.shape[0]
    units = op.outputs[0].shape[-1]
    if x.dtype == TensorType.INT8:
        return [4 * batch * filters, 4 * batch * units]
    return [4 * batch * filters]


def _add_n(op: Operator) -> list[int]:
    return [HOST_POINTER_BYTES * len([t for t in op.inputs if t is not None])]


def _mirror_pad(op: Operator) -> list[int]:
    return [INT_BYTES * _rank(_input(op, 0))] * 2


def _int4_filter(op: Operator) -> list[int]:
    w = _input(op, 1)
    return [_numel(w)] if w is not None and w.dtype == TensorType.INT4 else []


# ScratchKind (the catalog's ``OpInfo.scratch``) -> bytes of each request, in the kernel's order
SCRATCH_KINDS: Mapping[str, Callable[[Operator], list[int]]] = MappingProxyType({
    ScratchKind.LSTM: _lstm,
    ScratchKind.REDUCE: _mean_or_sum,
    ScratchKind.REDUCE_MIN_MAX: _min_max,
    ScratchKind.TRANSPOSE_CONV: _transpose_conv,
    ScratchKind.SVDF: _svdf,
    ScratchKind.ADD_N: _add_n,
    ScratchKind.MIRROR_PAD: _mirror_pad,
    ScratchKind.INT4_FILTER: _int4_filter,
})

# The catalog's view by op type: op type -> rule, and the op types known to request nothing.
SCRATCH_RULES: Mapping[str, Callable[[Operator], list[int]]] = MappingProxyType(
    {n: SCRATCH_KINDS[i.scratch] for n, i in CATALOG.items() if i.scratch in SCRATCH_KINDS})
NO_SCRATCH: frozenset[str] = frozenset(n for n, i in CATALOG.items() if i.scratch == ScratchKind.NONE)


def is_known(op: Operator) -> bool:
    """Whether the catalog knows ``op``'s scratch requests (else only TFLM can tell)."""
    return info(op).scratch is not None


def reference_requests(op: Operator) -> list[int]:
    """Bytes of each scratch buffer ``op``'s reference kernel requests (unaligned, request order):
    from the catalog's rule, else what TFLM was measured to request (nothing if never measured)."""
    rule = SCRATCH_KINDS.get(info(op).scratch or "")
    if rule is None:
        learned = op.learned_scratch
        return [] if learned is None else [b for b in learned.requests if b > 0]
    try:
        return [b for b in rule(op) if b > 0]
    except (IndexError, TypeError):  # malformed op: TFLM would reject it anyway
        return []
