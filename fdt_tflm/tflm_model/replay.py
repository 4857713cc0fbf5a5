"""TFLM's ``MicroInterpreter`` constructor + ``AllocateTensors``, replayed in an arena of N bytes.

The same allocation sequence as tflite-micro 90b983c (micro_interpreter.cc,
micro_allocator.cc, micro_allocation_info.cc, greedy_memory_planner.cc,
single_arena_buffer_allocator.cc), with the target's struct layouts and kernels:

1. allocator objects (tail), the builtin-data allocator, the scratch-request buffer at the
   head (``ScratchBufferRequest`` x 12, resizable), ``SubgraphAllocations``, one
   ``TfLiteEvalTensor`` per tensor, one ``NodeAndRegistration`` per op;
2. each op's builtin params, then every kernel's Init (op data and the arrays Init
   allocates, e.g. SignalRfft's kissfft state; 16-byte aligned each);
3. per op, Prepare: temporary ``TfLiteTensor``s (+ quantisation structs) at the head while
   the kernel allocates persistent arrays at the tail; temps are reset after the op and the
   request buffer is resized to (requests so far + 12);
4. scratch handles (tail); then temporarily ``size_t`` subgraph offsets and one
   ``AllocationInfo`` per tensor and scratch request, variables (tail), and the planner's
   arena: all remaining memory, of which it needs 40 B per planned buffer;
5. the head is reserved for the plan (``head`` bytes: the planner's result), then the
   interpreter's input/output pointer arrays and persistent ``TfLiteTensor``s (tail).

The arena starts 16-byte aligned (``alignas(16)`` in the firmware; the host's allocation
is malloc'd) and ends at ``start + N``.  Every failure check is TFLM's, including that a
persistent allocation is checked against the head but not against temporaries.  An op
whose kernel is in no table is charged :func:`.kernels.unknown_bound` (an upper bound over
the tables' kernels), never less.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from ..ir.graph import Model, Operator, Tensor
from .abi import ABI_TABLES, Abi
from .kernels import PARAMS_STRUCT, Kernel, UnknownKernel, kernel_for, unknown_bound
from .target import Target

ARENA_ALIGN = 16  # MicroArenaBufferAlignment()
MAX_SCRATCH_PER_OP = 12  # kMaxScratchBuffersPerOp
UNBOUNDED = 1 << 30  # an arena no model reaches (below 2**31: 32-bit size_t checks behave)
PLANNER_BYTES_PER_BUFFER = 40  # GreedyMemoryPlanner::per_buffer_size(): 4 ints + ListEntry + int (any ABI)


class OutOfArena(Exception):
    """An allocation TFLM would refuse (its message: Failed to allocate / resize ...)."""


def _up(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def _down(n: int, a: int) -> int:
    return n // a * a


class Arena:
    """SingleArenaBufferAllocator on offsets: head/temp grow from 0, the tail down from ``size``."""

    def __init__(self, size: int, size_t_bits: int):
        self.end = self.tail = size
        self.head = self.temp = 0
        self.peak_temp = 0
        self.wrap = 1 << size_t_bits

    @property
    def ceiling(self) -> int:
        """Where head-side allocations must end: the tail (one arena)."""
        return self.tail

    @property
    def floor(self) -> int:
        """Where tail allocations must stay above: the head (one arena)."""
        return self.head

    def persistent(self, size: int, align: int) -> None:
        p = _down(self.tail - size, align)
        if p < self.floor:
            raise OutOfArena(f"tail allocation of {size} B")
        self.tail = p

    def temporary(self, size: int, align: int) -> None:
        p = _up(self.temp, align)
        if (self.ceiling - p) % self.wrap < size:  # size_t arithmetic, as TFLM's check
            raise OutOfArena(f"temp allocation of {size} B")
        self.temp = p + size
        self.peak_temp = max(self.peak_temp, self.temp)

    def reset_temp(self) -> None:
        self.temp = self.head

    def resize_head(self, size: int) -> None:
        if self.ceiling < size:
            raise OutOfArena(f"head of {size} B")
        self.head = self.temp = size
        self.peak_temp = max(self.peak_temp, self.temp)

    def available(self, align: int) -> int:
        return _down(self.ceiling, align) - _up(self.temp, align)

    @property
    def tail_used(self) -> int:
        return self.end - self.tail


class SplitArena(Arena):
    """Persistent and NonPersistentArenaBufferAllocator: the tail in a buffer of its own
    (unbounded here: its use is measured), head and temporaries in ``size`` bytes."""

    def __init__(self, size: int, size_t_bits: int):
        super().__init__(UNBOUNDED, size_t_bits)
        self.np_end = size

    @property
    def ceiling(self) -> int:
        return self.np_end

    @property
    def floor(self) -> int:
        return 0


@dataclass(frozen=True)
class Replay:
    """What one AllocateTensors left behind (arena offsets from the aligned start)."""

    tail: int  # persistent bytes (arena end - tail pointer)
    head: int  # the planned head reserved at the end
    temp_peak: int  # highest head-side offset any temporary reached

    @property
    def used(self) -> int:
        """``MicroInterpreter::arena_used_bytes()`` after AllocateTensors."""
        return self.head + self.tail


def kernel_of(op: Operator, target: Target) -> Optional[Kernel]:
    return kernel_for(op.key.table_name, target.kernels)


def charged_kernel(op: Operator, target: Target, abi: Abi) -> Kernel:
    """The kernel the replay charges for ``op``: its table entry, else the upper bound."""
    k = kernel_of(op, target)
    return unknown_bound(abi) if k is None else k


def op_data_bytes(abi: Abi, k: Kernel) -> int:
    if isinstance(k, UnknownKernel):
        return k.op_data_bytes
    return abi[k.op_data].size if k.op_data else 0


def _tensor_structs(abi: Abi, t: Tensor) -> Iterator[tuple[int, int]]:
    """A TfLiteTensor populated from the flatbuffer: the struct, then for quantised tensors
    a TfLiteAffineQuantization and a zero-point TfLiteIntArray (one int per scale)."""
    yield abi["TfLiteTensor"].size, abi["TfLiteTensor"].align
    q = t.quantization
    if q is not None and q.scale is not None and q.scale.size > 0 and q.zero_point is not None \
            and q.zero_point.size > 0:
        yield abi["TfLiteAffineQuantization"].size, abi["TfLiteAffineQuantization"].align
        yield 4 + 4 * int(q.scale.size), abi["TfLiteIntArray"].align


def _temp_slots(op: Operator, token: str) -> list[Optional[Tensor]]:
    if token == "*":
        return list(op.inputs) + list(op.outputs)
    group = op.inputs if token[0] == "i" else op.outputs
    i = int(token[1:])
    return [group[i] if i < len(group) else None]


def _prepare(arena: Arena, abi: Abi, op: Operator, kernel: Kernel, arrays: list[int], with_temps: bool) -> None:
    """Prepare: the temporaries in the kernel's order, its persistent ``arrays`` at "P"."""
    for token in kernel.temps_of(op) if with_temps else ("P",):
        if token == "P":
            for b in arrays:
                if b > 0:
                    arena.persistent(b, ARENA_ALIGN)
            continue
        for t in _temp_slots(op, token):
            if t is not None:
                for size, align in _tensor_structs(abi, t):
                    arena.temporary(size, align)


def planned_buffers(model: Model, n_scratch: int) -> int:
    """Buffers the greedy planner is given: non-constant, non-variable tensors of non-zero size
    in every subgraph (AllocationInfo.needs_allocating) and every scratch request."""
    n = sum(1 for sg in model.subgraphs for t in sg.tensors if t.is_activation and t.nbytes > 0)
    return n + n_scratch


def replay(model: Model, target: Target, size: int, head: int,
           scratch: Callable[[Operator], list[int]], with_temps: bool = True, split: bool = False) -> Replay:
    """Run the allocation sequence in an arena of ``size`` bytes; raises :class:`OutOfArena`
    where TFLM's AllocateTensors would fail.  ``head``: the planner's result (bytes);
    ``scratch(op)``: the scratch requests of ``op``'s kernel.  ``with_temps=False`` skips
    the temporaries (they never change the tail; the search prices thousands of graphs).
    ``split``: separate arenas, ``size`` being the non-persistent one's."""
    abi = ABI_TABLES[target.abi]
    a = (SplitArena if split else Arena)(size, 8 * abi["size_t"].size)
    for name in abi.split_objects if split else abi.fixed_objects:
        a.persistent(abi[name].size, abi[name].align)
    _start_model_allocation(a, abi, model)
    ops = [op for sg in model.subgraphs for op in sg.operators]
    for op in ops:
        p = PARAMS_STRUCT.get(op.key.table_name)
        if p is not None:
            a.persistent(abi[p].size, abi[p].align)
    kernels = [charged_kernel(op, target, abi) for op in ops]
    arrays = [k.prepare(op, abi) for op, k in zip(ops, kernels)]
    for op, k, arr in zip(ops, kernels, arrays):  # Init: op data, then what Init allocates
        data = op_data_bytes(abi, k)
        if data:
            a.persistent(data, ARENA_ALIGN)
        for b in arr[:k.init_arrays]:
            if b > 0:
                a.persistent(b, ARENA_ALIGN)
    req = abi["ScratchBufferRequest"]
    n_scratch = 0
    for op, k, arr in zip(ops, kernels, arrays):
        _prepare(a, abi, op, k, arr[k.init_arrays:], with_temps)
        n_scratch += len(scratch(op))
        a.reset_temp()
        a.resize_head(_up(0, req.align) + req.size * (n_scratch + MAX_SCRATCH_PER_OP))
    _commit_plan(a, abi, model, n_scratch, head, with_temps)
    _interpreter_tensors(a, abi, model)
    return Replay(a.tail_used, head, a.peak_temp)


def _start_model_allocation(a: Arena, abi: Abi, model: Model) -> None:
    a.persistent(abi["MicroBuiltinDataAllocator"].size, abi["MicroBuiltinDataAllocator"].align)
    req = abi["ScratchBufferRequest"]
    a.resize_head(req.size * MAX_SCRATCH_PER_OP)
    sa = abi["SubgraphAllocations"]
    a.persistent(sa.size * len(model.subgraphs), sa.align)
    ev, nr = abi["TfLiteEvalTensor"], abi["NodeAndRegistration"]
    for sg in model.subgraphs:
        a.persistent(ev.size * len(sg.tensors), ev.align)
    for sg in model.subgraphs:
        a.persistent(nr.size * len(sg.operators), nr.align)


def _commit_plan(a: Arena, abi: Abi, model: Model, n_scratch: int, head: int, with_temps: bool) -> None:
    """FinishModelAllocation: scratch handles, then CommitStaticMemoryPlan's temporaries."""
    if n_scratch:
        h = abi["ScratchBufferHandle"]
        a.persistent(h.size * n_scratch, h.align)
    st, info = abi["size_t"], abi["AllocationInfo"]
    if with_temps:
        a.temporary(st.size * len(model.subgraphs), st.align)
        a.temporary(info.size * (sum(len(sg.tensors) for sg in model.subgraphs) + n_scratch), info.align)
    for sg in model.subgraphs:  # AllocateVariables (online-planned variables)
        for t in sg.tensors:
            if t.is_variable:
                a.persistent(t.nbytes, ARENA_ALIGN)
    if not with_temps:
        a.resize_head(head)
        return
    remaining = a.available(ARENA_ALIGN)
    if remaining < 0:
        raise OutOfArena("planner arena")
    a.temporary(remaining, ARENA_ALIGN)
    if remaining // PLANNER_BYTES_PER_BUFFER < planned_buffers(model, n_scratch):
        raise OutOfArena("too many buffers for the planner")
    a.reset_temp()
    a.resize_head(0)
    a.resize_head(head)


def _interpreter_tensors(a: Arena, abi: Abi, model: Model) -> None:
    main = model.main
    for group in (main.inputs, main.outputs):
        a.persistent(abi.pointer * len(group), ARENA_ALIGN)
        for t in group:
            for size, align in _tensor_structs(abi, t):
                a.persistent(size, align)
