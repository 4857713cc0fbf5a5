#!/usr/bin/env bash
# Build tflm_runner: a host TFLM interpreter (reference kernels) with FDT_PARTIAL registered.
# Not part of the firmware.  Needs sources the repo does not vendor:
#   TFLM_SRC        a tflite-micro checkout (checked with commit 90b983c2b3f1480642e040bbd2ddb37b998f3424)
#   FLATBUFFERS_INC flatbuffers' include/ dir of the version the schema asserts (v25.9.23 for that commit)
#   GEMMLOWP_DIR    a gemmlowp checkout (fixedpoint/ headers)
# Usage: build.sh OUT_DIR   -> OUT_DIR/tflm_runner ; tests use it via FDT_TFLM_HOST_RUNNER=OUT_DIR/tflm_runner
set -euo pipefail
OUT=${1:?usage: build.sh OUT_DIR}
: "${TFLM_SRC:?set TFLM_SRC}" "${FLATBUFFERS_INC:?set FLATBUFFERS_INC}" "${GEMMLOWP_DIR:?set GEMMLOWP_DIR}"
HERE=$(cd "$(dirname "$0")" && pwd)
KDIR=$(dirname "$HERE")
mkdir -p "$OUT/obj" "$OUT/stub/ruy/profiler"
# ruy's profiler header is only a scope-label hook in the reference kernels
cat > "$OUT/stub/ruy/profiler/instrumentation.h" <<'H'
#ifndef RUY_PROFILER_STUB_H_
#define RUY_PROFILER_STUB_H_
namespace ruy { namespace profiler {
class ScopeLabel { public: template <typename... A> explicit ScopeLabel(A...) {} };
} }
#endif
H
S=$TFLM_SRC; K=$S/tensorflow/lite/micro/kernels
SRCS=$( (ls "$S"/tensorflow/lite/micro/*.cc | grep -v -e _test -e fake_micro_context -e mock_micro_graph
  ls "$S"/tensorflow/lite/micro/arena_allocator/*.cc "$S"/tensorflow/lite/micro/memory_planner/*.cc \
     "$S"/tensorflow/lite/micro/tflite_bridge/*.cc "$S"/tensorflow/lite/core/api/*.cc | grep -v _test
  ls "$S"/tensorflow/compiler/mlir/lite/core/api/*.cc "$S"/tensorflow/compiler/mlir/lite/schema/*.cc 2>/dev/null | grep -v _test || true
  for f in core/c/common.cc kernels/internal/quantization_util.cc kernels/internal/common.cc \
           kernels/internal/runtime_shape.cc kernels/internal/tensor_ctypes.cc \
           kernels/internal/portable_tensor_utils.cc kernels/internal/reference/portable_tensor_utils.cc \
           kernels/kernel_util.cc; do echo "$S/tensorflow/lite/$f"; done
  for k in kernel_util reshape reshape_common depthwise_conv depthwise_conv_common fully_connected \
           fully_connected_common softmax softmax_common conv conv_common pooling pooling_common if; do
    echo "$K/$k.cc"; done
  echo "$KDIR/fdt_partial.cc"; echo "$HERE/tflm_runner.cc") )
CXXFLAGS="-std=c++17 -O1 -fno-exceptions -fno-rtti -w -DTF_LITE_STATIC_MEMORY -I$OUT/stub -I$S -I$FLATBUFFERS_INC -I$GEMMLOWP_DIR -I$KDIR"
i=0
for f in $SRCS; do
  i=$((i + 1))
  echo "g++ $CXXFLAGS -c $f -o $OUT/obj/$i.o"
done | xargs -P "$(nproc)" -I{} sh -c "{}"
gcc -std=c99 -O1 -c "$KDIR/fdt_partial_core.c" -o "$OUT/obj/core.o"
g++ -o "$OUT/tflm_runner" "$OUT"/obj/*.o
echo "built $OUT/tflm_runner"
