"""Instructions of one TFLM invoke per operator on Cortex-M devices, per (CPU, kernel set).

Written by ``python benchmarks/device_fit.py --write``: non-negative least squares on the
per-op instruction counts measured in QEMU (``-icount shift=0``, SysTick around each op's
Eval, ``benchmarks/device_ops.py``) with TFLM 90b983c built for the CPU
(``tests/data/device_op_measurements.json``), fitted on the training split only (the
held-out models are scored in tests/test_device_costs.py).  Rows named ``TYPE/variant``
price a kernel's code paths apart (:data:`.instructions.VARIANTS`); each op's ``invoke``
includes its share of Invoke's dispatch, ``_INTERPRETER`` is Invoke's fixed cost.
"""
from __future__ import annotations

from .instructions import InstructionCost

# CMSIS-NN feature set -> the measured CPU that prices CPUs without measurements of their own
STAND_IN: dict[str, str] = {"dsp": "cortex-m4", "mve": "cortex-m33", "none": "cortex-m4"}

DEVICE_COSTS: dict[tuple[str, str], dict[str, InstructionCost]] = {
    ('cortex-m33', 'cmsis-nn'): {
        "ADD": InstructionCost(invoke=888.5607, outputs=16.3003, inputs=32.6006),
        "AVERAGE_POOL_2D": InstructionCost(invoke=27.7689, macs=13.6853, outputs=11.644, pixels=172.3792, rows=296.9205),
        "CONCATENATION": InstructionCost(invoke=1743.4388, outputs=0.6267, runs=49.922),
        "CONV_2D/1x1": InstructionCost(invoke=27.7689, macs=1.7164, outputs=46.4492, pixels=45.3379),
        "CONV_2D/1x1s": InstructionCost(invoke=27.7689, macs=2.0482, outputs=50.4607, rows=380.2299),
        "CONV_2D/kxk": InstructionCost(invoke=27.7689, macs=2.6454, outputs=53.5766, pixels=499.8816, cols=6.2391),
        "DEPTHWISE_CONV_2D/3x3": InstructionCost(invoke=27.7689, macs=4.4009, taps=5.7685, outputs=0.6409, pixels=55.1345, rows=207.0348),
        "DEPTHWISE_CONV_2D/kxk": InstructionCost(invoke=27.7689, macs=2.7688, taps=9.2316, outputs=0.3693, pixels=1041.4321, rows=613.4341),
        "DEPTHWISE_CONV_2D/mult": InstructionCost(invoke=27.7689, macs=8.1962, outputs=60.3333, rows=4873.8619),
        "FULLY_CONNECTED": InstructionCost(invoke=426.5513, macs=2.8792, outputs=46.9389, rows=104.884),
        "MAX_POOL_2D": InstructionCost(invoke=27.7689, macs=9.3799, pixels=173.7118, rows=347.1713),
        "MEAN": InstructionCost(invoke=1541.6723, outputs=4.0494, inputs=203.2619),
        "PAD": InstructionCost(invoke=1327.7078, outputs=0.5262, rows=1.8306),
        "RESHAPE": InstructionCost(invoke=349.5086, outputs=0.0384, rows=0.4662),
        "SLICE": InstructionCost(invoke=622.5877, outputs=53.9953, rows=14.2296),
        "SOFTMAX": InstructionCost(invoke=27.7689, outputs=468.6032),
        "STRIDED_SLICE": InstructionCost(invoke=1220.5482, outputs=0.7858, rows=55.7346),
        "UNIDIRECTIONAL_SEQUENCE_LSTM": InstructionCost(invoke=19612100.2689),
        "_INTERPRETER": InstructionCost(invoke=58.2605),
        "_FALLBACK": InstructionCost(invoke=27.7689, outputs=0.7858, rows=0.4662),
    },
    ('cortex-m33', 'reference'): {
        "ADD": InstructionCost(invoke=3008.2648, outputs=25.3166, inputs=50.6333),
        "AVERAGE_POOL_2D": InstructionCost(invoke=25.8375, macs=48.4673, outputs=95.2051, pixels=17.9222),
        "CONCATENATION": InstructionCost(invoke=1739.1208, outputs=0.6217, runs=49.9607),
        "CONV_2D/1x1": InstructionCost(invoke=25.8375, macs=92.0088, outputs=145.7897, pixels=12.2669, rows=195.7591),
        "CONV_2D/1x1s": InstructionCost(invoke=25.8375, macs=92.0315, outputs=145.4361, pixels=29.947, rows=3.5085),
        "CONV_2D/kxk": InstructionCost(invoke=25.8375, macs=92.147, outputs=394.9355, cols=2.5454),
        "DEPTHWISE_CONV_2D/3x3": InstructionCost(invoke=2444.3145, macs=89.8697, taps=32.5617, outputs=3.618, pixels=17.5659),
        "DEPTHWISE_CONV_2D/kxk": InstructionCost(invoke=682.8801, macs=90.9769, taps=21.281, outputs=0.8512, pixels=17.9393),
        "DEPTHWISE_CONV_2D/mult": InstructionCost(invoke=25.8375, macs=92.7643, taps=13.3556, outputs=140.9466, rows=630.188),
        "FULLY_CONNECTED": InstructionCost(invoke=546.9455, macs=15.0014, outputs=60.2836),
        "MAX_POOL_2D": InstructionCost(invoke=25.8375, macs=59.3775, outputs=106.2698, pixels=9.4964, rows=7.346),
        "MEAN": InstructionCost(invoke=1505.1891, outputs=4.2463, inputs=203.267),
        "PAD": InstructionCost(invoke=20032.1577, outputs=32.6837, rows=23.3576),
        "RESHAPE": InstructionCost(invoke=331.2655, outputs=0.0404, rows=0.4726),
        "SLICE": InstructionCost(invoke=627.7495, outputs=53.9977, rows=14.2121),
        "SOFTMAX": InstructionCost(invoke=25.8375, outputs=1144.9732),
        "STRIDED_SLICE": InstructionCost(invoke=1244.2975, outputs=0.7814, rows=55.7364),
        "UNIDIRECTIONAL_SEQUENCE_LSTM": InstructionCost(invoke=82796598.3375),
        "_INTERPRETER": InstructionCost(invoke=64.3925),
        "_FALLBACK": InstructionCost(invoke=25.8375, outputs=4.2463, rows=0.4726),
    },
    ('cortex-m4', 'cmsis-nn'): {
        "ADD": InstructionCost(invoke=874.597, outputs=16.3499, inputs=32.6999),
        "AVERAGE_POOL_2D": InstructionCost(invoke=28.0015, macs=13.6838, outputs=11.6515, pixels=172.3914, rows=297.5377),
        "CONCATENATION": InstructionCost(invoke=1732.4502, outputs=0.4921, runs=50.7369),
        "CONV_2D/1x1": InstructionCost(invoke=28.0015, macs=1.716, outputs=45.4696, pixels=45.2175),
        "CONV_2D/1x1s": InstructionCost(invoke=28.0015, macs=2.048, outputs=49.4566, rows=382.8635),
        "CONV_2D/kxk": InstructionCost(invoke=28.0015, macs=2.6443, outputs=52.7607, pixels=502.6743, cols=6.1649),
        "DEPTHWISE_CONV_2D/3x3": InstructionCost(invoke=28.0015, macs=4.4007, taps=5.6863, outputs=0.6318, pixels=55.1377, rows=206.6852),
        "DEPTHWISE_CONV_2D/kxk": InstructionCost(invoke=28.0015, macs=2.7686, taps=9.1918, outputs=0.3677, pixels=1041.9817, rows=605.3499),
        "DEPTHWISE_CONV_2D/mult": InstructionCost(invoke=28.0015, macs=8.1977, outputs=59.5419, rows=4857.6422),
        "FULLY_CONNECTED": InstructionCost(invoke=428.0175, macs=2.8792, outputs=46.8793, rows=103.9452),
        "MAX_POOL_2D": InstructionCost(invoke=28.0015, macs=9.3671, pixels=173.8234, rows=343.3831),
        "MEAN": InstructionCost(invoke=1560.8379, outputs=4.0173, inputs=203.2615),
        "PAD": InstructionCost(invoke=1217.9661, outputs=0.5148, rows=1.7917),
        "RESHAPE": InstructionCost(invoke=342.7912, outputs=0.0348, rows=0.4317),
        "SLICE": InstructionCost(invoke=618.5802, outputs=53.9992, rows=14.2013),
        "SOFTMAX": InstructionCost(invoke=28.0015, outputs=470.6232),
        "STRIDED_SLICE": InstructionCost(invoke=1291.4837, outputs=0.6276, rows=56.4024),
        "UNIDIRECTIONAL_SEQUENCE_LSTM": InstructionCost(invoke=19611851.0015),
        "_INTERPRETER": InstructionCost(invoke=69.0222),
        "_FALLBACK": InstructionCost(invoke=28.0015, outputs=0.6276, rows=0.4317),
    },
    ('cortex-m4', 'reference'): {
        "ADD": InstructionCost(invoke=2989.7145, outputs=25.3167, inputs=50.6335),
        "AVERAGE_POOL_2D": InstructionCost(invoke=28.3358, macs=48.4664, outputs=97.222, pixels=17.7939),
        "CONCATENATION": InstructionCost(invoke=1732.7514, outputs=0.4911, runs=50.7398),
        "CONV_2D/1x1": InstructionCost(invoke=28.3358, macs=92.0089, outputs=145.7902, pixels=12.3362, rows=192.7585),
        "CONV_2D/1x1s": InstructionCost(invoke=28.3358, macs=92.0318, outputs=145.4327, pixels=30.1307),
        "CONV_2D/kxk": InstructionCost(invoke=28.3358, macs=92.147, outputs=394.9357, cols=2.5452),
        "DEPTHWISE_CONV_2D/3x3": InstructionCost(invoke=2441.2546, macs=89.8715, taps=32.56, outputs=3.6178, pixels=17.5656),
        "DEPTHWISE_CONV_2D/kxk": InstructionCost(invoke=685.7141, macs=90.9771, taps=21.281, outputs=0.8512, pixels=17.8454),
        "DEPTHWISE_CONV_2D/mult": InstructionCost(invoke=28.3358, macs=92.775, taps=13.3463, outputs=140.939, rows=628.9846),
        "FULLY_CONNECTED": InstructionCost(invoke=540.9739, macs=15.0015, outputs=60.3145),
        "MAX_POOL_2D": InstructionCost(invoke=28.3358, macs=59.376, outputs=106.286, pixels=9.6592, rows=2.0501),
        "MEAN": InstructionCost(invoke=1558.4789, outputs=4.0545, inputs=203.2613),
        "PAD": InstructionCost(invoke=20058.181, outputs=32.6809, rows=23.3473),
        "RESHAPE": InstructionCost(invoke=332.0668, outputs=0.0362, rows=0.4361),
        "SLICE": InstructionCost(invoke=618.9145, outputs=53.9992, rows=14.2013),
        "SOFTMAX": InstructionCost(invoke=28.3358, outputs=1144.7441),
        "STRIDED_SLICE": InstructionCost(invoke=1295.9794, outputs=0.6272, rows=56.3983),
        "UNIDIRECTIONAL_SEQUENCE_LSTM": InstructionCost(invoke=82789339.3358),
        "_INTERPRETER": InstructionCost(invoke=66.3005),
        "_FALLBACK": InstructionCost(invoke=28.3358, outputs=4.0545, rows=0.4361),
    },
}
