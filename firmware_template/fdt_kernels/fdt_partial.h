/* TFLM registration of the FDT_PARTIAL custom operator (fdt-tflm).
 *
 * Models rewritten by `fdt-tflm --allow-custom-ops` contain CUSTOM ops with custom code
 * "FDT_PARTIAL"; register them with
 *     static TFLMRegistration fdt_partial = tflite::Register_FDT_PARTIAL();
 *     op_resolver.AddCustom(tflite::kFdtPartialCustomCode, &fdt_partial);
 * The arithmetic lives in fdt_partial_core.c (plain C, host-tested).
 */
#ifndef FDT_KERNELS_FDT_PARTIAL_H_
#define FDT_KERNELS_FDT_PARTIAL_H_

#include "tensorflow/lite/micro/micro_common.h"

namespace tflite {

TFLMRegistration Register_FDT_PARTIAL();

inline constexpr const char* kFdtPartialCustomCode = "FDT_PARTIAL";

}  // namespace tflite

#endif  // FDT_KERNELS_FDT_PARTIAL_H_
