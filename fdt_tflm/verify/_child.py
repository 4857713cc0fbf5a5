"""Child process that runs one model in TFLM or LiteRT (a bad model can abort the runtime).

argv: runtime (tflm|litert), model path, inputs .npz, outputs .npz, arena size.
Writes the outputs to the .npz; TFLM prints its allocation report on stdout.
"""
from __future__ import annotations

import sys

import numpy as np


def main() -> int:
    runtime, model_path, in_path, out_path, arena = sys.argv[1:6]
    inputs = np.load(in_path)
    n_inputs = len([k for k in inputs.files if k.startswith("in_")]) and \
        max(int(k.split("_")[2]) for k in inputs.files if k.startswith("in_")) + 1
    n_samples = int(inputs["n_samples"])
    data = open(model_path, "rb").read()
    results: dict[str, np.ndarray] = {}
    if runtime == "tflm":
        from tflite_micro.python.tflite_micro import runtime as tflm
        it = tflm.Interpreter.from_bytes(data, arena_size=int(arena))
        n_out = len(_count(it.get_output_details))
        for s in range(n_samples):
            it.reset()
            for i in range(n_inputs):
                it.set_input(inputs[f"in_{s}_{i}"], i)
            it.invoke()
            for o in range(n_out):
                results[f"out_{s}_{o}"] = np.array(it.get_output(o))
        np.savez(out_path, **results)
        sys.stdout.flush()
        it.print_allocations()
        return 0
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=data, num_threads=1)
    it.allocate_tensors()
    ins = it.get_input_details()
    outs = it.get_output_details()
    for s in range(n_samples):
        it.reset_all_variables()
        for i, d in enumerate(ins):
            it.set_tensor(d["index"], inputs[f"in_{s}_{i}"])
        it.invoke()
        for o, d in enumerate(outs):
            results[f"out_{s}_{o}"] = np.array(it.get_tensor(d["index"]))
    np.savez(out_path, **results)
    return 0


def _count(getter) -> list:
    out = []
    while True:
        try:
            out.append(getter(len(out)))
        except Exception:
            return out
        if len(out) > 64:
            return out


if __name__ == "__main__":
    sys.exit(main())
