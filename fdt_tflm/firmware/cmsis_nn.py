"""Estimate the extra arena scratch TFLM's CMSIS-NN kernels request (``kernels="cmsis-nn"``).

Reference kernels request (almost) no scratch; the CMSIS-NN kernels of TFLM
(``tensorflow/lite/micro/kernels/cmsis_nn``) call CMSIS-NN's ``*_get_buffer_size`` rules
in ``Prepare`` and request that much with ``RequestScratchBufferInArena``.  The buffers
live only during their op and are planned into the head by the greedy planner, so the
extra arena is estimated by re-running our exact planner model with those buffers added.

The rules below restate CMSIS-NN (ARM-software/CMSIS-NN 99f736a, 2026-07) for int8:
- CONV_2D: ``arm_convolve_wrapper_s8_get_buffer_size`` (1x1 / 1xN / im2col paths);
- DEPTHWISE_CONV_2D: ``arm_depthwise_conv_wrapper_s8_get_buffer_size``;
- FULLY_CONNECTED: ``arm_fully_connected_s8_get_buffer_size`` plus TFLM's per-channel
  fake buffer (2 x 4 B per output) on its conv-1x1 path;
- AVERAGE_POOL_2D: ``arm_avgpool_s8_get_buffer_size``.
Where a rule depends on the compiler (Arm Compiler 6 vs GCC), the larger value is taken,
so the estimate errs on the safe side.  Other ops (and int16 variants) are assumed to
request what the reference kernels request (already in the measured head).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import FdtError
from ..ir.graph import Model, Operator
from ..ir.types import DTYPE_CODES
from ..memory.lifetimes import Interval, align
from ..memory.tflm_model import predict_head

# CPU feature sets CMSIS-NN distinguishes at compile time.
ARCHS: dict[str, str] = {
    "dsp": "Cortex-M4/M7/M33/M35P with the DSP extension (ARM_MATH_DSP)",
    "mve": "Cortex-M55/M85 with Helium (ARM_MATH_MVEI)",
    "none": "Cortex-M0/M0+/M3 (plain C paths)",
}
CH_IN_BLOCK_MVE = 124
_INT8 = DTYPE_CODES["INT8"]
_SAME = 0


@dataclass(frozen=True)
class ScratchRequest:
    """One scratch buffer a CMSIS-NN kernel requests for operator ``op_index``."""

    op_index: int
    op_type: str
    size: int
    rule: str


def _pad(in_size: int, out_size: int, k: int, stride: int, dil: int) -> int:
    """TFLM's ComputePaddingWithOffset (the padding value CMSIS-NN receives)."""
    total = (out_size - 1) * stride + (k - 1) * dil + 1 - in_size
    return max(total, 0) // 2


def _conv_dims(op: Operator) -> Optional[dict[str, int]]:
    inp, flt = op.inputs[0], op.inputs[1]
    out = op.outputs[0]
    if inp is None or flt is None or len(inp.shape) != 4 or len(flt.shape) != 4 or len(out.shape) != 4:
        return None
    sh, sw = int(op.opt("StrideH", 1)), int(op.opt("StrideW", 1))
    dh, dw = int(op.opt("DilationHFactor", 1)), int(op.opt("DilationWFactor", 1))
    kh, kw = flt.shape[1], flt.shape[2]
    return dict(n=inp.shape[0], ih=inp.shape[1], iw=inp.shape[2], ic=inp.shape[3], kh=kh, kw=kw,
                fc=flt.shape[3], oh=out.shape[1], ow=out.shape[2], oc=out.shape[3], sh=sh, sw=sw, dh=dh, dw=dw,
                ph=_pad(inp.shape[1], out.shape[1], kh, sh, dh), pw=_pad(inp.shape[2], out.shape[2], kw, sw, dw))


def _conv_s8_im2col(d: dict[str, int], arch: str) -> int:
    if arch == "mve":
        return 4 * ((d["ic"] * d["kw"] * d["kh"] + 15) // 16) * 16
    cols = d["kw"] * d["kh"] * d["ic"]
    return 2 * ((cols + 3) // 4 * 4) * 2


def _conv_1xn_mve(d: dict[str, int]) -> int:
    total_pad = (d["ow"] - 1) * d["sw"] + d["kw"] - d["iw"]
    asym = total_pad % 2
    right = max(1, (d["pw"] + asym + d["sw"] - 1) // d["sw"]) if d["pw"] + asym != 0 else 0
    left = max(1, (d["pw"] + d["sw"] - 1) // d["sw"]) if d["pw"] != 0 else 0
    if right + max(d["ow"] - (right + left), 0) + left != d["ow"]:
        return _conv_s8_im2col(d, "mve")
    pad_l = d["pw"] * d["ic"]
    pad_r = right * d["ic"] if asym else pad_l
    n_left = d["kw"] * d["ic"]
    return max(n_left + pad_l, n_left - d["ic"] + pad_r)


def _conv_buffer(d: dict[str, int], arch: str) -> tuple[int, str]:
    is_1x1 = (d["pw"] == 0 and d["ph"] == 0 and d["kw"] == 1 and d["kh"] == 1 and d["dw"] == 1
              and d["dh"] == 1 and d["ic"] == d["fc"])
    if is_1x1:
        if d["sw"] == 1 and d["sh"] == 1 and arch == "dsp":
            return 2 * d["ic"] * 2, "arm_convolve_1x1_s8_fast (Arm Compiler 6; 0 with GCC)"
        return 0, "arm_convolve_1x1_s8"
    if d["ih"] == 1 and d["dw"] == 1 and d["kh"] == 1 and (d["sw"] * d["ic"]) % 4 == 0 and d["ic"] == d["fc"]:
        if arch == "mve":
            return _conv_1xn_mve(d), "arm_convolve_1_x_n_s8 (MVE)"
        return _conv_s8_im2col(d, arch), "arm_convolve_1_x_n_s8"
    return _conv_s8_im2col(d, arch), "arm_convolve_s8 im2col"


def _conv(op: Operator, arch: str) -> list[tuple[int, str]]:
    d = _conv_dims(op)
    if d is None or op.inputs[0].dtype != _INT8:
        return []
    return [_conv_buffer(d, arch)]


def _depthwise(op: Operator, arch: str) -> list[tuple[int, str]]:
    d = _conv_dims(op)
    if d is None or op.inputs[0].dtype != _INT8 or op.inputs[1].dtype != _INT8:
        return []
    best = (0, "arm_depthwise_conv_3x3_s8 / generic")
    if arch == "mve" and d["ic"] == 1 and d["oc"] > 1:  # threshold 1 with GCC, 8 with AC6: take the larger
        conv = dict(d, fc=d["ic"])  # CMSIS-NN reinterprets the filter as a conv filter
        size = _conv_buffer(conv, "mve")[0] + d["oc"] * d["kh"] * d["kw"]
        return [(size, "depthwise with one input channel run as conv (MVE)")]
    if d["ic"] == d["oc"] and d["n"] == 1 and d["dw"] == 1 and d["dh"] == 1:
        if arch != "mve" and d["kw"] == 3 and d["kh"] == 3 and d["ph"] <= 1 and d["pw"] <= 1:
            return [best]
        if arch == "mve":
            best = (4 * CH_IN_BLOCK_MVE * d["kw"] * d["kh"], "arm_depthwise_conv_s8_opt (MVE)")
        elif arch == "dsp":
            best = (d["ic"] * d["kw"] * d["kh"] * 2, "arm_depthwise_conv_s8_opt (DSP)")
    return [best]


def _fully_connected(op: Operator, arch: str) -> list[tuple[int, str]]:
    inp, flt, out = op.inputs[0], op.inputs[1], op.outputs[0]
    if inp is None or flt is None or inp.dtype != _INT8 or flt.dtype != _INT8:
        return []
    accum = flt.shape[-1]
    out_depth = out.shape[-1]
    if len(out.shape) > 2 and accum % 4 == 0:
        res = []
        q = flt.quantization
        if q is None or not q.per_channel:
            res.append((out_depth * 4 * 2, "fake per-channel multipliers for conv-1x1 path"))
        if arch == "dsp":
            res.append((2 * accum * 2, "arm_convolve_1x1_s8_fast (Arm Compiler 6; 0 with GCC)"))
        return res
    if arch == "mve":
        return [(out_depth * 4, "arm_fully_connected_s8 kernel sums (MVE)")]
    return []


def _avgpool(op: Operator, arch: str) -> list[tuple[int, str]]:
    inp = op.inputs[0]
    if inp is None or inp.dtype != _INT8 or len(inp.shape) != 4 or arch != "dsp":
        return []
    return [(inp.shape[3] * 4, "arm_avgpool_s8 (DSP)")]


# Op type -> rule giving the scratch requests of TFLM's CMSIS-NN kernel for it.
SCRATCH_RULES: dict[str, Callable[[Operator, str], list[tuple[int, str]]]] = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "FULLY_CONNECTED": _fully_connected,
    "AVERAGE_POOL_2D": _avgpool,
}


def scratch_requests(model: Model, arch: str = "dsp") -> list[ScratchRequest]:
    """Every scratch buffer CMSIS-NN kernels would request for subgraph 0, in op order."""
    if arch not in ARCHS:
        raise FdtError(f"unknown CMSIS-NN architecture {arch!r} (choose from {', '.join(ARCHS)})")
    out = []
    for i, op in enumerate(model.main.operators):
        rule = SCRATCH_RULES.get(op.type)
        if rule is None:
            continue
        for size, why in rule(op, arch):
            if size > 0:
                out.append(ScratchRequest(i, op.type, size, why))
    return out


def extra_scratch(model: Model, arch: str = "dsp") -> int:
    """Bytes the head grows when CMSIS-NN scratch buffers are planned in (>= 0)."""
    reqs = scratch_requests(model, arch)
    if not reqs:
        return 0
    bufs = [Interval(None, align(r.size), r.op_index + 1, r.op_index + 1, -1) for r in reqs]
    return max(0, predict_head(model, bufs).head - predict_head(model).head)
