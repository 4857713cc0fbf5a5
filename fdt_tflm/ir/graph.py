"""The graph IR: one small, mutable in-memory form of a TFLite model.

Tensors and operators reference each other as Python objects, not indices, so
passes can insert, remove and reorder freely; indices are assigned only by the
writer.  Everything a pass does not understand (option tables, sparsity,
custom quantisation details) is carried opaquely as :class:`Table` values.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple, Optional

import numpy as np

from ..errors import FdtError
from .table import Table
from .types import BUILTIN_NAMES, DTYPE_NUMPY, DTYPE_NAMES, dtype_size


@dataclass(eq=False)
class Buffer:
    """Raw bytes of a constant tensor or a metadata entry (empty = no data)."""

    data: bytes = b""

    def __repr__(self) -> str:
        return f"Buffer({len(self.data)} B)"


@dataclass(eq=False)
class Quantization:
    """Affine quantisation, per tensor or per channel along ``axis``."""

    scale: Optional[np.ndarray] = None
    zero_point: Optional[np.ndarray] = None
    min: Optional[np.ndarray] = None
    max: Optional[np.ndarray] = None
    axis: int = 0
    details: Optional[Table] = None  # custom quantisation, carried opaquely

    @property
    def per_channel(self) -> bool:
        return self.scale is not None and self.scale.size > 1

    def copy(self) -> "Quantization":
        c = lambda a: None if a is None else a.copy()  # noqa: E731
        return Quantization(c(self.scale), c(self.zero_point), c(self.min), c(self.max), self.axis,
                            None if self.details is None else self.details.copy())

    def same_as(self, other: Optional["Quantization"]) -> bool:
        """Same scale and zero point (what decides whether a copy op is exact)."""
        if other is None:
            return False
        eq = lambda a, b: (a is None and b is None) or (  # noqa: E731
            a is not None and b is not None and a.shape == b.shape and np.array_equal(a, b))
        return eq(self.scale, other.scale) and eq(self.zero_point, other.zero_point)

    def __repr__(self) -> str:
        if self.scale is None:
            return "Quantization(none)"
        if self.per_channel:
            return f"Quantization(per-channel axis={self.axis}, n={self.scale.size})"
        zp = int(self.zero_point[0]) if self.zero_point is not None and self.zero_point.size else 0
        return f"Quantization(scale={float(self.scale[0]):.6g}, zp={zp})"


@dataclass(eq=False)
class Tensor:
    """A tensor of one subgraph.  Constant iff its buffer holds data."""

    name: str
    shape: list[int]
    dtype: int  # tflite.TensorType value
    buffer: Buffer = field(default_factory=Buffer)
    quantization: Optional[Quantization] = None
    is_variable: bool = False
    shape_signature: Optional[list[int]] = None
    sparsity: Optional[Table] = None
    has_rank: bool = False
    extra: dict = field(default_factory=dict)  # other schema fields, carried opaquely

    @property
    def is_constant(self) -> bool:
        return len(self.buffer.data) > 0

    @property
    def is_activation(self) -> bool:
        """Lives in TFLM's planned arena: neither constant nor variable."""
        return not self.is_constant and not self.is_variable

    @property
    def num_elements(self) -> int:
        return math.prod(int(d) for d in self.shape) if self.shape else 1  # math.prod: hot in the search

    @property
    def nbytes(self) -> int:
        return self.num_elements * dtype_size(self.dtype)

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype, str(self.dtype))

    def numpy(self) -> np.ndarray:
        """The constant data as an array of the tensor's shape."""
        return np.frombuffer(self.buffer.data, dtype=DTYPE_NUMPY[self.dtype]).reshape(self.shape)

    def __repr__(self) -> str:
        kind = "const" if self.is_constant else ("var" if self.is_variable else "act")
        return f"Tensor({self.name!r}, {self.dtype_name}{list(self.shape)}, {kind})"


CUSTOM_BUILTIN_CODE = 32  # BuiltinOperator_CUSTOM


@dataclass(eq=False)
class OperatorCode:
    builtin_code: int
    custom_code: Optional[bytes] = None
    version: int = 1
    deprecated_builtin_code: Optional[int] = None

    @property
    def name(self) -> str:
        if self.builtin_code == CUSTOM_BUILTIN_CODE and self.custom_code is not None:
            return self.custom_code.decode(errors="replace")
        name = BUILTIN_NAMES.get(self.builtin_code)  # hot in the search: no f-string unless needed
        return name if name is not None else f"BUILTIN_{self.builtin_code}"

    def key(self) -> tuple:
        return (self.builtin_code, self.custom_code, self.version)


@dataclass(frozen=True)
class ScratchProbe:
    """Kernel scratch of one op as measured in TFLM (:mod:`fdt_tflm.verify.probe`).

    Kept on the op for the planner, never serialised: the bytes depend on the runtime's
    kernels, not on the model.  ``error`` says why TFLM could not run the op alone; then
    ``requests`` is empty, the planner's assumption for kernels it does not know."""

    requests: tuple[int, ...] = ()  # bytes of each scratch buffer, in request order
    error: str = ""


class OpKey(NamedTuple):
    """An op's identity: a builtin's name, or a custom op's custom code (``custom``).  Every
    table of op knowledge is looked up by it, so a custom op is never taken for a builtin."""

    name: str
    custom: bool = False

    @property
    def table_name(self) -> str:
        """The name under which tables that map TFLM's op names list this op: a custom op whose
        code is a builtin's name gets a name of its own (``CUSTOM:CONV_2D``), never the builtin's row."""
        return f"CUSTOM:{self.name}" if self.custom and self.name in BUILTIN_CODES_BY_NAME else self.name


BUILTIN_CODES_BY_NAME = frozenset(BUILTIN_NAMES.values())


@dataclass(eq=False)
class Operator:
    """One node.  ``inputs`` may hold None for omitted optional inputs (index -1)."""

    opcode: OperatorCode
    inputs: list[Optional[Tensor]]
    outputs: list[Tensor]
    options: Optional[Table] = None
    options2: Optional[Table] = None
    custom_options: Optional[bytes] = None
    custom_options_format: int = 0
    mutating_variable_inputs: Optional[np.ndarray] = None
    intermediates: list[Tensor] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    learned_scratch: Optional[ScratchProbe] = None  # None: not probed (the writer ignores it)

    @property
    def type(self) -> str:
        """The op's name for people (reports, tables of results): its builtin name or custom code."""
        return self.opcode.name

    @property
    def key(self) -> OpKey:
        """The op's identity for lookups (see :class:`OpKey`)."""
        oc = self.opcode
        return OpKey(oc.name, oc.builtin_code == CUSTOM_BUILTIN_CODE and oc.custom_code is not None)

    def opt(self, key: str, default=None):
        """A builtin option field by its schema name (e.g. ``StrideW``)."""
        return default if self.options is None else self.options.get(key, default)

    def __repr__(self) -> str:
        ins = ", ".join("-" if t is None else t.name for t in self.inputs)
        outs = ", ".join(t.name for t in self.outputs)
        return f"Operator({self.type}: [{ins}] -> [{outs}])"


@dataclass(eq=False)
class Subgraph:
    tensors: list[Tensor] = field(default_factory=list)
    operators: list[Operator] = field(default_factory=list)
    inputs: list[Tensor] = field(default_factory=list)
    outputs: list[Tensor] = field(default_factory=list)
    name: Optional[bytes] = None
    extra: dict = field(default_factory=dict)

    def __iter__(self) -> Iterator[Operator]:
        return iter(self.operators)

    def __len__(self) -> int:
        return len(self.operators)

    def producers(self) -> dict[Tensor, Operator]:
        return {t: op for op in self.operators for t in op.outputs}

    def consumers(self) -> dict[Tensor, list[Operator]]:
        out: dict[Tensor, list[Operator]] = {}
        for op in self.operators:
            for t in op.inputs:
                if t is not None:
                    lst = out.setdefault(t, [])
                    if not lst or lst[-1] is not op:
                        lst.append(op)
        return out

    def index_of(self, t: Tensor) -> int:
        for i, x in enumerate(self.tensors):
            if x is t:
                return i
        raise KeyError(t.name)

    def validate(self, dataflow: bool = True) -> None:
        """Raise :class:`fdt_tflm.errors.FdtError` (one line) unless the graph is well formed:
        every tensor an op or the graph's inputs/outputs name is one of ``tensors``, and (with
        ``dataflow``) every tensor is written at most once, never a constant, by an op that runs
        before any that reads it (the stored order is topological: no cycle), and every
        activation read is a graph input or written first.  Every rewrite ends with it
        (:func:`fdt_tflm.ir.surgery.replace_region`); the writer checks the structure."""
        known = {id(t) for t in self.tensors}
        for k, op in enumerate(self.operators):
            for t in [*op.inputs, *op.outputs, *op.intermediates]:
                if t is not None and id(t) not in known:
                    raise FdtError(f"operator {k} ({op.type}) names tensor {t.name!r}, which is not in the subgraph")
        for t in [*self.inputs, *self.outputs]:
            if id(t) not in known:
                raise FdtError(f"graph input/output {t.name!r} is not in the subgraph")
        if dataflow:
            self._validate_dataflow()

    def _validate_dataflow(self) -> None:
        writer: dict[int, int] = {}
        for k, op in enumerate(self.operators):
            for t in op.outputs:
                if id(t) in writer:
                    raise FdtError(f"tensor {t.name!r} is written by operators {writer[id(t)]} and {k}")
                if t.is_constant:
                    raise FdtError(f"operator {k} writes the constant tensor {t.name!r}")
                writer[id(t)] = k
        given = {id(t) for t in self.inputs}
        for k, op in enumerate(self.operators):
            for t in op.inputs:
                if t is None or t.is_constant or t.is_variable:
                    continue
                if writer.get(id(t), -1) >= k:
                    raise FdtError(f"operator {k} reads tensor {t.name!r} before operator {writer[id(t)]} writes it "
                                   f"(a cycle, or operators out of order)")
                if id(t) not in writer and id(t) not in given:
                    raise FdtError(f"operator {k} reads tensor {t.name!r}, which is neither a graph input, a "
                                   f"constant, a variable nor written by an operator")

    def add_tensor(self, t: Tensor) -> Tensor:
        self.tensors.append(t)
        return t

    def __repr__(self) -> str:
        return (f"Subgraph({len(self.operators)} ops, {len(self.tensors)} tensors, "
                f"inputs={[t.name for t in self.inputs]}, outputs={[t.name for t in self.outputs]})")


@dataclass(eq=False)
class SignatureDef:
    """A named entry point (LiteRT's signature runner).  Its tensors are objects of subgraph
    ``subgraph_index``, like every other reference in the IR, so rewrites that insert or drop
    tensors cannot leave it pointing at the wrong one; the writer assigns the indices."""

    key: Optional[bytes]
    subgraph_index: int
    inputs: list[tuple[bytes, Tensor]]  # (name, tensor of the subgraph)
    outputs: list[tuple[bytes, Tensor]]

    def tensors(self) -> list[Tensor]:
        """Every tensor the signature refers to (each counts as used by the graph)."""
        return [t for _, t in self.inputs] + [t for _, t in self.outputs]


@dataclass(eq=False)
class Model:
    subgraphs: list[Subgraph] = field(default_factory=list)
    version: int = 3
    description: Optional[bytes] = None
    metadata: list[tuple[bytes, Buffer]] = field(default_factory=list)
    signature_defs: list[SignatureDef] = field(default_factory=list)
    operator_codes: list[OperatorCode] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]

    def get_metadata(self, name: str) -> Optional[Buffer]:
        for n, b in self.metadata:
            if n == name.encode():
                return b
        return None

    def set_metadata(self, name: str, data: bytes) -> None:
        """Replace (or add) the metadata entry ``name``."""
        for i, (n, _) in enumerate(self.metadata):
            if n == name.encode():
                self.metadata[i] = (n, Buffer(data))
                return
        self.metadata.append((name.encode(), Buffer(data)))

    def opcode(self, builtin_code: int, version: int = 1, custom_code: Optional[bytes] = None) -> OperatorCode:
        """The model's OperatorCode for this op at ``version`` or above, created on demand.

        Never raises a shared code's version in place: forks (``ir.surgery``) share codes with
        their parent, so a newer version is a code of its own (TFLite allows one builtin at
        several versions; each op then names the version its operands need)."""
        for oc in self.operator_codes:
            if oc.builtin_code == builtin_code and oc.custom_code == custom_code and oc.version >= version:
                return oc
        oc = OperatorCode(builtin_code, custom_code, version,
                          min(builtin_code, 127) if builtin_code != 32 else 32)
        self.operator_codes.append(oc)
        return oc

    def __repr__(self) -> str:
        return f"Model(version={self.version}, subgraphs={self.subgraphs!r})"
