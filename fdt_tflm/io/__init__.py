"""Flatbuffer I/O: read a .tflite into the IR, write the IR back."""
from .reader import load_bytes, read_model
from .writer import write_model

__all__ = ["load_bytes", "read_model", "write_model"]
