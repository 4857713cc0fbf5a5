"""Device truth: build the firmware for a model, run it on an emulated Cortex-M (QEMU) and
measure the arena, outputs and instructions there (``fdt-tflm device-run``)."""
from .harness import DeviceOptions, DeviceResult, MODES, device_run
from .machines import CPUS, MACHINES, Machine, machine_for
from .serial import SerialReport, parse_serial

__all__ = ["DeviceOptions", "DeviceResult", "MODES", "device_run", "CPUS", "MACHINES", "Machine", "machine_for",
           "SerialReport", "parse_serial"]
