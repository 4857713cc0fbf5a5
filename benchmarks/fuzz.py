#!/usr/bin/env python3
"""Fuzz campaign: mutated .tflite files through the reader/``inspect`` and ``optimize``,
plus hand-built hostile models.  Every file must end in a clean result: the model is
accepted, or the user gets an :class:`FdtError` (one stderr line, exit code 2).  Anything
else is a crash (another exception, a signal, exit code 3, a traceback) or a hang.

    python benchmarks/fuzz.py --reader 100000 --optimize 1000 --jobs 2 --json fuzz.json
    python benchmarks/fuzz.py --reader 2000 --optimize 0 --no-hostile      # quick look
    python benchmarks/fuzz.py --dump reader 1234 case.tflite              # rebuild one file

Mutations (deterministic per ``--seed`` and file number) start from the real models in
``models/`` and ``../shared/models``: byte and bit flips, truncations, splices of two
models, inserted or deleted bytes, and field-aware edits of the flatbuffer found by walking
the schema (vector lengths, table/vector offsets, scalar fields such as buffer and opcode
indices, and the elements of index and shape vectors).  Reader files run in worker
processes (a per-file time limit; a worker that dies is a crash at the file it was on);
``optimize`` files run through the CLI, each in a child process under ``RLIMIT_AS``.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import re
import resource
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fdt_tflm.errors import FdtError  # noqa: E402

SEED_DIRS = (REPO / "models", Path(os.environ.get("FDT_SHARED_MODELS", REPO.parent / "shared" / "models")))
MEMORY_LIMIT = 4_000_000 * 1024  # bytes of address space, as `ulimit -v 4000000`
READER_TIME_LIMIT = 10.0  # seconds per file through read + inspect + write
OPTIMIZE_TIME_LIMIT = 300.0  # seconds per file through the whole optimize CLI
HOSTILE_TIME_LIMIT = 60.0
OPTIMIZE_ARGS = ("--search-budget", "10", "--time-limit", "2", "--samples", "2")
_FLAGS = {"Int8": (1, True), "Uint8": (1, False), "Bool": (1, False), "Int16": (2, True), "Uint16": (2, False),
          "Int32": (4, True), "Uint32": (4, False), "Float32": (4, True), "Int64": (8, True),
          "Uint64": (8, False), "Float64": (8, True)}


# -- where the fields of a flatbuffer are ---------------------------------------------------

@dataclass(frozen=True)
class Site:
    """One field of the flatbuffer: ``path`` like ``Subgraphs[0].Operators[3].Inputs[1]``."""

    path: str
    pos: int
    width: int
    kind: str  # scalar | element | length | offset
    signed: bool = False


@lru_cache(maxsize=None)
def _accessor(type_name: str, name: str) -> tuple[int, int, bool]:
    """(vtable slot, element/scalar width, signed) read from the generated accessor's source."""
    cls = getattr(__import__(f"tflite.{type_name}", fromlist=[type_name]), type_name)
    src = inspect.getsource(getattr(cls, name + "AsNumpy", None) or getattr(cls, name))
    slot = int(re.search(r"Offset\((\d+)\)", src).group(1))
    flags = [f for f in re.findall(r"number_types\.(\w+?)Flags", src) if f in _FLAGS]  # not UOffsetT
    width, signed = _FLAGS[flags[0]] if flags else (4, False)
    return slot, width, signed


def field_sites(data: bytes) -> list[Site]:
    """Every field of a valid .tflite, found by walking the schema from the root table."""
    from tflite.Model import Model as FbModel
    out: list[Site] = []
    _walk(FbModel.GetRootAs(data, 0), "Model", "", out)
    return out


def _walk(obj, type_name: str, prefix: str, out: list[Site]) -> None:
    from fdt_tflm.io.fbgeneric import _module, _reader_fields, _union_member
    tab = obj._tab
    for name, kind in _reader_fields(type_name):
        slot, width, signed = _accessor(type_name, name)
        o = tab.Offset(slot)
        if not o:
            continue
        here, fpos = f"{prefix}{name}", tab.Pos + o
        if kind == "scalar":
            out.append(Site(here, fpos, width, "scalar", signed))
            continue
        out.append(Site(here, fpos, 4, "offset"))
        if kind.startswith("vector"):
            start, n = tab.Vector(o), tab.VectorLen(o)
            out.append(Site(here, start - 4, 4, "length"))
            if kind == "vector-num":
                shown = 4 if name in ("Data", "Buffer") else 64  # raw tensor data is not structure
                out.extend(Site(f"{here}[{i}]", start + i * width, width, "element", signed)
                           for i in range(min(n, shown)))
            else:
                for i in range(n):
                    out.append(Site(f"{here}[{i}]", start + 4 * i, 4, "offset"))
                    item = getattr(obj, name)(i)
                    if hasattr(item, "_tab"):
                        _walk(item, type(item).__name__, f"{here}[{i}].", out)
        elif name in ("BuiltinOptions", "BuiltinOptions2", "Details", "ArraySegments", "ArrayIndices"):
            code = getattr(obj, name + "Type")()
            if code:
                member = _union_member(name, code)
                sub = getattr(_module(member), member)()
                sub.Init(tab.Bytes, tab.Indirect(fpos))
                _walk(sub, member, f"{here}.", out)
        elif kind == "table":
            sub = getattr(obj, name)()
            _walk(sub, type(sub).__name__, f"{here}.", out)


def patch(data: bytes, site: Site, value: int) -> bytes:
    """``data`` with the field at ``site`` set to ``value`` (wrapped to the field's width)."""
    code = {1: "B", 2: "H", 4: "I", 8: "Q"}[site.width]
    raw = struct.pack("<" + code, value & ((1 << (8 * site.width)) - 1))
    return data[:site.pos] + raw + data[site.pos + site.width:]


def site(sites: list[Site], path: str) -> Site:
    """The site with this exact path (first of its kind: the offset or length comes first)."""
    return next(s for s in sites if s.path == path)


# -- mutations -------------------------------------------------------------------------------

@dataclass(frozen=True)
class SeedModel:
    name: str
    data: bytes
    sites: tuple[Site, ...]


def load_seeds() -> list[SeedModel]:
    paths = sorted(p for d in SEED_DIRS if d.is_dir() for p in d.glob("*.tflite"))
    return [SeedModel(p.stem, p.read_bytes(), tuple(field_sites(p.read_bytes()))) for p in paths]


def _interesting(rng: random.Random, s: Site, old: int) -> int:
    big = (1 << (8 * s.width - (1 if s.signed else 0))) - 1
    pool = [0, 1, -1, 2, 3, 255, 65535, big, big + 1, old + 1, old - 1, old * 2, old + 1000,
            rng.randrange(1 << (8 * s.width))]
    if s.kind == "length":
        pool += [0x3FFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF, old + 1, old * 16 + 7]
    if s.kind == "offset":
        pool += [old + rng.choice((-8, -4, 4, 8, 16)), rng.randrange(1 << 20), 0xFFFFFFF0]
    if s.kind == "element" and "Shape" in s.path:
        pool += [65535, 1 << 20, 1 << 30, 0x7FFFFFFF, -2]
    return rng.choice(pool)


def _field_mutation(rng: random.Random, seed: SeedModel, data: bytes) -> bytes:
    s = rng.choice(seed.sites)
    if s.pos + s.width > len(data):
        return data
    old = int.from_bytes(data[s.pos:s.pos + s.width], "little", signed=s.signed)
    return patch(data, s, _interesting(rng, s, old))


def _byte_flips(rng: random.Random, data: bytes) -> bytes:
    d = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        d[rng.randrange(len(d))] = rng.randrange(256)
    return bytes(d)


def _bit_flips(rng: random.Random, data: bytes) -> bytes:
    d = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(d))
        d[i] ^= 1 << rng.randrange(8)
    return bytes(d)


def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[:rng.randrange(len(data))]


def _splice(rng: random.Random, data: bytes, other: bytes) -> bytes:
    if rng.random() < 0.5:  # head of one model, tail of another
        return data[:rng.randrange(len(data))] + other[rng.randrange(len(other)):]
    n = rng.randint(1, 4096)  # a chunk of another model pasted over this one
    at, src = rng.randrange(len(data)), rng.randrange(max(1, len(other) - n))
    return data[:at] + other[src:src + n] + data[at + n:]


def _insert_delete(rng: random.Random, data: bytes) -> bytes:
    at, n = rng.randrange(len(data)), rng.randint(1, 64)
    if rng.random() < 0.5:
        return data[:at] + bytes(rng.randrange(256) for _ in range(n)) + data[at:]
    return data[:at] + data[at + n:]


MUTATIONS = ("field", "field", "field", "bytes", "bits", "truncate", "splice", "insert/delete")


def mutant(seeds: list[SeedModel], seed: int, index: int) -> tuple[str, bytes]:
    """File number ``index`` of campaign ``seed``: (description, bytes); deterministic."""
    rng = random.Random(f"{seed}:{index}")
    base = seeds[index % len(seeds)]
    data, kinds = base.data, []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.choice(MUTATIONS)
        kinds.append(kind)
        if kind == "field":
            data = _field_mutation(rng, base, data)
        elif kind == "bytes":
            data = _byte_flips(rng, data) if data else data
        elif kind == "bits":
            data = _bit_flips(rng, data) if data else data
        elif kind == "truncate":
            data = _truncate(rng, data) if data else data
        elif kind == "splice":
            data = _splice(rng, data or b"\0", rng.choice(seeds).data)
        else:
            data = _insert_delete(rng, data or b"\0")
    return f"{base.name}:{'+'.join(kinds)}", data


# -- the reader and inspect, in worker processes --------------------------------------------

class Hang(Exception):
    """Raised by the per-file alarm."""


def _alarm(signum, frame):
    raise Hang()


def reader_outcome(data: bytes, time_limit: float = READER_TIME_LIMIT) -> str:
    """What ``inspect`` does (read, summary, table, JSON) and a write back: "error" (FdtError),
    "accepted", "hang" or "crash: <exception>"."""
    from fdt_tflm.analysis import format_table, summary
    from fdt_tflm.io import read_model, write_model
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        m = read_model(data)
        info = summary(m)
        format_table(m, info)
        json.dumps(info)  # inspect --json
        write_model(m)
        return "accepted"
    except FdtError:
        return "error"
    except Hang:
        return "hang"
    except Exception as e:  # noqa: BLE001 - a crash is what we are looking for
        return f"crash: {type(e).__name__}: {str(e)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def limit_memory() -> None:
    """In a child: the address-space limit of the campaign (`ulimit -v 4000000`)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def worker(seed: int, start: int, stop: int) -> int:
    """``--worker``: one line per file on stdout, ``index<TAB>outcome<TAB>mutation``."""
    limit_memory()
    seeds = load_seeds()
    abort_at = int(os.environ.get("FDT_FUZZ_SELFTEST_ABORT", -1))  # lets a test check the harness
    for i in range(start, stop):
        if i == abort_at:
            os.abort()
        desc, data = mutant(seeds, seed, i)
        print(f"{i}\t{reader_outcome(data)}\t{desc}", flush=True)
    print("done", flush=True)
    return 0


@dataclass
class Tally:
    tried: int = 0
    clean_errors: int = 0
    accepted: int = 0
    crashes: int = 0
    hangs: int = 0
    mismatches: int = 0  # optimize only: exit 1, outputs differ (clean, but worth a look)
    seconds: float = 0.0
    findings: list = field(default_factory=list)

    def add(self, index: int, outcome: str, desc: str) -> None:
        self.tried += 1
        if outcome == "error":
            self.clean_errors += 1
        elif outcome == "accepted":
            self.accepted += 1
        elif outcome == "mismatch":
            self.mismatches += 1
            self.findings.append({"index": index, "outcome": outcome, "mutation": desc})
        else:
            self.hangs += outcome == "hang"
            self.crashes += outcome != "hang"
            self.findings.append({"index": index, "outcome": outcome, "mutation": desc})


Checkpoint = Callable[[str, "Tally"], None]


def _quiet(key: str, tally: "Tally") -> None:
    pass


@dataclass
class _Worker:
    """One reader worker: the files [next, stop) are still to be reported."""

    next: int
    stop: int
    proc: subprocess.Popen
    seen: float = field(default_factory=time.monotonic)


def run_reader(seed: int, n: int, jobs: int, progress: bool = True, checkpoint: Checkpoint = _quiet) -> Tally:
    """``n`` files through the reader in ``jobs`` worker processes.  A worker whose output ends
    without "done" died (a crash at the file after its last report); one silent for too long
    hangs; either way it is restarted after that file."""
    t0, tally = time.perf_counter(), Tally()
    workers = {}
    for k in range(jobs):
        lo, hi = n * k // jobs, n * (k + 1) // jobs
        if lo < hi:
            workers[k] = _Worker(lo, hi, _start_worker(seed, lo, hi))
    while workers:
        ready, _, _ = select.select([w.proc.stdout for w in workers.values()], [], [], 1.0)
        for k, w in list(workers.items()):
            line = w.proc.stdout.readline() if w.proc.stdout in ready else None
            if line == "done\n":
                w.proc.wait()
                del workers[k]
            elif line:
                idx, outcome, desc = line.rstrip("\n").split("\t", 2)
                tally.add(int(idx), outcome, desc)
                w.next, w.seen = int(idx) + 1, time.monotonic()
                _report_progress("reader", tally, t0, 5000, 1000, progress, checkpoint)
            elif line == "" or time.monotonic() - w.seen > 3 * READER_TIME_LIMIT + 30:
                _reap(w.proc)
                outcome = f"crash: worker died (exit {w.proc.returncode})" if line == "" else "hang"
                tally.add(w.next, outcome, mutant(load_seeds(), seed, w.next)[0])
                del workers[k]
                if w.next + 1 < w.stop:
                    workers[k] = _Worker(w.next + 1, w.stop, _start_worker(seed, w.next + 1, w.stop))
    tally.seconds = round(time.perf_counter() - t0, 1)
    return tally


def _report_progress(key: str, tally: Tally, t0: float, every: int, save_every: int, progress: bool,
                     checkpoint: Checkpoint) -> None:
    if progress and tally.tried % every == 0:
        print(f"  {key}: {tally.tried:,} files, {tally.crashes} crashes, {tally.hangs} hangs, "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    if tally.tried % save_every == 0:
        tally.seconds = round(time.perf_counter() - t0, 1)
        checkpoint(key, tally)


def _start_worker(seed: int, start: int, stop: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--worker", str(seed), str(start), str(stop)],
                            stdout=subprocess.PIPE, text=True, bufsize=1)


def _reap(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.kill()
    p.wait()


# -- optimize through the CLI, each file in its own child -----------------------------------

def cli_outcome(path: Path, out: Path, time_limit: float, extra: tuple[str, ...] = OPTIMIZE_ARGS,
                command: str = "optimize") -> tuple[str, float]:
    """Run one CLI command in a child under RLIMIT_AS: "error" (exit 2, one stderr line),
    "accepted" (exit 0), "mismatch" (exit 1, one line), "hang" or "crash: ..."; and seconds."""
    argv = [sys.executable, "-m", "fdt_tflm", command, str(path)]
    if command == "optimize":
        argv += ["-o", str(out), *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    t0 = time.perf_counter()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=time_limit, env=env,
                           preexec_fn=limit_memory)
    except subprocess.TimeoutExpired:
        return "hang", time.perf_counter() - t0
    return classify(r.returncode, r.stderr), time.perf_counter() - t0


def classify(returncode: int, stderr: str) -> str:
    lines = stderr.strip().splitlines()
    if returncode == 0:
        return "accepted"
    one_line = len(lines) == 1 and lines[0].startswith("fdt-tflm: error:") and "Traceback" not in stderr
    if returncode in (1, 2) and one_line:
        return "error" if returncode == 2 else "mismatch"
    return f"crash: exit {returncode}: {' | '.join(lines[-3:])[:300]}"


def run_optimize(seed: int, n: int, jobs: int, progress: bool = True, checkpoint: Checkpoint = _quiet) -> Tally:
    """``n`` mutated files through ``python -m fdt_tflm optimize``, ``jobs`` at a time."""
    from concurrent.futures import ThreadPoolExecutor
    t0, tally, seeds = time.perf_counter(), Tally(), load_seeds()
    with tempfile.TemporaryDirectory(prefix="fdt_fuzz_") as tmp:
        def one(i: int) -> tuple[int, str, str]:
            desc, data = mutant(seeds, seed + 1, i)
            src, out = Path(tmp, f"m{i}.tflite"), Path(tmp, f"m{i}.out.tflite")
            src.write_bytes(data)
            outcome, _ = cli_outcome(src, out, OPTIMIZE_TIME_LIMIT)
            for p in (src, out):
                p.unlink(missing_ok=True)
            return i, outcome, desc
        with ThreadPoolExecutor(jobs) as ex:
            for i, outcome, desc in ex.map(one, range(n)):
                tally.add(i, outcome, desc)
                _report_progress("optimize", tally, t0, 50, 10, progress, checkpoint)
    tally.seconds = round(time.perf_counter() - t0, 1)
    return tally


# -- hostile models --------------------------------------------------------------------------

def _kws() -> bytes:
    return (REPO / "models" / "kws.tflite").read_bytes()


def _edit_ir(edit: Callable) -> bytes:
    from fdt_tflm.io import read_model, write_model
    m = read_model(_kws())
    edit(m.main)
    return write_model(m)


def _set(path: str, value: int, kind: str = "") -> bytes:
    """kws with the first field whose path matches the regex ``path`` set to ``value``."""
    data = _kws()
    s = next(x for x in field_sites(data) if re.fullmatch(path, x.path) and (not kind or x.kind == kind))
    return patch(data, s, value)


def _aliased(vector: str, copies: int) -> bytes:
    """A model whose ``vector`` (Subgraphs or Buffers) lists the same table ``copies`` times:
    a small file that expands into ``copies`` full subgraphs or 64 KiB buffers when read."""
    import flatbuffers
    import numpy as np
    from fdt_tflm.io.fbgeneric import _module
    Buffer, Model, SubGraph, Tensor = (_module(n) for n in ("Buffer", "Model", "SubGraph", "Tensor"))
    b = flatbuffers.Builder(1 << 16)
    data = b.CreateNumpyVector(np.zeros(1 << 16, np.uint8))
    Buffer.Start(b)
    Buffer.AddData(b, data)
    buf = Buffer.End(b)
    tensors = []
    for _ in range(64):
        shape = b.CreateNumpyVector(np.array([1, 8], np.int32))
        Tensor.Start(b)
        Tensor.AddShape(b, shape)
        tensors.append(Tensor.End(b))
    tvec = _offsets(b, tensors)
    SubGraph.Start(b)
    SubGraph.AddTensors(b, tvec)
    sg = SubGraph.End(b)
    sgs = _offsets(b, [sg] * (copies if vector == "Subgraphs" else 1))
    bufs = _offsets(b, [buf] * (copies if vector == "Buffers" else 1))
    Model.Start(b)
    Model.AddVersion(b, 3)
    Model.AddSubgraphs(b, sgs)
    Model.AddBuffers(b, bufs)
    b.Finish(Model.End(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _offsets(b, items: list[int]) -> int:
    b.StartVector(4, len(items), 4)
    for off in reversed(items):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def hostile_models() -> dict[str, Callable[[], bytes]]:
    """Name -> builder of a model meant to exhaust time or memory; each must give exit 2."""
    def shape(i: int, dims: list[int]):
        return lambda sg: setattr(sg.operators[0].outputs[0] if i < 0 else sg.tensors[i], "shape", dims)

    def cycle(sg):
        sg.operators[0].inputs[0] = sg.operators[1].outputs[0]

    def self_loop(sg):
        sg.operators[0].inputs[0] = sg.operators[0].outputs[0]

    def const_terabyte(sg):
        t = next(t for t in sg.tensors if t.is_constant)
        t.shape = [1 << 20, 1 << 20, 1]

    return {
        "activation [1, 65535, 65535, 255]": lambda: _edit_ir(shape(-1, [1, 65535, 65535, 255])),
        "input of 1 TB": lambda: _edit_ir(lambda sg: setattr(sg.inputs[0], "shape", [1024, 1024, 1024, 1024])),
        "constant claiming 1 TB": lambda: _edit_ir(const_terabyte),
        "operator cycle": lambda: _edit_ir(cycle),
        "operator reads its own output": lambda: _edit_ir(self_loop),
        "rank 100000 shape": lambda: _edit_ir(shape(-1, [1] * 100000)),
        "tensor index past the subgraph": lambda: _set(r"Subgraphs\[0\]\.Operators\[0\]\.Inputs\[0\]", 100000),
        "negative tensor index": lambda: _set(r"Subgraphs\[0\]\.Operators\[0\]\.Inputs\[0\]", -7),
        "graph output -1": lambda: _set(r"Subgraphs\[0\]\.Outputs\[0\]", -1),
        "buffer index past the table": lambda: _set(r"Subgraphs\[0\]\.Tensors\[\d+\]\.Buffer", 10 ** 6),
        "opcode index past the table": lambda: _set(r"Subgraphs\[0\]\.Operators\[\d+\]\.OpcodeIndex", 200),
        "tensors vector of 2^31-1": lambda: _set(r"Subgraphs\[0\]\.Tensors", 0x7FFFFFFF, "length"),
        "shape vector of 2^30": lambda: _set(r"Subgraphs\[0\]\.Tensors\[0\]\.Shape", 0x3FFFFFFF, "length"),
        "operators vector of 2^32-1": lambda: _set(r"Subgraphs\[0\]\.Operators", 0xFFFFFFFF, "length"),
        "buffer data of 2^31-16 bytes": lambda: _set(r"Buffers\[\d+\]\.Data", 0x7FFFFFF0, "length"),
        "20,000 aliases of one subgraph": lambda: _aliased("Subgraphs", 20000),
        "20,000 aliases of a 64 KiB buffer": lambda: _aliased("Buffers", 20000),
    }


def run_hostile(time_limit: float = HOSTILE_TIME_LIMIT) -> list[dict]:
    """Each hostile model through ``optimize`` under RLIMIT_AS: expected exit 2, one line."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="fdt_fuzz_") as tmp:
        for name, build in hostile_models().items():
            src, out = Path(tmp, "hostile.tflite"), Path(tmp, "out.tflite")
            src.write_bytes(build())
            out.unlink(missing_ok=True)  # each model's own output only
            outcome, secs = cli_outcome(src, out, time_limit)
            rows.append({"model": name, "outcome": outcome, "seconds": round(secs, 2),
                         "output_written": out.exists()})
    return rows


# -- command line ----------------------------------------------------------------------------

def report(res: dict) -> str:
    lines = ["| target | files | clean errors | accepted | crashes | hangs | seconds |", "|---|---:|---:|---:|---:|---:|---:|"]
    for key in ("reader", "optimize"):
        if key in res:
            t = res[key]
            lines.append(f"| {key} | {t['tried']:,} | {t['clean_errors']:,} | {t['accepted']:,} | {t['crashes']} "
                         f"| {t['hangs']} | {t['seconds']:,.0f} |")
    for h in res.get("hostile", []):
        lines.append(f"| hostile: {h['model']} | 1 | {int(h['outcome'] == 'error')} | "
                     f"{int(h['outcome'] == 'accepted')} | {int(h['outcome'].startswith('crash'))} | "
                     f"{int(h['outcome'] == 'hang')} | {h['seconds']:.1f} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker(*map(int, argv[1:4]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reader", type=int, default=100_000, help="mutated files through the reader and inspect")
    ap.add_argument("--optimize", type=int, default=1_000, help="mutated files through optimize")
    ap.add_argument("--no-hostile", action="store_true", help="skip the hostile models")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--dump", nargs=3, metavar=("TARGET", "INDEX", "FILE"),
                    help="write file INDEX of TARGET (reader|optimize) to FILE and stop")
    a = ap.parse_args(argv)
    if a.dump:
        desc, data = mutant(load_seeds(), a.seed + (a.dump[0] == "optimize"), int(a.dump[1]))
        Path(a.dump[2]).write_bytes(data)
        print(desc)
        return 0
    res: dict = {"seed": a.seed, "command": " ".join(["python", "benchmarks/fuzz.py", *argv]),
                 "seeds": [s.name for s in load_seeds()], "memory_limit_bytes": MEMORY_LIMIT}
    t0 = time.perf_counter()
    if not a.no_hostile:
        res["hostile"] = run_hostile()
    lock = threading.Lock()

    def checkpoint(key: str, tally: Tally) -> None:
        """Partial figures in the JSON while the campaign runs ("complete": false)."""
        if a.json:
            with lock:
                res[key] = {**asdict(tally), "complete": False}
                res["seconds"] = round(time.perf_counter() - t0, 1)
                Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as ex:  # the two campaigns side by side: optimize waits on children
        reader = ex.submit(run_reader, a.seed, a.reader, a.jobs, True, checkpoint) if a.reader else None
        opt = ex.submit(run_optimize, a.seed, a.optimize, a.jobs, True, checkpoint) if a.optimize else None
        for key, fut in (("reader", reader), ("optimize", opt)):
            if fut is not None:
                res[key] = {**asdict(fut.result()), "complete": True}
    res["seconds"] = round(time.perf_counter() - t0, 1)
    print(report(res))
    print(f"total {res['seconds']:,.0f} s")
    for key in ("reader", "optimize"):
        for f in res.get(key, {}).get("findings", [])[:20]:
            print(f"  {key} #{f['index']} ({f['mutation']}): {f['outcome']}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
    bad = sum(res.get(k, {}).get("crashes", 0) + res.get(k, {}).get("hangs", 0) for k in ("reader", "optimize"))
    bad += sum(h["outcome"] != "error" for h in res.get("hostile", []))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
