"""Child process of :mod:`fdt_tflm.verify.probe`: allocate each one-op model in TFLM.

Run by path (not ``-m``) so that it imports TFLM alone, not the fdt_tflm package: it is
started on every optimize.  argv: manifest (JSON list of [model path, arena bytes]),
first model index, marker.  After each model's allocation report (C code, on stderr)
it prints ``MARKER INDEX ok`` or ``MARKER INDEX error WHY``, also on stderr, so the
two stay in order.
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import sys


def main(manifest: str, start: int, marker: str) -> int:
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
        os.write(2, f"\n{marker} {k} {status}\n".encode())
        gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
