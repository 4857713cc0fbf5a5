"""Learn the kernel scratch of ops the planner does not know, from TFLM itself.

TFLM places the buffers a kernel asks for with ``RequestScratchBufferInArena`` at run
time, into the gaps of the offline plan; a plan that leaves no gap for them makes the
head grow past our prediction (and past the input's).  :mod:`fdt_tflm.memory.scratch`
knows the reference builtin kernels; for every other op (custom ops such as TFLM's
Signal library, builtins newer than that table) we build a model holding that op alone,
let TFLM allocate it and take

    scratch = TFLM's measured head - our predicted head without scratch.

In a one-op graph every buffer is alive at the same step, so the difference is all the
op's scratch requests, each 16-aligned.  It is kept as one request: exact for kernels
that make one request, a contiguous upper bound for kernels that make several.

One child process runs the one-op models of a whole model (the allocation report is
printed by C code, and a bad model can abort the runtime; the child is then restarted
after the op that killed it).  Ops with the same signature are probed once.
"""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..ir.graph import Model, Operator, ScratchProbe, Subgraph, Tensor
from ..memory.scratch import is_known
from ..memory.tflm_model import predict_head
from .runner import DEFAULT_ARENA, _package_root, runtime_available

CHILD_TIMEOUT = 120.0  # seconds for one child process (allocation only, no inference)
_MARK = "@@fdt-probe"
_HEAD_RE = re.compile(r"Arena allocation head (\d+) bytes")


@dataclass
class OneOpModel:
    """One distinct op signature: its one-op model and the ops (subgraph, index) that share it."""

    op_type: str
    data: bytes = b""
    predicted_head: int = 0
    arena: int = DEFAULT_ARENA
    error: str = ""  # why no one-op model could be built
    ops: list[tuple[int, int]] = field(default_factory=list)


def one_op_model(op: Operator) -> Model:
    """A model running ``op`` alone: its constants stay constants, its other inputs become graph
    inputs and its outputs graph outputs.  Tensors get canonical names so that two ops with the
    same type, options, shapes, dtypes and constants serialise to the same bytes."""
    op = copy.deepcopy(op)
    op.learned_scratch = None
    tensors: list[Tensor] = []
    for t in [*op.inputs, *op.outputs, *op.intermediates]:
        if t is not None and all(t is not u for u in tensors):
            tensors.append(t)
    for k, t in enumerate(tensors):
        t.name = f"t{k}"
    produced = {id(t) for t in op.outputs}
    inputs = [t for t in tensors if any(t is u for u in op.inputs)
              and t.is_activation and id(t) not in produced]
    sg = Subgraph(tensors=tensors, operators=[op], inputs=inputs, outputs=list(op.outputs), name=b"probe")
    return Model(subgraphs=[sg], version=3, operator_codes=[op.opcode])


def _unknown(op: Operator) -> bool:
    return not is_known(op)


def distinct_one_op_models(model: Model, wanted: Callable[[Operator], bool] = _unknown) -> list[OneOpModel]:
    """One :class:`OneOpModel` per distinct signature among the ``wanted`` ops (default: those
    whose scratch the planner does not know)."""
    from ..io.writer import write_model

    by_bytes: dict[bytes, OneOpModel] = {}
    failed: list[OneOpModel] = []
    for s, sg in enumerate(model.subgraphs):
        for i, op in enumerate(sg.operators):
            if not wanted(op):
                continue
            try:
                one = one_op_model(op)
                data = write_model(one, check_plan=False)
            except Exception as e:  # an op our writer cannot serialise alone: nothing to learn
                failed.append(OneOpModel(op.type, error=f"cannot build a one-op model ({e})", ops=[(s, i)]))
                continue
            entry = by_bytes.get(data)
            if entry is None:
                head = predict_head(one).head
                const = sum(t.nbytes for t in one.main.tensors if t.is_constant)
                entry = by_bytes[data] = OneOpModel(op.type, data, head, max(DEFAULT_ARENA, 8 * (head + const)))
            entry.ops.append((s, i))
    return list(by_bytes.values()) + failed


def measure_heads(models: list[tuple[bytes, int]], timeout: float = CHILD_TIMEOUT
                  ) -> list[tuple[Optional[int], str]]:
    """TFLM's measured head of each (model bytes, arena size), or (None, why TFLM failed).

    All models run in one child process; if TFLM aborts on one, the next child starts after it."""
    results: list[tuple[Optional[int], str]] = [(None, "not run")] * len(models)
    if not models:
        return results
    with tempfile.TemporaryDirectory(prefix="fdt_tflm_probe_") as tmp:
        manifest = os.path.join(tmp, "manifest.json")
        entries = []
        for k, (data, arena) in enumerate(models):
            path = os.path.join(tmp, f"{k}.tflite")
            with open(path, "wb") as f:
                f.write(data)
            entries.append([path, int(arena)])
        with open(manifest, "w") as f:
            json.dump(entries, f)
        start = 0
        while start < len(models):
            done, why = _run_child(manifest, start, timeout, results)
            if done >= len(models):
                break
            results[done] = (None, why)  # the model the child died in
            start = done + 1
    return results


def _run_child(manifest: str, start: int, timeout: float, results: list) -> tuple[int, str]:
    """Run the child from model ``start``; fill ``results``; return (first model not reported, why)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [_package_root(), env.get("PYTHONPATH", "")] if p)
    cmd = [sys.executable, "-m", "fdt_tflm.verify.probe", manifest, str(start)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        text, why = proc.stderr, f"TFLM aborted (exit {proc.returncode})"
    except subprocess.TimeoutExpired as e:
        err = e.stderr or b""
        text = err.decode(errors="replace") if isinstance(err, bytes) else err
        why = f"TFLM timed out after {timeout:.0f} s"
    done, seen = start, []
    for line in text.splitlines():
        if not line.startswith(_MARK):
            seen.append(line)
            continue
        parts = line.split(" ", 3)
        k = int(parts[1])
        results[k] = _parse(parts[2], parts[3] if len(parts) > 3 else "", seen)
        done, seen = k + 1, []
    last = next((ln.strip() for ln in reversed(seen) if ln.strip()), "")
    return done, f"{why}: {last}" if last else why


def _parse(status: str, rest: str, lines: list[str]) -> tuple[Optional[int], str]:
    """(head, "") from the allocation report before an ``ok`` marker, else (None, why)."""
    heads = [int(m.group(1)) for ln in lines for m in [_HEAD_RE.search(ln)] if m]
    if status == "ok" and heads:
        return heads[-1], ""
    detail = next((ln.strip() for ln in reversed(lines) if ln.strip() and not _HEAD_RE.search(ln)), "")
    why = rest or "no allocation report"
    return None, f"{why} ({detail})" if detail and detail not in why else why


def _learned(entry: OneOpModel, measured: tuple[Optional[int], str]) -> ScratchProbe:
    head, why = measured
    if head is None:
        return ScratchProbe((), f"TFLM could not run {entry.op_type} alone ({why}); assumed no scratch")
    extra = head - entry.predicted_head
    if extra < 0:
        return ScratchProbe((), f"TFLM's head {head} B is below our prediction {entry.predicted_head} B "
                                f"for {entry.op_type} alone; assumed no scratch")
    return ScratchProbe((extra,) if extra else ())


def probe_kernel_scratch(model: Model, timeout: float = CHILD_TIMEOUT) -> dict[tuple[int, int], ScratchProbe]:
    """What TFLM requests as scratch at each op the planner does not know, by (subgraph, op index)."""
    entries = distinct_one_op_models(model)
    runnable = [e for e in entries if not e.error]
    if runnable and not runtime_available("tflm"):
        for e in runnable:
            e.error = "the TFLM host interpreter (tflite-micro) is not installed"
        runnable = []
    measured = measure_heads([(e.data, e.arena) for e in runnable], timeout)
    out: dict[tuple[int, int], ScratchProbe] = {}
    for e in entries:
        probe = (_learned(e, measured[runnable.index(e)]) if not e.error
                 else ScratchProbe((), f"{e.op_type}: {e.error}; assumed no scratch"))
        for key in e.ops:
            out[key] = probe
    return out


def learn_kernel_scratch(model: Model) -> Model:
    """A copy of ``model`` whose ops of unknown scratch carry what TFLM requests for them
    (``Operator.learned_scratch``), which the planner and scheduler then reserve."""
    out = copy.deepcopy(model)
    for (s, i), probe in probe_kernel_scratch(out).items():
        out.subgraphs[s].operators[i].learned_scratch = probe
    return out


def scratch_notes(model: Model) -> list[str]:
    """One line per probed op type of subgraph 0: what was learned, or why today's assumption
    (no scratch) was kept."""
    notes: dict[str, str] = {}
    for op in model.main.operators:
        p = op.learned_scratch
        if p is None or op.type in notes:
            continue
        if p.error:
            notes[op.type] = p.error
        else:
            notes[op.type] = f"{op.type}: {sum(p.requests)} B scratch measured in TFLM"
    return list(notes.values())


def _child(manifest: str, start: int) -> int:
    """Allocate each model in TFLM; after its allocation report (C code, on stderr) print a marker
    line saying whether it worked (also on stderr, so the two stay in order)."""
    import ctypes
    import gc

    from tflite_micro.python.tflite_micro import runtime as tflm

    libc = ctypes.CDLL(None)
    with open(manifest) as f:
        entries = json.load(f)
    for k in range(start, len(entries)):
        path, arena = entries[k]
        with open(path, "rb") as f:
            data = f.read()
        try:
            it = tflm.Interpreter.from_bytes(data, arena_size=arena)  # allocates in the constructor
            it.print_allocations()
            status = "ok"
            del it
        except Exception as e:  # TFLM refused the model: say why, go on with the next one
            status = "error " + ((str(e).strip().splitlines() or [type(e).__name__])[-1])
        libc.fflush(None)
        os.write(2, f"\n{_MARK} {k} {status}\n".encode())
        gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], int(sys.argv[2])))
