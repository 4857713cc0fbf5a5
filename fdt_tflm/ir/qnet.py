"""Build small int8 (or float32) TFLite networks with seeded weights and valid quantisation.

Used by the scripts in ``models/`` and by tests that need small graphs of a given shape.
Output scales are chosen from the expected spread of the accumulator (not calibrated),
so activations use the int8 range without saturating everywhere.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from .builder import GraphBuilder, options, quant
from .graph import Model, Tensor

ACT = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3, "TANH": 4}
PAD = {"SAME": 0, "VALID": 1}


def conv_out(size: int, k: int, stride: int, dilation: int, padding: str) -> int:
    eff = (k - 1) * dilation + 1
    return (size + stride - 1) // stride if padding == "SAME" else (size - eff + stride) // stride


class QNet:
    """A tiny network builder; every method appends one op and returns its output tensor."""

    def __init__(self, seed: int = 0, dtype: str = "INT8", description: str = "fdt-tflm generated",
                 converter_like: bool = False):
        """``converter_like``: activations keep real magnitudes of order one, as in a trained
        network (He-scaled weights: real std sqrt(2 / fan-in)), and fused RELU/RELU6 outputs
        are quantised over ``[0, max]`` with zero point -128, as the TFLite converter does from
        calibration ranges (RELU6 caps max at 6).  Off: the older scheme the shipped small
        models were built with (their bytes must not change)."""
        self.rng = np.random.default_rng(seed)
        self.converter_like = converter_like
        self.b = GraphBuilder()
        self.b.model.description = description.encode()
        self.dtype = dtype
        self.float = dtype == "FLOAT32"
        self._n = 0
        self._std: dict[int, float] = {}  # expected std of each activation's real value

    def std(self, t: Tensor) -> float:
        return self._std.get(id(t), 74 * self._scale(t))

    def _new_act(self, kind: str, shape, std: float, like: Optional[Tensor] = None) -> Tensor:
        """An activation whose int8 scale covers about +-3 standard deviations."""
        q = (like.quantization.copy() if like is not None and like.quantization is not None
             else self._act_q(max(std, 1e-6) * 3 / 127))
        t = self.b.tensor(self._name(kind), shape, self.dtype, q)
        self._std[id(t)] = std if like is None else self.std(like)
        return t

    def _act_out(self, kind: str, shape, std: float, act: str, like: Optional[Tensor]) -> Tensor:
        """The output of an op with fused activation ``act`` (see ``converter_like``)."""
        if like is not None or self.float or not self.converter_like or act not in ("RELU", "RELU6"):
            return self._new_act(kind, shape, std, like=like)
        hi = max(4.0 * std, 1e-6)  # the post-ReLU spread; its max sits a few deviations out
        if act == "RELU6":
            hi = min(hi, 6.0)
        t = self.b.tensor(self._name(kind), shape, self.dtype, quant(hi / 255, -128))
        self._std[id(t)] = min(std, hi / 2)
        return t

    # -- helpers ---------------------------------------------------------------------------
    def _name(self, kind: str) -> str:
        self._n += 1
        return f"{kind}_{self._n}"

    def _act_q(self, scale: float, zp: Optional[int] = None):
        if self.float:
            return None
        return quant(scale, int(self.rng.integers(-20, 21)) if zp is None else zp)

    def _scale(self, t: Tensor) -> float:
        return 1.0 if self.float else float(t.quantization.scale[0])

    def _weights(self, shape: Sequence[int], out_axis: int):
        n_out = shape[out_axis]
        if self.float:
            w = self.rng.standard_normal(shape).astype(np.float32) / math.sqrt(np.prod(shape) / n_out)
            return self.b.const(self._name("w"), w), np.ones(n_out, np.float32)
        wq = self.rng.integers(-127, 128, size=shape).astype(np.int8)
        spread = self.rng.uniform(0.5, 1.5, n_out)
        if self.converter_like:  # int8 uniform on [-127, 127] has std ~73.6; aim for sqrt(2 / fan-in)
            ws = (spread * math.sqrt(2.0 * n_out / np.prod(shape)) / 73.6).astype(np.float32)
        else:
            ws = (spread / 127.0 / 8).astype(np.float32)
        return self.b.const(self._name("w"), wq, quant(ws, 0, out_axis)), ws

    def _bias(self, n: int, in_scale: float, ws: np.ndarray, fan_in: int):
        if self.float:
            return self.b.const(self._name("b"), (self.rng.standard_normal(n) * 0.1).astype(np.float32))
        bs = (in_scale * ws).astype(np.float32)
        bq = self.rng.integers(-64, 64, size=n).astype(np.int32) * int(max(1, math.sqrt(fan_in)) * 16)
        return self.b.const(self._name("b"), bq, quant(bs, 0))

    def _out_std(self, x: Tensor, ws: np.ndarray, fan_in: int, act: str) -> float:
        w_std = 1.0 / math.sqrt(fan_in) if self.float else float(np.mean(ws)) * 73
        s = self.std(x) * w_std * math.sqrt(fan_in)
        return s * (0.6 if act != "NONE" else 1.0)

    # -- layers ----------------------------------------------------------------------------
    def input(self, shape: Sequence[int], scale: float = 0.05, zp: int = 0, name: str = "input") -> Tensor:
        t = self.b.tensor(name, shape, self.dtype, self._act_q(scale, zp))
        self._std[id(t)] = 74 * scale
        self.b.sg.inputs.append(t)
        return t

    def output(self, *ts: Tensor) -> Model:
        self.b.sg.outputs.extend(ts)
        return self.b.model

    def conv2d(self, x: Tensor, out_ch: int, kernel=(3, 3), stride: int = 1, padding: str = "SAME",
               dilation: int = 1, act: str = "RELU", like: Optional[Tensor] = None) -> Tensor:
        """``like``: reuse that tensor's output quantisation (e.g. for inputs of a CONCATENATION)."""
        n, h, w, c = x.shape
        kh, kw = kernel
        wt, ws = self._weights([out_ch, kh, kw, c], 0)
        fan = kh * kw * c
        bias = self._bias(out_ch, self._scale(x), ws, fan)
        oh, ow = conv_out(h, kh, stride, dilation, padding), conv_out(w, kw, stride, dilation, padding)
        y = self._act_out("conv", [n, oh, ow, out_ch], self._out_std(x, ws, fan, act), act, like)
        self.b.op("CONV_2D", [x, wt, bias], [y], options(
            "CONV_2D", Padding=PAD[padding], StrideW=stride, StrideH=stride, FusedActivationFunction=ACT[act],
            DilationWFactor=dilation, DilationHFactor=dilation), version=3)
        return y

    def depthwise(self, x: Tensor, kernel=(3, 3), stride: int = 1, padding: str = "SAME", dilation: int = 1,
                  depth_multiplier: int = 1, act: str = "RELU") -> Tensor:
        n, h, w, c = x.shape
        kh, kw = kernel
        out_ch = c * depth_multiplier
        wt, ws = self._weights([1, kh, kw, out_ch], 3)
        fan = kh * kw
        bias = self._bias(out_ch, self._scale(x), ws, fan)
        oh, ow = conv_out(h, kh, stride, dilation, padding), conv_out(w, kw, stride, dilation, padding)
        y = self._act_out("dwconv", [n, oh, ow, out_ch], self._out_std(x, ws, fan, act), act, None)
        self.b.op("DEPTHWISE_CONV_2D", [x, wt, bias], [y], options(
            "DEPTHWISE_CONV_2D", Padding=PAD[padding], StrideW=stride, StrideH=stride,
            DepthMultiplier=depth_multiplier, FusedActivationFunction=ACT[act],
            DilationWFactor=dilation, DilationHFactor=dilation), version=3)
        return y

    def fully_connected(self, x: Tensor, units: int, act: str = "NONE") -> Tensor:
        k = x.shape[-1]
        wt, ws = self._weights([units, k], 0)
        if not self.float:  # TFLM's int8 FULLY_CONNECTED takes per-tensor weights
            ws = np.full(units, float(ws.mean()), np.float32)
            wt.quantization = quant(ws[:1], 0)
        bias = self._bias(units, self._scale(x), ws, k)
        if not self.float:
            bias.quantization = quant(bias.quantization.scale[:1], 0)
        y = self._new_act("fc", [*x.shape[:-1], units], self._out_std(x, ws, k, act))
        self.b.op("FULLY_CONNECTED", [x, wt, bias], [y], options(
            "FULLY_CONNECTED", FusedActivationFunction=ACT[act]), version=4 if not self.float else 1)
        return y

    def pool(self, x: Tensor, kind: str = "AVERAGE", size: int = 2, stride: int = 2, padding: str = "VALID") -> Tensor:
        n, h, w, c = x.shape
        oh, ow = conv_out(h, size, stride, 1, padding), conv_out(w, size, stride, 1, padding)
        y = self._new_act(kind.lower() + "pool", [n, oh, ow, c], 0, like=x)
        if kind == "AVERAGE":  # averaging shrinks the spread; later scales should follow
            self._std[id(y)] = self.std(x) / size
        self.b.op(f"{kind}_POOL_2D", [x], [y], options(
            f"{kind}_POOL_2D", Padding=PAD[padding], StrideW=stride, StrideH=stride, FilterWidth=size,
            FilterHeight=size, FusedActivationFunction=0), version=2)
        return y

    def add(self, a: Tensor, b: Tensor, act: str = "NONE") -> Tensor:
        y = self._new_act("add", list(a.shape), math.hypot(self.std(a), self.std(b)))
        self.b.op("ADD", [a, b], [y], options("ADD", FusedActivationFunction=ACT[act]), version=2)
        return y

    def pad(self, x: Tensor, hw_pads: Sequence[Sequence[int]]) -> Tensor:
        """Explicit zero padding ``((top, bottom), (left, right))``, as Keras' ZeroPadding2D
        converts: PAD keeps the quantisation, so it fills with the zero point (real 0)."""
        (t, b), (l, r) = hw_pads
        n, h, w, c = x.shape
        pads = self.b.const(self._name("paddings"), np.array([[0, 0], [t, b], [l, r], [0, 0]], np.int32))
        y = self._new_act("pad", [n, h + t + b, w + l + r, c], 0, like=x)
        self.b.op("PAD", [x, pads], [y], options("PAD"), version=2 if not self.float else 1)
        return y

    def reshape(self, x: Tensor, shape: Sequence[int]) -> Tensor:
        shp = self.b.const(self._name("shape"), np.array(shape, np.int32))
        y = self._new_act("reshape", list(shape), 0, like=x)
        self.b.op("RESHAPE", [x, shp], [y], options("RESHAPE"))
        return y

    def softmax(self, x: Tensor) -> Tensor:
        y = self.b.tensor(self._name("softmax"), list(x.shape), self.dtype, self._act_q(1 / 256, -128))
        beta = 1.0 if self.float else float(np.float32(2.0 / max(self.std(x), 1e-6)))  # logits spread ~2
        self.b.op("SOFTMAX", [x], [y], options("SOFTMAX", Beta=beta))
        return y

    def concat(self, xs: Sequence[Tensor], axis: int = -1) -> Tensor:
        """TFLM's int8 CONCATENATION needs every input quantised like the output."""
        if not self.float and any(not t.quantization.same_as(xs[0].quantization) for t in xs):
            raise ValueError("CONCATENATION inputs must share one quantisation (use conv2d(like=...))")
        shape = list(xs[0].shape)
        ax = axis % len(shape)
        shape[ax] = sum(t.shape[ax] for t in xs)
        y = self._new_act("concat", shape, 0, like=xs[0])
        self.b.op("CONCATENATION", list(xs), [y], options("CONCATENATION", Axis=ax, FusedActivationFunction=0))
        return y

    def mean(self, x: Tensor, axes: Sequence[int] = (1, 2), keep_dims: bool = True) -> Tensor:
        ax = self.b.const(self._name("axes"), np.array(axes, np.int32))
        shape = [1 if i in axes else d for i, d in enumerate(x.shape)] if keep_dims else \
            [d for i, d in enumerate(x.shape) if i not in axes]
        y = self._new_act("mean", shape, 0, like=x)
        self.b.op("MEAN", [x, ax], [y], options("MEAN", KeepDims=keep_dims))
        return y

    def unary(self, x: Tensor, op: str) -> Tensor:
        y = self._new_act(op.lower(), list(x.shape), 0, like=x)
        self.b.op(op, [x], [y])
        return y
