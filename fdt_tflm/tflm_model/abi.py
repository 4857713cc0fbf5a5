"""Struct layouts (sizeof, alignof) of everything TFLM allocates in the arena, per ABI.

Measured, not guessed: a probe translation unit per header/kernel source (kernel-local
structs by including the kernel's .cc) was compiled against tflite-micro 90b983c (the
firmware's pin; CMSIS-NN 4ab83cc, flatbuffers v25.9.23) and the values were read from an
array of ``sizeof``/``alignof`` in the assembly:

- ``cortex-m``: ``arm-none-eabi-g++ -mcpu=cortex-m4 -mthumb -mfloat-abi=hard
  -mfpu=fpv4-sp-d16 -std=c++17 -DTF_LITE_STATIC_MEMORY -DCMSIS_NN`` (GCC 13, AAPCS: ILP32
  and short enums, which is why e.g. ``TfLiteAddParams`` is 2 B); ``-mcpu=cortex-m33
  -mfpu=fpv5-sp-d16`` gives the same table.
- ``host64``: ``g++ -std=c++17 -DTF_LITE_STATIC_MEMORY -DUSE_TFLM_COMPRESSION`` (x86-64):
  the ``tflite-micro`` Python wheel is built with compression support, which adds members
  to ``SubgraphAllocations``, ``RecordingMicroAllocator`` and some op data (conv, fully
  connected, concatenation, transpose conv).  One exception, kept from the calibration
  against the wheel (0.dev20261023, newer than the pin): its ``TfLiteFullyConnectedParams``
  occupies 32 B where the pin's header gives 16.

``FdtPartialParams`` is our own custom kernel's (firmware_template/fdt_kernels).
Kernel-local structs are keyed ``file:Name`` (``cmsis_nn/conv.cc:OpData``).

The Signal library's op data (``signal/micro/kernels/*.cc``), kissfft's state structs
(``third_party/kissfft`` through ``signal/src/kiss_fft_wrappers/kiss_fft_{int16,int32,float}.cc``)
and the op data of the remaining builtin kernels (add_n.cc ... while.cc) were measured the
same way (arm-none-eabi-g++ 12.2 and g++ against the firmware's tree /opt/tflm/reference,
one probe TU per source).  ``assign_variable.cc:OpData`` exists only with
``USE_TFLM_COMPRESSION`` (its Init is nullptr otherwise): 0 B on the Cortex-M build.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """``sizeof`` and ``alignof`` of one struct."""

    size: int
    align: int


@dataclass(frozen=True)
class Abi:
    """The struct table of one ABI and the allocator objects TFLM builds before the model.

    ``fixed_objects``: what the interpreter's constructor allocates from the arena tail, in
    order (the arena allocator, the greedy planner, the micro allocator); the firmware uses
    the plain allocators, the Python host interpreter the recording ones.
    ``split_objects``: the same for ``MicroAllocator::Create`` with separate persistent and
    non-persistent arenas (both allocator objects live in the persistent one)."""

    name: str
    structs: dict[str, Layout]
    fixed_objects: tuple[str, ...]
    split_objects: tuple[str, ...] = ("PersistentArenaBufferAllocator", "NonPersistentArenaBufferAllocator",
                                      "GreedyMemoryPlanner", "MicroAllocator")

    def __getitem__(self, name: str) -> Layout:
        return self.structs[name]

    @property
    def pointer(self) -> int:
        return self.structs["void*"].size


# Identical on both ABIs (no pointers, no enums).
_BOTH: dict[str, Layout] = {
    "TfLiteIntArray": Layout(4, 4),
    "TfLiteFloatArray": Layout(4, 4),
    "GreedyMemoryPlanner::ListEntry": Layout(12, 4),
    "TfLiteConvParams": Layout(28, 4),
    "TfLiteDepthwiseConvParams": Layout(28, 4),
    "TfLitePoolParams": Layout(40, 4),
    "TfLiteSoftmaxParams": Layout(4, 4),
    "TfLiteConcatenationParams": Layout(8, 4),
    "TfLiteReshapeParams": Layout(36, 4),
    "TfLiteSqueezeParams": Layout(36, 4),
    "TfLiteStridedSliceParams": Layout(24, 4),
    "TfLiteSplitParams": Layout(4, 4),
    "TfLiteSplitVParams": Layout(4, 4),
    "TfLiteReducerParams": Layout(1, 1),
    "TfLiteLeakyReluParams": Layout(4, 4),
    "TfLiteUnidirectionalSequenceLSTMParams": Layout(16, 4),
    "TfLitePackParams": Layout(8, 4),
    "TfLiteUnpackParams": Layout(8, 4),
    "TfLiteGatherParams": Layout(8, 4),
    "TfLiteResizeBilinearParams": Layout(2, 1),
    "TfLiteResizeNearestNeighborParams": Layout(2, 1),
    "TfLiteDepthToSpaceParams": Layout(4, 4),
    "TfLiteSpaceToDepthParams": Layout(4, 4),
    "TfLiteBatchMatMulParams": Layout(3, 1),
    "TfLiteCumsumParams": Layout(2, 1),
    "TfLiteGeluParams": Layout(1, 1),
    "TfLiteReverseSequenceParams": Layout(8, 4),
    "OpDataPooling": Layout(32, 4),
    "OpDataAdd": Layout(60, 4),
    "StridedSliceParams": Layout(84, 4),
    "L2NormalizationParams": Layout(4, 4),
    "HardSwishParams": Layout(20, 4),
    "PreluParams": Layout(28, 4),
    "pad.h:OpData": Layout(56, 4),
    "OpDataReduce": Layout(44, 4),
    "ReluOpData": Layout(28, 4),
    "Relu6OpData": Layout(8, 4),
    "tanh.cc:OpData": Layout(16, 4),
    "OpDataQuantizeReference": Layout(32, 8),
    "DequantizeOpData": Layout(32, 8),
    "OpDataMul": Layout(36, 4),
    "OpDataSub": Layout(52, 4),
    "OpDataLogistic": Layout(16, 4),
    "LeakyReluOpData": Layout(24, 4),
    "OpDataLSTM": Layout(688, 8),
    "OpDataAbsRsqrt": Layout(28, 4),
    "OpDataSvdf": Layout(36, 4),
    "OpDataDiv": Layout(28, 4),
    "OpDataMirrorPad": Layout(20, 4),
    # Builtin params of the control-flow ops (flatbuffer_conversions.cc ParseIf/While/CallOnce).
    "TfLiteIfParams": Layout(8, 4),
    "TfLiteWhileParams": Layout(8, 4),
    "TfLiteCallOnceParams": Layout(4, 4),
    # Remaining builtin kernels' op data (tensorflow/lite/micro/kernels).
    "add_n.cc:OpData": Layout(40, 4),
    "batch_matmul.h:QuantizationOpDataBatchMatmul": Layout(28, 4),
    "call_once.cc:OpData": Layout(8, 4),
    "cumsum.cc:OpData": Layout(36, 4),
    "elu.cc:OpData": Layout(256, 1),
    "comparisons.cc:OpData": Layout(32, 4),
    "if.cc:OpData": Layout(8, 4),
    "while.cc:OpData": Layout(8, 4),
    "SpaceToBatchParams": Layout(4, 4),
    "select.cc:OpData": Layout(1, 1),
    "squared_difference.cc:OpData": Layout(112, 8),
    "var_handle.cc:OpData": Layout(4, 4),
    "OpDataCircularBuffer": Layout(8, 4),
    "detection_postprocess.cc:OpData": Layout(112, 4),
    # Signal library (signal/micro/kernels) and kissfft.
    "window.cc:TFLMSignalWindowParams": Layout(8, 4),
    "energy.cc:TFLMSignalEnergyParams": Layout(8, 4),
    "pcan.cc:TfLitePcanParams": Layout(4, 4),
    "filter_bank_log.cc:TFLMSignalLogParams": Layout(8, 4),
    "kiss_fft_state<int16>": Layout(268, 4),
    "kiss_fft_state<int32>": Layout(272, 4),
    "kiss_fft_state<float>": Layout(272, 4),
    "kiss_fft_cpx<int16>": Layout(4, 2),
    "kiss_fft_cpx<int32>": Layout(8, 4),
    "kiss_fft_cpx<float>": Layout(8, 4),
}

# x86-64, compression build (the wheel).
_HOST64_ONLY: dict[str, Layout] = {
    "TfLiteEvalTensor": Layout(24, 8),
    "TfLiteTensor": Layout(64, 8),
    "TfLiteAffineQuantization": Layout(24, 8),
    "NodeAndRegistration": Layout(64, 8),
    "SubgraphAllocations": Layout(24, 8),
    "ScratchBufferHandle": Layout(8, 8),
    "ScratchBufferRequest": Layout(16, 8),
    "AllocationInfo": Layout(32, 8),
    "SingleArenaBufferAllocator": Layout(72, 8),
    "PersistentArenaBufferAllocator": Layout(32, 8),
    "NonPersistentArenaBufferAllocator": Layout(56, 8),
    "RecordingSingleArenaBufferAllocator": Layout(104, 8),
    "GreedyMemoryPlanner": Layout(72, 8),
    "MicroAllocator": Layout(72, 8),
    "RecordingMicroAllocator": Layout(272, 8),
    "MicroBuiltinDataAllocator": Layout(16, 8),
    "void*": Layout(8, 8),
    "size_t": Layout(8, 8),
    "TfLiteNode": Layout(56, 8),
    "TFLMRegistration": Layout(56, 8),
    "TfLiteFullyConnectedParams": Layout(32, 4),  # the wheel (see module docstring)
    "TfLiteAddParams": Layout(8, 4),
    "TfLiteSubParams": Layout(8, 4),
    "TfLiteMulParams": Layout(4, 4),
    "TfLiteDivParams": Layout(4, 4),
    "TfLiteTransposeConvParams": Layout(20, 4),
    "TfLiteSVDFParams": Layout(12, 4),
    "TfLiteArgMaxParams": Layout(4, 4),
    "TfLiteArgMinParams": Layout(4, 4),
    "TfLiteCastParams": Layout(8, 4),
    "TfLiteMirrorPaddingParams": Layout(4, 4),
    "TfLiteL2NormParams": Layout(4, 4),
    "TfLiteShapeParams": Layout(4, 4),
    "TfLiteLSTMParams": Layout(20, 4),
    "TfLiteSequenceRNNParams": Layout(12, 4),
    "TfLiteRNNParams": Layout(8, 4),
    "OpDataConv": Layout(80, 8),
    "OpDataFullyConnected": Layout(72, 8),
    "concatenation.cc:OpData": Layout(80, 8),
    "SoftmaxParams": Layout(80, 8),
    "transpose_conv.cc:OpData": Layout(88, 8),
    "fdt_partial_core.h:FdtPartialParams": Layout(72, 8),
    "TfLiteVarHandleParams": Layout(16, 8),
    "assign_variable.cc:OpData": Layout(4, 4),  # USE_TFLM_COMPRESSION only
    "batch_matmul.h:OpDataBatchMatmul": Layout(32, 8),
    "embedding_lookup.cc:OpData": Layout(16, 8),
    "log_softmax.cc:LogSoftmaxOpData": Layout(40, 8),
    "rfft.cc:TfLiteAudioFrontendRfftParams<T>": Layout(48, 8),  # the same for int16_t, int32_t, float
    "irfft.cc:TfLiteAudioFrontendIrfftParams": Layout(32, 8),
    "irfft_float.cc:IrfftFloatState": Layout(16, 8),
    "filter_bank.cc:TFLMSignalFilterBankParams": Layout(64, 8),
    "filter_bank_spectral_subtraction.cc:TFLMSignalSpectralSubtractionParams": Layout(56, 8),
    "delay.cc:TFLMSignalFrontendDelayParams": Layout(32, 8),
    "framer.cc:TFLMSignalFramerParams": Layout(40, 8),
    "overlap_add.cc:TFLMSignalOverlapAddParams<T>": Layout(32, 8),  # int16_t and float alike
    "stacker.cc:TFLMSignalStackerParams": Layout(56, 8),
    "tflm_signal::CircularBuffer": Layout(40, 8),
    "kiss_fftr_state": Layout(24, 8),
}

# Cortex-M (ILP32, short enums).
_CORTEX_M_ONLY: dict[str, Layout] = {
    "TfLiteEvalTensor": Layout(12, 4),
    "TfLiteTensor": Layout(32, 4),
    "TfLiteAffineQuantization": Layout(12, 4),
    "NodeAndRegistration": Layout(32, 4),
    "SubgraphAllocations": Layout(8, 4),
    "ScratchBufferHandle": Layout(4, 4),
    "ScratchBufferRequest": Layout(12, 4),
    "AllocationInfo": Layout(24, 4),
    "SingleArenaBufferAllocator": Layout(36, 4),
    "PersistentArenaBufferAllocator": Layout(16, 4),
    "NonPersistentArenaBufferAllocator": Layout(32, 4),
    "RecordingSingleArenaBufferAllocator": Layout(52, 4),
    "GreedyMemoryPlanner": Layout(44, 4),
    "MicroAllocator": Layout(36, 4),
    "RecordingMicroAllocator": Layout(124, 4),
    "MicroBuiltinDataAllocator": Layout(8, 4),
    "void*": Layout(4, 4),
    "size_t": Layout(4, 4),
    "TfLiteNode": Layout(28, 4),
    "TFLMRegistration": Layout(28, 4),
    "TfLiteFullyConnectedParams": Layout(5, 1),
    "TfLiteAddParams": Layout(2, 1),
    "TfLiteSubParams": Layout(2, 1),
    "TfLiteMulParams": Layout(1, 1),
    "TfLiteDivParams": Layout(1, 1),
    "TfLiteTransposeConvParams": Layout(16, 4),
    "TfLiteSVDFParams": Layout(8, 4),
    "TfLiteArgMaxParams": Layout(1, 1),
    "TfLiteArgMinParams": Layout(1, 1),
    "TfLiteCastParams": Layout(2, 1),
    "TfLiteMirrorPaddingParams": Layout(1, 1),
    "TfLiteL2NormParams": Layout(1, 1),
    "TfLiteShapeParams": Layout(1, 1),
    "TfLiteLSTMParams": Layout(16, 4),
    "TfLiteSequenceRNNParams": Layout(3, 1),
    "TfLiteRNNParams": Layout(2, 1),
    "OpDataConv": Layout(56, 4),
    "OpDataFullyConnected": Layout(48, 4),
    "concatenation.cc:OpData": Layout(24, 4),
    "SoftmaxParams": Layout(56, 8),
    "transpose_conv.cc:OpData": Layout(72, 4),
    "fdt_partial_core.h:FdtPartialParams": Layout(64, 4),
    "cmsis_nn/conv.cc:OpData": Layout(60, 4),
    "cmsis_nn/depthwise_conv.cc:OpData": Layout(60, 4),
    "cmsis_nn/fully_connected.cc:OpData": Layout(72, 4),
    "cmsis_nn/pooling.cc:OpData": Layout(36, 4),
    "cmsis_nn/softmax.cc:CMSISNNSoftmaxParams": Layout(64, 8),
    "cmsis_nn/add.cc:OpData": Layout(60, 4),
    "cmsis_nn/svdf.cc:CmsisNnOpDataSvdf": Layout(40, 4),
    "cmsis_nn/transpose_conv.cc:OpData": Layout(76, 4),
    "cmsis_nn/unidirectional_sequence_lstm.cc:OpData": Layout(912, 8),
    "TfLiteVarHandleParams": Layout(8, 4),
    "assign_variable.cc:OpData": Layout(0, 1),  # no Init without USE_TFLM_COMPRESSION
    "batch_matmul.h:OpDataBatchMatmul": Layout(16, 4),
    "embedding_lookup.cc:OpData": Layout(8, 4),
    "log_softmax.cc:LogSoftmaxOpData": Layout(28, 4),
    "rfft.cc:TfLiteAudioFrontendRfftParams<T>": Layout(32, 4),
    "irfft.cc:TfLiteAudioFrontendIrfftParams": Layout(24, 4),
    "irfft_float.cc:IrfftFloatState": Layout(8, 4),
    "filter_bank.cc:TFLMSignalFilterBankParams": Layout(36, 4),
    "filter_bank_spectral_subtraction.cc:TFLMSignalSpectralSubtractionParams": Layout(44, 4),
    "delay.cc:TFLMSignalFrontendDelayParams": Layout(20, 4),
    "framer.cc:TFLMSignalFramerParams": Layout(28, 4),
    "overlap_add.cc:TFLMSignalOverlapAddParams<T>": Layout(24, 4),
    "stacker.cc:TFLMSignalStackerParams": Layout(36, 4),
    "tflm_signal::CircularBuffer": Layout(24, 4),
    "kiss_fftr_state": Layout(12, 4),
}

HOST64 = Abi("host64", {**_BOTH, **_HOST64_ONLY},
             ("RecordingSingleArenaBufferAllocator", "GreedyMemoryPlanner", "RecordingMicroAllocator"))
CORTEX_M = Abi("cortex-m", {**_BOTH, **_CORTEX_M_ONLY},
               ("SingleArenaBufferAllocator", "GreedyMemoryPlanner", "MicroAllocator"))
ABI_TABLES: dict[str, Abi] = {"host64": HOST64, "cortex-m": CORTEX_M}
