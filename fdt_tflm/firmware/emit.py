"""Emit the C/C++ sources a TFLM firmware needs for one model.

Files (``<prefix>`` defaults to ``fdt``):
- ``<prefix>_model.h`` / ``<prefix>_model.cc``: the model as a 16-byte aligned byte array;
- ``<prefix>_arena.h``: ``<PREFIX>_TENSOR_ARENA_SIZE``, the exact arena TFLM needs, with a
  comment table explaining the number;
- ``<prefix>_op_resolver.h``: a ``MicroMutableOpResolver`` with exactly the model's ops.

Why the arena number is exact: it is the smallest arena in which TFLM's AllocateTensors
succeeds on the target (default: a Cortex-M4 with the reference kernels), predicted by
replaying TFLM's allocations with the target's struct layouts and kernels
(:func:`fdt_tflm.tflm_model.predict_arena`); no host run is needed, so models with our
FDT_PARTIAL custom op are sized the same way.  The header rounds it up to the 16-byte
buffer alignment; the arena array must be ``alignas(16)``.

An explicit :class:`ArenaInfo` (a host measurement, or any numbers a caller wants) sizes
the header as ``tail + max(head, temp_peak) + ALIGNMENT_MARGIN``.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Union

from ..errors import FdtError
from ..io import read_model
from ..ir.graph import Model
from ..tflm_model import TargetArena, predict_arena, target_for
from . import cmsis_nn
from .resolver import CustomKernel, op_types, resolver_header

ALIGNMENT_MARGIN = 16
KERNELS = ("reference", "cmsis-nn")
DEFAULT_CPU = "cortex-m4"  # the most common TinyML MCU class; --cpu / the firmware part change it
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ArenaInfo:
    """What the arena of one model consists of, in bytes.

    ``head`` and ``tail`` are measured by TFLM for the (optimised) model; ``head``
    includes the scratch of the reference kernels.  ``planned`` is the activation part of
    the head (our exact planner model), ``scratch`` = head - planned.  ``original_total``
    is the total arena the unoptimised model needed (None if unknown)."""

    head: int
    tail: int
    planned: int
    scratch: int
    original_total: Optional[int] = None
    estimated: bool = False  # True when the host TFLM could not run the model (custom ops)
    temp_peak: int = 0  # head-side bytes AllocateTensors needs temporarily (0: not above ``head``)

    @property
    def total(self) -> int:
        """TFLM's measured total (head + tail), without margin."""
        return self.head + self.tail

    def arena_size(self, extra_scratch: int = 0) -> int:
        """The number for ``<PREFIX>_TENSOR_ARENA_SIZE``: the tail, the head or the temporary
        space TFLM needs while allocating (whichever is larger), and the alignment margin."""
        return self.tail + max(self.head + extra_scratch, self.temp_peak) + ALIGNMENT_MARGIN


@dataclass
class EmitResult:
    """What :func:`emit_c` wrote."""

    files: list[Path]
    arena_size: int
    arena: ArenaInfo
    extra_scratch: int
    ops: list[str] = field(default_factory=list)
    model_size: int = 0
    target: Optional[TargetArena] = None  # the prediction the header came from (None: explicit ArenaInfo)


def measure_arena(model_bytes: bytes, original_bytes: Optional[bytes] = None,
                  original_total: Optional[int] = None) -> ArenaInfo:
    """The host interpreter's arena for the model, measured: one run for head and tail, a
    bisection for the smallest arena that allocates.  (The header is sized without a run by
    :func:`fdt_tflm.tflm_model.predict_arena`, which also sizes models with custom ops.)"""
    from ..tflm_model.head import predict_head
    from ..verify import make_inputs, run

    model = _parse(model_bytes)
    planned = predict_head(model).head
    if original_bytes is not None and original_total is None:
        orig = run(original_bytes, make_inputs(_parse(original_bytes), 1, seed=0), runtime="tflm")
        original_total = orig.total if orig.ok else None
    res = run(model_bytes, make_inputs(model, 1, seed=0), runtime="tflm")
    if not res.ok or res.head is None or res.tail is None:
        raise FdtError(f"TFLM could not run the model to measure its arena: {res.error or 'no allocation report'}")
    need = host_min_working_arena(model_bytes, res.total)
    return ArenaInfo(res.head, res.tail, min(planned, res.head), max(0, res.head - planned), original_total,
                     temp_peak=need - res.tail if need > res.total else 0)


def host_min_working_arena(model_bytes: bytes, total: int, timeout: float = 300.0) -> int:
    """Smallest arena (>= TFLM's reported ``total``) in which the host TFLM allocates the model."""
    with tempfile.TemporaryDirectory(prefix="fdt_tflm_") as tmp:
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as f:
            f.write(model_bytes)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in [root, env.get("PYTHONPATH", "")] if p)
        hi = total + max(64 * 1024, total)
        try:
            proc = subprocess.run([sys.executable, "-m", "fdt_tflm.firmware._arena_probe", path, str(total), str(hi)],
                                  capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise FdtError("TFLM arena probe timed out") from None
    m = re.search(r"^MIN (\d+)$", proc.stdout, re.M)
    if proc.returncode != 0 or m is None:
        raise FdtError(f"TFLM could not allocate the model even in {hi} bytes")
    return int(m.group(1))


def _parse(model_bytes: bytes) -> Model:
    try:
        return read_model(model_bytes)
    except FdtError:
        raise
    except Exception as e:  # a corrupt flatbuffer raises anything
        raise FdtError(f"not a valid .tflite model: {e}") from None


def check_prefix(prefix: str) -> str:
    """The prefix must be a C identifier: it names files, symbols and macros."""
    if not _IDENT.match(prefix or ""):
        raise FdtError(f"bad --prefix {prefix!r}: must be a C identifier (letters, digits, _)")
    return prefix


def model_array_source(model_bytes: bytes, prefix: str = "fdt") -> str:
    """Text of ``<prefix>_model.cc``: the bytes, 12 per line, deterministic."""
    rows = []
    for i in range(0, len(model_bytes), 12):
        rows.append("    " + ", ".join(f"0x{b:02x}" for b in model_bytes[i:i + 12]) + ",")
    body = "\n".join(rows)
    return (
        f"// Generated by fdt-tflm. Model: {len(model_bytes)} bytes, sha256 {_sha(model_bytes)}.\n"
        f'#include "{prefix}_model.h"\n\n'
        "// 16-byte alignment: TFLM reads the flatbuffer in place (no copy to RAM).\n"
        f"alignas(16) const unsigned char {prefix}_model[] = {{\n{body}\n}};\n\n"
        f"const unsigned int {prefix}_model_len = {len(model_bytes)}u;\n"
    )


def model_header(model_bytes: bytes, prefix: str = "fdt") -> str:
    """Text of ``<prefix>_model.h``: declarations with C linkage (usable from C and C++)."""
    up = prefix.upper()
    guard = f"{up}_MODEL_H_"
    return (
        f"// Generated by fdt-tflm. Model: {len(model_bytes)} bytes, sha256 {_sha(model_bytes)}.\n"
        f"#ifndef {guard}\n#define {guard}\n\n"
        f"#define {up}_MODEL_SIZE {len(model_bytes)}\n\n"
        "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
        f"// The .tflite flatbuffer, 16-byte aligned; pass it to tflite::GetModel().\n"
        f"extern const unsigned char {prefix}_model[];\n"
        f"extern const unsigned int {prefix}_model_len;\n\n"
        "#ifdef __cplusplus\n}  // extern \"C\"\n#endif\n\n"
        f"#endif  // {guard}\n"
    )


def arena_header(arena: ArenaInfo, prefix: str = "fdt", extra_scratch: int = 0, kernels: str = "reference",
                 arch: str = "dsp") -> str:
    """Text of ``<prefix>_arena.h``: the arena size and where every byte of it goes."""
    up = prefix.upper()
    guard = f"{up}_ARENA_H_"
    size = arena.arena_size(extra_scratch)
    how = "ESTIMATED: host TFLM cannot run the custom ops" if arena.estimated else "measured"
    rows = [
        ("planned activations (tensor buffers, offline/greedy plan)", arena.planned),
        (f"kernel scratch, reference kernels ({how})", arena.scratch),
        (f"= TFLM head ({how})", arena.head),
    ]
    if kernels == "cmsis-nn":
        rows.append((f"CMSIS-NN extra scratch (ESTIMATED for '{arch}')", extra_scratch))
    if arena.temp_peak > arena.head + extra_scratch:
        rows.append(("extra head space TFLM needs while allocating (measured)",
                     arena.temp_peak - arena.head - extra_scratch))
    rows += [
        (f"persistent tail ({how} on a 64-bit host; less on 32-bit)", arena.tail),
        ("alignment margin (arena start not 16-aligned)", ALIGNMENT_MARGIN),
        (f"= {up}_TENSOR_ARENA_SIZE", size),
    ]
    width = max(len(r[0]) for r in rows)
    table = "\n".join(f"//   {label:<{width}} {value:>9} B" for label, value in rows)
    if kernels == "cmsis-nn":
        table += (f"\n//   ('{arch}' = {cmsis_nn.ARCHS[arch]}; estimate from CMSIS-NN's"
                  " *_get_buffer_size rules, see docs/firmware.md)")
    if arena.original_total is not None:
        saved = arena.original_total - arena.total
        pct = 100.0 * saved / max(arena.original_total, 1)
        table += (f"\n//   {'original model: TFLM head + tail (reference kernels)':<{width}} {arena.original_total:>9} B"
                  f"\n//   {'this model:     TFLM head + tail (reference kernels)':<{width}} {arena.total:>9} B"
                  f"  (saved {saved} B, {pct:.1f} %)")
    lines = [
        f"// Generated by fdt-tflm ({kernels} kernels). Tensor arena for the emitted model:",
        table,
        "//",
        "// Use: alignas(16) static uint8_t tensor_arena[" + f"{up}_TENSOR_ARENA_SIZE];",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        f"#define {up}_TENSOR_ARENA_SIZE {size}",
        f"#define {up}_TENSOR_ARENA_HEAD {max(arena.head + extra_scratch, arena.temp_peak)}",
        f"#define {up}_TENSOR_ARENA_TAIL {arena.tail}",
        f"#define {up}_TENSOR_ARENA_ALIGNMENT 16",
    ]
    if arena.original_total is not None:
        lines.append(f"#define {up}_ORIGINAL_TENSOR_ARENA_SIZE {arena.original_total + extra_scratch + ALIGNMENT_MARGIN}")
    lines += ["", f"#endif  // {guard}", ""]
    return "\n".join(lines)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def emit_c(model_bytes: bytes, out_dir: Union[str, os.PathLike], prefix: str = "fdt",
           arena: Optional[ArenaInfo] = None, kernels: str = "reference", arch: str = "dsp",
           custom: Optional[Mapping[str, CustomKernel]] = None,
           original_bytes: Optional[bytes] = None, cpu: str = DEFAULT_CPU) -> EmitResult:
    """Write ``<prefix>_model.h/.cc``, ``<prefix>_arena.h`` and ``<prefix>_op_resolver.h``.

    The arena is predicted for ``cpu`` with ``kernels`` (see the module docstring).  An
    explicit ``arena`` sizes the header instead; with ``kernels="cmsis-nn"`` the CMSIS-NN
    scratch for ``arch`` (dsp|mve|none) is then added to it."""
    check_prefix(prefix)
    if kernels not in KERNELS:
        raise FdtError(f"unknown --kernels {kernels!r} (choose from {', '.join(KERNELS)})")
    model = _parse(model_bytes)
    resolver_text = resolver_header(model, prefix, custom)  # fails early on an op TFLM cannot run
    if arena is None:
        target = target_for(cpu, kernels)
        predicted = predict_arena(model, target)
        original = predict_arena(_parse(original_bytes), target) if original_bytes else None
        header, size, extra = target_header(predicted, prefix, original), predicted.header, 0
        arena = ArenaInfo(predicted.head, predicted.tail, predicted.planned, predicted.scratch,
                          original.total if original else None, bool(predicted.unmodelled),
                          predicted.min_working - predicted.tail)
    else:
        predicted = None
        extra = cmsis_nn.extra_scratch(model, arch) if kernels == "cmsis-nn" else 0
        header, size = arena_header(arena, prefix, extra, kernels, arch), arena.arena_size(extra)
    texts = {
        f"{prefix}_model.h": model_header(model_bytes, prefix),
        f"{prefix}_model.cc": model_array_source(model_bytes, prefix),
        f"{prefix}_arena.h": header,
        f"{prefix}_op_resolver.h": resolver_text,
    }
    files = _write_files(Path(out_dir), texts)
    return EmitResult(files, size, arena, extra, op_types(model), len(model_bytes), predicted)


def _write_files(out: Path, texts: Mapping[str, str]) -> list[Path]:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FdtError(f"cannot create {out}: {e.strerror}") from None
    files = []
    for name, text in texts.items():
        path = out / name
        try:
            path.write_text(text, encoding="ascii", newline="\n")
        except OSError as e:
            raise FdtError(f"cannot write {path}: {e.strerror}") from None
        files.append(path)
    return files


def _rows(a: TargetArena) -> list[tuple[str, int]]:
    kernels = f"{a.target.kernels} kernels"
    return [
        ("planned activations (tensor buffers, offline/greedy plan)", a.planned),
        (f"kernel scratch ({kernels}, {a.target.cpu})", a.scratch),
        ("= head: non-persistent section", a.head),
        (f"persistent tail (TFLM structs and op data, {a.target.abi} ABI)", a.tail),
        ("temporaries AllocateTensors needs beyond head + tail", a.temp_need),
        ("= smallest arena that allocates (predicted)", a.min_working),
        ("rounding to the 16-byte buffer alignment", a.header - a.min_working),
    ]


def _claim(a: TargetArena) -> list[str]:
    """The header's first lines: exact ("fails with less") only when every op's kernel is in
    the tables; with unknown ops the number is an upper bound and says so first."""
    where = f"on a {a.target.cpu} ({a.target.kernels} kernels)"
    if a.unmodelled:
        return [f"// Generated by fdt-tflm. An upper bound of the tensor arena for the emitted model {where},",
                "// predicted from TFLM's sources (tflite-micro 90b983c); not exact: ops without a kernel table",
                f"// entry ({', '.join(a.unmodelled)}) are charged the most any kernel in the tables allocates."]
    return [f"// Generated by fdt-tflm. Tensor arena for the emitted model {where},",
            "// predicted from TFLM's sources (tflite-micro 90b983c): AllocateTensors fails with less."]


def target_header(a: TargetArena, prefix: str = "fdt", original: Optional[TargetArena] = None) -> str:
    """Text of ``<prefix>_arena.h`` for a predicted target arena: the size and where it goes."""
    up = prefix.upper()
    guard = f"{up}_ARENA_H_"
    rows = _rows(a) + [(f"= {up}_TENSOR_ARENA_SIZE", a.header)]
    width = max(len(r[0]) for r in rows)
    table = "\n".join(f"//   {label:<{width}} {value:>9} B" for label, value in rows)
    if a.unmodelled:
        table += ("\n//   UPPER BOUND: ops without a kernel table entry, charged the most any kernel in the"
                  f"\n//   tables allocates: {', '.join(a.unmodelled)}")
    if original is not None:
        saved = original.header - a.header
        table += (f"\n//   {'original model on this target':<{width}} {original.header:>9} B"
                  f"  (saved {saved} B, {100.0 * saved / max(original.header, 1):.1f} %)")
    lines = _claim(a) + [
        table,
        "//",
        f"// {up}_TENSOR_ARENA_HEAD / _TAIL: the two sections of that arena (head incl. temporaries).",
        "// Use: alignas(16) static uint8_t tensor_arena[" + f"{up}_TENSOR_ARENA_SIZE];",
        f"// Or two arenas (the tail in another RAM): MicroAllocator::Create(persistent, {up}_PERSISTENT_ARENA_SIZE,",
        f"//   non_persistent, {up}_NON_PERSISTENT_ARENA_SIZE) with both 16-byte aligned (predicted the same way;",
        "//   in QEMU each is the smallest that works: tests/data/two_arena_device.json).",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        f"#define {up}_TENSOR_ARENA_SIZE {a.header}",
        f"#define {up}_TENSOR_ARENA_HEAD {a.head + a.temp_need}",
        f"#define {up}_TENSOR_ARENA_TAIL {a.tail}",
        f"#define {up}_TENSOR_ARENA_ALIGNMENT 16",
        f"#define {up}_PERSISTENT_ARENA_SIZE {a.persistent_arena}",
        f"#define {up}_NON_PERSISTENT_ARENA_SIZE {a.non_persistent_arena}",
    ]
    if original is not None:
        lines.append(f"#define {up}_ORIGINAL_TENSOR_ARENA_SIZE {original.header}")
    lines += ["", f"#endif  // {guard}", ""]
    return "\n".join(lines)
