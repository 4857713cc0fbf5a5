"""What fdt-tflm knows about each TFLite operator, as data: roles, how it splits, MAC kind,
in-place pairs, scratch kind (:mod:`.ops`).  The bottom layer above the IR: it imports
nothing but ``fdt_tflm.ir`` and the ``tflite`` schema."""
