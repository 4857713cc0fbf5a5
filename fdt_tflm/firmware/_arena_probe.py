"""Child process: the smallest arena in which TFLM's AllocateTensors succeeds.

argv: model path, lower bound (TFLM's reported head + tail), upper bound.
Prints ``MIN <bytes>`` (or ``NONE`` when even the upper bound fails).

Why: TFLM's reported total (head + tail) is not always enough.  While preparing
kernels and planning, TFLM places temporary structures (TfLiteTensor temps, the
planner's allocation info) in the head region; when the planned head is small these
temporaries need more than the head (e.g. the MLPerf AD FC model: 648 B more).
Only sizes >= the reported total are tried: far smaller arenas can crash TFLM.
"""
from __future__ import annotations

import sys


def main() -> int:
    path, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    from tflite_micro.python.tflite_micro import runtime as tflm
    data = open(path, "rb").read()

    def works(size: int) -> bool:
        try:
            tflm.Interpreter.from_bytes(data, arena_size=size)
            return True
        except RuntimeError:
            return False

    if works(lo):
        print(f"MIN {lo}")
        return 0
    if not works(hi):
        print("NONE")
        return 0
    while hi - lo > 1:  # invariant: lo fails, hi works
        mid = (lo + hi) // 2
        if works(mid):
            hi = mid
        else:
            lo = mid
    print(f"MIN {hi}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
