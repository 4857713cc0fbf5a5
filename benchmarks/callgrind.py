#!/usr/bin/env python3
"""Instructions executed inside ``tflite::micro::MicroInterpreter::Invoke`` (callgrind), and the
fit of the per-op instruction model (``fdt_tflm/catalog/instructions.py``) to them.

The TFLM host interpreter (PyPI ``tflite_micro``, reference kernels) runs one ``invoke`` of the
model on a seeded random input under ``valgrind --tool=callgrind``; collection is on only inside
``MicroInterpreter::Invoke`` (``--collect-atstart=no --toggle-collect``), and a dump after every
``MicroAllocator::ResetTempAllocations()`` (called once after each node's invoke) splits the count
per node.  Records go to ``tests/data/callgrind_measurements.json``; each says how its model was
made: a recipe (a source model and explicit ``apply_ffmt``/``apply_fdt`` calls, rebuilt by the
tests) or an ``optimize`` command line (its output is kept under /tmp, not in the repo, and
``--record`` re-runs the command first, so an output of an earlier search is never recorded).

A record: ``name``; ``source`` (``shared/X.tflite``, ``models/X.tflite`` or ``synthetic/ops_HxC``);
``sha256`` of the measured .tflite; ``produced_by`` (the command line, or the recipe call) and
``recipe``; ``path`` (where the file was); ``instructions`` (all of Invoke); ``per_node`` (in
execution order: from the end of the previous node to the end of this one's ResetTempAllocations,
so the interpreter loop is included); ``per_op_type`` (``per_node`` summed by op type);
``outside_nodes`` (Invoke after the last node); ``tflite_micro`` (the wheel's version);
``measured_with``.

    python benchmarks/callgrind.py --record [--only NAME_SUBSTRING] [--skip-optimize] [--force]
    python benchmarks/callgrind.py --fit [--write] --errors   # the COSTS table, then per-model errors
    python benchmarks/callgrind.py --holdout vww  # fit without the VWW records, errors on them
    python benchmarks/callgrind.py --measure M.tflite

Needs valgrind (``apt-get install -y valgrind``); cc and valgrind's callgrind.h, when present,
let the imports run uninstrumented (same counts, about 3x faster).
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import importlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fdt_tflm.tflm_model import instructions as ins  # noqa: E402
from fdt_tflm.io.reader import read_model  # noqa: E402
from fdt_tflm.io.writer import write_model  # noqa: E402
from fdt_tflm.ir.builder import options, quant  # noqa: E402
from fdt_tflm.ir.graph import Model, Tensor  # noqa: E402
from fdt_tflm.ir.qnet import QNet  # noqa: E402
from fdt_tflm.tiling.fdt import apply_fdt  # noqa: E402
from fdt_tflm.tiling.ffmt import apply_ffmt  # noqa: E402

SHARED = REPO.parent / "shared" / "models"
OUT = REPO / "tests" / "data" / "callgrind_measurements.json"
WORK = Path(os.environ.get("FDT_CALLGRIND_DIR", "/tmp/fdt_callgrind"))
INVOKE = "tflite::micro::MicroInterpreter::Invoke()"
NODE_END = "tflite::micro::MicroAllocator::ResetTempAllocations()"
MAX_SOURCE_BYTES = 1 << 20  # larger models (MobileNetV2 224): original and hand-built rewrites only
OPTIMIZE_CONFIGS: dict[str, list[str]] = {
    "default": [],
    "head10": ["--objective", "head", "--max-overhead", "10"],
    "head30": ["--objective", "head", "--max-overhead", "30"],
}
# One invoke on a seeded random input (int inputs uniform over their range, float ones normal).
# argv[2]: a library whose fdt_cg_start() turns callgrind's instrumentation on just before the
# invoke (imports run uninstrumented, 3x faster); "" when there is none (all instrumented).
CHILD = r"""
import ctypes, sys, numpy as np
from tflite_micro.python.tflite_micro import runtime as tflm
it = tflm.Interpreter.from_bytes(open(sys.argv[1], "rb").read(), arena_size=8 << 20)
rng = np.random.default_rng(0)
i = 0
while True:
    try:
        d = it.get_input_details(i)
    except Exception:
        break
    dt = np.dtype(d["dtype"])
    if dt.kind in "iu":
        x = rng.integers(np.iinfo(dt).min, np.iinfo(dt).max + 1, size=d["shape"], dtype=dt)
    else:
        x = rng.standard_normal(d["shape"]).astype(dt)
    it.set_input(x, i)
    i += 1
if sys.argv[2]:
    ctypes.CDLL(sys.argv[2]).fdt_cg_start()
it.invoke()
"""
MEASURED_WITH = (f"valgrind --tool=callgrind --collect-atstart=no --toggle-collect='{INVOKE}' "
                 f"--dump-after='{NODE_END}'; one invoke, inputs seeded (numpy default_rng(0)), x86-64")
START_C = "#include <valgrind/callgrind.h>\nvoid fdt_cg_start(void) { CALLGRIND_START_INSTRUMENTATION; }\n"


@dataclass(frozen=True)
class Measurement:
    """Instructions of one invoke: the total and, in execution order, each node's share."""

    instructions: int
    per_node: list[int]
    outside_nodes: int  # the part of Invoke after the last node


def tflm_version() -> str:
    from importlib.metadata import version
    return version("tflite_micro")


def start_library() -> str:
    """Build the instrumentation switch (needs cc and valgrind's callgrind.h); "" if it cannot."""
    lib = WORK / "libfdt_cg_start.so"
    if not lib.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        src = WORK / "fdt_cg_start.c"
        src.write_text(START_C)
        if subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", str(lib), str(src)], capture_output=True).returncode:
            return ""
    return str(lib)


def measure(model_path: Path) -> Measurement:
    """Run one invoke of ``model_path`` under callgrind; per-node counts from the dumps."""
    lib = start_library()
    with tempfile.TemporaryDirectory(prefix="fdt_cg_") as tmp:
        out = Path(tmp) / "cg.out"
        cmd = ["valgrind", "--tool=callgrind", f"--instr-atstart={'no' if lib else 'yes'}", "--collect-atstart=no",
               f"--toggle-collect={INVOKE}", f"--dump-after={NODE_END}", f"--callgrind-out-file={out}",
               sys.executable, "-c", CHILD, str(model_path), lib]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"callgrind failed on {model_path}: {proc.stderr[-2000:]}")
        parts = sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.suffix[1:]))
        per_node = [_summary(p) for p in parts]
        tail = _summary(out)
    return Measurement(sum(per_node) + tail, per_node, tail)


def _summary(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- what is measured

def source_path(source: str) -> Optional[Path]:
    """``shared/NAME.tflite`` (../shared/models) or ``models/NAME.tflite`` (this repo); None
    for ``synthetic/ops_HxC`` (built here)."""
    kind, name = source.split("/", 1)
    if kind == "synthetic":
        return None
    return (SHARED if kind == "shared" else REPO / "models") / name


def source_available(source: str) -> bool:
    path = source_path(source)
    return path is None or path.exists()


def _int_const(n: QNet, name: str, values: Any) -> Tensor:
    return n.b.const(name, np.array(values, np.int32))


def _unary(n: QNet, op: str, x: Tensor, out: Tensor) -> Tensor:
    n.b.op(op, [x], [out])
    return out


def synthetic_ops(h: int, c: int) -> Model:
    """One of each op type the shared models lack (MAX_POOL_2D, MUL, LOGISTIC, STRIDED_SLICE,
    PADV2, PAD, MEAN, QUANTIZE, DEQUANTIZE), on an ``h`` x ``h`` x ``c`` input, so that their
    costs are measured rather than guessed."""
    n = QNet(seed=7, description=f"fdt-tflm callgrind op coverage {h}x{h}x{c}")
    x = n.input([1, h, h, c], scale=0.05, zp=3)
    y = n.pool(x, "MAX", size=2, stride=2)
    hh = h // 2
    m = n._new_act("mul", [1, hh, hh, c], 0, like=y)
    n.b.op("MUL", [y, n.b.const("k", np.arange(1, c + 1, dtype=np.int8), quant(0.02, 0))], [m],
           options("MUL", FusedActivationFunction=0))
    lg = _unary(n, "LOGISTIC", m, n.b.tensor("logistic", [1, hh, hh, c], "INT8", quant(1 / 256, -128)))
    half = max(c // 2, 1)
    ss = n._new_act("strided", [1, hh, hh, half], 0, like=lg)
    n.b.op("STRIDED_SLICE", [lg, _int_const(n, "b", [0, 0, 0, 0]), _int_const(n, "e", [1, hh, hh, half]),
                             _int_const(n, "s", [1, 1, 1, 1])], [ss], options("STRIDED_SLICE"))
    p2 = n._new_act("padv2", [1, hh + 2, hh + 2, half], 0, like=ss)
    n.b.op("PADV2", [ss, _int_const(n, "p2", [[0, 0], [1, 1], [1, 1], [0, 0]]),
                     n.b.const("cv", np.array(5, np.int8), ss.quantization.copy())], [p2], options("PADV2"))
    p1 = n.pad(p2, ((0, 1), (2, 0)))
    rq = _unary(n, "QUANTIZE", p1, n.b.tensor("requant", list(p1.shape), "INT8", quant(0.01, -5)))
    fl = _unary(n, "DEQUANTIZE", rq, n.b.tensor("float", list(rq.shape), "FLOAT32"))
    q8 = _unary(n, "QUANTIZE", fl, n.b.tensor("quant", list(fl.shape), "INT8", quant(0.01, -5)))
    return n.output(n.mean(q8, axes=(1, 2)))


SYNTHETIC_SIZES: tuple[tuple[int, int], ...] = ((8, 8), (16, 16), (32, 8), (24, 32), (48, 4))


def build_recipe(recipe: dict[str, Any]) -> bytes:
    """The model a recipe describes: its source, then each rewrite in turn (op indices refer to
    the model as left by the previous rewrite)."""
    path = source_path(recipe["source"])
    if path is None:
        h, c = (int(v) for v in recipe["source"].split("_")[-1].split("x"))
        model: Model = synthetic_ops(h, c)
    elif not recipe["rewrites"]:
        return path.read_bytes()
    else:
        model = read_model(str(path))
    for rw in recipe["rewrites"]:
        if rw[0] == "ffmt":
            model = apply_ffmt(model, rw[1], (rw[2][0], rw[2][1]))
        else:
            model = apply_fdt(model, rw[1], rw[2], rw[3])
    return write_model(model)


def _sources() -> list[str]:
    """The shared models, the synthetic op-coverage models and models/."""
    shared = [f"shared/{Path(p).name}" for p in sorted(glob.glob(str(SHARED / "*.tflite")))]
    shared += [f"synthetic/ops_{h}x{c}" for h, c in SYNTHETIC_SIZES]
    return shared + [f"models/{Path(p).name}" for p in sorted(glob.glob(str(REPO / "models" / "*.tflite")))]


# Hand-built rewrites: spatial tiles down to 8x8 on the first layers (small-tile cost) and
# channel splits into 2..8 parts, so the fit sees what the search produces and more.
_VISION = ([("ffmt", [0, 1, 2, 3], t) for t in ([2, 2], [4, 4], [8, 8])]
           + [("ffmt", [0, 1, 2, 3, 4, 5, 6], t) for t in ([2, 2], [4, 4])]
           + [("ffmt", [0, 1], [8, 8]), ("ffmt", [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [3, 3])]
           + [("fdt", [0, 1], p, "concat") for p in (2, 4, 8)] + [("fdt", [2, 3], 4, "concat")])
HAND_BUILT: dict[str, list[tuple]] = {
    "mlperf_vww_mbv1_96_int8.tflite": _VISION,
    "tflm_person_detect_int8.tflite": _VISION,
    "mlperf_kws_dscnn_int8.tflite": [("ffmt", [0, 1, 2], [2, 2]), ("ffmt", [0, 1, 2, 3], [5, 1]),
                                     ("ffmt", [0, 1, 2, 3, 4], [4, 2]), ("fdt", [0, 1], 4, "concat"),
                                     ("fdt", [2, 3], 8, "concat")],
    "kws.tflite": [("ffmt", [0, 1, 2], [4, 2]), ("fdt", [0, 1], 2, "concat")],
    "mlperf_ic_resnet8_int8.tflite": [("ffmt", [1, 2, 3], [2, 2]), ("ffmt", [1, 2, 3], [4, 4]),
                                      ("ffmt", [0], [8, 8]), ("fdt", [0], 4, "concat")],
    "radar.tflite": [("ffmt", [0, 3], [2, 2]), ("ffmt", [0, 3, 4], [4, 4]), ("fdt", [0, 3], 4, "concat")],
    "convdense.tflite": [("ffmt", [0], [2, 2]), ("ffmt", [0], [4, 4]), ("fdt", [0], 4, "concat")],
    "tflm_micro_speech_int8.tflite": [("ffmt", [1], [2, 1]), ("fdt", [1], 2, "concat")],
    "mobilenet_v2_224.tflite": [("ffmt", [0, 1, 2, 3], [4, 4])],
    "mlperf_ad_toycar_int8.tflite": [("fdt", [0], 2, "concat"), ("fdt", [0], 4, "concat")],
}


def _small(source: str) -> bool:
    path = source_path(source)
    return path is not None and path.stat().st_size < MAX_SOURCE_BYTES


def _recipe_name(source: str, rewrites: Sequence[Sequence[Any]]) -> str:
    stem = Path(source).stem
    tags = [f"ffmt{'-'.join(map(str, r[1]))}@{r[2][0]}x{r[2][1]}" if r[0] == "ffmt"
            else f"fdt{'-'.join(map(str, r[1]))}x{r[2]}" for r in rewrites]
    return "+".join([stem] + tags) if tags else stem


@dataclass
class Variant:
    """One model to measure: how to make it and where it is written."""

    name: str
    source: str
    recipe: Optional[dict[str, Any]] = None
    optimize_args: list[str] = field(default_factory=list)

    def path(self) -> Path:
        return WORK / f"{self.name}.tflite"

    def source_file(self) -> Path:
        """The optimize input: the source model (synthetic ones as built by their recipe)."""
        path = source_path(self.source)
        if path is not None:
            return path
        path = WORK / f"{Path(self.source).name}.tflite"
        path.write_bytes(build_recipe({"source": self.source, "rewrites": []}))
        return path

    def produced_by(self) -> str:
        if self.recipe is not None:
            return f"benchmarks/callgrind.py build_recipe({json.dumps(self.recipe)})"
        args = ["python", "-m", "fdt_tflm", "optimize", str(self.source_file()), *self.optimize_args,
                "-o", str(self.path())]
        return shlex.join(args)

    def build(self) -> bytes:
        """Write the model to ``path()`` (an optimize run, or the recipe) and return its bytes."""
        WORK.mkdir(parents=True, exist_ok=True)
        if self.recipe is not None:
            data = build_recipe(self.recipe)
            self.path().write_bytes(data)
            return data
        if not self.path().exists():
            cmd = [sys.executable, "-m", "fdt_tflm", "optimize", str(self.source_file()),
                   *self.optimize_args, "-o", str(self.path())]
            subprocess.run(cmd, check=True, cwd=REPO, capture_output=True)
        return self.path().read_bytes()

    def refresh(self) -> None:
        """Re-run optimize: a kept output may come from an earlier search, and a record must
        describe what the current search writes."""
        if self.recipe is None:
            self.path().unlink(missing_ok=True)
            self.build()


def variants(with_optimize: bool = True) -> list[Variant]:
    """Originals, hand-built rewrites, then the optimize outputs of every model."""
    out: list[Variant] = []
    for src in _sources():
        out.append(Variant(Path(src).stem, src, {"source": src, "rewrites": []}))
        for rw in HAND_BUILT.get(Path(src).name, []):
            rewrites = [list(rw)]
            out.append(Variant(_recipe_name(src, rewrites), src, {"source": src, "rewrites": rewrites}))
    if with_optimize:
        for src in [s for s in _sources() if source_path(s) is not None and _small(s)]:
            for tag, args in OPTIMIZE_CONFIGS.items():
                out.append(Variant(f"{Path(src).stem}.opt-{tag}", src, None, list(args)))
    return out


# ---------------------------------------------------------------- records

def load_records() -> list[dict[str, Any]]:
    return json.loads(OUT.read_text()) if OUT.exists() else []


def save_records(records: list[dict[str, Any]]) -> None:
    """One record a line, sorted by name (diffs show which records changed)."""
    records = sorted(records, key=lambda r: r["name"])
    OUT.write_text("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n")


def per_op_type(model: Model, per_node: list[int]) -> Optional[dict[str, int]]:
    """Instructions summed per op type, when the dumps map one-to-one onto subgraph 0's ops."""
    ops = model.main.operators
    if len(model.subgraphs) != 1 or len(per_node) != len(ops):
        return None
    out: dict[str, int] = {}
    for op, n in zip(ops, per_node):
        out[op.type] = out.get(op.type, 0) + n
    return dict(sorted(out.items()))


def record(v: Variant) -> dict[str, Any]:
    """Build, measure and describe one variant."""
    data = v.build()
    model = read_model(data)
    m = measure(v.path())
    rec: dict[str, Any] = {
        "name": v.name, "source": v.source, "sha256": hashlib.sha256(data).hexdigest(),
        "produced_by": v.produced_by(), "recipe": v.recipe, "path": str(v.path()),
        "instructions": m.instructions, "per_op_type": per_op_type(model, m.per_node),
        "per_node": m.per_node if len(m.per_node) == len(model.main.operators) else None,
        "outside_nodes": m.outside_nodes, "tflite_micro": tflm_version(), "measured_with": MEASURED_WITH,
    }
    return rec


def _current(rec: Optional[dict[str, Any]], v: Variant) -> bool:
    """The record measured this variant's model as it is now (same bytes, same TFLM)."""
    if rec is None or rec["tflite_micro"] != tflm_version():
        return False
    data = build_recipe(v.recipe) if v.recipe is not None else (v.path().read_bytes() if v.path().exists() else b"")
    return hashlib.sha256(data).hexdigest() == rec["sha256"]


def run_record(only: Optional[str], with_optimize: bool, force: bool = False) -> None:
    records = {r["name"]: r for r in load_records()}
    for v in variants(with_optimize):
        if only and only not in v.name:
            continue
        try:
            v.refresh()
            if not force and _current(records.get(v.name), v):
                continue
            rec = record(v)
        except Exception as e:  # a rewrite the tiler refuses, or a failed optimize: say so, go on
            print(f"{v.name}: skipped ({type(e).__name__}: {str(e)[:200]})", flush=True)
            continue
        records = {r["name"]: r for r in load_records()}  # another recorder may have added some
        records[v.name] = rec
        save_records(list(records.values()))
        print(f"{v.name}: {rec['instructions']:,} instructions", flush=True)


# ---------------------------------------------------------------- fit

# Which counts each op family's cost is fitted on (the kernel loops it runs).
FIT_FEATURES: dict[str, tuple[str, ...]] = {
    "CONV_2D": ("invoke", "macs", "taps", "vtaps", "outputs", "pixels", "rows"),
    "DEPTHWISE_CONV_2D": ("invoke", "macs", "taps", "outputs", "pixels", "rows"),
    "AVERAGE_POOL_2D": ("invoke", "macs", "outputs", "pixels", "rows"),
    "MAX_POOL_2D": ("invoke", "macs", "outputs", "pixels", "rows"),
    "FULLY_CONNECTED": ("invoke", "macs", "outputs", "rows"),
    "CONCATENATION": ("invoke", "outputs", "runs"),
    "_COPY": ("invoke", "outputs", "rows"),
    "_DEFAULT": ("invoke", "outputs", "inputs"),
}
COPY_OPS = frozenset({"SLICE", "STRIDED_SLICE", "PAD", "PADV2", "RESHAPE", "SQUEEZE", "SPLIT", "SPLIT_V"})


def _fit_features(op_type: str) -> tuple[str, ...]:
    if op_type in FIT_FEATURES:
        return FIT_FEATURES[op_type]
    return FIT_FEATURES["_COPY" if op_type in COPY_OPS else "_DEFAULT"]


def nonneg_lstsq(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least squares with non-negative coefficients (drop the most negative, refit)."""
    active = list(range(x.shape[1]))
    coef = np.zeros(x.shape[1])
    while active:
        sol, *_ = np.linalg.lstsq(x[:, active] * w[:, None], y * w, rcond=None)
        if (sol >= 0).all():
            coef[active] = sol
            return coef
        active.pop(int(np.argmin(sol)))
    return coef


def _distinct(feats: tuple[str, ...], counts: list[dict[str, float]]) -> tuple[str, ...]:
    """The features whose columns are not all zero nor a copy of an earlier one (a fit cannot
    tell those apart: FULLY_CONNECTED's one row per invoke, SOFTMAX's inputs = outputs)."""
    kept: list[str] = []
    for f in feats:
        col = [c[f] for c in counts]
        if any(col) and all(col != [c[k] for c in counts] for k in kept):
            kept.append(f)
    return tuple(kept)


def _model_of(rec: dict[str, Any]) -> Model:
    if rec.get("recipe") is not None:
        return read_model(build_recipe(rec["recipe"]))
    return read_model(rec["path"])


def fit(records: list[dict[str, Any]]) -> dict[str, ins.InstructionCost]:
    """Coefficients per op type from every per-node measurement."""
    rows: dict[str, list[tuple[dict[str, float], int]]] = {}
    outside: list[int] = []
    for rec in records:
        if rec.get("per_node") is None:
            continue
        model = _model_of(rec)
        outside.append(rec["outside_nodes"])
        for op, n in zip(model.main.operators, rec["per_node"]):
            rows.setdefault(op.type, []).append((ins.op_counts(op).as_dict(), n))
    costs = {op_type: _fit_one(_fit_features(op_type), data) for op_type, data in sorted(rows.items())}
    costs["_INTERPRETER"] = ins.InstructionCost(invoke=float(round(np.mean(outside))) if outside else 0.0)
    # Unknown op types: the median of the measured copy and element-wise ops' coefficients.
    pool = [costs[t] for t in FALLBACK_FROM if t in costs]
    costs["_FALLBACK"] = ins.InstructionCost(**{f: round(float(np.median([getattr(c, f) for c in pool])), 4)
                                                for f in ("invoke", "outputs", "rows", "inputs")}) if pool else \
        ins.COSTS["_FALLBACK"]
    return costs


FALLBACK_FROM = frozenset({"ADD", "MUL", "QUANTIZE", "DEQUANTIZE", "LOGISTIC", "PAD", "PADV2", "SLICE",
                           "STRIDED_SLICE", "CONCATENATION", "MEAN", "RESHAPE"})


def _fit_one(feats: tuple[str, ...], data: list[tuple[dict[str, float], int]]) -> ins.InstructionCost:
    """Non-negative least squares on the features the data can tell apart (an op measured at
    one size gets a fixed cost only)."""
    counts = [c for c, _ in data]
    feats = _distinct(feats, counts)
    n_distinct = len({tuple(c[f] for f in feats) for c in counts})
    feats = feats[:max(1, n_distinct)]
    x = np.array([[c[f] for f in feats] for c in counts], dtype=float)
    y = np.array([n for _, n in data], dtype=float)
    coef = nonneg_lstsq(x, y, 1.0 / np.sqrt(np.maximum(y, 1.0)))
    return ins.InstructionCost(**{f: round(float(c), 4) for f, c in zip(feats, coef)})


def table(costs: dict[str, ins.InstructionCost]) -> str:
    """The COSTS literal of ``fdt_tflm/catalog/instructions.py``."""
    lines = ["COSTS: dict[str, InstructionCost] = {"]
    for k, c in costs.items():
        args = [f"{f}={getattr(c, f)!r}" for f in ins.FEATURES if getattr(c, f)]
        line = f"    {json.dumps(k)}: InstructionCost({', '.join(args)}),"
        if len(line) > 110:  # the project's line length: one coefficient group per line
            cut = len(args) // 2
            line = (f"    {json.dumps(k)}: InstructionCost({', '.join(args[:cut])},\n"
                    f"{' ' * (len(json.dumps(k)) + 22)}{', '.join(args[cut:])}),")
        lines.append(line)
    return "\n".join(lines + ["}"]) + "\n"


def write_table(text: str) -> None:
    """Replace the COSTS literal in the catalog module by ``text``."""
    path = Path(ins.__file__)
    src = path.read_text()
    start = src.index("COSTS: dict[str, InstructionCost] = {")
    end = src.index("\n}\n", start) + 3
    path.write_text(src[:start] + text + src[end:])


def report_errors(records: list[dict[str, Any]], costs: Optional[dict[str, ins.InstructionCost]] = None) -> None:
    """Predicted vs measured instructions per model, and the overhead vs its original."""
    base = {r["source"]: r for r in records if r.get("recipe") and not r["recipe"]["rewrites"]}
    worst = 0.0
    for rec in sorted(records, key=lambda r: r["name"]):
        pred = ins.predict_instructions(_model_of(rec), costs)
        err = 100.0 * (pred - rec["instructions"]) / rec["instructions"]
        line = f"{rec['name']:70s} measured {rec['instructions']:>12,} predicted {pred:>12,} ({err:+6.2f} %)"
        b = base.get(rec["source"])
        if b is not None and b is not rec:
            bp = ins.predict_instructions(_model_of(b), costs)
            mo = 100.0 * (rec["instructions"] / b["instructions"] - 1)
            po = 100.0 * (pred / bp - 1)
            worst = max(worst, abs(po - mo))
            line += f"  overhead measured {mo:+7.2f} % predicted {po:+7.2f} %"
        print(line)
    print(f"worst overhead error: {worst:.2f} pp")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", action="store_true", help="build, measure and record the variants")
    ap.add_argument("--only", help="record only variants whose name contains this")
    ap.add_argument("--skip-optimize", action="store_true", help="record no optimize outputs")
    ap.add_argument("--force", action="store_true", help="re-measure variants whose record is current")
    ap.add_argument("--fit", action="store_true", help="fit the per-op coefficients; print the table and errors")
    ap.add_argument("--write", action="store_true", help="with --fit: write the table into the catalog module")
    ap.add_argument("--errors", action="store_true", help="print the current table's errors")
    ap.add_argument("--holdout", metavar="SUBSTRING",
                    help="fit without the records whose name contains this, and print the errors on all")
    ap.add_argument("--measure", help="measure one .tflite and print its instructions")
    a = ap.parse_args(argv)
    if a.measure:
        m = measure(Path(a.measure))
        print(json.dumps({"instructions": m.instructions, "per_node": m.per_node}))
    if a.record:
        run_record(a.only, not a.skip_optimize, a.force)
    if a.fit:
        text = table(fit(load_records()))
        print(text, end="")
        if a.write:
            write_table(text)
    if a.holdout:
        records = load_records()
        costs = fit([r for r in records if a.holdout not in r["name"]])
        report_errors([r for r in records if a.holdout in r["name"] or not r["recipe"] or not r["recipe"]["rewrites"]],
                      costs)
    if a.errors:
        if a.fit and a.write:
            importlib.reload(ins)
        report_errors(load_records())
    return 0


if __name__ == "__main__":
    sys.exit(main())
