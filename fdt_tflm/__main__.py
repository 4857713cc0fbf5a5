"""``python -m fdt_tflm``."""
import sys

from .cli import main

sys.exit(main())
