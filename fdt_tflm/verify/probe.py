"""Learn the kernel scratch of ops the planner does not know, from TFLM itself.

TFLM places the buffers a kernel asks for with ``RequestScratchBufferInArena`` at run
time, into the gaps of the offline plan; a plan that leaves no gap for them makes the
head grow past our prediction (and past the input's).  :mod:`fdt_tflm.tflm_model.reference_scratch`
knows the reference builtin kernels; for every other op (custom ops such as TFLM's
Signal library, builtins newer than that table) we build a model holding that op alone,
let TFLM allocate it and take

    scratch = TFLM's measured head - our predicted head without scratch.

In a one-op graph every buffer is alive at the same step, so the difference is all the
op's scratch requests, each 16-aligned.  It is kept as one request: exact for kernels
that make one request; for kernels that make several, TFLM's first fit packs them into
the first gap that holds their sum (or lower), so the prediction is an upper bound.

One child process (:mod:`._probe_child`) allocates the one-op models of a whole model
(the allocation report is printed by C code, and a bad model can abort the runtime; the
child is then restarted after the op that killed it).  Ops with the same signature are
probed once; a model whose ops the planner all knows starts no child.
"""
from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..ir.graph import Model, Operator, ScratchProbe, Subgraph, Tensor
from ..tflm_model.reference_scratch import is_known
from ..tflm_model.head import predict_head
from .runner import DEFAULT_ARENA, runtime_available

PROBE_TIMEOUT = 60.0  # seconds for all children of one model together (allocation only, no inference)
MAX_PROBE_ARENA = 256 * 1024 * 1024  # one-op models needing more are not probed (assumed no scratch)
_MARK = "@@fdt-probe"
_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_probe_child.py")
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
    """Scratch neither in the table nor learned yet (a learned op keeps its result through copies)."""
    return not is_known(op) and op.learned_scratch is None


def distinct_one_op_models(model: Model, wanted: Callable[[Operator], bool] = _unknown) -> list[OneOpModel]:
    """One :class:`OneOpModel` per distinct signature among the ``wanted`` ops (default: those
    whose scratch the planner does not know and no probe has measured yet)."""
    from ..io.writer import write_model

    by_bytes: dict[bytes, OneOpModel] = {}
    failed: list[OneOpModel] = []
    for s, sg in enumerate(model.subgraphs):
        for i, op in enumerate(sg.operators):
            if not wanted(op):
                continue
            try:
                one = one_op_model(op)
                data = write_model(one)
            except Exception as e:  # an op our writer cannot serialise alone: nothing to learn
                failed.append(OneOpModel(op.type, error=f"cannot build a one-op model ({e})", ops=[(s, i)]))
                continue
            entry = by_bytes.get(data)
            if entry is None:
                entry = by_bytes[data] = _entry(op.type, one, data)
            entry.ops.append((s, i))
    return list(by_bytes.values()) + failed


def _entry(op_type: str, one: Model, data: bytes) -> OneOpModel:
    """The probe of one signature, with an arena room for scratch several times the tensors."""
    head = predict_head(one).head
    arena = max(DEFAULT_ARENA, 8 * head)
    if arena > MAX_PROBE_ARENA:
        return OneOpModel(op_type, predicted_head=head,
                          error=f"its tensors ({head} B) are too large to probe in TFLM")
    return OneOpModel(op_type, data, head, arena)


def measure_heads(models: list[tuple[bytes, int]], timeout: float = PROBE_TIMEOUT
                  ) -> list[tuple[Optional[int], str]]:
    """TFLM's measured head of each (model bytes, arena size), or (None, why TFLM failed).

    All models run in one child process; if TFLM kills it, the next child starts after the
    model it died in.  ``timeout`` bounds all children together."""
    results: list[tuple[Optional[int], str]] = [(None, "not run")] * len(models)
    if not models:
        return results
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory(prefix="fdt_tflm_probe_") as tmp:
        manifest = _write_manifest(tmp, models)
        start = 0
        while start < len(models):
            left = deadline - time.monotonic()
            if left <= 0:
                results[start:] = [(None, f"not run: the {timeout:.0f} s probe budget was spent")] * (len(models) - start)
                break
            start = _run_child(manifest, start, left, results)
    return results


def _write_manifest(tmp: str, models: list[tuple[bytes, int]]) -> str:
    entries = []
    for k, (data, arena) in enumerate(models):
        path = os.path.join(tmp, f"{k}.tflite")
        with open(path, "wb") as f:
            f.write(data)
        entries.append([path, int(arena)])
    manifest = os.path.join(tmp, "manifest.json")
    with open(manifest, "w") as f:
        json.dump(entries, f)
    return manifest


def _run_child(manifest: str, start: int, timeout: float, results: list) -> int:
    """Run the child from model ``start`` and fill ``results``; return where the next child starts.

    Killed by a signal (TFLM aborted) or the time limit: the model it was in fails, the next
    child starts after it.  A Python error (e.g. no TFLM): every remaining model fails."""
    cmd = [sys.executable, _CHILD, manifest, str(start), _MARK]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        text, code = proc.stderr, proc.returncode
        why = f"TFLM aborted (signal {-code})" if code < 0 else f"the probe child failed (exit {code})"
    except subprocess.TimeoutExpired as e:
        err = e.stderr or b""
        text, code = (err.decode(errors="replace") if isinstance(err, bytes) else err), -1
        why = f"TFLM did not finish within {timeout:.0f} s"
    done, seen = start, []
    for line in text.splitlines():
        if not line.startswith(_MARK):
            seen.append(line)
            continue
        parts = line.split(" ", 3)
        k = int(parts[1])
        results[k] = _parse(parts[2], parts[3] if len(parts) > 3 else "", seen)
        done, seen = k + 1, []
    if done >= len(results):
        return done
    last = next((ln.strip() for ln in reversed(seen) if ln.strip()), "")
    why = f"{why}: {last}" if last else why
    stop = done + 1 if code < 0 else len(results)
    results[done:stop] = [(None, why)] * (stop - done)
    return stop


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


def probe_kernel_scratch(model: Model, timeout: float = PROBE_TIMEOUT) -> dict[tuple[int, int], ScratchProbe]:
    """What TFLM requests as scratch at each op the planner does not know, by (subgraph, op index)."""
    entries = distinct_one_op_models(model)
    runnable = [e for e in entries if not e.error]
    if runnable and not runtime_available("tflm"):
        for e in runnable:
            e.error = "the TFLM host interpreter (tflite-micro) is not installed"
        runnable = []
    heads = measure_heads([(e.data, e.arena) for e in runnable], timeout)
    measured = {id(e): h for e, h in zip(runnable, heads)}
    out: dict[tuple[int, int], ScratchProbe] = {}
    for e in entries:
        probe = (_learned(e, measured[id(e)]) if not e.error
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
    """What probing told about subgraph 0, per op type: the scratch learned (each distinct
    size), the types that request none (one line), and why a type got no probe result."""
    learned: dict[str, list[int]] = {}
    failed: dict[str, str] = {}
    for op in model.main.operators:
        p = op.learned_scratch
        if p is None:
            continue
        if p.error:
            failed.setdefault(op.type, p.error)
        elif sum(p.requests) not in learned.setdefault(op.type, []):
            learned[op.type].append(sum(p.requests))
    notes = [f"{t}: {', '.join(f'{b:,} B' for b in sizes if b)} scratch measured in TFLM"
             for t, sizes in learned.items() if any(sizes)]
    none = [t for t, sizes in learned.items() if not any(sizes)]
    if none:
        notes.append(f"no scratch measured in TFLM: {', '.join(none)}")
    return notes + list(failed.values())
