"""Measure reorder + plan on the shared models (and a generated three-branch graph) against TFLM.

    python benchmarks/bench_planner.py [--no-tflm]

Prints, per model: TFLM's default head, our predicted and measured head, the peak-live bound,
whether the plan is proven optimal, the measured and predicted tail, and the wall time of
reorder + plan.  Timings are informative only (tests never assert them).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fdt_tflm.io import read_model, write_model  # noqa: E402
from fdt_tflm.ir.qnet import QNet  # noqa: E402
from fdt_tflm.memory.passes import plan, reorder  # noqa: E402
from fdt_tflm.memory.tail import predict_tail  # noqa: E402
from fdt_tflm.verify import compare_models  # noqa: E402

SHARED = ROOT.parent / "shared" / "models"


def three_branches():
    """Radar-gesture style graph emitted breadth-first (as converters do)."""
    q = QNet(0)
    x = q.input([1, 32, 32, 2])
    ys = [q.conv2d(x, 16) for _ in range(3)]
    ys = [q.conv2d(y, 16) for y in ys]
    ys = [q.pool(y, "MAX", 2, 2) for y in ys]
    first = None
    outs = []
    for y in ys:
        z = q.conv2d(y, 8, stride=2, like=first)
        first = first or z
        outs.append(z)
    ys = [q.reshape(q.pool(z, "AVERAGE", 8, 8), [1, 8]) for z in outs]
    d = q.fully_connected(q.concat(ys, axis=-1), 16, act="RELU")
    return q.output(q.softmax(q.fully_connected(d, 4)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-tflm", action="store_true", help="skip running TFLM (predictions only)")
    args = ap.parse_args()
    cases = [(p.stem, read_model(p), p.read_bytes()) for p in sorted(SHARED.glob("*.tflite"))]
    m = three_branches()
    cases.append(("generated_three_branches", m, write_model(m)))
    print(f"{'model':34} {'tflm head':>9} {'pred':>7} {'meas':>7} {'bound':>7} {'opt':>4} "
          f"{'tail':>6} {'pred':>6} {'sched s':>7} {'plan s':>7}")
    for name, model, data in cases:
        t0 = time.perf_counter()
        r, sched = reorder(model)
        t1 = time.perf_counter()
        p, rep = plan(r)
        t2 = time.perf_counter()
        out = write_model(p)
        a_head = b_head = tail = "-"
        if not args.no_tflm:
            cmp = compare_models(model, data, out, n_samples=2, litert=False)
            if not cmp.ok:
                print(f"{name}: OUTPUTS DIFFER {cmp.to_dict()}")
                return 1
            a_head, b_head, tail = cmp.tflm.a.head, cmp.tflm.b.head, cmp.tflm.b.tail
        print(f"{name:34} {a_head:>9} {rep.predicted_head:>7} {b_head:>7} {rep.peak_live_bytes:>7} "
              f"{'yes' if rep.optimal else 'no':>4} {tail:>6} {predict_tail(p):>6} {t1 - t0:7.3f} {t2 - t1:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
