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
        "ADD": InstructionCost(invoke=888.1449, outputs=16.3004, inputs=32.6008),
        "AVERAGE_POOL_2D": InstructionCost(invoke=48.3845, macs=13.8897, outputs=10.0804, pixels=165.0849, rows=503.4812),
        "CONCATENATION": InstructionCost(invoke=1743.2228, outputs=0.6269, runs=49.9272),
        "CONV_2D/1x1": InstructionCost(invoke=28.2587, macs=1.6264, outputs=50.2196, pixels=21.9811),
        "CONV_2D/1x1s": InstructionCost(invoke=1809.0081, macs=2.0145, outputs=53.1092),
        "CONV_2D/kxk": InstructionCost(invoke=28.2587, macs=2.6869, outputs=49.5842, pixels=521.4971, cols=6.2079),
        "DEPTHWISE_CONV_2D/3x3": InstructionCost(invoke=28.2587, macs=4.0626, taps=6.104, outputs=0.6782, pixels=56.4785, rows=150.2963),
        "DEPTHWISE_CONV_2D/kxk": InstructionCost(invoke=28.2587, macs=2.7688, taps=9.2316, outputs=0.3693, pixels=1041.4321, rows=613.4341),
        "DEPTHWISE_CONV_2D/mult": InstructionCost(invoke=28.2587, taps=17.9631),
        "FULLY_CONNECTED": InstructionCost(invoke=395.3557, macs=2.8748, outputs=47.6222, rows=100.1645),
        "MAX_POOL_2D": InstructionCost(invoke=28.2587, macs=9.3799, pixels=173.7118, rows=347.1713),
        "MEAN": InstructionCost(invoke=1542.1621, outputs=4.0494, inputs=203.2619),
        "PAD": InstructionCost(invoke=1328.1976, outputs=0.5262, rows=1.8306),
        "RESHAPE": InstructionCost(invoke=208.846, outputs=0.5628, rows=0.6063),
        "SLICE": InstructionCost(invoke=623.0775, outputs=53.9953, rows=14.2296),
        "SOFTMAX": InstructionCost(invoke=307.2747, outputs=474.9739),
        "STRIDED_SLICE": InstructionCost(invoke=1221.038, outputs=0.7858, rows=55.7346),
        "_INTERPRETER": InstructionCost(invoke=68.234),
        "_FALLBACK": InstructionCost(invoke=28.2587, outputs=0.7858, rows=0.6063),
    },
    ('cortex-m33', 'reference'): {
        "ADD": InstructionCost(invoke=313.5001, outputs=25.6446, inputs=51.2892),
        "AVERAGE_POOL_2D": InstructionCost(invoke=25.6674, macs=48.703, outputs=93.2898, pixels=21.4051, rows=0.8368),
        "CONCATENATION": InstructionCost(invoke=1738.3728, outputs=0.6218, runs=49.965),
        "CONV_2D/1x1": InstructionCost(invoke=25.6674, macs=92.0009, outputs=146.3314, pixels=15.0394, rows=127.5951),
        "CONV_2D/1x1s": InstructionCost(invoke=133.7185, macs=92.0194, outputs=145.8526, pixels=27.1615),
        "CONV_2D/kxk": InstructionCost(invoke=25.6674, macs=92.1926, outputs=379.7645, cols=3.6348),
        "DEPTHWISE_CONV_2D/3x3": InstructionCost(invoke=1805.7855, macs=90.9647, taps=31.5984, outputs=3.5109, pixels=18.0229),
        "DEPTHWISE_CONV_2D/kxk": InstructionCost(invoke=682.71, macs=90.9769, taps=21.281, outputs=0.8512, pixels=17.9393),
        "DEPTHWISE_CONV_2D/mult": InstructionCost(invoke=4284.741, macs=84.8975, taps=21.073, outputs=138.9055, pixels=20.7087),
        "FULLY_CONNECTED": InstructionCost(invoke=537.869, macs=15.0033, outputs=60.1917),
        "MAX_POOL_2D": InstructionCost(invoke=25.6674, macs=59.3775, outputs=106.2698, pixels=9.4964, rows=7.346),
        "MEAN": InstructionCost(invoke=1505.019, outputs=4.2463, inputs=203.267),
        "PAD": InstructionCost(invoke=20031.9876, outputs=32.6837, rows=23.3576),
        "RESHAPE": InstructionCost(invoke=189.8308, outputs=0.5651, rows=0.7898),
        "SLICE": InstructionCost(invoke=627.5794, outputs=53.9977, rows=14.2121),
        "SOFTMAX": InstructionCost(invoke=604.1682, outputs=1165.2618),
        "STRIDED_SLICE": InstructionCost(invoke=1244.1274, outputs=0.7814, rows=55.7364),
        "_INTERPRETER": InstructionCost(invoke=72.2426),
        "_FALLBACK": InstructionCost(invoke=25.6674, outputs=4.2463, rows=0.7898),
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
