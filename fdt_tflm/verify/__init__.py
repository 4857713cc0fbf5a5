"""Verification: run models in TFLM and LiteRT child processes and compare them."""
from .compare import Comparison, compare_models, outputs_match
from .runner import RunResult, make_inputs, run, runtime_available

__all__ = ["Comparison", "compare_models", "outputs_match", "RunResult", "make_inputs", "run", "runtime_available"]
